"""`glueslim finetune` end to end on a tiny model: the saved folder, its glueslim.json and the spent checkpoints."""

from __future__ import annotations

import json

from glueslim import cli
from glueslim.io import atomic_write_jsonl
from glueslim.record import read_record


def test_finetune_saves_the_model_its_log_and_its_record(tiny_bert, tmp_path):
    words = ["good", "bad", "fine", "awful"]
    rows = [{"idx": i, "text_a": f"{words[i % 4]} film {i}", "text_b": None, "label": i % 2} for i in range(24)]
    atomic_write_jsonl(tmp_path / "data" / "train.jsonl", rows[:16])
    atomic_write_jsonl(tmp_path / "data" / "validation.jsonl", rows[16:])
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    cli.main(["finetune", "--task", "sst2", "--data", str(tmp_path / "data"), "--model", str(tiny_bert),
              "--out", str(out), "--checkpoint-dir", str(ckpt), "--device", "cpu", "--threads", "1",
              "--epochs", "1", "--batch-size", "4", "--gradient-accumulation-steps", "2", "--max-seq-length", "16"])
    record = read_record(out)
    assert list(record) == ["model", "task", "method", "base_model", "revision", "teacher", "num_layers",
                            "layer_map", "hyperparameters"]
    assert record["method"] == "fine-tuned teacher" and record["base_model"] == str(tiny_bert)
    assert record["hyperparameters"]["gradient_accumulation_steps"] == 2
    assert record["hyperparameters"]["epochs"] == 1 and record["hyperparameters"]["batch_size"] == 4
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1] and log[0]["step"] == 2
    assert (out / "model.safetensors").exists() and not ckpt.exists()
