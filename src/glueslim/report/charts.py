"""The SVG chart library of the leaderboard: line charts (linear or log axes, dashed reference lines) and the
Pareto plot. Charts are inline SVG strings (no JavaScript); every text is escaped. `standalone_svg` turns
one into a file of its own.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import markupsafe

from glueslim.report.build import pareto_frontier
from glueslim.report.markers import marker
from glueslim.report.values import num

PALETTE = ("#1f77b4", "#d95f02", "#2ca02c", "#7570b3", "#e7298a", "#8c564b", "#17becf", "#bcbd22",
           "#7f7f7f", "#66a61e")
# the charts' CSS: in the page's <style>, and inside each standalone .svg figure file
CHART_CSS = """svg.chart { display: block; font-size: 10px; font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
svg.chart .chart-title { font-size: 11px; font-weight: 600; fill: #1b1f24; }
svg.chart .tick, svg.chart .legend { fill: #5b6470; font-size: 9.5px; }
svg.chart .axis-label { fill: #3d444d; font-size: 10px; }
svg.chart .point-label { fill: #1b1f24; font-size: 10px; }
svg.chart .grid { stroke: #eceff2; stroke-width: 1; }
svg.chart .axis { stroke: #8a939d; stroke-width: 1; }
svg.chart .frontier { stroke: #1b1f24; stroke-width: 1.3; stroke-dasharray: 5 3; fill: none; }
svg.large { font-size: 11px; }
svg.large .chart-title { font-size: 13px; }
svg.large .tick, svg.large .legend { font-size: 10.5px; }
svg.large .axis-label, svg.large .point-label { font-size: 11px; }"""


def _nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """About n+1 round tick values covering [lo, hi]."""
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.1 or 0.5
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks, v = [], first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    if ticks[-1] < hi - step * 1e-9:
        ticks.append(round(v, 12))
    return ticks


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Round values (1, 2, 5 x 10^k, or every integer multiple over a short range) inside [lo, hi]."""
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    ticks: list[float] = []
    for mults in ((1,), (1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [float(m * 10.0**k) for k in range(k0, k1 + 1) for m in mults if lo <= m * 10.0**k <= hi]
        if len(ticks) >= 3:
            break
    if len(ticks) < 3:  # less than a decade: round values on a linear grid inside the range
        ticks = [t for t in _nice_ticks(lo, hi, 4) if lo <= t <= hi]
    return ticks if len(ticks) >= 2 else [lo, hi]


def _fmt_tick(v: float) -> str:
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.3g}"


class _Axis:
    """Maps data values to pixels, linear or log10, and chooses the ticks.

    `ticks` forces the tick values (e.g. the profiled sequence lengths); `integer` puts one tick on
    every integer when the values are integers spanning at most 12 (epochs).
    """

    def __init__(self, values: Sequence[float], px0: float, px1: float, *, log: bool = False,
                 ticks: Sequence[float] | None = None, integer: bool = False):
        self.log, self.px0, self.px1 = log, px0, px1
        vals = [v for v in values if v is not None and (v > 0 or not log)]
        if not vals:
            vals = [1.0, 10.0] if log else [0.0, 1.0]
        lo, hi = min(vals), max(vals)
        if log:
            forced = sorted(t for t in (ticks or []) if t > 0)
            if forced:
                lo, hi = min(lo, forced[0]), max(hi, forced[-1])
            lo, hi = (lo / 2, hi * 2) if lo == hi else (lo / 1.2, hi * 1.2)
            self.ticks = forced or _log_ticks(lo, hi)
            self.lo, self.hi = math.log10(lo), math.log10(hi)
            return
        if ticks:
            self.ticks = sorted(float(t) for t in ticks)
        elif integer and all(v == int(v) for v in vals) and hi - lo <= 12:
            self.ticks = [float(v) for v in range(int(lo), int(hi) + 1)]
            if len(self.ticks) == 1:
                t = self.ticks[0]
                self.ticks = [t - 1, t, t + 1] if t > 0 else [t, t + 1]
        else:
            self.ticks = _nice_ticks(lo, hi)
        self.lo, self.hi = min(self.ticks[0], lo), max(self.ticks[-1], hi)

    def __call__(self, v: float) -> float:
        t = math.log10(v) if self.log else v
        return self.px0 + (t - self.lo) / ((self.hi - self.lo) or 1.0) * (self.px1 - self.px0)

    def ok(self, v: Any) -> bool:
        return num(v) is not None and (not self.log or v > 0)


def _svg_open(width: int, height: int, title: str, cls: str = "chart") -> list[str]:
    esc = markupsafe.escape
    return [f'<svg class="{cls}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="{esc(title)}">', f"<title>{esc(title)}</title>"]


def _x_axis(left: float, top: float, pw: float, ph: float, x_label: str, height: int) -> str:
    """The x axis line and its label."""
    return (f'<line class="axis" x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}"/>'
            f'<text class="axis-label" x="{left + pw / 2:.1f}" y="{height - 4}" text-anchor="middle">'
            f"{markupsafe.escape(x_label)}</text>")


def _frame(parts: list[str], xa: _Axis, ya: _Axis, left: float, top: float, pw: float, ph: float,
           x_label: str, y_label: str | None, height: int) -> None:
    """Grid lines, ticks, both axes and their labels."""
    esc = markupsafe.escape
    for v in ya.ticks:
        y = ya(v)
        parts.append(f'<line class="grid" x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">{esc(_fmt_tick(v))}</text>')
    for v in xa.ticks:
        x = xa(v)
        parts.append(f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{top + ph}" y2="{top + ph + 3}"/>'
                     f'<text class="tick" x="{x:.1f}" y="{top + ph + 13}" text-anchor="middle">{esc(_fmt_tick(v))}</text>')
    parts.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}"/>'
                 + _x_axis(left, top, pw, ph, x_label, height))
    if y_label:
        cy = top + ph / 2
        parts.append(f'<text class="axis-label" x="11" y="{cy:.1f}" text-anchor="middle" '
                     f'transform="rotate(-90 11 {cy:.1f})">{esc(y_label)}</text>')


def svg_chart(
    series: Mapping[str, Sequence[Sequence[Any]]],
    title: str,
    *,
    x_label: str,
    y_label: str | None = None,
    x_log: bool = False,
    y_log: bool = False,
    x_ticks: Sequence[float] | None = None,
    integer_x: bool = False,
    width: int = 300,
    height: int = 180,
    legend: str = "top",
    colors: Mapping[str, str] | None = None,
    large: bool = False,
    dashed: Iterable[str] = (),
    dashed_label: str = "floor (dashed)",
    markers: Mapping[str, str] | None = None,
) -> markupsafe.Markup:
    """An inline SVG line chart: one <polyline> per series, a dot per point, ticks, axis labels, legend.

    A point is (x, y) or (x, y, tooltip). Missing or non-finite values, and values <= 0 on a log axis,
    are skipped. `legend`: "top" (one row under the title) or "right" (one per line). All text is
    escaped. Series named in `dashed` are drawn as dashed reference lines without dots. `markers`: the dot
    shape of a series (markers.SHAPES; default a circle).
    """
    esc = markupsafe.escape
    dashed = {str(n) for n in dashed}
    names = [str(n) for n in series]
    colors = {n: (colors or {}).get(n) or PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
    keys = [n for n in names if n not in dashed] + ([dashed_label] if dashed & set(names) else [])
    legend_w = (16 + int(6.3 * max((len(n) for n in keys), default=0))) if legend == "right" else 0
    left = 50 if y_label else 42
    right, top, bottom = 12 + legend_w, 34 if legend == "top" else 24, 32
    pw, ph = width - left - right, height - top - bottom
    xa = _Axis([num(p[0]) for s in series.values() for p in s], left, left + pw, log=x_log, ticks=x_ticks,
               integer=integer_x)
    ya = _Axis([num(p[1]) for s in series.values() for p in s], top + ph, top, log=y_log)
    pts = {str(n): [p for p in s if xa.ok(num(p[0])) and ya.ok(num(p[1]))] for n, s in series.items()}
    parts = _svg_open(width, height, title, "chart large" if large else "chart")
    parts.append(f'<text class="chart-title" x="{left}" y="14">{esc(title)}</text>')
    if any(pts.values()):
        _frame(parts, xa, ya, left, top, pw, ph, x_label, y_label, height)
    else:
        parts.append(f'<text class="tick" x="{left + pw / 2:.1f}" y="{top + ph / 2:.1f}" '
                     f'text-anchor="middle">no data</text>')
        parts.append(_x_axis(left, top, pw, ph, x_label, height))
    lx, ly = left, 20
    legend_i = 0
    for name, p in pts.items():
        color = colors[name]
        coords = " ".join(f"{xa(float(q[0])):.1f},{ya(float(q[1])):.1f}" for q in p)
        dash = ' stroke-dasharray="4 3" stroke-width="1.2"' if name in dashed else ' stroke-width="1.8"'
        parts.append(f'<polyline class="series" data-series="{esc(name)}" fill="none" stroke="{color}"{dash} '
                     f'points="{coords}"/>')
        if name in dashed:
            p = []  # no dots: a reference line
        shape = (markers or {}).get(name, "circle")
        for q in p:
            tip = str(q[2]) if len(q) > 2 and q[2] is not None else None
            parts.append(marker(shape, xa(float(q[0])), ya(float(q[1])), 2.4 if shape == "circle" else 2.8,
                                f' fill="{color}"', tip))
        if name in dashed:
            continue  # one legend key for all of them, below
        if legend == "right":
            lx, ly = width - legend_w, top + 6 + 14 * legend_i
            parts.append(f'<rect x="{lx}" y="{ly - 4}" width="10" height="3" fill="{color}"/>'
                         + (marker(shape, lx + 5, ly - 2.5, 3.2, f' fill="{color}"') if shape != "circle" else "")
                         + f'<text class="legend" x="{lx + 13}" y="{ly}">{esc(name)}</text>')
            legend_i += 1
        else:
            parts.append(f'<rect x="{lx}" y="20" width="10" height="3" fill="{color}"/>'
                         f'<text class="legend" x="{lx + 13}" y="25">{esc(name)}</text>')
            lx += 20 + 6 * len(name)
    if dashed & set(pts) and legend == "right":
        lx, ly = width - legend_w, top + 6 + 14 * legend_i
        parts.append(f'<line x1="{lx}" x2="{lx + 10}" y1="{ly - 3}" y2="{ly - 3}" stroke="#5b6470" '
                     f'stroke-dasharray="3 2"/><text class="legend" x="{lx + 13}" y="{ly}">{esc(dashed_label)}</text>')
    parts.append("</svg>")
    return markupsafe.Markup("".join(parts))


def svg_line_chart(
    series: Mapping[str, Sequence[tuple[Any, Any]]],
    title: str,
    *,
    width: int = 300,
    height: int = 180,
    x_label: str = "epoch",
) -> markupsafe.Markup:
    """A small line chart of per-epoch values (integer ticks on the x axis)."""
    return svg_chart(series, title, x_label=x_label, integer_x=True, width=width, height=height)


def svg_pareto(
    points: Sequence[Mapping[str, Any]],
    title: str,
    *,
    x_label: str,
    y_label: str,
    width: int = 760,
    height: int = 400,
    colors: Mapping[str, str] | None = None,
    shapes: Mapping[str, str] | None = None,
) -> markupsafe.Markup:
    """Score (y) against latency (x, log scale), marker area proportional to `size` (parameters), the
    Pareto frontier as a dashed staircase: the best score reachable within each latency budget.

    points: {"name", "x", "y", "size", "is_teacher", "tooltip", "shape", "label"}; ones without a positive x or
    a y are left out. `shape` is a markers.SHAPES name (default a circle), `label` the text beside it (default
    the name). `shapes`: {form: shape} for the legend, when the plot mixes forms.
    """
    esc = markupsafe.escape
    pts = [p for p in points if num(p.get("x")) is not None and p["x"] > 0 and num(p.get("y")) is not None]
    left, right, top, bottom = 54, 180, 28, 34
    pw, ph = width - left - right, height - top - bottom
    parts = _svg_open(width, height, title, "chart large")
    parts.append(f'<text class="chart-title" x="{left}" y="15">{esc(title)}</text>')
    if not pts:
        parts.append(f'<text class="tick" x="{left + pw / 2:.1f}" y="{top + ph / 2:.1f}" text-anchor="middle">'
                     "no model has both a GLUE score and a latency</text></svg>")
        return markupsafe.Markup("".join(parts))
    xa = _Axis([p["x"] for p in pts], left, left + pw, log=True)
    ys = [p["y"] + k * (num(p.get("err")) or 0.0) for p in pts for k in (-1, 1)]  # seed spread: ± err
    pad = max((max(ys) - min(ys)) * 0.12, 0.5)
    ya = _Axis([min(ys) - pad, max(ys) + pad], top + ph, top)
    _frame(parts, xa, ya, left, top, pw, ph, x_label, y_label, height)
    sizes = [num(p.get("size")) for p in pts if num(p.get("size"))]
    smax, rmax = (max(sizes) if sizes else None), 17.0

    def radius(size: Any) -> float:
        s = num(size)
        return max(3.0, rmax * math.sqrt(s / smax)) if s and smax else 5.0

    front = pareto_frontier([(p["name"], p["x"], p["y"]) for p in pts])
    fpts = sorted((p for p in pts if p["name"] in front), key=lambda p: p["x"])
    if fpts:
        d = [f"M{xa(fpts[0]['x']):.1f},{ya(fpts[0]['y']):.1f}"]
        for a, b in zip(fpts, fpts[1:]):
            d.append(f"H{xa(b['x']):.1f}V{ya(b['y']):.1f}")
        d.append(f"H{left + pw:.1f}")  # any slower budget reaches the best score too
        parts.append(f'<path class="frontier" d="{"".join(d)}"/>')
    colors = colors or {}
    # largest markers first, so small ones stay visible on top
    order = sorted(enumerate(pts), key=lambda ip: -radius(ip[1].get("size")))
    circles = [(xa(p["x"]), ya(p["y"]), radius(p.get("size"))) for _, p in order]
    labels = []
    placed: list[tuple[float, float, float, float]] = []  # label boxes (x0, y0, x1, y1)
    for (i, p), (cx, cy, r) in zip(order, circles):
        color = colors.get(p["name"]) or PALETTE[i % len(PALETTE)]
        stroke = ' stroke="#1b1f24" stroke-width="2"' if p.get("is_teacher") else ' stroke="#fff" stroke-width="1"'
        on = p["name"] in front
        tip = p.get("tooltip") or p["name"]
        parts.append(marker(p.get("shape") or "circle", cx, cy, r,
                            f' class="point" data-model="{esc(p["name"])}" data-frontier="{int(on)}" fill="{color}" '
                            f'fill-opacity="0.75"{stroke}', str(tip)))
        text = f'{p.get("label") or p["name"]}{" ★" if on else ""}'
        w, h = 6.4 * len(text), 12.0
        # candidate spots around the marker; the one overlapping other labels, markers and the frame least
        spots = [(cx + r + 3, cy + 4, "start"), (cx - r - 3, cy + 4, "end"),
                 (cx, cy - r - 4, "middle"), (cx, cy + r + 12, "middle"),
                 (cx + r * 0.7 + 2, cy - r * 0.7 - 2, "start"), (cx + r * 0.7 + 2, cy + r * 0.7 + 10, "start"),
                 (cx - r * 0.7 - 2, cy - r * 0.7 - 2, "end"), (cx - r * 0.7 - 2, cy + r * 0.7 + 10, "end"),
                 (cx + r + 3, cy - 10, "start"), (cx + r + 3, cy + 18, "start"),
                 (cx - r - 3, cy - 10, "end"), (cx - r - 3, cy + 18, "end")]

        def box(x: float, y: float, anchor: str) -> tuple[float, float, float, float]:
            x0 = x if anchor == "start" else x - w if anchor == "end" else x - w / 2
            return (x0, y - h + 2, x0 + w, y + 2)

        def overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
            return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))

        def cost(b: tuple[float, float, float, float]) -> float:
            frame = (left, top - 6, left + pw + 60, top + ph)
            outside = w * h - overlap(b, frame)
            return (3 * outside + 2 * sum(overlap(b, q) for q in placed)
                    + sum(overlap(b, (ox - orr, oy - orr, ox + orr, oy + orr))
                          for ox, oy, orr in circles if (ox, oy, orr) != (cx, cy, r)))

        x, y, anchor = min(spots, key=lambda sp: cost(box(*sp)))  # ties: the earlier spot
        placed.append(box(x, y, anchor))
        labels.append(f'<text class="point-label" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{esc(text)}</text>')
    parts.extend(error_bar(xa(p["x"]), ya(p["y"] - p["err"]), ya(p["y"] + p["err"]), p["name"])
                 for p in pts if num(p.get("err")))  # the seed spread, over the markers
    parts.extend(labels)  # on top of every marker
    # legend: frontier, teacher outline, marker scale
    lx, ly = left + pw + 24, top + 8
    parts.append(f'<path class="frontier" d="M{lx},{ly} h22"/><text class="legend" x="{lx + 28}" y="{ly + 4}">'
                 "Pareto frontier (★)</text>")
    parts.append(f'<circle cx="{lx + 11}" cy="{ly + 22}" r="6" fill="#fff" stroke="#1b1f24" stroke-width="2"/>'
                 f'<text class="legend" x="{lx + 28}" y="{ly + 26}">teacher</text>')
    parts.append(f'<text class="legend" x="{lx}" y="{ly + 50}">marker area ∝ parameters</text>')
    if smax:
        yy = ly + 62
        for frac in (1.0, 0.25):
            r = radius(smax * frac)
            yy += r
            parts.append(f'<circle cx="{lx + 18}" cy="{yy:.1f}" r="{r:.1f}" fill="#c9ced4" stroke="#8a939d"/>'
                         f'<text class="legend" x="{lx + 42}" y="{yy + 4:.1f}">{esc(f"{smax * frac / 1e6:.1f}")}M</text>')
            yy += r + 6
        ly = yy - 62
    if shapes and len(shapes) > 1:  # one line per form: its marker shape
        parts.append(f'<text class="legend" x="{lx}" y="{ly + 72}">form (marker shape)</text>')
        for k, (form, shape) in enumerate(shapes.items()):
            yk = ly + 88 + 15 * k
            parts.append(marker(shape, lx + 11, yk - 3.5, 5.0, ' fill="#c9ced4" stroke="#5b6470"')
                         + f'<text class="legend" x="{lx + 28}" y="{yk}">{esc(form)}</text>')
    parts.append("</svg>")
    return markupsafe.Markup("".join(parts))


def error_bar(x: float, y0: float, y1: float, name: str, cls: str = "errbar") -> str:
    """A vertical ± sd bar (the seed spread) with short caps."""
    return (f'<path class="{cls}" data-model="{markupsafe.escape(name)}" d="M{x:.1f},{y0:.1f}V{y1:.1f}'
            f'M{x - 4:.1f},{y0:.1f}h8M{x - 4:.1f},{y1:.1f}h8" stroke="#3d444d" stroke-width="1.2" fill="none"/>')


def standalone_svg(svg: str) -> str:
    """An inline chart as a file of its own: XML namespace and the chart CSS inside it."""
    head, rest = svg.split(">", 1)
    return (head.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1) + ">"
            + f"<style>{CHART_CSS}</style>" + rest + "\n")
