"""The one training loop (fine-tuning and distillation), in the spirit of run_glue_no_trainer.py.

AdamW (eps 1e-8, no decay on biases and LayerNorm), linear schedule with warm-up, gradient clipping,
dynamic padding with length-grouped batches, one log line per epoch (train loss, validation loss and
metrics, seconds), and a checkpoint per epoch that a re-run resumes from. The final epoch's model is the
result: checkpoints are never chosen on the dev split that the leaderboard reports.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import math
import os
import random
import re
import shutil
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, gather_object, set_seed
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup

from glueslim.errors import UserError
from glueslim.data import tokenize
from glueslim.io import append_jsonl, atomic_dir, atomic_write_json, atomic_write_jsonl, read_json
from glueslim.losses import task_loss
from glueslim.metrics import split_metrics
from glueslim.tasks import Task

log = logging.getLogger(__name__)

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
LossFn = Callable[[torch.Tensor, dict], torch.Tensor]
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


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
    g.add_argument("--gradient-accumulation-steps", type=int, default=1,
                   help="micro-batches of --batch-size per optimizer step (the effective batch is their product)")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--threads", type=int, default=None, help="torch intra-op threads (the rule's threads)")
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    g.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="mixed precision: auto = bf16 where the hardware has it natively (GPUs of compute "
                        "capability 8.0+, CPUs with AVX512-BF16 or AMX), else fp16 with loss scaling on a GPU and "
                        "fp32 on a CPU; weights stay fp32")
    g.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True,
                   help="TF32 tensor cores for fp32 matmuls on CUDA")
    g.add_argument("--checkpoint-dir", required=True, help="per-epoch checkpoints; a re-run resumes from here")


def hyperparameters(args: argparse.Namespace) -> dict:
    keys = ["learning_rate", "epochs", "batch_size", "max_seq_length", "warmup_ratio", "weight_decay",
            "grad_clip", "seed"]
    out = {k: getattr(args, k) for k in keys}
    if _accum(args) > 1:
        out["gradient_accumulation_steps"] = _accum(args)
    return out


def _accum(args: argparse.Namespace) -> int:
    return max(1, int(getattr(args, "gradient_accumulation_steps", 1) or 1))


# ---------------------------------------------------------------- devices and processes

def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 products in hardware (AVX512-BF16 or AMX), as oneDNN uses them."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # an older torch without these probes
        return False


def choose_precision(requested: str, device_type: str, capability: tuple[int, int] | None,
                     cpu_bf16: bool = False) -> str:
    """accelerate's `mixed_precision` for a training run: "no" (fp32), "bf16" or "fp16".

    "auto" is bf16 wherever the hardware computes it natively, else what is fast there:
    - CUDA: bf16 on compute capability 8.0+ (A100, H100, RTX 30xx and later; torch.cuda.is_bf16_supported()
      also says yes on older GPUs, which only emulate it, slowly), else fp16, for which accelerate scales the
      loss with a GradScaler (saved in the checkpoints). "bf16" on a GPU without it is an error.
    - CPU: bf16 autocast where the CPU has AVX512-BF16 or AMX (`cpu_bf16`; on 2 Zen 4 cores it trains
      MiniLM 1.4x faster than fp32, see benchmarks/), else fp32. fp16, and bf16 without the hardware,
      would be emulated and slower on a CPU: they give fp32.
    Weights, optimizer state and the saved model stay fp32 in every case; "fp32" turns mixed precision off.
    """
    if requested not in PRECISIONS:
        raise UserError(f"precision {requested!r}: expected one of {', '.join(PRECISIONS)}")
    if requested == "fp32":
        return "no"
    if device_type != "cuda":
        return "bf16" if cpu_bf16 and requested in ("auto", "bf16") else "no"
    native_bf16 = capability is not None and tuple(capability) >= (8, 0)
    if requested == "auto":
        return "bf16" if native_bf16 else "fp16"
    if requested == "bf16" and not native_bf16:
        raise UserError(f"precision bf16: this GPU (compute capability {capability}) has no native bf16; "
                        "use precision auto (fp16 with loss scaling) or fp32")
    return requested


def set_tf32(enabled: bool) -> None:
    """TF32 tensor cores for fp32 matmuls and convolutions (CUDA on Ampere and later; no effect elsewhere)."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def make_accelerator(args: argparse.Namespace) -> tuple[Accelerator, str]:
    """The run's Accelerator and its mixed precision, with the CUDA settings applied.

    One process, or one per GPU when started by torch.distributed.run (`glueslim.gpus --distributed`,
    which the training rules use when given more than one GPU): accelerate then wraps the model in
    DistributedDataParallel. Each process trains on its share of every batch (`shard_batches`), so the
    global batch, and with it the recipe and the learning-rate schedule, does not depend on the number of
    GPUs; accelerate is told so (split_batches), which makes the scheduler step once per optimizer step.
    """
    cuda = args.device != "cpu" and torch.cuda.is_available()
    if args.device == "cuda" and not cuda:
        raise UserError("device: cuda was asked for, but torch sees no CUDA device")
    capability = torch.cuda.get_device_capability(int(os.environ.get("LOCAL_RANK", 0))) if cuda else None
    precision = choose_precision(getattr(args, "precision", "auto"), "cuda" if cuda else "cpu", capability,
                                 cpu_bf16=not cuda and cpu_has_native_bf16())
    if cuda:
        set_tf32(getattr(args, "tf32", True))
    accelerator = Accelerator(cpu=args.device == "cpu", mixed_precision=precision,
                              dataloader_config=DataLoaderConfiguration(split_batches=True))
    if not accelerator.is_main_process:
        logging.getLogger().setLevel(logging.WARNING)  # one copy of the log, from the main process
    log.info("training on %s, %d process(es), mixed precision %s%s", accelerator.device,
             accelerator.num_processes, precision,
             f", TF32 {'on' if getattr(args, 'tf32', True) else 'off'}" if cuda else "")
    return accelerator, precision


def shard_batches(batches: list[list[int]], rank: int, world: int) -> list[list[int]]:
    """Process `rank`'s share of every batch: batch[rank::world] (batches hold examples of similar length,
    so the shares are alike too). A batch with fewer examples than processes (at most the epoch's last,
    smallest one) is left out, so that every process takes the same number of steps."""
    if world == 1:
        return batches
    return [b[rank::world] for b in batches if len(b) >= world]


def _all_logits(accelerator, model, feats: list[dict], collator, batch_size: int, device) -> torch.Tensor:
    """predict_logits over every example, in input order; with several processes each one computes every
    world-th example and the shares are gathered (every process gets all the logits)."""
    world = accelerator.num_processes
    if world == 1:
        return predict_logits(model, feats, collator, batch_size, device)
    mine = list(range(accelerator.process_index, len(feats), world))
    part = predict_logits(model, [feats[i] for i in mine], collator, batch_size, device)
    out = torch.empty(len(feats), part.shape[1])
    for idx, rows in gather_object([(mine, part)]):
        out[idx] = rows
    return out


@contextlib.contextmanager
def _shared_atomic_dir(accelerator, path: Path) -> Iterator[Path]:
    """io.atomic_dir for all processes of a run: one temp folder that every process writes into (each its
    own RNG state; the main process the weights, optimizer, scheduler and scaler), moved into place by the
    main process once all are done. One process: atomic_dir itself."""
    if accelerator.num_processes == 1:
        with atomic_dir(path) as tmp:
            yield tmp
        return
    tmp = path.with_name(f".{path.name}.shared.tmp")  # a leftover is removed with the other stale .epoch_*.tmp
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    yield tmp
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    accelerator.wait_for_everyone()


def _is_main_process() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or \
        torch.distributed.get_rank() == 0


# ---------------------------------------------------------------- data

def encode(tokenizer, rows: list[dict], max_len: int, extra: dict[str, list] | None = None) -> list[dict]:
    """Tokenize once, unpadded (through the token cache: data.tokenize); `extra` adds per-example fields
    (e.g. cached teacher logits)."""
    a = [r["text_a"] for r in rows]
    b = [r["text_b"] for r in rows] if rows and rows[0].get("text_b") is not None else None
    enc = tokenize(tokenizer, a, b, max_len)
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
        try:
            out[idx] = model(**batch).logits.float().cpu()
        except torch.cuda.OutOfMemoryError as e:
            raise UserError(
                f"GPU out of memory running the model on a batch of {len(idx)} sequences of "
                f"{batch['input_ids'].shape[-1]} tokens{_gpu_memory(device)}: lower eval_batch_size (now "
                f"{batch_size}), e.g. to {max(1, batch_size // 2)} (finetune.eval_batch_size, or per task in "
                "finetune.per_task.<task>), or max_seq_length") from e
    return out


def logits_to_predictions(task: Task, logits: torch.Tensor) -> list:
    if task.is_regression:
        return logits.squeeze(-1).tolist()
    return logits.argmax(-1).tolist()


# ---------------------------------------------------------------- loop

def _optimizer(model, lr: float, weight_decay: float):
    """AdamW with torch's fused kernel, on CUDA and on the CPU alike (the HF Trainer's default optimizer too)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, eps=1e-8, fused=True)


class NonFiniteLossError(UserError):
    """The training loss became NaN or infinite; the message names the epoch, step and examples."""


STATE_FILE = "glueslim_state.json"  # in each epoch checkpoint: the run it belongs to and the epoch log


def _latest_checkpoint(ckpt_dir: Path) -> tuple[int, Path | None]:
    done = sorted((int(m.group(1)), p) for p in ckpt_dir.glob("epoch_*")
                  if (m := re.fullmatch(r"epoch_(\d+)", p.name)) and (p / "DONE").exists())
    return done[-1] if done else (0, None)


def _run_record(args: argparse.Namespace, train_feats: list[dict], model) -> dict:
    """What a checkpoint must share with this run to be resumed: the recipe (with the effective batch
    size, so halving batch_size and doubling gradient_accumulation_steps after an OOM still resumes), the
    training data as tokenized, and the model's shape."""
    skip = {"checkpoint_dir", "threads", "device", "out", "eval_batch_size", "batch_size",
            "gradient_accumulation_steps", "command"}
    rec = {k: v for k, v in sorted(vars(args).items())
           if k not in skip and isinstance(v, (str, int, float, bool, list, type(None)))}
    rec["effective_batch_size"] = args.batch_size * _accum(args)
    h = hashlib.sha256()
    for f in train_feats:
        h.update(json.dumps([f["idx"], f.get("labels"), f["input_ids"], f.get("teacher_logits")]).encode())
    rec["train_data_sha256"] = h.hexdigest()
    cfg = model.config
    rec["model"] = {"class": type(model).__name__, "layers": getattr(cfg, "num_hidden_layers", None),
                    "hidden": getattr(cfg, "hidden_size", None), "labels": getattr(cfg, "num_labels", None)}
    return json.loads(json.dumps(rec))


def _resume_point(ckpt_dir: Path, run: dict) -> tuple[int, Path | None, list[dict]]:
    """(last completed epoch, its checkpoint, the epoch log so far); stale or foreign checkpoints are removed."""
    for stale in ckpt_dir.glob(".epoch_*.tmp"):  # a checkpoint whose writing was cut short by a kill
        shutil.rmtree(stale, ignore_errors=True)
    epoch, latest = _latest_checkpoint(ckpt_dir)
    if latest is None:
        return 0, None, []
    try:
        state = read_json(latest / STATE_FILE)
        changed = sorted(k for k in set(state["run"]) | set(run) if state["run"].get(k) != run.get(k))
    except (OSError, ValueError, KeyError, TypeError):
        state, changed = None, ["(no readable run record)"]
    if changed:
        log.warning("not resuming from %s: it belongs to another run (changed: %s); starting afresh",
                    latest, ", ".join(changed))
        for old in ckpt_dir.glob("epoch_*"):
            shutil.rmtree(old, ignore_errors=True)
        return 0, None, []
    return epoch, latest, state["history"]


def _non_finite(args, epoch: int, step: int, n_steps: int, value: float, idx: list, opt_step: int,
                ckpt_dir: Path) -> None:
    shown = ", ".join(map(str, idx[:20])) + (f", … ({len(idx)} examples)" if len(idx) > 20 else "")
    kept = f"the checkpoint of epoch {epoch - 1} stays in {ckpt_dir}" if epoch > 1 else "no epoch had completed"
    raise NonFiniteLossError(
        f"training loss is {value} at epoch {epoch}, step {step} of {n_steps} (optimizer step {opt_step}), on "
        f"the batch of training examples with idx {shown}; nothing of epoch {epoch} was saved ({kept}). Lower "
        f"learning_rate (now {args.learning_rate}), set grad_clip (now {args.grad_clip}), or check these examples")


def _gpu_memory(device) -> str:
    try:
        free, total = torch.cuda.mem_get_info(device)
        return f" ({(total - free) / 2**30:.1f} of {total / 2**30:.1f} GiB in use on {torch.cuda.get_device_name(device)})"
    except Exception:  # noqa: BLE001 - a detail of the message only
        return ""


def _oom_advice(args: argparse.Namespace, where: str, batch: dict, device, ckpt_dir: Path) -> str:
    bs, accum = args.batch_size, _accum(args)
    half = max(1, bs // 2)
    n, length = batch["input_ids"].shape[0], batch["input_ids"].shape[-1]
    fix = (f"lower batch_size from {bs} to {half} and set gradient_accumulation_steps to {accum * bs // half} "
           f"(the effective batch stays {bs * accum})" if bs > 1 else "the model does not fit one sequence")
    return (f"GPU out of memory {where}, on a batch of {n} sequences of {length} tokens{_gpu_memory(device)}: "
            f"{fix}, or lower max_seq_length (now {args.max_seq_length}). These keys go in finetune (or "
            f"finetune.per_task.<task>) for the teacher, in students.<name>.train for a student. Completed epochs "
            f"stay in {ckpt_dir}: a re-run with the same effective batch resumes from them")


def train(
    model,
    tokenizer,
    task: Task,
    train_feats: list[dict],
    dev_feats: list[dict],
    args: argparse.Namespace,
    loss_fn: LossFn | None = None,
    forward_fn: Callable | None = None,
) -> list[dict]:
    """Train `model` in place; returns the per-epoch log. `loss_fn(logits, batch)` defaults to CE/MSE.

    `forward_fn(model, inputs)`, when given, replaces `model(**inputs)` and `loss_fn` then receives its
    whole output instead of the logits (intermediate-layer distillation: hidden states, attention scores).
    Empty `dev_feats` skips the per-epoch evaluation (general distillation has no labelled dev set).
    """
    loss_fn = loss_fn or (lambda logits, batch: task_loss(logits, batch["labels"]))
    set_seed(args.seed)
    accelerator, precision = make_accelerator(args)
    device = accelerator.device
    world, rank = accelerator.num_processes, accelerator.process_index
    if args.threads:
        torch.set_num_threads(max(1, args.threads // world))  # the job's threads, shared by its processes
    model.to(device)  # before the optimizer: fused AdamW wants its parameters on the GPU
    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if device.type == "cuda" else None)
    lengths = [len(f["input_ids"]) for f in train_feats]
    accum = _accum(args)  # micro-batches of batch_size per optimizer step
    micro_per_epoch = math.ceil(len(train_feats) / args.batch_size)
    steps_per_epoch = math.ceil(micro_per_epoch / accum)
    total_steps = steps_per_epoch * args.epochs
    optimizer = _optimizer(model, args.learning_rate, args.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(args.warmup_ratio * total_steps), total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    ckpt_dir = Path(args.checkpoint_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    log_path = ckpt_dir / "train_log.jsonl"  # progress log; the checkpoints hold the authoritative copy
    run = _run_record(args, train_feats, accelerator.unwrap_model(model))
    run["processes"] = world  # a checkpoint holds one RNG state per process, and DDP's "module." weight names
    start_epoch, latest, history = _resume_point(ckpt_dir, run)
    if latest is not None:
        accelerator.load_state(str(latest))  # model: safetensors; optimizer, scheduler, RNG: torch.load(weights_only=True)
        log.info("resuming after epoch %d from %s", start_epoch, latest)
    if accelerator.is_main_process:
        atomic_write_jsonl(log_path, history)

    for epoch in range(start_epoch + 1, args.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        batches = shard_batches(length_grouped_batches(lengths, args.batch_size, seed=args.seed * 1000 + epoch),
                                rank, world)
        loss_sum = torch.zeros((), device=device)
        window: list[torch.Tensor] = []  # losses since the last finiteness check (no GPU sync per step)
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
                    if args.grad_clip:
                        accelerator.clip_grad_norm_(model.parameters(), args.grad_clip)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
            except torch.cuda.OutOfMemoryError as e:
                where = f"in epoch {epoch}, step {step} of {len(batches)}"
                raise UserError(_oom_advice(args, where, batch, device, ckpt_dir)) from e
            window.append(loss.detach().float())
            loss_sum += loss.detach()
            if step % 50 == 0 or step == len(batches):
                losses = torch.stack(window)
                bad = (~torch.isfinite(losses)).nonzero()
                if len(bad):
                    first = step - len(window) + int(bad[0]) + 1
                    _non_finite(args, epoch, first, len(batches), float(losses[int(bad[0])]),
                                [train_feats[i]["idx"] for i in batches[first - 1]],
                                (epoch - 1) * steps_per_epoch + (first - 1) // accum + 1, ckpt_dir)
                window.clear()
        train_loss = accelerator.reduce(loss_sum, "mean").item() / len(batches)  # mean over processes too
        if not math.isfinite(train_loss):
            raise RuntimeError(f"non-finite mean training loss in epoch {epoch}: lower the learning rate")
        val = evaluate_split(accelerator.unwrap_model(model), task, dev_feats, collator, args.eval_batch_size, device,
                             accelerator=accelerator) if dev_feats else {"loss": None, "metrics": {}}
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
        with _shared_atomic_dir(accelerator, ckpt_dir / f"epoch_{epoch}") as tmp:
            accelerator.save_state(str(tmp))  # every process: its RNG state; the main one: the rest
            if accelerator.is_main_process:
                atomic_write_json(tmp / STATE_FILE, {"run": run, "history": history})
                (tmp / "DONE").write_text("ok\n")
        if accelerator.is_main_process:
            for old in ckpt_dir.glob("epoch_*"):  # keep the latest only
                if old.name != f"epoch_{epoch}":
                    shutil.rmtree(old, ignore_errors=True)
    return history


def evaluate_split(model, task: Task, feats: list[dict], collator, batch_size: int, device,
                   accelerator: Accelerator | None = None) -> dict:
    """Loss and metrics on `feats`; given the run's accelerator, its processes share the work."""
    if accelerator is not None:
        logits = _all_logits(accelerator, model, feats, collator, batch_size, device)
    else:
        logits = predict_logits(model, feats, collator, batch_size, device)
    labels = [f["labels"] for f in feats]
    target = torch.tensor(labels, dtype=torch.float if task.is_regression else torch.long)
    loss = task_loss(logits, target).item()
    metrics = split_metrics(task.name, task.eval_splits[0][1], labels, logits_to_predictions(task, logits))
    return {"loss": loss, "metrics": metrics}


def save_model(model, tokenizer, out: str | Path, meta: dict, history: list[dict], checkpoint_dir: str | Path):
    """Write the finished model (safetensors, config with label names, tokenizer, log, meta) atomically.

    With several training processes only the main one writes; the others wait for it, then all leave the
    process group (the end of a training command)."""
    if _is_main_process():
        with atomic_dir(out) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            (tmp / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
            atomic_write_json(tmp / "glueslim.json", meta)
        shutil.rmtree(checkpoint_dir, ignore_errors=True)  # the result is safe; the checkpoints are spent
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
