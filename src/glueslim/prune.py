"""Attention-head pruning (Michel et al., 2019, "Are Sixteen Heads Really Better than One?").

Head importance is the expected absolute gradient of the loss with respect to a gate on each head's
output, I_h = E_x |dL/dxi_h|, accumulated over a slice of the *training* set (never the reported dev set)
and normalised per layer (L2), as in the paper's code. The least important heads are then physically
removed with transformers' `prune_linear_layer` (query/key/value rows and the output projection's
columns), so parameters, MACs and latency really drop. At least one head is kept in every layer.
The removed heads are recorded in `config.pruned_heads`; `modeling.load_for_inference` re-applies them
before loading the weights. An optional recovery fine-tune follows.
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager

import torch
from transformers import DataCollatorWithPadding
from transformers.pytorch_utils import prune_linear_layer

from glueslim.errors import UserError
from glueslim.data import load_split
from glueslim.io import read_json
from glueslim.losses import task_loss
from glueslim.modeling import layer_list, load_for_inference, load_tokenizer, pick_device
from glueslim.tasks import get_task
from glueslim.train import (
    MODEL_INPUTS, add_training_arguments, encode, hyperparameters, save_model, seed_everything, sorted_batches, train,
)


def _attention(layer):
    """(self-attention module with query/key/value, output projection) of one BERT-family layer."""
    return layer.attention.self, layer.attention.output


def heads_per_layer(model) -> list[int]:
    return [_attention(layer)[0].query.out_features // _attention(layer)[0].attention_head_size
            for layer in layer_list(model)[1]]


@contextmanager
def head_gates(model):
    """Multiply each head's attention output by a gate of ones (layers x heads) that collects gradients."""
    layers = layer_list(model)[1]
    p = next(model.parameters())
    gates = [torch.ones(n, dtype=p.dtype, device=p.device, requires_grad=True) for n in heads_per_layer(model)]
    hooks = []
    for layer, gate in zip(layers, gates):
        def hook(module, args, output, gate=gate):
            out = output[0]
            shape = out.shape
            gated = (out.view(*shape[:-1], gate.numel(), -1) * gate.to(out.dtype)[:, None]).view(shape)
            return (gated, *output[1:])
        hooks.append(_attention(layer)[0].register_forward_hook(hook))
    try:
        yield gates
    finally:
        for h in hooks:
            h.remove()


def head_importance(model, feats: list[dict], collator, batch_size: int = 32) -> list[torch.Tensor]:
    """Per layer, the L2-normalised mean |dL/dgate| of every head over `feats` (labelled examples)."""
    model.eval()  # no dropout: importance of the deterministic network
    totals, device = None, next(model.parameters()).device
    with head_gates(model) as gates:
        for idx in sorted_batches([len(f["input_ids"]) for f in feats], batch_size):
            batch = {k: v.to(device) for k, v in collator([feats[i] for i in idx]).items()}
            inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
            loss = task_loss(model(**inputs).logits, batch["labels"]) * len(idx)
            grads = torch.autograd.grad(loss, gates)
            step = [g.abs() for g in grads]
            totals = step if totals is None else [t + s for t, s in zip(totals, step)]
    model.zero_grad(set_to_none=True)
    scores = [t.cpu() / len(feats) for t in totals]
    return [s / (s.norm() + 1e-20) for s in scores]


def heads_to_prune(importance: list[torch.Tensor], fraction: float) -> dict[int, list[int]]:
    """The globally least important `fraction` of all heads, keeping at least one head per layer."""
    total = sum(len(s) for s in importance)
    budget = int(round(fraction * total))
    order = sorted((float(s), layer, head) for layer, scores in enumerate(importance) for head, s in enumerate(scores))
    left = [len(s) for s in importance]
    chosen: dict[int, list[int]] = {}
    for _, layer, head in order:
        if budget == 0:
            break
        if left[layer] > 1:
            chosen.setdefault(layer, []).append(head)
            left[layer] -= 1
            budget -= 1
    return {layer: sorted(heads) for layer, heads in sorted(chosen.items())}


def prune_heads(model, heads: dict[int, list[int]]) -> None:
    """Remove the given heads (indices into each layer's *current* heads) in place, and record them."""
    layers = layer_list(model)[1]
    for layer_idx, drop in heads.items():
        attn, out = _attention(layers[int(layer_idx)])
        n, size = attn.query.out_features // attn.attention_head_size, attn.attention_head_size
        if not drop:
            continue
        if len(set(drop)) >= n or min(drop) < 0 or max(drop) >= n:
            raise ValueError(f"layer {layer_idx}: cannot prune heads {drop} of {n}")
        keep = torch.tensor([h * size + i for h in range(n) if h not in set(drop) for i in range(size)])
        attn.query = prune_linear_layer(attn.query, keep)
        attn.key = prune_linear_layer(attn.key, keep)
        attn.value = prune_linear_layer(attn.value, keep)
        out.dense = prune_linear_layer(out.dense, keep, dim=1)
        for holder in (attn, layers[int(layer_idx)].attention):
            if hasattr(holder, "num_attention_heads"):
                holder.num_attention_heads = n - len(set(drop))
            if hasattr(holder, "all_head_size"):
                holder.all_head_size = attn.query.out_features
    recorded = {int(k): list(v) for k, v in (getattr(model.config, "pruned_heads", None) or {}).items()}
    for layer_idx, drop in heads.items():  # record as indices of the original heads
        original = [h for h in range(model.config.num_attention_heads) if h not in recorded.get(int(layer_idx), [])]
        recorded[int(layer_idx)] = sorted(recorded.get(int(layer_idx), []) + [original[h] for h in drop])
    model.config.pruned_heads = {str(k): v for k, v in sorted(recorded.items()) if v}


def apply_recorded_pruning(model) -> None:
    """Re-create a saved pruned architecture (config.pruned_heads) on a freshly built model."""
    saved = getattr(model.config, "pruned_heads", None) or {}
    model.config.pruned_heads = {}
    prune_heads(model, {int(k): list(v) for k, v in saved.items()})


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--model-dir", required=True, help="the fine-tuned model to prune (teacher or any student)")
    p.add_argument("--fraction", type=float, required=True, help="share of all attention heads to remove")
    p.add_argument("--importance-examples", type=int, default=512, help="training examples for head importance")
    p.add_argument("--recovery-epochs", type=int, default=0, help="fine-tune after pruning (0: none)")
    p.add_argument("--name", required=True)
    p.add_argument("--out", required=True)
    add_training_arguments(p)


def run(args: argparse.Namespace) -> None:
    if not 0 < args.fraction < 1:
        raise UserError(f"--fraction {args.fraction}: must be between 0 and 1 (exclusive)")
    task = get_task(args.task)
    seed_everything(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer(args.model_dir)
    model = load_for_inference(args.model_dir, pick_device(args.device))  # the GPU the job holds, if any
    rows = load_split(args.data, "train")
    g = torch.Generator().manual_seed(args.seed)
    pick = sorted(torch.randperm(len(rows), generator=g)[: args.importance_examples].tolist())
    feats = encode(tokenizer, [rows[i] for i in pick], args.max_seq_length)
    importance = head_importance(model, feats, DataCollatorWithPadding(tokenizer), args.eval_batch_size)
    before = sum(heads_per_layer(model))
    plan = heads_to_prune(importance, args.fraction)
    prune_heads(model, plan)
    history = []
    if args.recovery_epochs:
        args.epochs = args.recovery_epochs
        train_feats = encode(tokenizer, rows, args.max_seq_length)
        dev_feats = encode(tokenizer, load_split(args.data, task.eval_splits[0][0]), args.max_seq_length)
        history = train(model, tokenizer, task, train_feats, dev_feats, args)
    source = read_json(f"{args.model_dir}/glueslim.json")
    meta = {
        "model": args.name, "task": task.name, "method": f"{source['method']} + head pruning {args.fraction:.0%}",
        "base_model": source.get("base_model"), "teacher": source.get("teacher"), "pruned_from": args.model_dir,
        "num_layers": source.get("num_layers"), "layer_map": source.get("layer_map"),
        "heads": {"before": before, "after": sum(heads_per_layer(model)), "pruned": plan,
                  "importance": [[round(float(v), 6) for v in s] for s in importance],
                  "importance_examples": len(feats), "importance_split": "train"},
        "hyperparameters": {"fraction": args.fraction, "recovery_epochs": args.recovery_epochs,
                            **(hyperparameters(args) if args.recovery_epochs else {})},
    }
    save_model(model, tokenizer, args.out, meta, history, args.checkpoint_dir)
