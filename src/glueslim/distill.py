"""Stage 3: DistilBERT-style task distillation.

`teacher-outputs` runs the fine-tuned teacher once over a task's training set and stores its logits
(safetensors, keyed by example idx); every student of that task reuses them, so distillation costs
about as much as fine-tuning the student. `distill` builds a student of the teacher's width with fewer
layers, each initialised from a teacher layer (every other one by default), and trains it with
alpha * T^2 * KL(p_t || p_s) + (1 - alpha) * CE(s, gold)  (STS-B: alpha * MSE(s, t) + (1 - alpha) * MSE(s, gold)).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import DataCollatorWithPadding

from glueslim.errors import UserError
from glueslim.data import load_split
from glueslim.io import atomic_file, read_json
from glueslim.losses import distillation_loss
from glueslim.modeling import (
    default_layer_map, load_classifier, load_tokenizer, make_albert_student, make_student, pick_device,
)
from glueslim.tasks import get_task
from glueslim.train import (
    add_training_arguments, encode, hyperparameters, predict_logits, save_model, seed_everything, train,
)


METHODS = {"distilbert": "DistilBERT-style KD", "albert": "ALBERT-style KD (shared layer, factorised embeddings)"}


def add_arguments_teacher_outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--teacher-dir", required=True)
    p.add_argument("--out", required=True, help="results/teacher_outputs/<task>.safetensors")
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--eval-batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def run_teacher_outputs(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    tokenizer = load_tokenizer(args.teacher_dir)
    teacher = load_classifier(args.teacher_dir).to(device)
    rows = load_split(args.data, "train")
    feats = encode(tokenizer, rows, args.max_seq_length)
    logits = predict_logits(teacher, feats, DataCollatorWithPadding(tokenizer), args.eval_batch_size, device)
    idx = torch.tensor([r["idx"] for r in rows], dtype=torch.long)
    with atomic_file(args.out) as tmp:
        save_file({"idx": idx, "logits": logits.contiguous()}, str(tmp), metadata={
            "task": args.task, "teacher_dir": args.teacher_dir, "max_seq_length": str(args.max_seq_length)})


def add_student_inputs(p: argparse.ArgumentParser) -> None:
    """What every task-distillation command reads: the task's data, its teacher and the cached logits."""
    p.add_argument("--task", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--teacher-dir", required=True, help="the fine-tuned teacher of this task")
    p.add_argument("--teacher-outputs", required=True, help="its cached logits, written by teacher-outputs")
    p.add_argument("--name", required=True, help="the student's name in the leaderboard")


def add_arguments_distill(p: argparse.ArgumentParser) -> None:
    add_student_inputs(p)
    p.add_argument("--num-layers", type=int, default=None, help="student depth (default: half the teacher's)")
    p.add_argument("--layer-map", type=int, nargs="+", default=None,
                   help="teacher layer that initialises each student layer (default: every other)")
    p.add_argument("--arch", choices=["distilbert", "albert"], default="distilbert",
                   help="distilbert: fewer teacher layers; albert: factorised embeddings, one shared layer")
    p.add_argument("--embedding-size", type=int, default=128, help="albert: factorised embedding size E")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the distillation term")
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--out", required=True)
    add_training_arguments(p)


def teacher_logits_for(rows: list[dict], path: str) -> list[list[float]]:
    """The cached teacher logits of each training row, matched by idx."""
    cached = load_file(path)
    by_idx = {int(i): k for k, i in enumerate(cached["idx"].tolist())}
    missing = [r["idx"] for r in rows if r["idx"] not in by_idx]
    if missing:
        raise UserError(f"{path}: no teacher output for {len(missing)} training examples (idx {missing[:5]}…); "
                        "the data changed after the teacher outputs were cached: re-run teacher_outputs")
    logits = cached["logits"]
    return [logits[by_idx[r["idx"]]].tolist() for r in rows]


def run_distill(args: argparse.Namespace) -> None:
    task = get_task(args.task)
    seed_everything(args.seed)
    tokenizer = load_tokenizer(args.teacher_dir)
    teacher = load_classifier(args.teacher_dir)
    try:
        if args.arch == "albert":
            layer_map = args.layer_map or [teacher.config.num_hidden_layers // 2]
            if len(layer_map) != 1:
                raise ValueError(f"an ALBERT-style student shares one layer: layer_map {layer_map} must name one")
            student = make_albert_student(teacher, args.embedding_size, args.num_layers, layer_map[0])
        else:
            layer_map = args.layer_map or default_layer_map(teacher.config.num_hidden_layers, args.num_layers)
            student = make_student(teacher, layer_map)
    except ValueError as e:
        raise UserError(str(e)) from None
    del teacher
    rows = load_split(args.data, "train")
    train_feats = encode(tokenizer, rows, args.max_seq_length,
                         extra={"teacher_logits": teacher_logits_for(rows, args.teacher_outputs)})
    dev_feats = encode(tokenizer, load_split(args.data, task.eval_splits[0][0]), args.max_seq_length)

    def loss_fn(logits, batch):
        return distillation_loss(logits, batch["teacher_logits"], batch["labels"], args.alpha, args.temperature)

    history = train(student, tokenizer, task, train_feats, dev_feats, args, loss_fn=loss_fn)
    meta = {
        "model": args.name, "task": task.name, "method": METHODS[args.arch],
        "base_model": read_json(Path(args.teacher_dir) / "glueslim.json")["base_model"],
        "teacher": "teacher", "teacher_dir": args.teacher_dir, "num_layers": student.config.num_hidden_layers,
        "layer_map": layer_map, "arch": args.arch,
        "embedding_size": args.embedding_size if args.arch == "albert" else None,
        "hyperparameters": {**hyperparameters(args), "alpha": args.alpha, "temperature": args.temperature},
    }
    save_model(student, tokenizer, args.out, meta, history, args.checkpoint_dir)
