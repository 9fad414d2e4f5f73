"""The fine-tuned teacher's logits on a task's training set (`teacher-outputs`), cached for distillation.

The teacher runs once over the training set; its logits are stored (safetensors, keyed by example idx)
and every student of that task reuses them (`teacher_logits_for`), so prediction-layer distillation costs
about as much as fine-tuning the student. Inference only: this module does not import the training loop.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import DataCollatorWithPadding

from glueslim.batching import encode
from glueslim.data import load_split
from glueslim.errors import UserError
from glueslim.inference import predict_logits
from glueslim.io import atomic_file
from glueslim.modeling import load_classifier, load_tokenizer, pick_device
from glueslim.recipe import add_inference_arguments, add_labelling_precision


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--teacher-dir", required=True)
    p.add_argument("--out", required=True, help="results/teacher_outputs/<task>.safetensors")
    add_inference_arguments(p)
    add_labelling_precision(p)


def run(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    tokenizer = load_tokenizer(args.teacher_dir)
    teacher = load_classifier(args.teacher_dir).to(device)
    rows = load_split(args.data, "train")
    feats = encode(tokenizer, rows, args.max_seq_length)
    logits = predict_logits(teacher, feats, DataCollatorWithPadding(tokenizer), args.eval_batch_size, device,
                            what="teacher outputs", precision=args.inference_precision)
    idx = torch.tensor([r["idx"] for r in rows], dtype=torch.long)
    with atomic_file(args.out) as tmp:
        save_file({"idx": idx, "logits": logits.contiguous()}, str(tmp), metadata={
            "task": args.task, "teacher_dir": args.teacher_dir, "max_seq_length": str(args.max_seq_length),
            "inference_precision": args.inference_precision})


def teacher_logits_for(rows: list[dict], path: str, task: str | None = None) -> list[list[float]]:
    """The cached teacher logits of each training row, matched by idx; the file must be whole and, given
    `task`, cached for that task (its metadata names it)."""
    from safetensors import safe_open

    from glueslim.modelfiles import safetensors_problem

    problem = safetensors_problem(Path(path))
    if problem:
        raise UserError(problem)
    with safe_open(path, framework="pt") as f:
        cached_task = (f.metadata() or {}).get("task")
    if task is not None and cached_task != task:
        raise UserError(f"{path}: teacher outputs of task {cached_task!r}, not {task!r}: point --teacher-outputs at "
                        f"this task's file (results/teacher_outputs/{task}.safetensors) or re-run teacher_outputs")
    cached = load_file(path)
    by_idx = {int(i): k for k, i in enumerate(cached["idx"].tolist())}
    missing = [r["idx"] for r in rows if r["idx"] not in by_idx]
    if missing:
        raise UserError(f"{path}: no teacher output for {len(missing)} training examples (idx {missing[:5]}…); "
                        "the data changed after the teacher outputs were cached: re-run teacher_outputs")
    logits = cached["logits"]
    return [logits[by_idx[r["idx"]]].tolist() for r in rows]
