"""Marker shapes of the charts: one shape per deployed form (fp32 a circle), drawn with about the same area as
a circle of radius r, so that marker area keeps meaning "parameters" in the Pareto plot."""

from __future__ import annotations

import math
from typing import Iterable

import markupsafe

# in the order forms get them (glueslim.forms order after fp32); more forms than shapes cycle through them
SHAPES = ("circle", "diamond", "square", "triangle-down", "triangle", "hexagon", "star", "pentagon")


def form_shapes(forms: Iterable[str]) -> dict[str, str]:
    """{form: shape} for the forms in the order given; fp32 is always the circle."""
    out = {"fp32": "circle"}
    rest = [s for s in SHAPES if s != "circle"]
    for f in forms:
        if f not in out:
            out[f] = rest[(len(out) - 1) % len(rest)]
    return out


def _polygon(cx: float, cy: float, radius: float, n: int, start_deg: float) -> list[tuple[float, float]]:
    return [(cx + radius * math.cos(math.radians(start_deg + 360.0 * i / n)),
             cy + radius * math.sin(math.radians(start_deg + 360.0 * i / n))) for i in range(n)]


def _points(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """The polygon of a shape whose area is about that of a circle of radius r."""
    if shape == "square":
        h = r * math.sqrt(math.pi) / 2
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "diamond":
        return _polygon(cx, cy, r * math.sqrt(math.pi / 2), 4, -90)
    if shape in ("triangle", "triangle-down"):
        big = r * math.sqrt(4 * math.pi / (3 * math.sqrt(3)))
        return _polygon(cx, cy + (big / 4 if shape == "triangle" else -big / 4), big, 3,
                        -90 if shape == "triangle" else 90)
    if shape == "hexagon":
        return _polygon(cx, cy, r * math.sqrt(2 * math.pi / (3 * math.sqrt(3))), 6, 0)
    if shape == "pentagon":
        return _polygon(cx, cy, r * 1.17, 5, -90)
    outer, inner = _polygon(cx, cy, r * 1.55, 5, -90), _polygon(cx, cy, r * 0.62, 5, -54)  # star
    return [p for pair in zip(outer, inner) for p in pair]


def marker(shape: str, cx: float, cy: float, r: float, attrs: str = "", title: str | None = None) -> str:
    """One marker as SVG (`attrs` first: class, data-*, fill): a <circle> for "circle" (and unknown shapes), else a
    <polygon> with its shape and radius in data-shape and data-r; `title` is its escaped tooltip."""
    tip = f"<title>{markupsafe.escape(title)}</title>" if title is not None else ""
    if shape not in SHAPES or shape == "circle":
        return f'<circle{attrs} cx="{cx:.1f}" cy="{cy:.1f}" r="{r:.1f}">{tip}</circle>'
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in _points(shape, cx, cy, r))
    return f'<polygon{attrs} data-shape="{shape}" data-r="{r:.1f}" points="{pts}">{tip}</polygon>'
