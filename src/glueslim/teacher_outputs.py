"""The fine-tuned teacher's labels for distillation: its logits on a task's training set (`teacher-outputs`),
and a transfer set (`transfer-set`).

`teacher-outputs`: the teacher runs once over the training set; its logits are stored (safetensors, keyed by
example idx) and every student of that task reuses them (`teacher_logits_for`), so prediction-layer
distillation costs about as much as fine-tuning the student.

`transfer-set`: when the training set is capped (data.max_train_examples), the task's other training texts
are unlabelled data the teacher never saw. Their gold labels are dropped and the teacher's logits (and its
argmax, or its score for STS-B) label them: DistilBERT's and TinyBERT's "transfer set". A student with
`transfer: true` trains on them beside the capped gold set (`distill --transfer`).

Inference only: this module does not import the training loop.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import DataCollatorWithPadding

from glueslim.batching import encode
from glueslim.config import schema_default
from glueslim.data import load_split
from glueslim.errors import UserError
from glueslim.inference import predict_logits
from glueslim.io import atomic_dir, atomic_file, atomic_write_json, atomic_write_jsonl, read_json
from glueslim.modeling import load_classifier, load_tokenizer, pick_device
from glueslim.recipe import add_inference_arguments, add_labelling_precision
from glueslim.tasks import get_task


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


def label_rows(rows: list[dict], teacher, tokenizer, task, args, device, what: str) -> list[dict]:
    """`rows` with the teacher's logits (`teacher_logits`) and label (`label`: its argmax, or its score for a
    regression task); `args`: the inference flags (max_seq_length, eval_batch_size, inference_precision)."""
    feats = encode(tokenizer, rows, args.max_seq_length)
    logits = predict_logits(teacher, feats, DataCollatorWithPadding(tokenizer), args.eval_batch_size, device,
                            what=what, precision=args.inference_precision)
    for r, z in zip(rows, logits):
        r["teacher_logits"] = z.tolist()
        r["label"] = float(z[0]) if task.is_regression else int(z.argmax())
    return rows


# ---------------------------------------------------------------- transfer set

def add_arguments_transfer(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True)
    p.add_argument("--data", required=True, help="the prepared task (capped): its training rows are left out")
    p.add_argument("--uncapped", required=True, help="the same task prepared from the same source without a cap")
    p.add_argument("--teacher-dir", required=True, help="the fine-tuned teacher: labels the texts")
    p.add_argument("--max-examples", type=int, default=None, help="a seeded sample of at most this many texts")
    p.add_argument("--seed", type=int, default=schema_default("seed"), help="seed of the --max-examples sample")
    add_inference_arguments(p)
    add_labelling_precision(p)
    p.add_argument("--out", required=True, help="folder: train.jsonl (texts, teacher logits and label) + meta.json")


def _train_source(data_dir: str) -> list:
    man = read_json(Path(data_dir) / "manifest.json")
    return [{k: v for k, v in f.items() if k in ("path", "sha256", "dataset", "config", "fingerprint")}
            for f in man["source_files"] if f["split"] == "train"]


def transfer_rows(capped: list[dict], uncapped: list[dict], max_examples: int | None, seed: int) -> list[dict]:
    """The training texts of `uncapped` that `capped` left out, without their labels: all of them, or a
    random.Random(seed) sample of `max_examples` (0: none), in idx order."""
    if max_examples is not None and max_examples < 0:
        raise UserError(f"--max-examples must be a number of texts (0 or more), got {max_examples}")
    seen = {r["idx"] for r in capped}
    rest = [{"idx": r["idx"], "text_a": r["text_a"], "text_b": r.get("text_b")} for r in uncapped
            if r["idx"] not in seen]
    if max_examples is not None and len(rest) > max_examples:
        rest = [rest[i] for i in sorted(random.Random(seed).sample(range(len(rest)), max_examples))]
    return rest


def run_transfer(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    task = get_task(args.task)
    if _train_source(args.data) != _train_source(args.uncapped):
        raise UserError(f"{args.uncapped}: prepared from another training file than {args.data} (manifest.json "
                        "source_files differ): prepare both from the same GLUE copy")
    capped, uncapped = load_split(args.data, "train"), load_split(args.uncapped, "train")
    rows = transfer_rows(capped, uncapped, args.max_examples, args.seed)
    device = pick_device(args.device)
    if rows:
        rows = label_rows(rows, load_classifier(args.teacher_dir).to(device), load_tokenizer(args.teacher_dir),
                          task, args, device, "transfer set: teacher labels")
    with atomic_dir(args.out) as tmp:
        atomic_write_jsonl(tmp / "train.jsonl", rows)
        atomic_write_json(tmp / "meta.json", {
            "task": task.name, "rows": len(rows), "capped_rows": len(capped), "uncapped_rows": len(uncapped),
            "available": len(uncapped) - len(capped), "max_examples": args.max_examples, "seed": args.seed,
            "labels": "the teacher's (gold labels dropped)", "teacher_dir": args.teacher_dir,
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
