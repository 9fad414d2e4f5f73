"""The "% of teacher against batch-1 speed-up" chart: our rows (seed means, ± sd bars) as filled markers, and
published references (glueslim.published) as hollow markers, a separate mark labelled "published" in the
legend. Relative figures only, so rows and papers with other teachers and hardware share the axes; the
references are drawn, never counted (no frontier here). Inline SVG, every text escaped.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import markupsafe

from glueslim.report.charts import PALETTE, _Axis, _frame, _svg_open, error_bar
from glueslim.report.markers import marker
from glueslim.report.values import num

REFERENCE_STYLE = ' fill="none" stroke="#3d444d" stroke-width="1.6"'


Box = tuple[float, float, float, float]


def _overlap(a: Box, b: Box) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _place(text: str, cx: float, cy: float, r: float, placed: list[Box], dots: Sequence[Box], frame: Box) -> tuple:
    """(x, y, anchor) of a label beside a marker: the spot overlapping placed labels, markers and the outside of
    the frame least (ties: the earlier spot); its box is added to `placed`."""
    w, h = 6.2 * len(text), 12.0
    spots = [(cx + r + 3, cy + 4, "start"), (cx - r - 3, cy + 4, "end"), (cx + r, cy - r - 3, "start"),
             (cx + r, cy + r + 11, "start"), (cx - r, cy - r - 3, "end"), (cx - r, cy + r + 11, "end"),
             (cx, cy - r - 5, "middle"), (cx, cy + r + 13, "middle"), (cx + r + 3, cy - 12, "start"),
             (cx + r + 3, cy + 20, "start"), (cx - r - 3, cy - 12, "end"), (cx - r - 3, cy + 20, "end")]

    def box(x: float, y: float, anchor: str) -> Box:
        x0 = x if anchor == "start" else x - w if anchor == "end" else x - w / 2
        return (x0, y - h + 2, x0 + w, y + 2)

    def cost(b: Box) -> float:
        return (3 * (w * h - _overlap(b, frame)) + 2 * sum(_overlap(b, q) for q in placed)
                + sum(_overlap(b, d) for d in dots))

    x, y, anchor = min(spots, key=lambda sp: cost(box(*sp)))
    placed.append(box(x, y, anchor))
    return x, y, anchor


def _ok(p: Mapping[str, Any]) -> bool:
    return num(p.get("x")) is not None and p["x"] > 0 and num(p.get("y")) is not None


def svg_relative(
    ours: Sequence[Mapping[str, Any]],
    references: Sequence[Mapping[str, Any]],
    title: str,
    *,
    x_label: str,
    y_label: str = "% of the teacher's GLUE score",
    width: int = 760,
    height: int = 440,
) -> markupsafe.Markup:
    """ours: {"name", "label", "x" (speed-up), "y" (% of teacher), "err" (± sd, or None), "color", "shape",
    "is_teacher", "tooltip"}; references: {"id", "label", "x", "y", "tooltip"}. Points without a positive x or
    a y are left out; x is on a log scale."""
    esc = markupsafe.escape
    ours = [p for p in ours if _ok(p)]
    refs = [p for p in references if _ok(p)]
    left, right, top, bottom = 54, 190, 28, 34
    pw, ph = width - left - right, height - top - bottom
    parts = _svg_open(width, height, title, "chart large")
    parts.append(f'<text class="chart-title" x="{left}" y="15">{esc(title)}</text>')
    if not ours and not refs:
        parts.append(f'<text class="tick" x="{left + pw / 2:.1f}" y="{top + ph / 2:.1f}" text-anchor="middle">'
                     "no row has both a % of teacher and a speed-up</text></svg>")
        return markupsafe.Markup("".join(parts))
    pts = [*ours, *refs]
    xa = _Axis([p["x"] for p in pts], left, left + pw, log=True)
    ys = [p["y"] + k * (num(p.get("err")) or 0.0) for p in pts for k in (-1, 1)]
    pad = max((max(ys) - min(ys)) * 0.1, 1.0)
    ya = _Axis([min(ys) - pad, max(ys) + pad], top + ph, top)
    _frame(parts, xa, ya, left, top, pw, ph, x_label, y_label, height)
    if ya.lo <= 100.0 <= ya.hi:  # the teacher's level
        y100 = ya(100.0)
        parts.append(f'<line class="frontier" x1="{left}" x2="{left + pw}" y1="{y100:.1f}" y2="{y100:.1f}"/>')
    labels, placed = [], []
    dots = [(xa(p["x"]) - 6, ya(p["y"]) - 6, xa(p["x"]) + 6, ya(p["y"]) + 6) for p in pts]
    frame = (left, top - 6, left + pw + 40, top + ph)
    for p in ours:  # our rows' labels first: they get the best spots
        x, y, anchor = _place(p.get("label") or p["name"], xa(p["x"]), ya(p["y"]), 6.0, placed, dots, frame)
        labels.append(f'<text class="point-label" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">'
                      f'{esc(p.get("label") or p["name"])}</text>')
    for p in refs:
        cx, cy = xa(p["x"]), ya(p["y"])
        parts.append(marker("diamond", cx, cy, 5.5, f' class="reference" data-ref="{esc(p["id"])}"{REFERENCE_STYLE}',
                            str(p.get("tooltip") or p["label"])))
        x, y, anchor = _place(p["label"], cx, cy, 5.5, placed, dots, frame)
        labels.append(f'<text class="point-label reference-label" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" '
                      f'fill-opacity="0.8">{esc(p["label"])}</text>')
    for i, p in enumerate(ours):
        cx, cy = xa(p["x"]), ya(p["y"])
        if num(p.get("err")):
            parts.append(error_bar(cx, ya(p["y"] - p["err"]), ya(p["y"] + p["err"]), p["name"]))
        stroke = ' stroke="#1b1f24" stroke-width="2"' if p.get("is_teacher") else ' stroke="#fff" stroke-width="1"'
        color = p.get("color") or PALETTE[i % len(PALETTE)]
        parts.append(marker(p.get("shape") or "circle", cx, cy, 6.0,
                            f' class="point" data-model="{esc(p["name"])}" fill="{color}" fill-opacity="0.8"{stroke}',
                            str(p.get("tooltip") or p["name"])))
    parts.extend(labels)
    lx, ly = left + pw + 24, top + 8
    parts.append(f'<circle cx="{lx + 11}" cy="{ly}" r="6" fill="#8a939d"/>'
                 f'<text class="legend" x="{lx + 28}" y="{ly + 4}">our rows (seed mean)</text>')
    parts.append(error_bar(lx + 11, ly + 14, ly + 30, "legend", "errbar-key")
                 + f'<text class="legend" x="{lx + 28}" y="{ly + 26}">± sd over seeds</text>')
    parts.append(marker("diamond", lx + 11, ly + 46, 5.5, f' class="reference-key"{REFERENCE_STYLE}')
                 + f'<text class="legend" x="{lx + 28}" y="{ly + 50}">published (hollow; cited)</text>')
    parts.append(f'<path class="frontier" d="M{lx},{ly + 68} h22"/>'
                 f'<text class="legend" x="{lx + 28}" y="{ly + 72}">100% of the teacher</text>')
    parts.append("</svg>")
    return markupsafe.Markup("".join(parts))


def relative_view(doc: Mapping[str, Any], colors: Mapping[str, str], shapes: Mapping[str, str]) -> markupsafe.Markup:
    """The chart for a leaderboard.json document: every row at its speed-up at the Pareto plot's batch size
    (batch 1) and its % of teacher (seed mean ± sd); every reference of doc["published"] with both figures."""
    key = (doc.get("pareto") or {}).get("latency") or "batch_1"
    ours = []
    for r in doc["rows"]:
        sp, pct = (r.get("speedup") or {}).get(key), r.get("pct_of_teacher")
        seeds = r.get("seeds") or {}
        err = seeds.get("pct_of_teacher_sd")
        if num(sp) is None or num(pct) is None:
            continue
        spread = f" ± {err:.1f} (sd over {seeds.get('n_runs')} seeds)" if num(err) is not None else ""
        label = f"{r['model']} (emulated)" if r.get("emulated") else r["model"]
        ours.append({"name": r["model"], "label": label, "x": sp, "y": pct, "err": err,
                     "color": colors.get(r["model"]), "shape": shapes.get(r.get("form") or "fp32", "circle"),
                     "is_teacher": r.get("is_teacher"),
                     "tooltip": f"{label}: {pct:.1f}%{spread} of the teacher's GLUE score, {sp:.2f}x at "
                                f"{key.replace('_', ' ')}"})
    refs = []
    for e in doc.get("published") or []:
        where = ", ".join(str(v) for v in (e.get("split"), e.get("source")) if v)
        refs.append({"id": e["id"], "label": f"{e.get('model') or e['id']} ({e.get('split') or '?'})",
                     "x": e.get("speedup"), "y": e.get("pct_of_teacher"),
                     "tooltip": f"published: {e.get('citation') or e['id']}: {e.get('model')}, {e['summary']} of "
                                f"{e.get('teacher') or '?'}, speed-up on {e.get('hardware') or '?'} ({where})"})
    return svg_relative(ours, refs, "% of the teacher against speed-up: ours and published",
                        x_label=f"speed-up over the teacher ({key.replace('_', ' ')}, log scale; published: "
                                "each paper's own teacher and hardware)")
