"""Tests of glueslim.report.collect: reading score, profile, model and ablation files; errors name the file."""

from __future__ import annotations

import json

import pytest

from glueslim.errors import UserError
from glueslim.report.render import render_html
from report_fixtures import STUDENT, TEACHER, _write, build, results, row_of


def test_profile_without_sweeps_still_reads(results):
    # a profile from before the sweeps: one length, no floor
    path = results / "profile" / f"{STUDENT}.json"
    prof = json.loads(path.read_text())
    for key in ("sweeps", "macs_by_length", "peak_flops"):
        del prof[key]
    prof["latency"] = [{k: v for k, v in e.items() if k not in ("macs", "floor_ms", "pct_of_peak")}
                       for e in prof["latency"] if e["seq_length"] == 128]
    path.write_text(json.dumps(prof))
    doc = build(results)
    s = row_of(doc, STUDENT)
    assert list(s["latency_ms"]) == ["batch_1", "batch_32"] and s["latency_by_length_ms"] == {}
    assert s["latency_ms"]["batch_1"]["floor_ms"] is None and s["speedup"]["batch_1"] == pytest.approx(2.5)
    assert "<svg" in render_html(doc)


def test_missing_task_is_null_safe(results):
    path = results / "scores" / f"{STUDENT}.json"
    doc = json.loads(path.read_text())
    del doc["tasks"]["mrpc"]
    path.write_text(json.dumps(doc))
    lb = build(results)
    s = row_of(lb, STUDENT)
    assert s["task_scores"]["mrpc"] is None and s["glue_score"] is None and s["pct_of_teacher"] is None
    assert s["pct_of_teacher_by_task"]["mrpc"] is None
    assert lb["rows"][-1]["model"] == STUDENT  # null GLUE sorts last
    assert any("mrpc" in w for w in lb["warnings"])
    html = render_html(lb)
    assert "—" in html


def test_stored_score_is_recomputed(results):
    path = results / "scores" / f"{STUDENT}.json"
    doc = json.loads(path.read_text())
    doc["tasks"]["sst2"]["score"] = 0.99
    doc["glue_score"] = 0.99
    path.write_text(json.dumps(doc))
    lb = build(results)
    assert row_of(lb, STUDENT)["task_scores"]["sst2"] == pytest.approx(0.85)
    assert row_of(lb, STUDENT)["glue_score"] == pytest.approx(0.815)
    assert any("differs" in w for w in lb["warnings"])


@pytest.mark.parametrize("bad, message", [
    ({"columns": ["a"], "rows": []}, "title"),
    ({"title": "t", "columns": [], "rows": []}, "columns"),
    ({"title": "t", "columns": ["a", "b"], "rows": [[1]]}, r"rows\[0\]"),
    ({"title": "t", "columns": ["a"], "rows": [{"zz": 1}]}, "zz"),
    ({"title": "t", "columns": [{"label": "a", "format": "weird"}], "rows": []}, "format"),
    ({"title": "t", "columns": ["a"], "rows": [[[1, 2]]]}, "cells"),
])
def test_bad_ablation_table_names_the_file(results, bad, message):
    _write(results / "ablations" / "broken.json", bad)
    with pytest.raises(UserError, match=message) as e:
        build(results)
    assert "broken.json" in str(e.value)


def test_missing_profile_is_user_error_naming_path(results):
    missing = results / "profile" / f"{STUDENT}.json"
    missing.unlink()
    with pytest.raises(UserError) as e:
        build(results)
    assert str(missing) in str(e.value) and "profile" in str(e.value)


def test_missing_scores_and_metadata_name_the_rule(results):
    # a model that was not trained (e.g. quantized after training) has no train_log.jsonl: no curve
    (results / "models" / STUDENT / "sst2" / "train_log.jsonl").unlink()
    doc = build(results)
    assert "sst2" not in doc["curves"][STUDENT] and "mrpc" in doc["curves"][STUDENT]
    assert row_of(doc, STUDENT)["method"] == "DistilBERT-style KD"
    render_html(doc)
    (results / "models" / STUDENT / "sst2" / "glueslim.json").unlink()
    with pytest.raises(UserError, match=r"glueslim\.json.*builds model `distil3`.*distill_student"):
        build(results)
    (results / "models" / TEACHER / "sst2" / "glueslim.json").unlink()
    with pytest.raises(UserError, match=r"glueslim\.json.*`finetune_teacher`"):
        build(results)
    (results / "scores" / f"{TEACHER}.json").unlink()
    with pytest.raises(UserError, match=r"scores/teacher\.json.*`score`"):
        build(results)
