"""Value helpers shared by the report modules: what counts as a number, JSON-safe copies, ratios."""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

# Relative difference above which a stored score that we recompute is reported as a warning.
RECOMPUTE_TOL = 1e-6


def clean(obj: Any) -> Any:
    """Copy of a JSON-like value with non-finite floats (NaN, inf) replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return obj


def num(x: Any) -> float | None:
    """A finite number or None (bools are not numbers here)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def ratio(n: Any, d: Any, scale: float = 1.0) -> float | None:
    """n/d*scale, or None when either is missing or d is not positive."""
    n, d = num(n), num(d)
    if n is None or d is None or d <= 0:
        return None
    return n / d * scale


def unique(values: Iterable[Any]) -> list[Any]:
    """The values in first-seen order, each once (values need not be hashable)."""
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def differs(stored: float | None, computed: float | None) -> bool:
    """Whether a stored score is off the recomputed one by more than the tolerance."""
    return (stored is not None and computed is not None
            and abs(stored - computed) > RECOMPUTE_TOL * max(1.0, abs(computed)))
