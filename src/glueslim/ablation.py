"""The TinyBERT ablation table (`ablation`): results/ablations/<name>.json, rendered by the leaderboard.

One row per variant of a distilled student with one ingredient removed (general distillation, data
augmentation, each intermediate loss), its final-epoch dev scores and their mean as % of the teacher's;
what each variant was trained with comes from its models' records (glueslim.json).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from glueslim.io import atomic_write_json, read_jsonl
from glueslim.record import read_record


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", nargs="+", required=True)
    p.add_argument("--teacher-root", required=True, help="results/models/teacher")
    p.add_argument("--variant", nargs=2, action="append", metavar=("LABEL", "ROOT"), required=True,
                   help="a row: its label and the folder holding its <task>/ model folders")
    p.add_argument("--title", default="TinyBERT ablation")
    p.add_argument("--order", type=float, default=None)
    p.add_argument("--out", required=True, help="results/ablations/<name>.json")


def dev_score(model_dir: Path) -> float | None:
    """The final epoch's dev score of a trained model folder: the mean of its val_metrics."""
    rows = read_jsonl(Path(model_dir) / "train_log.jsonl")
    vals = [v for v in (rows[-1].get("val_metrics") or {}).values() if isinstance(v, (int, float))] if rows else []
    return sum(vals) / len(vals) if vals else None


def ablation_table(tasks: list[str], teacher_root: Path, variants: list[tuple[str, Path]], title: str) -> dict:
    """The table: the teacher, then one row per variant (its label and the folder of its <task>/ models)
    with what its record says it was trained with, its dev score per task, their mean and % of the teacher."""
    teacher = {t: dev_score(Path(teacher_root) / t) for t in tasks}
    t_mean = _mean(teacher.values())
    rows = [{"variant": "teacher", "general": None, "augmentation": None, "intermediate": None,
             **{t: teacher[t] for t in tasks}, "mean": t_mean, "pct": 100.0 if t_mean else None}]
    for label, root in variants:
        scores = {t: dev_score(Path(root) / t) for t in tasks}
        meta = read_record(Path(root) / tasks[0])
        mean = _mean(scores.values())
        rows.append({"variant": label, "general": "yes" if meta.get("general_distillation") else "no",
                     "augmentation": "yes" if meta.get("augmented") else "no",
                     "intermediate": ", ".join(meta.get("intermediate") or []) or "none",
                     **scores, "mean": mean, "pct": 100 * mean / t_mean if mean is not None and t_mean else None})
    columns = ([{"key": "variant", "label": "variant", "format": "text"},
                {"key": "general", "label": "general KD", "format": "text"},
                {"key": "augmentation", "label": "augmentation", "format": "text"},
                {"key": "intermediate", "label": "intermediate losses", "format": "text"}]
               + [{"key": t, "label": t, "format": "score"} for t in tasks]
               + [{"key": "mean", "label": "mean", "format": "score"},
                  {"key": "pct", "label": "% of teacher", "format": "pct"}])
    caption = (f"Dev-set scores (final epoch) on {', '.join(tasks)} of the TinyBERT-style student with each "
               "ingredient removed in turn: general distillation (student initialised at random instead), data "
               "augmentation, and each intermediate loss of stage 1. % of teacher is the mean score over the mean "
               "of the fine-tuned teacher.")
    return {"title": title, "caption": caption, "columns": columns, "rows": rows}


def _mean(vals) -> float | None:
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def run(args: argparse.Namespace) -> None:
    doc = ablation_table(args.tasks, Path(args.teacher_root), [(l, Path(r)) for l, r in args.variant], args.title)
    if args.order is not None:
        doc["order"] = args.order
    atomic_write_json(args.out, doc)
