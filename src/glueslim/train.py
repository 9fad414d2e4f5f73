"""The one training loop (fine-tuning and distillation), in the spirit of run_glue_no_trainer.py.

AdamW (eps 1e-8, no decay on biases and LayerNorm), linear schedule with warm-up, gradient clipping,
dynamic padding with length-grouped batches, a progress line every 30 s (glueslim.progress), one log line
per epoch (train loss, validation loss and metrics, seconds), and a checkpoint per epoch that a re-run
resumes from. The final epoch's model is the result: checkpoints are never chosen on the dev split that
the leaderboard reports.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Callable

import torch
from accelerate.utils import gather_object, set_seed
from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup

from glueslim.batching import MODEL_INPUTS, length_grouped_batches, make_loader, shard_batches
from glueslim.checkpoint import resume_point, run_record, save_checkpoint
from glueslim.errors import UserError
from glueslim.inference import gpu_memory, predict_logits, score_logits
from glueslim.io import append_jsonl, atomic_write_jsonl
from glueslim.losses import task_loss
from glueslim.precision import make_accelerator
from glueslim.progress import Progress
from glueslim.recipe import Recipe
from glueslim.tasks import Task

log = logging.getLogger(__name__)

LossFn = Callable[[torch.Tensor, dict], torch.Tensor]


class NonFiniteLossError(UserError):
    """The training loss became NaN or infinite; the message names the epoch, step and examples."""


def _optimizer(model, lr: float, weight_decay: float):
    """AdamW with torch's fused kernel, on CUDA and on the CPU alike (the HF Trainer's default optimizer too)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, eps=1e-8, fused=True)


def _all_logits(accelerator, model, feats: list[dict], collator, batch_size: int, device) -> torch.Tensor:
    """predict_logits over every example, in input order; with several processes each one computes every
    world-th example and the shares are gathered (every process gets all the logits)."""
    world = accelerator.num_processes
    if world == 1:
        return predict_logits(model, feats, collator, batch_size, device, what="validation")
    mine = list(range(accelerator.process_index, len(feats), world))
    part = predict_logits(model, [feats[i] for i in mine], collator, batch_size, device, what="validation")
    out = torch.empty(len(feats), part.shape[1])
    for idx, rows in gather_object([(mine, part)]):
        out[idx] = rows
    return out


def _non_finite(recipe: Recipe, epoch: int, step: int, n_steps: int, value: float, idx: list, opt_step: int,
                ckpt_dir: Path) -> None:
    shown = ", ".join(map(str, idx[:20])) + (f", … ({len(idx)} examples)" if len(idx) > 20 else "")
    kept = f"the checkpoint of epoch {epoch - 1} stays in {ckpt_dir}" if epoch > 1 else "no epoch had completed"
    raise NonFiniteLossError(
        f"training loss is {value} at epoch {epoch}, step {step} of {n_steps} (optimizer step {opt_step}), on "
        f"the batch of training examples with idx {shown}; nothing of epoch {epoch} was saved ({kept}). Lower "
        f"learning_rate (now {recipe.learning_rate}), set grad_clip (now {recipe.grad_clip}), or check these "
        "examples")


def _oom_advice(recipe: Recipe, where: str, batch: dict, device, ckpt_dir: Path) -> str:
    bs, accum = recipe.batch_size, recipe.accumulation
    half = max(1, bs // 2)
    n, length = batch["input_ids"].shape[0], batch["input_ids"].shape[-1]
    fix = (f"lower batch_size from {bs} to {half} and set gradient_accumulation_steps to {accum * bs // half} "
           f"(the effective batch stays {bs * accum})" if bs > 1 else "the model does not fit one sequence")
    return (f"GPU out of memory {where}, on a batch of {n} sequences of {length} tokens{gpu_memory(device)}: "
            f"{fix}, or lower max_seq_length (now {recipe.max_seq_length}). These keys go in finetune (or "
            f"finetune.per_task.<task>) for the teacher, in students.<name>.train for a student. Completed epochs "
            f"stay in {ckpt_dir}: a re-run with the same effective batch resumes from them")


def train(
    model,
    tokenizer,
    task: Task | None,
    train_feats: list[dict],
    dev_feats: list[dict],
    recipe: Recipe,
    loss_fn: LossFn | None = None,
    forward_fn: Callable | None = None,
    run_extra: dict | None = None,
) -> list[dict]:
    """Train `model` in place; returns the per-epoch log. `loss_fn(logits, batch)` defaults to CE/MSE.

    `forward_fn(model, inputs)`, when given, replaces `model(**inputs)` and `loss_fn` then receives its
    whole output instead of the logits (intermediate-layer distillation: hidden states, attention scores).
    Empty `dev_feats` skips the per-epoch evaluation (general distillation has no labelled dev set).
    `run_extra`: the command's own settings that a checkpoint must share to be resumed (checkpoint.run_record).
    """
    loss_fn = loss_fn or (lambda logits, batch: task_loss(logits, batch["labels"]))
    set_seed(recipe.seed)
    accelerator, precision = make_accelerator(recipe)
    device = accelerator.device
    world, rank = accelerator.num_processes, accelerator.process_index
    if recipe.threads:
        torch.set_num_threads(max(1, recipe.threads // world))  # the job's threads, shared by its processes
    model.to(device)  # before the optimizer: fused AdamW wants its parameters on the GPU
    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if device.type == "cuda" else None)
    lengths = [len(f["input_ids"]) for f in train_feats]
    accum = recipe.accumulation  # micro-batches of batch_size per optimizer step
    micro_per_epoch = math.ceil(len(train_feats) / recipe.batch_size)
    steps_per_epoch = math.ceil(micro_per_epoch / accum)
    total_steps = steps_per_epoch * recipe.epochs
    optimizer = _optimizer(model, recipe.learning_rate, recipe.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(recipe.warmup_ratio * total_steps), total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    ckpt_dir = Path(recipe.checkpoint_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    log_path = ckpt_dir / "train_log.jsonl"  # progress log; the checkpoints hold the authoritative copy
    run = run_record(recipe, run_extra, train_feats, accelerator.unwrap_model(model))
    run["processes"] = world  # a checkpoint holds one RNG state per process, and DDP's "module." weight names
    start_epoch, latest, history = resume_point(ckpt_dir, run)
    if latest is not None:
        accelerator.load_state(str(latest))  # model: safetensors; optimizer, scheduler, RNG: torch.load(weights_only=True)
        log.info("resuming after epoch %d from %s", start_epoch, latest)
    if accelerator.is_main_process:
        atomic_write_jsonl(log_path, history)

    for epoch in range(start_epoch + 1, recipe.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        batches = shard_batches(length_grouped_batches(lengths, recipe.batch_size, seed=recipe.seed * 1000 + epoch),
                                rank, world)
        loss_sum = torch.zeros((), device=device)
        window: list[torch.Tensor] = []  # losses since the last finiteness check (no GPU sync per step)
        progress = Progress(len(batches), f"epoch {epoch}/{recipe.epochs}", enabled=accelerator.is_main_process)
        for step, collated in enumerate(make_loader(train_feats, batches, collator), 1):
            batch = {k: v.to(device) for k, v in collated.items()}
            inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
            group = min(accum, len(batches) - (step - 1) // accum * accum)  # micro-batches in this optimizer step
            try:
                if forward_fn is not None:
                    loss = loss_fn(forward_fn(model, inputs), batch)
                else:
                    logits = model(**inputs).logits.float()  # bf16/fp16 under mixed precision
                    loss = loss_fn(logits, batch)
                accelerator.backward(loss / group if group > 1 else loss)
                if step % accum == 0 or step == len(batches):
                    if recipe.grad_clip:
                        accelerator.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
            except torch.cuda.OutOfMemoryError as e:
                where = f"in epoch {epoch}, step {step} of {len(batches)}"
                raise UserError(_oom_advice(recipe, where, batch, device, ckpt_dir)) from e
            window.append(loss.detach().float())
            loss_sum += loss.detach()
            if step % 50 == 0 or step == len(batches):
                losses = torch.stack(window)
                bad = (~torch.isfinite(losses)).nonzero()
                if len(bad):
                    first = step - len(window) + int(bad[0]) + 1
                    _non_finite(recipe, epoch, first, len(batches), float(losses[int(bad[0])]),
                                [train_feats[i]["idx"] for i in batches[first - 1]],
                                (epoch - 1) * steps_per_epoch + (first - 1) // accum + 1, ckpt_dir)
                window.clear()
            progress.update(1, len(batches[step - 1]) * world)  # host-side counts: no GPU sync
        progress.close()
        train_loss = accelerator.reduce(loss_sum, "mean").item() / len(batches)  # mean over processes too
        if not math.isfinite(train_loss):
            raise RuntimeError(f"non-finite mean training loss in epoch {epoch}: lower the learning rate")
        if dev_feats:
            logits = _all_logits(accelerator, accelerator.unwrap_model(model), dev_feats, collator,
                                 recipe.eval_batch_size, device)
            val = score_logits(task, dev_feats, logits)
        else:
            val = {"loss": None, "metrics": {}}
        row = {
            "epoch": epoch, "step": epoch * steps_per_epoch, "train_loss": train_loss,
            "val_loss": val["loss"], "val_metrics": val["metrics"],
            "seconds": round(time.perf_counter() - t0, 3), "examples": len(train_feats),
            "lr": scheduler.get_last_lr()[0],
            "device": device.type, "precision": precision, "processes": world,
        }
        log.info("epoch %d: %s", epoch, json.dumps(row))
        history.append(row)
        if accelerator.is_main_process:
            append_jsonl(log_path, row)
        save_checkpoint(accelerator, ckpt_dir, epoch, run, history)
    return history
