"""predict and score: prediction files written and read back, and scores computed from them alone."""

from __future__ import annotations

import pytest

from glueslim import cli
from glueslim.errors import UserError
from glueslim.evaluate import read_predictions, score_model, split_for_stem, write_predictions
from glueslim.io import atomic_write_jsonl


def test_predictions_round_trip_and_score(tmp_path):
    rows = [{"idx": i, "label": i % 2} for i in range(4)]
    write_predictions(tmp_path / "sst2.tsv", rows, [0, 1, 1, 1])
    assert read_predictions(tmp_path / "sst2.tsv", regression=False) == ([0, 1, 0, 1], [0, 1, 1, 1])
    scores = score_model(tmp_path, ["sst2"])
    assert scores["tasks"]["sst2"]["metrics"]["accuracy"] == 0.75 and scores["tasks"]["sst2"]["n"] == 4


def test_a_malformed_prediction_file_names_its_line(tmp_path):
    (tmp_path / "p.tsv").write_text("idx\tlabel\tprediction\n0\t1\n")
    with pytest.raises(UserError, match=r"p.tsv:2: malformed prediction row"):
        read_predictions(tmp_path / "p.tsv", regression=False)
    with pytest.raises(UserError, match="no evaluated split called 'nope'"):
        split_for_stem("mnli", "nope")


def test_predict_writes_one_row_per_dev_example(tiny_bert, tmp_path):
    rows = [{"idx": i, "text_a": f"good film {i}", "text_b": None, "label": i % 2} for i in range(5)]
    atomic_write_jsonl(tmp_path / "data" / "validation.jsonl", rows)
    cli.main(["predict", "--task", "sst2", "--stem", "sst2", "--data", str(tmp_path / "data"), "--model-dir",
              str(tiny_bert), "--out", str(tmp_path / "sst2.tsv"), "--device", "cpu", "--threads", "1"])
    labels, preds = read_predictions(tmp_path / "sst2.tsv", regression=False)
    assert labels == [0, 1, 0, 1, 0] and len(preds) == 5 and set(preds) <= {0, 1}
