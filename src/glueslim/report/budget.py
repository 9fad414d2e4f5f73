"""The "best per latency budget" tables: for a latency budget (a fraction of the teacher's fp32 latency at a
batch size), the best-scoring (model, form) row whose median latency at that batch meets it. Pure functions of
the leaderboard rows.

Two tables: at batch 1, and at the largest batch size every timed row was profiled at. Budgets are the
teacher fp32 row's median latency at that batch × 1, 1/2, 1/3, 1/5 and 1/10. Among the rows that meet a
budget, the highest score wins; equal scores: the faster row; then the row order of the leaderboard.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from glueslim.report.values import num

FRACTIONS = ((1, 1), (1, 2), (1, 3), (1, 5), (1, 10))  # budget = teacher latency × n / d


def _key_batch(key: str) -> int | None:
    tail = key.split("_", 1)[-1]
    return int(tail) if key.startswith("batch_") and tail.isdigit() else None


def _median(row: Mapping, key: str) -> float | None:
    e = (row.get("latency_ms") or {}).get(key)
    return num(e.get("median")) if isinstance(e, Mapping) else None


def budget_batches(rows: Sequence[Mapping]) -> list[tuple[str, str]]:
    """[(latency key, why this batch)]: batch 1, and the largest batch size every timed row was profiled at
    (when it differs from 1). Rows without any latency are left out of "every"."""
    timed = [r for r in rows if any(_median(r, k) is not None for k in r.get("latency_ms") or {})]
    if not timed:
        return []
    common = set.intersection(*({k for k in r["latency_ms"] if _median(r, k) is not None
                                 and _key_batch(k) is not None} for r in timed))
    out = [("batch_1", "batch 1")]
    largest = max(common, key=lambda k: _key_batch(k) or 0, default=None)
    if largest is not None and largest != "batch_1":
        out.append((largest, f"batch {_key_batch(largest)}: the largest batch size every row was profiled at"))
    return out


def best_per_budget(rows: Sequence[Mapping], teacher: str, key: str, *, score: str = "glue_score",
                    pct: str = "pct_of_teacher", basis: str = "") -> dict:
    """One budget table at the latency key `key` ("batch_<n>"): the teacher's latency there, and per budget the
    best row that meets it (or `model` None: none meets it). Rows not timed at that batch, or without a
    score, cannot be chosen; they are listed in `not_timed` / `unscored`."""
    teacher_row = next((r for r in rows if r["model"] == teacher), None)
    base = _median(teacher_row, key) if teacher_row is not None else None
    seq = next((r["latency_ms"][key].get("seq_length") for r in rows if _median(r, key) is not None), None)
    table = {"latency_key": key, "batch_size": _key_batch(key), "seq_length": seq, "basis": basis,
             "teacher": teacher, "teacher_latency_ms": base, "score": score,
             "not_timed": [r["model"] for r in rows if _median(r, key) is None],
             "unscored": [r["model"] for r in rows if _median(r, key) is not None and num(r.get(score)) is None],
             "budgets": []}
    if base is None:
        return table
    cands = [(i, r, _median(r, key)) for i, r in enumerate(rows)
             if _median(r, key) is not None and num(r.get(score)) is not None]
    for n, d in FRACTIONS:
        budget = base * n / d
        fits = [c for c in cands if c[2] <= budget]
        best = min(fits, key=lambda c: (-c[1][score], c[2], c[0]), default=None)
        entry = {"fraction": n / d, "label": "×1" if d == 1 else f"×1/{d}", "budget_ms": budget, "model": None,
                 "form": None, "backend": None, "score": None, "latency_ms": None, "pct_of_teacher": None,
                 "emulated": None}
        if best is not None:
            r = best[1]
            entry.update(model=r["model"], form=r.get("form"), backend=r.get("backend"), score=r[score],
                         latency_ms=best[2], pct_of_teacher=r.get(pct), emulated=bool(r.get("emulated")))
        table["budgets"].append(entry)
    return table


def budget_tables(rows: Sequence[Mapping], teacher: str, score: str = "glue_score",
                  pct: str = "pct_of_teacher") -> list[dict]:
    """The budget tables at batch 1 and at the largest batch every row was profiled at."""
    return [best_per_budget(rows, teacher, key, score=score, pct=pct, basis=basis)
            for key, basis in budget_batches(rows)]
