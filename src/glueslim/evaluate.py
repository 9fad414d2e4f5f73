"""Stage 4: dev predictions of every model (TSV files), and GLUE metrics computed from those files alone.

`predict` writes results/predictions/<model>/<stem>.tsv with columns idx, label, prediction (MNLI writes
mnli_matched.tsv and mnli_mismatched.tsv), computed in the model folder's deployed form (glueslim.forms:
fp32, bf16, int8, ONNX Runtime), so each form's score is its own. `score` reads only those files, each checked row by row against
the prepared dev split (results/data/<task>/<split>.jsonl: the same idx set, each idx once, the same gold
labels, predictions in the task's label set or finite), so every number in the leaderboard can be
recomputed from the saved predictions and none comes from a partial, repeated or foreign file.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
from pathlib import Path

import torch
from transformers import DataCollatorWithPadding

from glueslim.batching import encode
from glueslim.data import load_split
from glueslim.errors import UserError
from glueslim.inference import logits_to_predictions, predict_logits
from glueslim.io import atomic_write_json, atomic_write_text
from glueslim.metrics import split_metrics, task_metrics
from glueslim.forms import load_model, model_device
from glueslim.modeling import load_tokenizer, pick_device
from glueslim.predictions import COLUMNS, RERUN, prediction_lines
from glueslim.recipe import add_inference_arguments
from glueslim.tasks import get_task, glue_score, task_mean



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
    split = getattr(args, "split", None) or split_for_stem(task.name, args.stem)  # submission.py: a test split
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    tokenizer = load_tokenizer(args.model_dir)
    model = load_model(args.model_dir, device)  # any deployed form: its predictions are computed in that form
    device = model_device(model)  # int8 and ONNX Runtime models take CPU tensors
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


def _parse(value: str, regression: bool, num_labels: int) -> int | float | None:
    """A label or prediction: a finite number (regression) or a label id 0..num_labels-1; None if not."""
    try:
        if regression:
            x = float(value)
            return x if math.isfinite(x) else None
        x = int(value)
    except ValueError:
        return None
    return x if 0 <= x < num_labels else None


def _same_label(a, b, regression: bool) -> bool:
    return b is not None and (math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) if regression else a == b)


def read_predictions(path: str | Path, task_name: str, rows: list[dict]) -> tuple[list, list]:
    """(labels, predictions) of a prediction file, in the order of the prepared split `rows`.

    Every row of the file is checked against the prepared split: the same idx set, each idx once, the
    gold label equal to the prepared one, the prediction a label of the task (classification) or a finite
    number (regression). The first problem is a UserError naming the file, the line and the idx.
    """
    path, task = Path(path), get_task(task_name)
    reg = task.is_regression
    kind = "a finite number" if reg else f"a label id 0..{task.num_labels - 1} of {task.name}"
    gold = {r["idx"]: r["label"] for r in rows}
    seen: dict[int, tuple] = {}
    for lineno, row in prediction_lines(path):
        where = f"{path}:{lineno}"
        if len(row) != len(COLUMNS):
            raise UserError(f"{where}: expected {len(COLUMNS)} tab-separated fields ({' '.join(COLUMNS)}), "
                            f"found {len(row)}: {row!r}; {RERUN}")
        try:
            idx = int(row[0])
        except ValueError:
            raise UserError(f"{where}: idx {row[0]!r} is not an integer; {RERUN}") from None
        if idx not in gold:
            raise UserError(f"{where}: idx {idx} is not in the prepared {task.name} split ({len(gold)} rows); "
                            f"a file of another task or data preparation? {RERUN}")
        if idx in seen:
            raise UserError(f"{where}: idx {idx} appears twice (first on line {seen[idx][0]}); {RERUN}")
        label, pred = _parse(row[1], reg, task.num_labels), _parse(row[2], reg, task.num_labels)
        if label is None or not _same_label(label, gold[idx], reg):
            raise UserError(f"{where}: idx {idx} has label {row[1]!r}, the prepared split has {gold[idx]!r}; "
                            f"a file of another task or data preparation? {RERUN}")
        if pred is None:
            raise UserError(f"{where}: idx {idx}: prediction {row[2]!r} is not {kind}; {RERUN}")
        seen[idx] = (lineno, pred)
    missing = [r["idx"] for r in rows if r["idx"] not in seen]
    if missing:
        raise UserError(f"{path}: {len(missing)} of the {len(rows)} rows of the prepared {task.name} split have "
                        f"no prediction (first: idx {missing[0]}); {RERUN}")
    return [gold[r["idx"]] for r in rows], [seen[r["idx"]][1] for r in rows]


def score_model(pred_dir: str | Path, tasks: list[str], data: str | Path) -> dict:
    """Metrics per task, each task's mean, and the GLUE score with and without WNLI, from prediction files
    checked against the prepared dev splits under `data` (results/data: one folder per task)."""
    out: dict = {}
    for name in tasks:
        task = get_task(name)
        per_file, counts = {}, {}
        for split, stem in task.eval_splits:
            rows = load_split(Path(data) / name, split)
            labels, preds = read_predictions(Path(pred_dir) / f"{stem}.tsv", name, rows)
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
    p.add_argument("--data", required=True,
                   help="results/data: the prepared data (one folder per task) the predictions are checked against")
    p.add_argument("--out", required=True)


def run_score(args: argparse.Namespace) -> None:
    atomic_write_json(args.out, {"model": args.model, **score_model(args.predictions, args.tasks, args.data)})
