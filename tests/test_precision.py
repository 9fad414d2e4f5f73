"""The precision choice with mocked CUDA capabilities, TF32, the accelerator a run gets, and bf16 training on
a CPU that has it."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from conftest import SHARED_VOCAB, make_recipe, make_tiny_bert
from glueslim import precision
from glueslim.batching import encode
from glueslim.errors import UserError
from glueslim.train import train


@pytest.mark.parametrize("requested, device, capability, expected", [
    ("auto", "cpu", None, "no"),            # a CPU without native bf16 trains in fp32
    ("bf16", "cpu", None, "no"),
    ("fp16", "cpu", None, "no"),
    ("auto", "cuda", (9, 0), "bf16"),       # H100
    ("auto", "cuda", (8, 0), "bf16"),       # A100
    ("auto", "cuda", (8, 6), "bf16"),       # RTX 30xx
    ("auto", "cuda", (7, 5), "fp16"),       # T4: fp16 with loss scaling
    ("auto", "cuda", (7, 0), "fp16"),       # V100
    ("fp16", "cuda", (9, 0), "fp16"),
    ("bf16", "cuda", (8, 0), "bf16"),
    ("fp32", "cuda", (9, 0), "no"),
])
def test_precision_choice(requested, device, capability, expected):
    assert precision.choose_precision(requested, device, capability) == expected


@pytest.mark.parametrize("requested, expected", [("auto", "bf16"), ("bf16", "bf16"), ("fp16", "no"), ("fp32", "no")])
def test_cpu_with_native_bf16_trains_in_bf16_unless_told_otherwise(requested, expected):
    assert precision.choose_precision(requested, "cpu", None, cpu_bf16=True) == expected


def test_bf16_cpu_training_keeps_fp32_weights_and_learns(tmp_path):
    """The CPU bf16 path end to end, where this CPU has it: autocast in the loop, fp32 weights saved."""
    if not precision.cpu_has_native_bf16():
        pytest.skip("this CPU has no AVX512-BF16 or AMX")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from glueslim.tasks import get_task

    path = make_tiny_bert(tmp_path / "m", layers=2, hidden=32, vocab=SHARED_VOCAB)
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForSequenceClassification.from_pretrained(path)
    rows = [{"idx": i, "text_a": "good fun" if i % 2 else "bad awful", "text_b": None, "label": i % 2}
            for i in range(64)]
    feats = encode(tok, rows, 16)
    recipe = make_recipe(tmp_path / "ckpt", learning_rate=3e-3, epochs=6, batch_size=16, eval_batch_size=32,
                         max_seq_length=16, warmup_ratio=0.0, weight_decay=0.0, grad_clip=1.0, seed=0,
                         precision="auto")
    history = train(model, tok, get_task("sst2"), feats, feats, recipe)
    assert [h["precision"] for h in history] == ["bf16"] * 6
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_metrics"]["accuracy"] == 1.0


def test_bf16_on_a_gpu_without_it_is_refused():
    with pytest.raises(UserError, match="no native bf16"):
        precision.choose_precision("bf16", "cuda", (7, 5))


class _FakeAccelerator:
    def __init__(self, **kwargs):
        self.kwargs, self.device, self.num_processes, self.is_main_process = kwargs, "cuda:0", 1, True


@pytest.fixture
def base(tmp_path):
    return make_recipe(tmp_path / "ckpt", device="auto", precision="auto", tf32=True)


@pytest.mark.parametrize("capability, expected", [((8, 0), "bf16"), ((7, 5), "fp16")])
def test_accelerator_gets_the_precision_and_tf32_of_the_gpu(monkeypatch, base, capability, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    monkeypatch.setattr(precision, "Accelerator", _FakeAccelerator)
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        for tf32 in (False, True):
            acc, chosen = precision.make_accelerator(replace(base, tf32=tf32))
            assert chosen == expected and acc.kwargs["mixed_precision"] == expected
            assert acc.kwargs["cpu"] is False
            assert acc.kwargs["dataloader_config"].split_batches  # scheduler steps once per optimizer step
            assert torch.backends.cuda.matmul.allow_tf32 is tf32 and torch.backends.cudnn.allow_tf32 is tf32
        acc, chosen = precision.make_accelerator(replace(base, precision="fp32"))
        assert chosen == "no"
        for native, want in ((False, "no"), (True, "bf16")):  # CUDA there, CPU asked for: the CPU's own choice
            monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda native=native: native)
            acc, chosen = precision.make_accelerator(replace(base, device="cpu"))
            assert chosen == want and acc.kwargs["mixed_precision"] == want and acc.kwargs["cpu"] is True
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_cuda_asked_for_without_cuda_is_a_clear_error(monkeypatch, base):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="device: cuda"):
        precision.make_accelerator(replace(base, device="cuda"))
