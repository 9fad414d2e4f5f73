"""The ablation table from model folders: teacher row, one row per variant, what each was trained with."""

from __future__ import annotations

import json

import pytest

from glueslim.ablation import ablation_table, dev_score
from glueslim.cli import main


def _model(folder, score, **record):
    folder.mkdir(parents=True)
    (folder / "train_log.jsonl").write_text(json.dumps({"epoch": 1, "val_metrics": {"accuracy": 0.1}}) + "\n"
                                            + json.dumps({"epoch": 2, "val_metrics": score}) + "\n")
    (folder / "glueslim.json").write_text(json.dumps(record))


def test_table_rows_scores_and_ingredients(tmp_path):
    _model(tmp_path / "teacher" / "sst2", {"accuracy": 0.8})
    _model(tmp_path / "teacher" / "mrpc", {"accuracy": 0.6, "f1": 0.8})
    _model(tmp_path / "full" / "sst2", {"accuracy": 0.7}, general_distillation=True, augmented=True,
           intermediate=["attention", "embedding", "hidden"])
    _model(tmp_path / "full" / "mrpc", {"accuracy": 0.5, "f1": 0.7})
    _model(tmp_path / "bare" / "sst2", {"accuracy": 0.6}, general_distillation=False, augmented=False,
           intermediate=[])
    _model(tmp_path / "bare" / "mrpc", {"accuracy": 0.4, "f1": 0.6})
    assert dev_score(tmp_path / "teacher" / "mrpc") == pytest.approx(0.7)  # the final epoch, its metrics' mean
    doc = ablation_table(["sst2", "mrpc"], tmp_path / "teacher", [("full", tmp_path / "full"),
                                                                  ("bare", tmp_path / "bare")], "TinyBERT ablation")
    assert [r["variant"] for r in doc["rows"]] == ["teacher", "full", "bare"]
    full, bare = doc["rows"][1], doc["rows"][2]
    assert (full["general"], full["augmentation"], full["intermediate"]) == ("yes", "yes", "attention, embedding, hidden")
    assert (bare["general"], bare["augmentation"], bare["intermediate"]) == ("no", "no", "none")
    assert full["mean"] == pytest.approx(0.65) and full["pct"] == pytest.approx(100 * 0.65 / 0.75)
    assert [c["key"] for c in doc["columns"]][-2:] == ["mean", "pct"]


def test_command_writes_the_table_with_its_order(tmp_path):
    _model(tmp_path / "teacher" / "sst2", {"accuracy": 0.8})
    _model(tmp_path / "v" / "sst2", {"accuracy": 0.4}, intermediate=["hidden"])
    out = tmp_path / "ablations" / "tb.json"
    main(["ablation", "--tasks", "sst2", "--teacher-root", str(tmp_path / "teacher"),
          "--variant", "hidden only", str(tmp_path / "v"), "--title", "T", "--order", "2", "--out", str(out)])
    doc = json.loads(out.read_text())
    assert doc["title"] == "T" and doc["order"] == 2 and doc["rows"][1]["pct"] == pytest.approx(50.0)
    from glueslim.report.collect import read_ablations

    (table,) = read_ablations(out.parent)
    assert len(table["rows"]) == 2 and table["columns"][-1]["format"] == "pct"
