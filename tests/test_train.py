"""The training loop: a run killed mid-epoch resumes to the same weights, in one process and (marked e2e) in
two processes over gloo on CPU, started as the training rules start them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import ROOT, SHARED_VOCAB, make_recipe, make_tiny_bert
from glueslim import gpus
from glueslim.batching import encode
from glueslim.modeling import load_classifier, load_tokenizer
from glueslim.tasks import get_task
from glueslim.train import train


def _data(tokenizer):
    words = ["good", "bad", "fine", "awful", "great", "poor"]
    rows = [{"idx": i, "text_a": f"{words[i % 6]} film number {i}", "text_b": None, "label": int(i % 2 == 0)}
            for i in range(48)]
    return encode(tokenizer, rows, 32)


def test_a_run_killed_in_epoch_two_resumes_to_the_same_weights(tiny_bert, tmp_path):
    task = get_task("sst2")
    tok = load_tokenizer(str(tiny_bert))
    feats = _data(tok)

    torch.manual_seed(0)
    straight = load_classifier(str(tiny_bert), task)
    hist = train(straight, tok, task, feats, feats[:16], make_recipe(tmp_path / "a" / "ckpt"))
    assert [r["epoch"] for r in hist] == [1, 2]

    calls = {"n": 0}

    def dies_in_epoch_two(logits, batch):
        calls["n"] += 1
        if calls["n"] == 6 + 3:  # 6 steps per epoch: die on the 3rd step of epoch 2
            raise KeyboardInterrupt("killed")
        return torch.nn.functional.cross_entropy(logits, batch["labels"])

    torch.manual_seed(0)
    first = load_classifier(str(tiny_bert), task)
    ckpt = tmp_path / "b" / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        train(first, tok, task, feats, feats[:16], make_recipe(ckpt), loss_fn=dies_in_epoch_two)
    assert (ckpt / "epoch_1" / "DONE").exists() and not (ckpt / "epoch_2").exists()

    torch.manual_seed(123)  # a different head init: the checkpoint must overwrite it
    resumed = load_classifier(str(tiny_bert), task)
    hist = train(resumed, tok, task, feats, feats[:16], make_recipe(ckpt))
    assert [r["epoch"] for r in hist] == [1, 2]
    log = [json.loads(line) for line in (ckpt / "train_log.jsonl").open()]
    assert [r["epoch"] for r in log] == [1, 2]
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k


def test_a_checkpoint_of_other_command_settings_is_not_resumed(tiny_bert, tmp_path, caplog):
    """run_extra (e.g. a distillation's alpha) is part of the run a checkpoint belongs to."""
    task, tok = get_task("sst2"), load_tokenizer(str(tiny_bert))
    feats = _data(tok)
    recipe = make_recipe(tmp_path / "ckpt", epochs=1)
    train(load_classifier(str(tiny_bert), task), tok, task, feats, [], recipe, run_extra={"alpha": 0.5})
    assert (tmp_path / "ckpt" / "epoch_1" / "DONE").exists()
    hist = train(load_classifier(str(tiny_bert), task), tok, task, feats, [], recipe, run_extra={"alpha": 0.9})
    assert "changed: alpha" in caplog.text and hist[0]["val_loss"] is None  # trained afresh, no dev split


TRAIN_FLAGS = ["--device", "cpu", "--threads", "1", "--epochs", "2", "--batch-size", "8", "--learning-rate",
               "1e-3", "--max-seq-length", "32", "--eval-batch-size", "16"]


@pytest.mark.e2e
def test_two_process_training_resumes_after_a_kill(tmp_path):
    """The multi-GPU path on CPU: glueslim.gpus --distributed -> torch.distributed.run -> accelerate (gloo)."""
    model = make_tiny_bert(tmp_path / "bert", vocab=SHARED_VOCAB)
    env = {k: v for k, v in os.environ.items() if k not in ("SLURM_JOB_ID",)}
    env.update(CUDA_VISIBLE_DEVICES="0,1,2,3", PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]),
               **{gpus.LOCK_DIR_ENV: str(tmp_path / "locks")})

    def launch(name, **extra_env):
        return subprocess.Popen(
            [sys.executable, "-m", "glueslim.gpus", "--gpus", "2", "--distributed", "--", sys.executable, "-m",
             "ddp_worker", str(model), str(tmp_path / name), "--checkpoint-dir", str(tmp_path / f"{name}.ckpt"),
             *TRAIN_FLAGS], env={**env, **extra_env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    # a straight run and one that dies in epoch 2 (6 steps per epoch), side by side on a 4-GPU box
    straight, killed = launch("straight"), launch("resumed", DIE_AT="9")
    out_s, out_k = straight.communicate(timeout=600)[0], killed.communicate(timeout=600)[0]
    assert straight.returncode == 0, out_s[-3000:]
    assert killed.returncode != 0 and not (tmp_path / "resumed").exists(), out_k[-3000:]
    pairs = [re.search(r"CUDA_VISIBLE_DEVICES=(\S+)", o).group(1) for o in (out_s, out_k)]
    assert sorted(",".join(pairs).split(",")) == ["0", "1", "2", "3"]  # disjoint GPU pairs
    ckpt = tmp_path / "resumed.ckpt"
    assert (ckpt / "epoch_1" / "DONE").exists() and not (ckpt / "epoch_2").exists()
    assert sorted(p.name for p in (ckpt / "epoch_1").glob("random_states_*")) == [
        "random_states_0.pkl", "random_states_1.pkl"]  # one RNG state per process

    resumed = launch("resumed")
    out_r = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, out_r[-3000:]
    assert "resuming after epoch 1" in out_r
    log = [yaml.safe_load(line) for line in (tmp_path / "resumed" / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and {r["processes"] for r in log} == {2}
    assert log[-1]["lr"] == 0.0  # the schedule ran out exactly: one scheduler step per global batch
    assert not ckpt.exists()  # spent checkpoints removed once the model is saved
    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(tmp_path / "resumed" / "model.safetensors")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
