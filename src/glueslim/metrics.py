"""GLUE metrics as the benchmark defines them, computed with scikit-learn and scipy."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from glueslim.tasks import get_task


def classification_metrics(name: str, labels: Sequence[int], preds: Sequence[int]) -> dict[str, float]:
    """Metrics for one evaluated split; `name` is a task, or mnli_matched / mnli_mismatched."""
    y, p = np.asarray(labels), np.asarray(preds)
    if name == "cola":
        return {"mcc": float(matthews_corrcoef(y, p))}
    acc = float(accuracy_score(y, p))
    if name in ("mrpc", "qqp"):
        return {"f1": float(f1_score(y, p, pos_label=1, average="binary", zero_division=0)), "accuracy": acc}
    return {"accuracy": acc}


def regression_metrics(labels: Sequence[float], preds: Sequence[float]) -> dict[str, float]:
    y, p = np.asarray(labels, dtype=float), np.asarray(preds, dtype=float)
    if np.allclose(p, p[0]) or np.allclose(y, y[0]):  # correlation undefined for a constant series
        return {"pearson": 0.0, "spearman": 0.0}
    return {"pearson": float(pearsonr(y, p)[0]), "spearman": float(spearmanr(y, p)[0])}


def split_metrics(task: str, stem: str, labels, preds) -> dict[str, float]:
    """Metrics of one prediction file (`stem` is the file stem: the task, or mnli_matched/_mismatched)."""
    if get_task(task).is_regression:
        return regression_metrics(labels, preds)
    return classification_metrics(stem, labels, preds)


def task_metrics(task: str, per_file: dict[str, dict[str, float]]) -> dict[str, float]:
    """Combine the metrics of a task's prediction files into the task's metric keys (MNLI m/mm)."""
    if task == "mnli":
        return {
            "matched_accuracy": per_file["mnli_matched"]["accuracy"],
            "mismatched_accuracy": per_file["mnli_mismatched"]["accuracy"],
        }
    (only,) = per_file.values()
    return only
