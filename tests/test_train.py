import argparse
import json

import pytest
import torch

from glueslim.modeling import load_classifier, load_tokenizer
from glueslim.tasks import get_task
from glueslim.train import add_training_arguments, encode, length_grouped_batches, train


def test_length_grouped_batches_cover_every_example_once_and_group_lengths():
    lengths = [(i * 37) % 101 for i in range(1000)]
    batches = length_grouped_batches(lengths, 16, seed=3, mega=10)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    # within a batch, lengths are close (sorted inside chunks of 10 batches)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 15
    assert batches == length_grouped_batches(lengths, 16, seed=3, mega=10)  # deterministic
    assert batches != length_grouped_batches(lengths, 16, seed=4, mega=10)  # but reshuffled per epoch


def _args(tmp_path, **kw):
    p = argparse.ArgumentParser()
    add_training_arguments(p)
    a = p.parse_args(["--checkpoint-dir", str(tmp_path / "ckpt"), "--device", "cpu", "--threads", "1"])
    a.__dict__.update(epochs=2, batch_size=8, learning_rate=1e-3, max_seq_length=32, eval_batch_size=16, **kw)
    return a


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
    hist = train(straight, tok, task, feats, feats[:16], _args(tmp_path / "a"))
    assert [r["epoch"] for r in hist] == [1, 2]

    calls = {"n": 0}

    def dies_in_epoch_two(logits, batch):
        calls["n"] += 1
        if calls["n"] == 6 + 3:  # 6 steps per epoch: die on the 3rd step of epoch 2
            raise KeyboardInterrupt("killed")
        return torch.nn.functional.cross_entropy(logits, batch["labels"])

    torch.manual_seed(0)
    first = load_classifier(str(tiny_bert), task)
    with pytest.raises(KeyboardInterrupt):
        train(first, tok, task, feats, feats[:16], _args(tmp_path / "b"), loss_fn=dies_in_epoch_two)
    ckpt = tmp_path / "b" / "ckpt"
    assert (ckpt / "epoch_1" / "DONE").exists() and not (ckpt / "epoch_2").exists()

    torch.manual_seed(123)  # a different head init: the checkpoint must overwrite it
    resumed = load_classifier(str(tiny_bert), task)
    hist = train(resumed, tok, task, feats, feats[:16], _args(tmp_path / "b"))
    assert [r["epoch"] for r in hist] == [1, 2]
    log = [json.loads(line) for line in (ckpt / "train_log.jsonl").open()]
    assert [r["epoch"] for r in log] == [1, 2]
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k
