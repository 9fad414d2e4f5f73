"""Inference: logits in input order, predictions, dev loss and metrics; no training loop imported."""

from __future__ import annotations

import subprocess
import sys

import torch
from transformers import DataCollatorWithPadding

from conftest import ROOT
from glueslim.batching import encode
from glueslim.inference import evaluate_split, logits_to_predictions, predict_logits
from glueslim.modeling import load_classifier, load_tokenizer
from glueslim.tasks import get_task


def test_logits_come_back_in_input_order(tiny_bert):
    task, tok = get_task("sst2"), load_tokenizer(str(tiny_bert))
    model = load_classifier(str(tiny_bert), task).eval()
    rows = [{"idx": i, "text_a": "good " * (1 + (i * 5) % 7), "text_b": None, "label": i % 2} for i in range(11)]
    feats = encode(tok, rows, 32)
    logits = predict_logits(model, feats, DataCollatorWithPadding(tok), 4, "cpu")
    with torch.inference_mode():
        one_by_one = torch.cat([model(**{k: torch.tensor([f[k]]) for k in ("input_ids", "attention_mask",
                                                                             "token_type_ids")}).logits
                                for f in feats])
    assert torch.allclose(logits, one_by_one, atol=1e-5)
    result = evaluate_split(model, task, feats, DataCollatorWithPadding(tok), 4, "cpu")
    assert set(result) == {"loss", "metrics"} and "accuracy" in result["metrics"]


def test_predictions_are_argmax_or_the_regression_score():
    logits = torch.tensor([[0.1, 0.9], [2.0, -1.0]])
    assert logits_to_predictions(get_task("sst2"), logits) == [1, 0]
    assert logits_to_predictions(get_task("stsb"), torch.tensor([[3.5], [1.25]])) == [3.5, 1.25]


def test_inference_commands_import_neither_the_training_loop_nor_its_set_up():
    code = ("import sys, glueslim.evaluate, glueslim.inference, glueslim.recipe; "
            "print(sorted(m for m in ('glueslim.train', 'glueslim.precision', 'glueslim.checkpoint') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT / "src")})
    assert out.stdout.strip() == "[]", out.stderr[-2000:]


def test_labelling_precision_defaults_to_exact_fp32_and_autocasts_when_asked():
    """predict_logits keeps exact fp32 results by default; bf16 autocast gives close, not identical, logits."""
    import torch
    from conftest import tiny_classifier
    from glueslim.inference import predict_logits

    model = tiny_classifier(hidden=64)
    feats = [{"input_ids": [1] + [5 + (i * 7 + j) % 40 for j in range(6 + i % 5)] + [2]} for i in range(12)]
    for f in feats:
        f["attention_mask"] = [1] * len(f["input_ids"])

    class Pad:  # a collator without a tokenizer: pads ids and masks with 0
        def __call__(self, rows):
            n = max(len(r["input_ids"]) for r in rows)
            return {k: torch.tensor([r[k] + [0] * (n - len(r[k])) for r in rows]) for k in rows[0]}

    exact = predict_logits(model, feats, Pad(), 4, "cpu")
    with torch.inference_mode():
        model.eval()
        alone = torch.cat([model(**Pad()([f])).logits for f in feats])
    assert torch.allclose(exact, alone, atol=1e-5)
    assert torch.equal(predict_logits(model, feats, Pad(), 4, "cpu", precision="fp32"), exact)
    bf16 = predict_logits(model, feats, Pad(), 4, "cpu", precision="bf16")
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, exact)
    assert torch.allclose(bf16, exact, atol=0.05)
