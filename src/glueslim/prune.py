"""Attention-head pruning (Michel et al., 2019, "Are Sixteen Heads Really Better than One?").

Head importance is the expected absolute gradient of the loss with respect to a gate on each head's
output, I_h = E_x |dL/dxi_h|, accumulated over a slice of the *training* set (never the reported dev set)
and normalised per layer (L2), as in the paper's code. The least important heads are then physically
removed (`heads.prune_heads`: query/key/value rows and the output projection's columns), so
parameters, MACs and latency really drop. At least one head is kept in every layer. The removed heads
are recorded in `config.pruned_heads`; `modeling.load_for_inference` re-applies them before loading
the weights. An optional recovery fine-tune follows.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch
from transformers import DataCollatorWithPadding

from glueslim.batching import MODEL_INPUTS, encode, sorted_batches
from glueslim.checkpoint import save_model
from glueslim.data import load_split
from glueslim.errors import UserError
from glueslim.heads import head_gates, heads_per_layer, prune_heads
from glueslim.losses import task_loss
from glueslim.modeling import load_for_inference, load_tokenizer, pick_device
from glueslim.recipe import Recipe, add_recipe_arguments, seed_everything
from glueslim.record import read_record
from glueslim.tasks import get_task
from glueslim.train import train


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


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--model-dir", required=True, help="the fine-tuned model to prune (teacher or any student)")
    p.add_argument("--fraction", type=float, required=True, help="share of all attention heads to remove")
    p.add_argument("--importance-examples", type=int, default=512, help="training examples for head importance")
    p.add_argument("--recovery-epochs", type=int, default=0, help="fine-tune after pruning (0: none)")
    p.add_argument("--name", required=True)
    p.add_argument("--out", required=True)
    add_recipe_arguments(p)


def run(args: argparse.Namespace) -> None:
    if not 0 < args.fraction < 1:
        raise UserError(f"--fraction {args.fraction}: must be between 0 and 1 (exclusive)")
    task = get_task(args.task)
    recipe = Recipe.from_args(args)
    seed_everything(recipe.seed)
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
        recipe = replace(recipe, epochs=args.recovery_epochs)
        train_feats = encode(tokenizer, rows, args.max_seq_length)
        dev_feats = encode(tokenizer, load_split(args.data, task.eval_splits[0][0]), args.max_seq_length)
        command = {k: getattr(args, k) for k in ("task", "data", "model_dir", "fraction", "importance_examples",
                                                  "recovery_epochs", "name")}
        history = train(model, tokenizer, task, train_feats, dev_feats, recipe, run_extra=command)
    source = read_record(args.model_dir)
    meta = {
        "model": args.name, "task": task.name, "method": f"{source['method']} + head pruning {args.fraction:.0%}",
        "base_model": source.get("base_model"), "teacher": source.get("teacher"), "pruned_from": args.model_dir,
        "num_layers": source.get("num_layers"), "layer_map": source.get("layer_map"),
        "heads": {"before": before, "after": sum(heads_per_layer(model)), "pruned": plan,
                  "importance": [[round(float(v), 6) for v in s] for s in importance],
                  "importance_examples": len(feats), "importance_split": "train"},
        "hyperparameters": {"fraction": args.fraction, "recovery_epochs": args.recovery_epochs,
                            **(recipe.hyperparameters() if args.recovery_epochs else {})},
    }
    save_model(model, tokenizer, args.out, meta, history, args.checkpoint_dir)
