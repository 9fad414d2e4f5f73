"""Per-epoch checkpoints that a re-run resumes from, and the finished model folder.

A checkpoint is `<checkpoint_dir>/epoch_<n>/`: accelerate's state (model as safetensors; optimizer,
scheduler, GradScaler and each process's RNG state, read back with torch.load(weights_only=True)),
STATE_FILE (the run record and the epoch log) and DONE. Only the latest is kept. A checkpoint is resumed
only when its run record equals this run's (`run_record`); any other is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import torch

from glueslim.io import atomic_dir, atomic_write_json, read_json
from glueslim.recipe import Recipe
from glueslim.record import write_record

log = logging.getLogger(__name__)

STATE_FILE = "glueslim_state.json"  # in each epoch checkpoint: the run it belongs to and the epoch log
# recipe fields a resumed run may change: where it runs, and how the effective batch is split
NOT_IN_RUN = {"checkpoint_dir", "threads", "device", "eval_batch_size", "batch_size", "gradient_accumulation_steps"}


def run_record(recipe: Recipe, run_extra: dict | None, train_feats: list[dict], model) -> dict:
    """What a checkpoint must share with this run to be resumed: the recipe (with the effective batch
    size, so halving batch_size and doubling gradient_accumulation_steps after an OOM still resumes), the
    command's own settings (`run_extra`, e.g. alpha and temperature), the training data as tokenized, and
    the model's shape."""
    rec = {k: v for k, v in sorted({**asdict(recipe), **(run_extra or {})}.items()) if k not in NOT_IN_RUN}
    rec["effective_batch_size"] = recipe.effective_batch_size
    h = hashlib.sha256()
    for f in train_feats:
        h.update(json.dumps([f["idx"], f.get("labels"), f["input_ids"], f.get("teacher_logits")]).encode())
    rec["train_data_sha256"] = h.hexdigest()
    cfg = model.config
    rec["model"] = {"class": type(model).__name__, "layers": getattr(cfg, "num_hidden_layers", None),
                    "hidden": getattr(cfg, "hidden_size", None), "labels": getattr(cfg, "num_labels", None)}
    return json.loads(json.dumps(rec))


def latest_checkpoint(ckpt_dir: Path) -> tuple[int, Path | None]:
    """(epoch, folder) of the latest completed checkpoint; (0, None) when there is none."""
    done = sorted((int(m.group(1)), p) for p in ckpt_dir.glob("epoch_*")
                  if (m := re.fullmatch(r"epoch_(\d+)", p.name)) and (p / "DONE").exists())
    return done[-1] if done else (0, None)


def resume_point(ckpt_dir: Path, run: dict) -> tuple[int, Path | None, list[dict]]:
    """(last completed epoch, its checkpoint, the epoch log so far); stale or foreign checkpoints are removed."""
    for stale in ckpt_dir.glob(".epoch_*.tmp"):  # a checkpoint whose writing was cut short by a kill
        shutil.rmtree(stale, ignore_errors=True)
    epoch, latest = latest_checkpoint(ckpt_dir)
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


@contextlib.contextmanager
def shared_atomic_dir(accelerator, path: Path) -> Iterator[Path]:
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


def save_checkpoint(accelerator, ckpt_dir: Path, epoch: int, run: dict, history: list[dict]) -> None:
    """Checkpoint the end of `epoch` (every process takes part), then drop the older ones."""
    with shared_atomic_dir(accelerator, ckpt_dir / f"epoch_{epoch}") as tmp:
        accelerator.save_state(str(tmp))  # every process: its RNG state; the main one: the rest
        if accelerator.is_main_process:
            atomic_write_json(tmp / STATE_FILE, {"run": run, "history": history})
            (tmp / "DONE").write_text("ok\n")
    if accelerator.is_main_process:
        for old in ckpt_dir.glob("epoch_*"):  # keep the latest only
            if old.name != f"epoch_{epoch}":
                shutil.rmtree(old, ignore_errors=True)


def _is_main_process() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or \
        torch.distributed.get_rank() == 0


def save_model(model, tokenizer, out: str | Path, record: dict, history: list[dict], checkpoint_dir: str | Path):
    """Write the finished model (safetensors, config with label names, tokenizer, log, glueslim.json with
    `record`) atomically, then remove the spent checkpoints.

    With several training processes only the main one writes; the others wait for it, then all leave the
    process group (the end of a training command)."""
    if _is_main_process():
        with atomic_dir(out) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            (tmp / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
            write_record(tmp, record)
        shutil.rmtree(checkpoint_dir, ignore_errors=True)  # the result is safe; the checkpoints are spent
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
