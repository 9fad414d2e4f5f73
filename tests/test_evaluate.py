"""predict and score: prediction files written and read back, checked against the prepared dev split, and
scores computed from them alone."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from glueslim import cli
from glueslim.errors import UserError
from glueslim.evaluate import read_predictions, score_model, split_for_stem, write_predictions
from glueslim.io import atomic_write_jsonl

HEADER = "idx\tlabel\tprediction\n"


def prepared(root, task, split, labels):
    """results/data/<task>/<split>.jsonl with the given gold labels (idx 0..n-1)."""
    rows = [{"idx": i, "text_a": f"text {i}", "text_b": None, "label": y} for i, y in enumerate(labels)]
    atomic_write_jsonl(root / task / f"{split}.jsonl", rows)
    return rows


def test_predictions_round_trip_and_score(tmp_path):
    rows = prepared(tmp_path / "data", "sst2", "validation", [0, 1, 0, 1])
    write_predictions(tmp_path / "sst2.tsv", rows, [0, 1, 1, 1])
    assert read_predictions(tmp_path / "sst2.tsv", "sst2", rows) == ([0, 1, 0, 1], [0, 1, 1, 1])
    scores = score_model(tmp_path, ["sst2"], tmp_path / "data")
    assert scores["tasks"]["sst2"]["metrics"]["accuracy"] == 0.75 and scores["tasks"]["sst2"]["n"] == 4


def test_rows_in_any_order_and_crlf_line_ends_are_read_in_the_split_order(tmp_path):
    rows = prepared(tmp_path / "data", "stsb", "validation", [0.5, 4.25, 2.0])
    (tmp_path / "stsb.tsv").write_bytes(b"idx\tlabel\tprediction\r\n2\t2.0\t1.5\r\n0\t0.5\t0.25\r\n1\t4.25\t4\r\n")
    assert read_predictions(tmp_path / "stsb.tsv", "stsb", rows) == ([0.5, 4.25, 2.0], [0.25, 4.0, 1.5])


SST2 = [0, 1, 1, 0, 1]


@pytest.mark.parametrize("body, message", [
    # 3 of 5 rows: the first missing idx is named
    ("0\t0\t0\n1\t1\t1\n2\t1\t0\n", r"sst2\.tsv: 2 of the 5 rows of the prepared sst2 split have no prediction "
                                     r"\(first: idx 3\)"),
    ("0\t0\t0\n1\t1\t1\n1\t1\t1\n2\t1\t0\n3\t0\t0\n4\t1\t1\n", r"sst2\.tsv:4: idx 1 appears twice \(first on line 3\)"),
    ("0\t0\t0\n1\t1\t2\n", r"sst2\.tsv:3: idx 1: prediction '2' is not a label id 0\.\.1 of sst2"),
    ("0\t0\t-1\n", r"sst2\.tsv:2: idx 0: prediction '-1' is not a label id"),
    ("0\t0\tpositive\n", r"sst2\.tsv:2: idx 0: prediction 'positive' is not a label id"),
    ("0\t1\t1\n", r"sst2\.tsv:2: idx 0 has label '1', the prepared split has 0"),
    ("7\t0\t0\n", r"sst2\.tsv:2: idx 7 is not in the prepared sst2 split \(5 rows\)"),
    ("x\t0\t0\n", r"sst2\.tsv:2: idx 'x' is not an integer"),
    ("0\t0\t0\textra\n", r"sst2\.tsv:2: expected 3 tab-separated fields .* found 4"),
    ("0\t0\n", r"sst2\.tsv:2: expected 3 tab-separated fields .* found 2"),
    ("0\t0\t0\n\n1\t1\t1\n", r"sst2\.tsv:3: expected 3 tab-separated fields .* found 0"),
])
def test_a_prediction_file_that_does_not_match_the_prepared_split_names_file_line_and_idx(tmp_path, body, message):
    rows = prepared(tmp_path / "data", "sst2", "validation", SST2)
    (tmp_path / "sst2.tsv").write_text(HEADER + body)
    with pytest.raises(UserError, match=message) as e:
        read_predictions(tmp_path / "sst2.tsv", "sst2", rows)
    assert "re-run predict" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("content, message", [
    (b"", r"sst2\.tsv:1: expected the header idx label prediction \(tab-separated\), found 'nothing'"),
    (b"idx\tlabel\tpredicton\n0\t0\t0\n", r"found 'idx label predicton'"),
    (b"\xef\xbb\xbfidx\tlabel\tprediction\n", r"found '\\ufeffidx label prediction'"),
    (b"idx,label,prediction\n0,0,0\n", r"found 'idx,label,prediction'"),
    (b"idx\tlabel\tprediction\n0\t0\t\xff\n", r"sst2\.tsv: not a prediction file \('utf-8' codec"),
])
def test_a_prediction_file_with_a_bad_header_or_encoding_is_one_line(tmp_path, content, message):
    rows = prepared(tmp_path / "data", "sst2", "validation", SST2)
    (tmp_path / "sst2.tsv").write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_predictions(tmp_path / "sst2.tsv", "sst2", rows)


@pytest.mark.parametrize("pred", ["nan", "inf", "-inf", "", "high"])
def test_regression_predictions_must_be_finite_numbers(tmp_path, pred):
    rows = prepared(tmp_path / "data", "stsb", "validation", [0.5, 4.25])
    (tmp_path / "stsb.tsv").write_text(HEADER + f"0\t0.5\t1.0\n1\t4.25\t{pred}\n")
    with pytest.raises(UserError, match=rf"stsb\.tsv:3: idx 1: prediction '{pred}' is not a finite number"):
        read_predictions(tmp_path / "stsb.tsv", "stsb", rows)


def test_a_prediction_file_of_another_task_is_caught(tmp_path):
    # an MRPC file copied over sst2.tsv: the idx set and gold labels differ from SST-2's prepared dev split
    rows = prepared(tmp_path / "data", "sst2", "validation", SST2)
    mrpc = [{"idx": i, "label": 1} for i in range(8)]
    write_predictions(tmp_path / "sst2.tsv", mrpc, [1] * 8)
    with pytest.raises(UserError, match=r"sst2\.tsv:2: idx 0 has label '1', the prepared split has 0"):
        read_predictions(tmp_path / "sst2.tsv", "sst2", rows)


def test_a_missing_or_directory_prediction_file_and_unknown_stem(tmp_path):
    rows = prepared(tmp_path / "data", "sst2", "validation", SST2)
    with pytest.raises(UserError, match=r"sst2\.tsv: missing prediction file; run predict first"):
        read_predictions(tmp_path / "sst2.tsv", "sst2", rows)
    (tmp_path / "sst2.tsv").mkdir()
    with pytest.raises(UserError, match=r"sst2\.tsv: is not a file"):
        read_predictions(tmp_path / "sst2.tsv", "sst2", rows)
    with pytest.raises(UserError, match="no evaluated split called 'nope'"):
        split_for_stem("mnli", "nope")


def test_score_command_rejects_a_bad_file_in_one_line_and_writes_nothing(tmp_path):
    rows = prepared(tmp_path / "data", "sst2", "validation", SST2)
    write_predictions(tmp_path / "pred" / "sst2.tsv", rows[:2], [0, 1])  # 2 of 5 rows
    out = tmp_path / "scores" / "m.json"
    cmd = [sys.executable, "-m", "glueslim", "score", "--model", "m", "--predictions", str(tmp_path / "pred"),
           "--tasks", "sst2", "--data", str(tmp_path / "data"), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "sst2.tsv: 3 of the 5 rows of the prepared sst2 split have no prediction (first: idx 2)" in proc.stderr
    assert not out.exists()
    write_predictions(tmp_path / "pred" / "sst2.tsv", rows, [0, 1, 1, 0, 0])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert math.isclose(json.loads(out.read_text())["tasks"]["sst2"]["score"], 0.8)
    # the prepared split is missing: named, with the stage to run
    proc = subprocess.run([*cmd[:-4], "--data", str(tmp_path / "nodata"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "nodata/sst2" in proc.stderr and "run prepare-data first" in proc.stderr


def test_predict_writes_one_row_per_dev_example(tiny_bert, tmp_path):
    rows = [{"idx": i, "text_a": f"good film {i}", "text_b": None, "label": i % 2} for i in range(5)]
    atomic_write_jsonl(tmp_path / "data" / "validation.jsonl", rows)
    cli.main(["predict", "--task", "sst2", "--stem", "sst2", "--data", str(tmp_path / "data"), "--model-dir",
              str(tiny_bert), "--out", str(tmp_path / "sst2.tsv"), "--device", "cpu", "--threads", "1"])
    labels, preds = read_predictions(tmp_path / "sst2.tsv", "sst2", rows)
    assert labels == [0, 1, 0, 1, 0] and len(preds) == 5 and set(preds) <= {0, 1}


def test_an_empty_prepared_split_is_not_scored(tmp_path):
    prepared(tmp_path / "data", "sst2", "validation", [])
    (tmp_path / "sst2.tsv").write_text(HEADER)
    with pytest.raises(UserError, match=r"sst2/validation\.jsonl.*prepare-data"):
        score_model(tmp_path, ["sst2"], tmp_path / "data")
