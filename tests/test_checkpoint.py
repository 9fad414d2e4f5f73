"""Checkpoints: the run record that decides whether one is resumed, the resume point, and the saved model."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest

from conftest import make_recipe
from glueslim.checkpoint import STATE_FILE, resume_point, run_record, save_model
from glueslim.modeling import load_classifier, load_tokenizer
from glueslim.record import read_record
from glueslim.tasks import get_task

FEATS = [{"idx": i, "labels": i % 2, "input_ids": [2, 5 + i, 3]} for i in range(6)]


def _model(layers=2, hidden=32, labels=2):
    return SimpleNamespace(config=SimpleNamespace(num_hidden_layers=layers, hidden_size=hidden, num_labels=labels))


def test_the_run_record_holds_the_recipe_the_command_the_data_and_the_shape(tmp_path):
    recipe = make_recipe(tmp_path / "ckpt")
    run = run_record(recipe, {"alpha": 0.5, "layer_map": (0, 2)}, FEATS, _model())
    assert run["learning_rate"] == recipe.learning_rate and run["alpha"] == 0.5 and run["layer_map"] == [0, 2]
    assert run["effective_batch_size"] == 8 and len(run["train_data_sha256"]) == 64
    assert run["model"] == {"class": "SimpleNamespace", "layers": 2, "hidden": 32, "labels": 2}
    assert {"precision", "tf32", "seed", "epochs", "max_seq_length"} <= set(run)
    # where it runs and how the effective batch is split may change between a run and its resumption
    for k in ("checkpoint_dir", "threads", "device", "eval_batch_size", "batch_size", "gradient_accumulation_steps"):
        assert k not in run
    split = replace(recipe, batch_size=4, gradient_accumulation_steps=2, device="cuda", threads=8,
                    checkpoint_dir="elsewhere", eval_batch_size=1)
    assert run_record(split, {"alpha": 0.5, "layer_map": [0, 2]}, FEATS, _model()) == run


@pytest.mark.parametrize("change", ["recipe", "extra", "data", "shape"])
def test_any_other_change_makes_another_run(tmp_path, change):
    recipe = make_recipe(tmp_path / "ckpt")
    args = [recipe, {"alpha": 0.5}, FEATS, _model()]
    before = run_record(*args)
    if change == "recipe":
        args[0] = replace(recipe, warmup_ratio=0.0)
    elif change == "extra":
        args[1] = {"alpha": 0.7}
    elif change == "data":
        args[2] = [{**f, "labels": 1} for f in FEATS]
    else:
        args[3] = _model(layers=3)
    assert run_record(*args) != before


def _checkpoint(ckpt, epoch, run, history):
    d = ckpt / f"epoch_{epoch}"
    d.mkdir(parents=True)
    (d / STATE_FILE).write_text(json.dumps({"run": run, "history": history}))
    (d / "DONE").write_text("ok\n")


def test_resume_point_is_the_latest_done_checkpoint_of_the_same_run(tmp_path, caplog):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    assert resume_point(ckpt, {"a": 1}) == (0, None, [])
    _checkpoint(ckpt, 1, {"a": 1}, [{"epoch": 1}])
    _checkpoint(ckpt, 2, {"a": 1}, [{"epoch": 1}, {"epoch": 2}])
    (ckpt / "epoch_3").mkdir()  # cut short: no DONE
    (ckpt / ".epoch_3.x.tmp").mkdir()
    assert resume_point(ckpt, {"a": 1}) == (2, ckpt / "epoch_2", [{"epoch": 1}, {"epoch": 2}])
    assert not (ckpt / ".epoch_3.x.tmp").exists()
    assert resume_point(ckpt, {"a": 2}) == (0, None, [])  # another run: removed
    assert "changed: a" in caplog.text and not list(ckpt.glob("epoch_*"))


def test_save_model_writes_the_record_and_spends_the_checkpoints(tiny_bert, tmp_path):
    ckpt = tmp_path / "ckpt"
    (ckpt / "epoch_1").mkdir(parents=True)
    model, tok = load_classifier(str(tiny_bert), get_task("sst2")), load_tokenizer(str(tiny_bert))
    record = {"model": "teacher", "task": "sst2", "method": "fine-tuned teacher", "hyperparameters": {"epochs": 1}}
    save_model(model, tok, tmp_path / "out", record, [{"epoch": 1}], ckpt)
    assert read_record(tmp_path / "out") == record
    assert (tmp_path / "out" / "model.safetensors").exists() and not ckpt.exists()
    assert (tmp_path / "out" / "train_log.jsonl").read_text() == '{"epoch": 1}\n'
    with pytest.raises(ValueError, match="not documented"):
        save_model(model, tok, tmp_path / "bad", {"colour": "blue"}, [], ckpt)
    assert not (tmp_path / "bad").exists()
