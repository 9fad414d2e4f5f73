"""The transfer set: a capped task's other training texts, gold labels dropped, labelled by the teacher
(`transfer-set`), and a student that trains on them (`distill --transfer`)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from glueslim.cli import main
from glueslim.errors import UserError
from glueslim.io import atomic_write_json, atomic_write_jsonl, read_jsonl
from glueslim.modeling import load_classifier, load_tokenizer
from glueslim.teacher_outputs import transfer_rows

WORDS = "good bad fine awful great poor movie film actor story plot long short funny sad".split()
ROWS = [{"idx": i, "text_a": " ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 6)), "text_b": None,
         "label": i % 2} for i in range(60)]
CAPPED = [r for r in ROWS if r["idx"] % 3 == 0]  # 20 rows


def test_transfer_rows_are_the_texts_the_cap_left_out_without_labels():
    rest = transfer_rows(CAPPED, ROWS, None, 0)
    assert [r["idx"] for r in rest] == [i for i in range(60) if i % 3]
    assert all("label" not in r for r in rest) and rest[0]["text_a"] == ROWS[1]["text_a"]
    sample = transfer_rows(CAPPED, ROWS, 10, 7)
    assert len(sample) == 10 and sample == transfer_rows(CAPPED, ROWS, 10, 7)  # seeded
    assert [r["idx"] for r in sample] == sorted(r["idx"] for r in sample)
    assert {r["idx"] for r in sample} <= {r["idx"] for r in rest}
    assert sample != transfer_rows(CAPPED, ROWS, 10, 8)
    assert transfer_rows(ROWS, ROWS, None, 0) == []  # nothing beyond an uncapped set
    assert transfer_rows(CAPPED, ROWS, 0, 0) == []  # 0: none (a task left out of the transfer set)
    with pytest.raises(UserError, match="--max-examples must be a number of texts"):
        transfer_rows(CAPPED, ROWS, -1, 0)


def _prepared(path, rows, sha):
    atomic_write_jsonl(path / "train.jsonl", rows)
    atomic_write_jsonl(path / "validation.jsonl", ROWS[:16])
    atomic_write_json(path / "manifest.json", {"source_files": [
        {"split": "train", "path": "/glue/SST-2/train.tsv", "sha256": sha, "rows": 60},
        {"split": "validation", "path": "/glue/SST-2/dev.tsv", "sha256": "d", "rows": 16}]})
    return path


@pytest.fixture(scope="module")
def task(tiny_bert, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("transfer")
    teacher_dir = tmp / "teacher"
    shutil.copytree(tiny_bert, teacher_dir)
    (teacher_dir / "glueslim.json").write_text(json.dumps({"base_model": "tiny"}))
    (teacher_dir / "train_log.jsonl").write_text(json.dumps({"epoch": 1, "val_metrics": {"accuracy": 0.5}}) + "\n")
    data = _prepared(tmp / "data", CAPPED, "s")
    _prepared(tmp / "uncapped", ROWS, "s")
    main(["teacher-outputs", "--task", "sst2", "--data", str(data), "--teacher-dir", str(teacher_dir),
          "--out", str(tmp / "to.safetensors"), "--device", "cpu", "--max-seq-length", "24"])
    main(["transfer-set", "--task", "sst2", "--data", str(data), "--uncapped", str(tmp / "uncapped"),
          "--teacher-dir", str(teacher_dir), "--max-examples", "30", "--device", "cpu", "--max-seq-length", "24",
          "--out", str(tmp / "transfer")])
    return tmp


def test_transfer_set_is_labelled_by_the_teacher(task):
    rows = read_jsonl(task / "transfer" / "train.jsonl")
    meta = json.loads((task / "transfer" / "meta.json").read_text())
    assert len(rows) == meta["rows"] == 30 and meta["available"] == 40 and meta["capped_rows"] == 20
    assert not {r["idx"] for r in rows} & {r["idx"] for r in CAPPED}
    # the labels are the teacher's own predictions on those texts, not the gold ones
    teacher, tok = load_classifier(str(task / "teacher")), load_tokenizer(str(task / "teacher"))
    with torch.no_grad():
        z = teacher(**tok([r["text_a"] for r in rows[:4]], return_tensors="pt", padding=True)).logits
    assert torch.allclose(torch.tensor([r["teacher_logits"] for r in rows[:4]]), z, atol=1e-4)
    assert [r["label"] for r in rows] == [int(torch.tensor(r["teacher_logits"]).argmax()) for r in rows]


def test_transfer_set_refuses_another_source(task, tmp_path, capsys):
    other = _prepared(tmp_path / "other", ROWS, "another-sha")
    with pytest.raises(SystemExit):
        main(["transfer-set", "--task", "sst2", "--data", str(task / "data"), "--uncapped", str(other),
              "--teacher-dir", str(task / "teacher"), "--device", "cpu", "--out", str(tmp_path / "t")])
    assert "prepared from another training file" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_student_trains_on_gold_rows_and_the_transfer_set(task, tmp_path):
    out = tmp_path / "distil"
    main(["distill", "--task", "sst2", "--data", str(task / "data"), "--teacher-dir", str(task / "teacher"),
          "--teacher-outputs", str(task / "to.safetensors"), "--name", "distil", "--out", str(out),
          "--student", "teacher_layers", "--num-layers", "2", "--prediction", "kl", "--alpha", "0.5",
          "--temperature", "2.0", "--transfer", str(task / "transfer"), "--device", "cpu", "--threads", "1",
          "--batch-size", "8", "--max-seq-length", "24", "--epochs", "1", "--warmup-ratio", "0",
          "--checkpoint-dir", str(tmp_path / "ckpt")])
    rec = json.loads((out / "glueslim.json").read_text())
    log_ = read_jsonl(out / "train_log.jsonl")
    assert rec["transfer_rows"] == 30 and rec["kd"] is True and log_[0]["examples"] == 20 + 30
    assert rec["method"] == "DistilBERT-style KD, with a teacher-labelled transfer set"


def test_an_uncapped_task_gives_an_empty_transfer_set(task, tmp_path):
    main(["transfer-set", "--task", "sst2", "--data", str(task / "uncapped"), "--uncapped", str(task / "uncapped"),
          "--teacher-dir", str(task / "teacher"), "--device", "cpu", "--out", str(tmp_path / "t")])
    assert read_jsonl(tmp_path / "t" / "train.jsonl") == []
    assert json.loads((tmp_path / "t" / "meta.json").read_text())["rows"] == 0


def test_the_method_names_the_transfer_set():
    from glueslim.distill import NO_KD, _method
    from glueslim.distiller import PredictionKD

    kd, gold = PredictionKD("kl", 0.5, 2.0), PredictionKD("kl", 0.0, 2.0)
    assert _method("teacher_layers", False, [], kd, False, False, True) == (
        "DistilBERT-style KD, with a teacher-labelled transfer set")
    assert _method("teacher_layers", False, [], gold, False, False, True) == (
        "fine-tuned on gold labels and a teacher-labelled transfer set")
    assert _method("teacher_layers", False, [], gold, False, True, True) == (
        "fine-tuned on gold labels and teacher-labelled augmented rows and a teacher-labelled transfer set")
    assert _method("teacher_layers", False, [], gold, False, False, False) == NO_KD
