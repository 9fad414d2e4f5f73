"""The one training loop (fine-tuning and distillation), in the spirit of run_glue_no_trainer.py.

AdamW (eps 1e-8, no decay on biases and LayerNorm), linear schedule with warm-up, gradient clipping,
dynamic padding with length-grouped batches, one log line per epoch (train loss, validation loss and
metrics, seconds), and a checkpoint per epoch that a re-run resumes from. The final epoch's model is the
result: checkpoints are never chosen on the dev split that the leaderboard reports.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup

from glueslim.cli import UserError
from glueslim.io import append_jsonl, atomic_dir, atomic_write_json, read_jsonl
from glueslim.losses import task_loss
from glueslim.metrics import split_metrics
from glueslim.tasks import Task

log = logging.getLogger(__name__)

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
LossFn = Callable[[torch.Tensor, dict], torch.Tensor]


def add_training_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training recipe")
    g.add_argument("--learning-rate", type=float, default=5e-5)
    g.add_argument("--epochs", type=int, default=3)
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--eval-batch-size", type=int, default=128)
    g.add_argument("--max-seq-length", type=int, default=128)
    g.add_argument("--warmup-ratio", type=float, default=0.1)
    g.add_argument("--weight-decay", type=float, default=0.01)
    g.add_argument("--grad-clip", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--threads", type=int, default=None, help="torch intra-op threads (the rule's threads)")
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    g.add_argument("--checkpoint-dir", required=True, help="per-epoch checkpoints; a re-run resumes from here")


def hyperparameters(args: argparse.Namespace) -> dict:
    keys = ["learning_rate", "epochs", "batch_size", "max_seq_length", "warmup_ratio", "weight_decay",
            "grad_clip", "seed"]
    return {k: getattr(args, k) for k in keys}


# ---------------------------------------------------------------- data

def encode(tokenizer, rows: list[dict], max_len: int, extra: dict[str, list] | None = None) -> list[dict]:
    """Tokenize once, unpadded; `extra` adds per-example fields (e.g. cached teacher logits)."""
    a = [r["text_a"] for r in rows]
    b = [r["text_b"] for r in rows] if rows and rows[0].get("text_b") is not None else None
    enc = tokenizer(a, b, truncation=True, max_length=max_len)
    feats = []
    for i, r in enumerate(rows):
        f = {k: enc[k][i] for k in enc.keys()}
        f["idx"] = r["idx"]
        if r.get("label") is not None:
            f["labels"] = r["label"]
        for k, v in (extra or {}).items():
            f[k] = v[i]
        feats.append(f)
    return feats


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int, mega: int = 50) -> list[list[int]]:
    """Shuffle, sort within chunks of `mega` batches by length, then shuffle the batches.

    Batches hold examples of similar length, so dynamic padding wastes little compute, while the order
    stays random from epoch to epoch (the seed includes the epoch).
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    for s in range(0, len(order), batch_size * mega):
        chunk = sorted(order[s : s + batch_size * mega], key=lambda i: -lengths[i])
        batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches by decreasing length (least padding); callers restore the order."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[k : k + batch_size] for k in range(0, len(order), batch_size)]


def make_loader(feats: list[dict], batches: list[list[int]], collator) -> DataLoader:
    return DataLoader(batches, batch_size=None, collate_fn=lambda idx: collator([feats[i] for i in idx]))


@torch.inference_mode()
def predict_logits(model, feats: list[dict], collator, batch_size: int, device) -> torch.Tensor:
    """Logits for every example, in input order."""
    model.eval()
    batches = sorted_batches([len(f["input_ids"]) for f in feats], batch_size)
    out = torch.empty(len(feats), model.config.num_labels)
    for idx in batches:
        batch = collator([{k: v for k, v in feats[i].items() if k in MODEL_INPUTS} for i in idx])
        batch = {k: v.to(device) for k, v in batch.items()}
        out[idx] = model(**batch).logits.float().cpu()
    return out


def logits_to_predictions(task: Task, logits: torch.Tensor) -> list:
    if task.is_regression:
        return logits.squeeze(-1).tolist()
    return logits.argmax(-1).tolist()


# ---------------------------------------------------------------- loop

def _optimizer(model, lr: float, weight_decay: float, fused: bool):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, eps=1e-8, fused=fused or None)


def _latest_checkpoint(ckpt_dir: Path) -> tuple[int, Path | None]:
    done = sorted((int(p.name.split("_")[1]), p) for p in ckpt_dir.glob("epoch_*") if (p / "DONE").exists())
    return done[-1] if done else (0, None)


def train(
    model,
    tokenizer,
    task: Task,
    train_feats: list[dict],
    dev_feats: list[dict],
    args: argparse.Namespace,
    loss_fn: LossFn | None = None,
) -> list[dict]:
    """Train `model` in place; returns the per-epoch log. `loss_fn(logits, batch)` defaults to CE/MSE."""
    loss_fn = loss_fn or (lambda logits, batch: task_loss(logits, batch["labels"]))
    if args.threads:
        torch.set_num_threads(args.threads)
    set_seed(args.seed)
    accelerator = Accelerator(cpu=args.device == "cpu")
    device = accelerator.device
    if args.device == "cuda" and device.type != "cuda":
        raise UserError("device: cuda was asked for, but torch sees no CUDA device")
    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if device.type == "cuda" else None)
    lengths = [len(f["input_ids"]) for f in train_feats]
    steps_per_epoch = math.ceil(len(train_feats) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    optimizer = _optimizer(model, args.learning_rate, args.weight_decay, fused=device.type == "cuda")
    scheduler = get_linear_schedule_with_warmup(optimizer, int(args.warmup_ratio * total_steps), total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    ckpt_dir = Path(args.checkpoint_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    log_path = ckpt_dir / "train_log.jsonl"
    start_epoch, latest = _latest_checkpoint(ckpt_dir)
    history = [r for r in (read_jsonl(log_path) if log_path.exists() else []) if r["epoch"] <= start_epoch]
    if latest is not None:
        accelerator.load_state(str(latest))
        log.info("resuming after epoch %d from %s", start_epoch, latest)
    else:
        log_path.unlink(missing_ok=True)

    for epoch in range(start_epoch + 1, args.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        batches = length_grouped_batches(lengths, args.batch_size, seed=args.seed * 1000 + epoch)
        loss_sum = torch.zeros((), device=device)
        for step, idx in enumerate(make_loader(train_feats, batches, collator), 1):
            batch = {k: v.to(device) for k, v in idx.items()}
            inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
            logits = model(**inputs).logits
            loss = loss_fn(logits, batch)
            if step % 50 == 0 or step == len(batches):
                if not torch.isfinite(loss):
                    raise RuntimeError(
                        f"non-finite training loss ({loss.item()}) at epoch {epoch}, step {step} of "
                        f"{len(batches)} (examples idx {batch['idx'].tolist()}): lower the "
                        f"learning rate ({args.learning_rate}) or check the data")
            accelerator.backward(loss)
            if args.grad_clip:
                accelerator.clip_grad_norm_(model.parameters(), args.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach()
        train_loss = loss_sum.item() / len(batches)
        if not math.isfinite(train_loss):
            raise RuntimeError(f"non-finite mean training loss in epoch {epoch}: lower the learning rate")
        val = evaluate_split(accelerator.unwrap_model(model), task, dev_feats, collator, args.eval_batch_size, device)
        row = {
            "epoch": epoch, "step": epoch * steps_per_epoch, "train_loss": train_loss,
            "val_loss": val["loss"], "val_metrics": val["metrics"],
            "seconds": round(time.perf_counter() - t0, 3), "examples": len(train_feats),
            "lr": scheduler.get_last_lr()[0],
        }
        log.info("epoch %d: %s", epoch, json.dumps(row))
        append_jsonl(log_path, row)
        history.append(row)
        with atomic_dir(ckpt_dir / f"epoch_{epoch}") as tmp:
            accelerator.save_state(str(tmp))
            (tmp / "DONE").write_text("ok\n")
        for old in ckpt_dir.glob("epoch_*"):  # keep the latest only
            if old.name != f"epoch_{epoch}":
                shutil.rmtree(old, ignore_errors=True)
    return history


def evaluate_split(model, task: Task, feats: list[dict], collator, batch_size: int, device) -> dict:
    logits = predict_logits(model, feats, collator, batch_size, device)
    labels = [f["labels"] for f in feats]
    target = torch.tensor(labels, dtype=torch.float if task.is_regression else torch.long)
    loss = task_loss(logits, target).item()
    metrics = split_metrics(task.name, task.eval_splits[0][1], labels, logits_to_predictions(task, logits))
    return {"loss": loss, "metrics": metrics}


def save_model(model, tokenizer, out: str | Path, meta: dict, history: list[dict], checkpoint_dir: str | Path):
    """Write the finished model (safetensors, config with label names, tokenizer, log, meta) atomically."""
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
        atomic_write_json(tmp / "glueslim.json", meta)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)  # the result is safe; the checkpoints are spent


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
