"""Stage 4: dev predictions of every model (TSV files), and GLUE metrics computed from those files alone.

`predict` writes results/predictions/<model>/<stem>.tsv with columns idx, label, prediction (MNLI writes
mnli_matched.tsv and mnli_mismatched.tsv). `score` reads only those files, so every number in the
leaderboard can be recomputed from the saved predictions.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import torch
from transformers import DataCollatorWithPadding

from glueslim.batching import encode
from glueslim.data import load_split
from glueslim.errors import UserError
from glueslim.inference import logits_to_predictions, predict_logits
from glueslim.io import atomic_write_json, atomic_write_text
from glueslim.metrics import split_metrics, task_metrics
from glueslim.modeling import load_for_inference, load_tokenizer, pick_device
from glueslim.recipe import add_inference_arguments
from glueslim.tasks import get_task, glue_score, task_mean

COLUMNS = ("idx", "label", "prediction")


def add_arguments_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True)
    p.add_argument("--stem", required=True, help="prediction file stem: the task, or mnli_matched/mnli_mismatched")
    p.add_argument("--data", required=True)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--out", required=True)
    add_inference_arguments(p)


def split_for_stem(task_name: str, stem: str) -> str:
    for split, s in get_task(task_name).eval_splits:
        if s == stem:
            return split
    raise UserError(f"task {task_name} has no evaluated split called {stem!r}")


def run_predict(args: argparse.Namespace) -> None:
    task = get_task(args.task)
    split = split_for_stem(task.name, args.stem)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    tokenizer = load_tokenizer(args.model_dir)
    model = load_for_inference(args.model_dir, device)
    device = next(model.parameters()).device  # int8 models stay on the CPU
    rows = load_split(args.data, split)
    feats = encode(tokenizer, rows, args.max_seq_length)
    logits = predict_logits(model, feats, DataCollatorWithPadding(tokenizer), args.eval_batch_size, device)
    write_predictions(args.out, rows, logits_to_predictions(task, logits))


def write_predictions(path: str | Path, rows: list[dict], preds: list) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(COLUMNS)
    for r, p in zip(rows, preds, strict=True):
        w.writerow((r["idx"], r["label"], p))
    atomic_write_text(path, buf.getvalue())


def read_predictions(path: str | Path, regression: bool) -> tuple[list, list]:
    cast = float if regression else int
    labels, preds = [], []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header is None or tuple(header) != COLUMNS:
            raise UserError(f"{path}: expected the header {' '.join(COLUMNS)}, found {header}")
        for lineno, row in enumerate(reader, 2):
            try:
                labels.append(cast(row[1]))
                preds.append(cast(row[2]))
            except (IndexError, ValueError):
                raise UserError(f"{path}:{lineno}: malformed prediction row {row}") from None
    if not labels:
        raise UserError(f"{path}: no predictions")
    return labels, preds


def score_model(pred_dir: str | Path, tasks: list[str]) -> dict:
    """Metrics per task, each task's mean, and the GLUE score with and without WNLI, from prediction files."""
    out: dict = {}
    for name in tasks:
        task = get_task(name)
        per_file, counts = {}, {}
        for _, stem in task.eval_splits:
            labels, preds = read_predictions(Path(pred_dir) / f"{stem}.tsv", task.is_regression)
            per_file[stem] = split_metrics(name, stem, labels, preds)
            counts[stem] = len(labels)
        metrics = task_metrics(name, per_file)
        out[name] = {"metrics": metrics, "score": task_mean(name, metrics),
                     "n": counts[name] if name in counts else counts}
    scores = {t: v["score"] for t, v in out.items()}
    return {
        "split": "dev",
        "tasks": out,
        "glue_score": glue_score(scores),
        "glue_score_without_wnli": glue_score(scores, exclude=("wnli",)),
    }


def add_arguments_score(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True)
    p.add_argument("--predictions", required=True, help="results/predictions/<model>")
    p.add_argument("--tasks", nargs="+", required=True)
    p.add_argument("--out", required=True)


def run_score(args: argparse.Namespace) -> None:
    atomic_write_json(args.out, {"model": args.model, **score_model(args.predictions, args.tasks)})
