"""Tests of glueslim.report.collect: reading score, profile, model and ablation files; errors name the file."""

from __future__ import annotations

import json
import re

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


@pytest.mark.parametrize("task, key, value, message", [
    ("sst2", "accuracy", 1.7, r"tasks\.sst2\.metrics\.accuracy = 1\.7: outside \[0, 1\]"),
    ("sst2", "accuracy", -0.1, r"tasks\.sst2\.metrics\.accuracy = -0\.1: outside \[0, 1\]"),
    ("sst2", "accuracy", 85.0, r"tasks\.sst2\.metrics\.accuracy = 85\.0: outside \[0, 1\] \(scores are fractions"),
    ("mrpc", "f1", 1.01, r"tasks\.mrpc\.metrics\.f1 = 1\.01: outside \[0, 1\]"),
    ("sst2", "accuracy", float("nan"), r"tasks\.sst2\.metrics\.accuracy = nan: not a finite number"),
    ("mrpc", "f1", float("inf"), r"tasks\.mrpc\.metrics\.f1 = inf: not a finite number"),
    ("sst2", "accuracy", "0.9", r"tasks\.sst2\.metrics\.accuracy = '0\.9': not a finite number"),
    ("sst2", "accuracy", True, r"tasks\.sst2\.metrics\.accuracy = True: not a finite number"),
    ("mrpc", "f1", None, r"tasks\.mrpc\.metrics\.f1 = None: not a finite number"),
    ("mrpc", "f1", "<missing>", r"tasks\.mrpc\.metrics\.f1 is missing"),
])
def test_impossible_metric_values_are_rejected_naming_file_and_key(results, task, key, value, message):
    path = results / "scores" / f"{STUDENT}.json"
    doc = json.loads(path.read_text())
    if value == "<missing>":
        del doc["tasks"][task]["metrics"][key]
    else:
        doc["tasks"][task]["metrics"][key] = value
    path.write_text(json.dumps(doc))  # NaN and Infinity as Python's json writes them
    with pytest.raises(UserError, match=message) as e:
        build(results)
    assert str(path) in str(e.value) and "re-run score" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("task, metrics", [
    ("cola", {"mcc": -1.0}), ("cola", {"mcc": 1.0}), ("stsb", {"pearson": -0.5, "spearman": 1.0}),
    ("mnli", {"matched_accuracy": 0.0, "mismatched_accuracy": 1.0}),
])
def test_metric_ranges_include_their_bounds_and_correlations_go_down_to_minus_one(tmp_path, task, metrics):
    from glueslim.report.checks import task_metrics

    assert task_metrics(tmp_path / "s.json", task, {**metrics, "extra": 99}) == metrics  # unknown keys dropped
    bad = {k: (v - 1.5 if v <= 0 else v + 0.5) for k, v in metrics.items()}
    with pytest.raises(UserError, match=r"outside \[-?[01], 1\]"):
        task_metrics(tmp_path / "s.json", task, bad)


@pytest.mark.parametrize("text, message", [
    ("{\"model\": \"distil3\", \"tasks\": {", "is not valid JSON"),
    ("", "is not valid JSON"),
    ("[1, 2]", "expected a JSON object, got list"),
    ("{\"model\": \"teacher\", \"tasks\": {}}", "file is for model 'teacher', expected 'distil3'"),
    ("{\"model\": \"distil3\", \"tasks\": [1]}", "\"tasks\" must be an object"),
    ("{\"model\": \"distil3\", \"tasks\": {\"sst2\": {\"score\": 0.9}}}", "tasks.sst2 has no \"metrics\" object"),
])
def test_a_score_file_that_is_not_a_score_file_is_one_line(results, text, message):
    path = results / "scores" / f"{STUDENT}.json"
    path.write_text(text)
    with pytest.raises(UserError, match=re.escape(message)) as e:
        build(results)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("change, message", [
    (lambda p: p["latency"][0].update(median_ms=-4.0), r"latency\[0\]\.median_ms = -4\.0: expected a finite number > 0"),
    (lambda p: p["latency"][1].update(median_ms=0), r"latency\[1\]\.median_ms = 0: expected a finite number > 0"),
    (lambda p: p["latency"][0].update(median_ms=float("nan")), r"latency\[0\]\.median_ms = nan"),
    (lambda p: p["latency"][0].pop("median_ms"), r"latency\[0\]\.median_ms = None"),
    (lambda p: p["latency"][0].update(q1_ms=-1.0), r"latency\[0\]\.q1_ms = -1\.0: expected a finite number >= 0"),
    (lambda p: p["parameters"].update(total=0), r"parameters\.total = 0: expected a whole number > 0"),
    (lambda p: p["parameters"].update(total=1.5), r"parameters\.total = 1\.5: expected a whole number > 0"),
    (lambda p: p.update(parameters=None), r"\"parameters\" must be an object"),
    (lambda p: p.update(size_on_disk_bytes=-10), r"size_on_disk_bytes = -10"),
    (lambda p: p["macs"].update(total=float("inf")), r"macs\.total = inf"),
    (lambda p: p.update(latency={"batch_1": 3.0}), r"\"latency\" must be a list"),
    (lambda p: p.update(latency_compiled=[{"batch_size": 1, "median_ms": -2.0}]), r"latency_compiled\[0\]\.median_ms"),
])
def test_impossible_profile_figures_are_rejected_naming_file_and_key(results, change, message):
    path = results / "profile" / f"{STUDENT}.json"
    prof = json.loads(path.read_text())
    change(prof)
    path.write_text(json.dumps(prof))
    with pytest.raises(UserError, match=message) as e:
        build(results)
    assert str(path) in str(e.value) and "re-run profile" in str(e.value)


def test_an_input_that_is_a_folder_is_not_called_missing(results):
    path = results / "profile" / f"{STUDENT}.json"
    path.unlink()
    path.mkdir()
    with pytest.raises(UserError, match=r"input is not a file: .*distil3\.json \(written by the Snakemake rule `profile`"):
        build(results)
