"""glueslim.json: one writer, documented fields, the record read back as written."""

from __future__ import annotations

import json

import pytest

from glueslim.record import FIELDS, RECORD_FILE, read_record, write_record


def test_a_record_round_trips_in_the_writers_key_order(tmp_path):
    record = {"model": "distil", "task": "rte", "method": "DistilBERT-style KD", "base_model": "bert-base-uncased",
              "teacher": "teacher", "num_layers": 6, "layer_map": [0, 2, 4, 7, 9, 11], "embedding_size": None,
              "hyperparameters": {"learning_rate": 5e-5, "alpha": 0.5, "temperature": 2.0}}
    write_record(tmp_path, record)
    assert read_record(tmp_path) == record
    text = (tmp_path / RECORD_FILE).read_text()
    assert list(json.loads(text)) == list(record) and text == json.dumps(record, indent=2) + "\n"


def test_an_undocumented_field_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(ValueError, match="field.s. colour not documented"):
        write_record(tmp_path, {"model": "m", "colour": "blue"})
    assert not (tmp_path / RECORD_FILE).exists()


def test_strict_json_only(tmp_path):
    with pytest.raises(ValueError):
        write_record(tmp_path, {"model": "m", "hyperparameters": {"learning_rate": float("nan")}})
    assert not (tmp_path / RECORD_FILE).exists()


def test_the_leaderboard_fields_are_documented():
    assert {"model", "task", "method", "base_model", "teacher", "num_layers", "hyperparameters"} <= set(FIELDS)
    assert all(isinstance(v, str) and v for v in FIELDS.values())
