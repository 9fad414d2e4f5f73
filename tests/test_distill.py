"""The distillation commands end to end on tiny random BERTs: teacher outputs, general distillation,
augmentation, task distillation with every builder and loss set (one or two stages), and the ablation."""

from __future__ import annotations

import json
import shutil

import pytest

from glueslim.cli import main
from glueslim.io import atomic_write_jsonl, read_jsonl

WORDS = "good bad fine awful great poor movie film actor story plot long short funny sad".split()
LINES = [" ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 7)) for i in range(64)]


def _train_flags(tmp, ckpt, epochs=2, lr="3e-3"):
    return ["--device", "cpu", "--threads", "1", "--batch-size", "8", "--eval-batch-size", "16",
            "--max-seq-length", "24", "--epochs", str(epochs), "--learning-rate", lr, "--warmup-ratio", "0",
            "--checkpoint-dir", str(tmp / ckpt)]


@pytest.fixture(scope="module")
def task(tiny_bert, tmp_path_factory):
    """A task: data, teacher (with its record and log), its cached outputs and an augmented training set."""
    tmp = tmp_path_factory.mktemp("task")
    data = tmp / "data"
    rows = [{"idx": i, "text_a": LINES[i], "text_b": None, "label": i % 2} for i in range(40)]
    atomic_write_jsonl(data / "train.jsonl", rows)
    atomic_write_jsonl(data / "validation.jsonl", rows[:16])
    teacher_dir = tmp / "teacher" / "sst2"
    shutil.copytree(tiny_bert, teacher_dir)
    (teacher_dir / "glueslim.json").write_text(json.dumps({"base_model": "tiny"}))
    (teacher_dir / "train_log.jsonl").write_text(json.dumps({"epoch": 1, "val_metrics": {"accuracy": 0.5}}) + "\n")
    main(["teacher-outputs", "--task", "sst2", "--data", str(data), "--teacher-dir", str(teacher_dir),
          "--out", str(tmp / "to.safetensors"), "--device", "cpu", "--max-seq-length", "24"])
    main(["augment", "--task", "sst2", "--data", str(data), "--teacher-dir", str(teacher_dir),
          "--mlm-model", str(teacher_dir), "--copies", "2", "--prob", "0.3", "--candidates", "4",
          "--device", "cpu", "--max-seq-length", "24", "--out", str(tmp / "aug")])
    return tmp


def _distill(task, tmp_path, name, *flags, epochs=1):
    out = tmp_path / name / "sst2"
    main(["distill", "--task", "sst2", "--data", str(task / "data"), "--teacher-dir", str(task / "teacher" / "sst2"),
          "--teacher-outputs", str(task / "to.safetensors"), "--name", name, "--out", str(out), *flags,
          *_train_flags(tmp_path, f"ckpt-{name}", epochs=epochs)])
    return json.loads((out / "glueslim.json").read_text()), read_jsonl(out / "train_log.jsonl")


def test_augmentation_is_teacher_labelled(task):
    aug = read_jsonl(task / "aug" / "train.jsonl")
    meta = json.loads((task / "aug" / "meta.json").read_text())
    assert len(aug) == 80 and meta["candidate_source"] == "input-embedding nearest neighbours"
    assert all(len(r["teacher_logits"]) == 2 and r["label"] in (0, 1) for r in aug)


def test_distilbert_and_albert_style_students_keep_their_records(task, tmp_path):
    rec, log_ = _distill(task, tmp_path, "distil", "--student", "teacher_layers", "--num-layers", "2",
                         "--prediction", "kl", "--alpha", "0.5", "--temperature", "2.0", epochs=2)
    assert rec["method"] == "DistilBERT-style KD" and rec["layer_map"] == [0, 2] and rec["embedding_size"] is None
    assert rec["hyperparameters"]["alpha"] == 0.5 and rec["hyperparameters"]["temperature"] == 2.0
    assert "stage1_epochs" not in rec["hyperparameters"] and "augmented" not in rec and len(log_) == 2
    rec, _ = _distill(task, tmp_path, "alb", "--student", "albert", "--embedding-size", "16", "--num-layers", "3",
                      "--prediction", "kl", "--alpha", "0.5", "--temperature", "2.0")
    assert rec["arch"] == "albert" and rec["layer_map"] == [2] and rec["embedding_size"] == 16
    assert rec["method"].startswith("ALBERT-style KD")


def test_any_builder_meets_any_loss_set_and_augmentation(task, tmp_path):
    # a DistilBERT-style student trained on the augmented set
    rec, log_ = _distill(task, tmp_path, "distil-aug", "--student", "teacher_layers", "--prediction", "kl",
                         "--alpha", "0.5", "--temperature", "2.0", "--augmented", str(task / "aug"))
    assert rec["augmented"] and rec["augmented_rows"] == 80 and log_[0]["examples"] == 120
    # a layer-initialised student with hidden-state KD first, then DistilBERT's prediction KD
    rec, _ = _distill(task, tmp_path, "distil-hidden", "--student", "teacher_layers", "--prediction", "kl",
                      "--alpha", "0.5", "--temperature", "2.0", "--intermediate", "hidden")
    assert rec["intermediate"] == ["hidden"] and len(rec["stage1_history"]) == 1 and rec["arch"] == "distilbert"
    assert rec["method"] == "DistilBERT-style KD, intermediate layers first (hidden)"
    assert rec["hyperparameters"]["stage1_epochs"] == 1 and rec["hyperparameters"]["alpha"] == 0.5
    # a checkpoint student with prediction KD only (one stage, no matches)
    rec, _ = _distill(task, tmp_path, "ckpt-kd", "--student", "checkpoint", "--init", str(tmp_path / "distil-aug" / "sst2"),
                      "--prediction", "soft_ce", "--temperature", "1.0")
    assert rec["method"] == "prediction-layer KD (soft_ce)" and "stage1_history" not in rec
    assert rec["init"] == str(tmp_path / "distil-aug" / "sst2") and "alpha" not in rec["hyperparameters"]


def test_general_distillation_lowers_its_loss_and_feeds_task_distillation(tiny_bert, task, tmp_path):
    (tmp_path / "corpus.txt").write_text("\n".join(LINES) + "\n")
    gen = tmp_path / "general"
    main(["general-distill", "--teacher", str(tiny_bert), "--corpus", str(tmp_path / "corpus.txt"),
          "--out", str(gen), "--student", "random", "--num-layers", "2", "--hidden-size", "16", "--num-heads", "2",
          "--intermediate-size", "32", *_train_flags(tmp_path, "ckpt-g", epochs=4)])
    log_ = read_jsonl(gen / "train_log.jsonl")
    assert len(log_) == 4 and log_[-1]["train_loss"] < 0.8 * log_[0]["train_loss"], log_
    assert json.loads((gen / "glueslim.json").read_text())["num_layers"] == 2

    # two-stage TinyBERT-style distillation from it, with augmentation; and one from random, hidden only
    stages = ["--prediction", "soft_ce", "--temperature", "1.0", "--stage1-epochs", "1", "--stage2-epochs", "1"]
    m, _ = _distill(task, tmp_path, "tb", "--student", "checkpoint", "--init", str(gen), "--augmented",
                    str(task / "aug"), "--intermediate", "embedding", "attention", "hidden", *stages)
    _distill(task, tmp_path, "tbx", "--student", "random", "--num-layers", "2", "--hidden-size", "16", "--num-heads",
             "2", "--intermediate-size", "32", "--intermediate", "hidden", *stages)
    assert m["general_distillation"] and m["augmented"] and m["augmented_rows"] == 80 and m["num_layers"] == 2
    assert m["intermediate"] == ["attention", "embedding", "hidden"] and len(m["stage1_history"]) == 1
    assert m["method"] == "TinyBERT-style KD (attention, embedding, hidden)"
    from glueslim.modeling import load_for_inference

    plain = load_for_inference(str(tmp_path / "tb" / "sst2"))
    assert type(plain).__name__ == "BertForSequenceClassification" and plain.config.hidden_size == 16
    from glueslim.ablation import ablation_table

    doc = ablation_table(["sst2"], task / "teacher", [("full", tmp_path / "tb"), ("hidden only", tmp_path / "tbx")],
                         "TinyBERT ablation")
    assert [r["variant"] for r in doc["rows"]] == ["teacher", "full", "hidden only"]
    assert doc["rows"][2]["general"] == "no" and doc["rows"][2]["intermediate"] == "hidden"
    from glueslim.report.collect import read_ablations

    (tmp_path / "abl").mkdir()
    (tmp_path / "abl" / "tinybert.json").write_text(json.dumps(doc))
    (table,) = read_ablations(tmp_path / "abl")
    assert len(table["rows"]) == 3 and table["columns"][-1]["format"] == "pct"


def test_general_distillation_without_matches_is_refused(task, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["general-distill", "--teacher", str(task / "teacher" / "sst2"), "--data", str(task / "data"),
              "--out", str(tmp_path / "g"), "--student", "teacher_layers", "--intermediate",
              *_train_flags(tmp_path, "ckpt")])
    assert "needs intermediate matches" in capsys.readouterr().err


@pytest.mark.e2e
def test_general_distillation_runs_in_two_processes(tiny_bert, tmp_path):
    """The multi-GPU path on CPU (torch.distributed.run, gloo): the distiller's every parameter gets a gradient."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    (tmp_path / "corpus.txt").write_text("\n".join(f"good film number {i} was fine" for i in range(32)) + "\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "glueslim",
         "general-distill", "--teacher", str(tiny_bert), "--corpus", str(tmp_path / "corpus.txt"),
         "--out", str(tmp_path / "gen"), "--student", "random", "--num-layers", "2", "--hidden-size", "16",
         "--num-heads", "2", "--intermediate-size", "32", *_train_flags(tmp_path, "ckpt", epochs=1)],
        env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    log_ = [json.loads(line) for line in (tmp_path / "gen" / "train_log.jsonl").read_text().splitlines()]
    assert log_[-1]["processes"] == 2


# ---------------------------------------------------------------- a checkpoint init with each loss set

CKPT_FLAGS = ["--student", "checkpoint", "--layer-map", "0", "2"]  # 2 of the checkpoint's 3 layers
LOSS_SETS = {  # name: (flags, intermediate features)
    "kl": (["--prediction", "kl", "--alpha", "0.5", "--temperature", "2.0"], []),
    "soft_ce": (["--prediction", "soft_ce", "--temperature", "1.0"], []),
    **{f: (["--prediction", "soft_ce", "--temperature", "1.0", "--intermediate", f], [f])
       for f in ("embedding", "hidden", "attention", "cls")},
    "all": (["--prediction", "kl", "--alpha", "0.5", "--temperature", "2.0", "--intermediate", "embedding",
             "hidden", "attention", "cls"], ["attention", "cls", "embedding", "hidden"]),
}


@pytest.fixture(scope="module")
def ckpt3(task):
    """A general-distilled-like checkpoint: 3 layers of the teacher's width and vocabulary."""
    from conftest import SHARED_VOCAB, make_tiny_bert

    return make_tiny_bert(task / "ckpt3", layers=3, hidden=32, vocab=SHARED_VOCAB)


def _safetensors(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_distill_flags_build_the_checkpoint_student_and_head(task, ckpt3):
    """What `distill --student checkpoint --layer-map 0 2 --head teacher` starts from, before training."""
    import argparse

    import torch

    from glueslim.distill import _spec, add_arguments_distill
    from glueslim.modeling import load_classifier
    from glueslim.students import build_student

    p = argparse.ArgumentParser()
    add_arguments_distill(p)
    args = p.parse_args(["--task", "sst2", "--data", "d", "--teacher-dir", "t", "--teacher-outputs", "o", "--name", "n",
                         "--out", "x", "--init", str(ckpt3), *CKPT_FLAGS, "--head", "teacher", "--prediction", "kl",
                         "--temperature", "1", "--checkpoint-dir", "c"])
    teacher = load_classifier(str(task / "teacher" / "sst2"))
    student, rec = build_student(_spec(args), teacher, seed=42)
    c, s, t = _safetensors(ckpt3), student.state_dict(), teacher.state_dict()
    assert rec["layer_map"] == [0, 2] and rec["head"] == "teacher" and rec["init"] == str(ckpt3)
    for i, j in enumerate([0, 2]):
        for k in [k for k in c if k.startswith(f"bert.encoder.layer.{j}.")]:
            assert torch.equal(s[k.replace(f"layer.{j}.", f"layer.{i}.")], c[k]), k
    for k in ("bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias"):
        assert torch.equal(s[k], t[k]), k
    assert not torch.equal(c["bert.pooler.dense.weight"], t["bert.pooler.dense.weight"])  # a real change


@pytest.mark.parametrize("head", ["new", "teacher"])
@pytest.mark.parametrize("loss_set", list(LOSS_SETS))
def test_checkpoint_student_with_each_loss_set(task, ckpt3, tmp_path, loss_set, head):
    import torch

    from glueslim.modeling import load_for_inference

    flags, features = LOSS_SETS[loss_set]
    stages = ["--stage1-epochs", "1", "--stage2-epochs", "1"] if features else []
    rec, log_ = _distill(task, tmp_path, "ck", *CKPT_FLAGS, "--init", str(ckpt3), "--head", head, *flags, *stages)
    assert rec["init"] == str(ckpt3) and rec["layer_map"] == [0, 2] and rec["num_layers"] == 2
    assert rec["head"] == head and rec["kd"] is True and len(log_) == 1
    if features:
        assert rec["intermediate"] == features and {m["feature"] for m in rec["matches"]} == set(features)
        assert rec["method"] == f"TinyBERT-style KD ({', '.join(features)})" and len(rec["stage1_history"]) == 1
        assert rec["general_distillation"] is True
    else:
        assert "intermediate" not in rec and rec["method"] == f"prediction-layer KD ({flags[1]})"
    # the saved student loads as a plain 2-layer classifier, trained away from its checkpoint layers
    model = load_for_inference(str(tmp_path / "ck" / "sst2"))
    assert type(model).__name__ == "BertForSequenceClassification" and model.config.num_hidden_layers == 2
    assert model(input_ids=torch.tensor([[101, 2204, 102]])).logits.shape == (1, 2)
    saved, c = _safetensors(tmp_path / "ck" / "sst2"), _safetensors(ckpt3)
    after, before = saved["bert.encoder.layer.1.output.dense.weight"], c["bert.encoder.layer.2.output.dense.weight"]
    assert after.shape == before.shape and not torch.equal(after, before)


def test_no_kd_twin_and_joint_stage(task, ckpt3, tmp_path, capsys):
    rec, log_ = _distill(task, tmp_path, "twin", *CKPT_FLAGS, "--init", str(ckpt3), "--head", "teacher",
                         "--prediction", "kl", "--alpha", "0", "--temperature", "2.0")
    assert rec["kd"] is False and rec["method"] == "fine-tuned on gold labels only (no-KD twin)"
    assert rec["hyperparameters"]["alpha"] == 0 and rec["head"] == "teacher" and len(log_) == 1
    # alpha 0 with teacher-labelled augmented rows still learns from the teacher
    rec, _ = _distill(task, tmp_path, "twin-aug", *CKPT_FLAGS, "--init", str(ckpt3), "--prediction", "kl",
                      "--alpha", "0", "--temperature", "2.0", "--augmented", str(task / "aug"))
    assert rec["kd"] is True and rec["method"] == "fine-tuned on gold labels and teacher-labelled augmented rows"
    # one stage: the intermediate matches and the prediction KD together
    rec, log_ = _distill(task, tmp_path, "joint", *CKPT_FLAGS, "--init", str(ckpt3), "--prediction", "kl",
                         "--alpha", "0.5", "--temperature", "2.0", "--intermediate", "hidden", "attention", "--joint")
    assert rec["hyperparameters"]["joint"] is True and "stage1_history" not in rec and len(log_) == 1
    assert rec["intermediate"] == ["attention", "hidden"] and rec["kd"] is True
    assert rec["method"] == "TinyBERT-style KD (attention, hidden with the prediction layer in one stage)"
    assert "stage1_epochs" not in rec["hyperparameters"] and "val_metrics" in log_[0]
    with pytest.raises(SystemExit):
        _distill(task, tmp_path, "joint-alone", *CKPT_FLAGS, "--init", str(ckpt3), "--prediction", "kl",
                 "--temperature", "2.0", "--joint")
    assert "--joint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _distill(task, tmp_path, "bad-map", "--student", "checkpoint", "--init", str(ckpt3), "--layer-map", "0", "3",
                 "--prediction", "kl", "--temperature", "2.0")
    assert "layer(s) [3] outside 0..2" in capsys.readouterr().err
