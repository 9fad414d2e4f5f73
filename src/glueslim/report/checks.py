"""Value checks of the leaderboard's inputs: a metric or a profile figure that cannot be true (an accuracy
of 1.7, a negative latency, zero parameters, NaN) is a UserError naming the file and the key; it never
reaches the page. collect.py calls these on what it reads, before anything is cleaned or rounded."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from glueslim import tasks as gtasks
from glueslim.errors import UserError

# the range every GLUE metric key can take (fractions; correlations from -1 to 1)
METRIC_RANGES = {
    "accuracy": (0.0, 1.0), "matched_accuracy": (0.0, 1.0), "mismatched_accuracy": (0.0, 1.0), "f1": (0.0, 1.0),
    "mcc": (-1.0, 1.0), "pearson": (-1.0, 1.0), "spearman": (-1.0, 1.0),
}
RESCORE = "re-run score (delete the file, then run snakemake again)"
REPROFILE = "re-run profile (delete the file, then run snakemake again)"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def task_metrics(path: Path, task: str, metrics: Mapping[str, Any]) -> dict[str, float]:
    """The task's metric keys of a score file's `tasks.<task>.metrics`, each present, finite and in range."""
    out = {}
    for key in gtasks.get_task(task).metrics:
        where = f"{path}: tasks.{task}.metrics.{key}"
        if key not in metrics:
            raise UserError(f"{where} is missing; {RESCORE}")
        value = metrics[key]
        if not _finite(value):
            raise UserError(f"{where} = {value!r}: not a finite number; {RESCORE}")
        lo, hi = METRIC_RANGES[key]
        if not lo <= value <= hi:
            raise UserError(f"{where} = {value!r}: outside [{lo:g}, {hi:g}] (scores are fractions, not "
                            f"percentages); {RESCORE}")
        out[key] = float(value)
    return out


def _positive(path: Path, key: str, value: Any, *, integer: bool = False, zero_ok: bool = False) -> None:
    ok = _finite(value) and (value >= 0 if zero_ok else value > 0) and (not integer or float(value).is_integer())
    if not ok:
        what = "a whole number" if integer else "a finite number"
        raise UserError(f"{path}: {key} = {value!r}: expected {what} {'>= 0' if zero_ok else '> 0'}; {REPROFILE}")


def check_profile(path: Path, prof: Mapping[str, Any]) -> None:
    """The figures of a profile file that rows, ratios and the Pareto plot are computed from."""
    params = prof.get("parameters")
    if not isinstance(params, dict):
        raise UserError(f"{path}: \"parameters\" must be an object with \"total\"; {REPROFILE}")
    _positive(path, "parameters.total", params.get("total"), integer=True)
    if prof.get("size_on_disk_bytes") is not None:
        _positive(path, "size_on_disk_bytes", prof["size_on_disk_bytes"], integer=True)
    macs = prof.get("macs")
    if isinstance(macs, dict) and macs.get("total") is not None:
        _positive(path, "macs.total", macs["total"])
    for field in ("latency", "latency_compiled"):
        entries = prof.get(field) or []
        if not isinstance(entries, list):
            raise UserError(f"{path}: \"{field}\" must be a list; {REPROFILE}")
        for i, e in enumerate(entries):
            if not isinstance(e, dict):
                raise UserError(f"{path}: {field}[{i}] must be an object; {REPROFILE}")
            _positive(path, f"{field}[{i}].median_ms", e.get("median_ms"))
            for key in ("q1_ms", "q3_ms", "iqr_ms", "min_ms", "max_ms"):
                if e.get(key) is not None:
                    _positive(path, f"{field}[{i}].{key}", e[key], zero_ok=True)
