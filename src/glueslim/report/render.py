"""The leaderboard page: jinja2 filters, the views the template shows (curves, speed charts, the Pareto plot,
ablation cells) and `render_html`, which turns a leaderboard.json document into one self-contained page.
`figures` writes the page's main charts as standalone SVG files. Both are pure (they read no files but
the template).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import jinja2
import markupsafe

from glueslim import tasks as gtasks
from glueslim.forms import FORMS
from glueslim.report.charts import CHART_CSS, PALETTE, standalone_svg, svg_chart, svg_line_chart, svg_pareto
from glueslim.report.floors import BELOW_PEAK_PCT
from glueslim.report.markers import form_shapes
from glueslim.report.relative_chart import relative_view
from glueslim.report.seeds import NOISE_TITLE
from glueslim.report.values import num, unique

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"  # package data: glueslim/templates
TEMPLATE_NAME = "leaderboard.html.j2"
FIGURES = ("pareto.svg", "latency_vs_length.svg", "latency_vs_batch.svg", "relative.svg")  # written by `figures`


# --------------------------------------------------------------------------------------------
# jinja2 filters
# --------------------------------------------------------------------------------------------

def heat_color(pct: Any, span: float = 20.0) -> tuple[str, str]:
    """(background, text) colours for a % of the teacher: white at 100, orange-red below, blue above,
    saturated `span` points away. Grey when missing."""
    v = num(pct)
    if v is None:
        return "#eef0f2", "#5b6470"
    d = max(-1.0, min(1.0, (v - 100.0) / span))
    target = (214, 96, 77) if d < 0 else (67, 147, 195)
    a = abs(d)
    rgb = tuple(round(255 + (c - 255) * a) for c in target)
    return "#%02x%02x%02x" % rgb, ("#fff" if a > 0.65 else "#1b1f24")


def _f_score(x: Any) -> str:
    """A [0,1] (or [-1,1]) metric as a GLUE-paper percentage with one decimal."""
    v = num(x)
    return "—" if v is None else f"{v * 100:.1f}"


def _f_num(x: Any, digits: int = 1, scale: float = 1.0) -> str:
    v = num(x)
    return "—" if v is None else f"{v * scale:,.{digits}f}"


def _f_sig(x: Any, digits: int = 3) -> str:
    """A number with `digits` significant digits (small floors stay readable), thousands separated."""
    v = num(x)
    if v is None:
        return "—"
    if v == 0 or abs(v) >= 10 ** (digits - 1):
        return f"{v:,.0f}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    return f"{v:,.{decimals}f}"


def _sortval(x: Any, scale: float = 1.0) -> str:
    v = num(x)
    return "" if v is None else repr(v * scale)


def _f_cell(v: Any, fmt: str) -> str:
    """An ablation-table cell as text, by its column's format (strings are shown as they are)."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, str) or num(v) is None:
        return str(v)
    return _CELL_FORMATS.get(fmt, lambda x: f"{x:,.4g}")(float(v))


# ablation column formats (documented in the README, "Ablation tables")
_CELL_FORMATS = {
    "text": lambda v: f"{v:g}",
    "int": lambda v: f"{v:,.0f}",
    "score": lambda v: f"{v * 100:.1f}",
    "pct": lambda v: f"{v:.1f}",
    "ms": lambda v: f"{v:,.2f}",
    "params": lambda v: f"{v / 1e6:,.1f}M",
    "macs": lambda v: f"{v / 1e9:,.2f}G",
    "ratio": lambda v: f"{v:.2f}×",
}


def _hms(seconds: Any) -> str:
    s = num(seconds)
    if s is None:
        return "—"
    s = int(round(s))
    return f"{s // 3600:d}:{(s % 3600) // 60:02d}:{s % 60:02d}"


def _si(x: Any, unit: str = "FLOP/s") -> str:
    v = num(x)
    if v is None:
        return "—"
    for p, name in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= p:
            return f"{v / p:.1f} {name}{unit}"
    return f"{v:.0f} {unit}"


def _timing_text(t: Mapping[str, Any] | None) -> str:
    """'cpu AMD EPYC · 2 threads · 3 warm-up + 20 timed runs' from a row's `timing`."""
    if not t:
        return "—"
    bits = [" ".join(str(x) for x in (t.get("device_type"), t.get("device")) if x)]
    if t.get("threads") is not None:
        bits.append(f"{t['threads']} thread{'' if t['threads'] == 1 else 's'}")
    if t.get("runs") is not None:
        bits.append(f"{t.get('warmup', '?')} warm-up + {t['runs']} timed runs")
    if t.get("peak_flops_per_s") is not None:
        bits.append(f"peak {_si(t['peak_flops_per_s'])}" + (f" ({t['peak_dtype']})" if t.get("peak_dtype") else ""))
    return " · ".join(b for b in bits if b) or "—"


_BACKENDS = {"pytorch": "PyTorch", "onnxruntime": "ONNX Runtime"}


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(backend=lambda b: _BACKENDS.get(b or "pytorch", str(b)), score=_f_score, num=_f_num, sig=_f_sig, sortval=_sortval, hms=_hms, si=_si, timing=_timing_text,
                       heat_bg=lambda v: heat_color(v)[0], heat_fg=lambda v: heat_color(v)[1])
    env.globals.update(svg_line_chart=svg_line_chart)
    return env


# --------------------------------------------------------------------------------------------
# views: what the template shows, computed from the document
# --------------------------------------------------------------------------------------------

def _curve_views(doc: dict) -> list[dict]:
    """Per model, per task: the two loss charts (pre-rendered SVG) and the per-epoch table columns."""
    views = []
    names = {r["model"] for r in doc["rows"]}
    for row in doc["rows"]:
        m = row["model"]
        if row.get("source_model", m) != m and row["source_model"] in names:
            continue  # a deployed form of a model on the board: the same training run, shown once
        cards = []
        for t in doc["tasks"]:
            curve = doc["curves"].get(m, {}).get(t)
            if curve is None:
                continue
            metric_keys = [k for k in gtasks.get_task(t).metrics
                           if any(k in (r.get("val_metrics") or {}) for r in curve)]
            metric_keys += unique(k for r in curve for k in (r.get("val_metrics") or {}) if k not in metric_keys)
            chart = svg_line_chart(
                {"train loss": [(r.get("epoch"), r.get("train_loss")) for r in curve],
                 "val loss": [(r.get("epoch"), r.get("val_loss")) for r in curve]},
                f"{m} · {t}: loss per epoch")
            cards.append({"task": t, "chart": chart, "epochs": curve, "metric_keys": metric_keys,
                          "hyperparameters": row["hyperparameters"].get(t)})
        views.append({"model": m, "is_teacher": row["is_teacher"], "cards": cards})
    return views


def _key_int(key: str) -> int:
    tail = key.split("_", 1)[-1]
    return int(tail) if tail.isdigit() else 10**9


# the two latency sweeps: (name, row field, x field, chart title, the row field held fixed and how it reads, x label)
_SWEEPS = (
    ("length", "latency_by_length_ms", "seq_length", "Latency against sequence length",
     "length_batch_size", " (batch {})", "sequence length (tokens)"),
    ("batch", "latency_ms", "batch_size", "Latency against batch size", "seq_length", " ({} tokens)",
     "batch size (sequences)"),
)


def _label(row: Mapping) -> str:
    """A row's name in the charts: its name, and "(emulated)" when it was timed without native kernels."""
    return f"{row['model']} (emulated)" if row.get("emulated") else row["model"]


def _latency_tip(label: str, e: dict) -> str:
    dtype = f"{e['floor_dtype']} " if e.get("floor_dtype") else ""
    floor = ("" if e.get("floor_ms") is None
             else f", floor {e['floor_ms']:.2f} ms ({e.get('pct_of_peak') or 0:.1f}% of the {dtype}peak)")
    iqr = "" if e.get("iqr") is None else f" ± {e['iqr']:.2f}"
    return (f"{label}: batch {e.get('batch_size')} × {e.get('seq_length')} tokens: "
            f"{e['median']:.2f}{iqr} ms (median ± IQR, {e.get('runs')} runs){floor}")


def _speed_views(doc: dict, colors: Mapping[str, str]) -> dict:
    """The latency-against-length and -batch charts (SVG): each row's medians (its form's marker shape), and its
    floor dashed in its colour; and the column keys of their tables."""
    rows = doc["rows"]
    keys, medians, floors = {}, {}, {}
    shapes = _shapes(doc)
    markers = {_label(r): shapes.get(r.get("form", "fp32"), "circle") for r in rows}
    colors = {_label(r): colors[r["model"]] for r in rows}
    for sweep, field, x, *_ in _SWEEPS:
        keys[sweep] = sorted(unique(k for r in rows for k in r.get(field) or {}), key=_key_int)
        points = {_label(r): [e for k in keys[sweep] if (e := (r.get(field) or {}).get(k))] for r in rows}
        medians[sweep] = {m: pts for m, es in points.items()
                          if (pts := [(e.get(x), e.get("median"), _latency_tip(m, e)) for e in es
                                      if e.get("median") is not None])}  # a form row has no length sweep
        floors[sweep] = {f"{m} floor": pts for m, es in points.items()
                         if (pts := [(e.get(x), e.get("floor_ms")) for e in es if e.get("floor_ms") is not None])}
    dashed = [name for sweep in floors.values() for name in sweep]
    colors = {**colors, **{f"{m} floor": c for m, c in colors.items()}}
    out = {f"{sweep}_keys": keys[sweep] for sweep, *_ in _SWEEPS}
    for sweep, _, _, title, fixed, fixed_text, x_label in _SWEEPS:
        held = unique(r.get(fixed) for r in rows if r.get(fixed) is not None)
        title += (fixed_text.format(held[0]) if len(held) == 1 else "") + ": median, and floor (dashed)"
        out[f"{sweep}_chart"] = svg_chart(
            {**medians[sweep], **floors[sweep]}, title, x_label=x_label, y_label="ms per forward pass",
            x_log=True, y_log=True, x_ticks=[_key_int(k) for k in keys[sweep]] or None, width=620, height=330,
            legend="right", colors=colors, large=True, dashed=dashed, markers=markers,
            dashed_label="floor: 2·MACs / peak") if keys[sweep] else None
    return out


def _pareto_chart(doc: dict, colors: Mapping[str, str]) -> markupsafe.Markup | None:
    key = (doc.get("pareto") or {}).get("latency")
    if key is None:
        return None
    pts, shapes = [], _shapes(doc)
    for r in doc["rows"]:
        lat = r["latency_ms"].get(key) or {}
        if lat.get("median") is None or r["glue_score"] is None:
            continue
        params = "—" if r["parameters"] is None else f"{r['parameters'] / 1e6:.1f}M parameters"
        form = r.get("form", "fp32")
        sd = (r.get("seeds") or {}).get("sd")
        spread = "" if sd is None else f" ± {sd * 100:.1f} (mean ± sd over {r['seeds']['n_runs']} seeds)"
        pts.append({"name": r["model"], "label": _label(r), "x": lat["median"], "y": r["glue_score"] * 100,
                    "size": r["parameters"], "is_teacher": r["is_teacher"], "shape": shapes.get(form, "circle"),
                    "err": None if sd is None else sd * 100,
                    "tooltip": f"{_label(r)} ({r['method'] or '—'}; {form}, {r.get('backend', 'pytorch')}): GLUE "
                               f"{r['glue_score'] * 100:.1f}{spread}, {lat['median']:.2f} ms at "
                               f"{key.replace('_', ' ')} × "
                               f"{lat.get('seq_length')} tokens, {params}"})
    seq = next((r["latency_ms"][key].get("seq_length") for r in doc["rows"] if key in r["latency_ms"]), None)
    used = unique(r.get("form", "fp32") for r in doc["rows"])
    return svg_pareto(pts, "GLUE score against latency: which model and form to ship",
                      x_label=f"latency, ms (median, {key.replace('_', ' ')} × {seq} tokens, log scale)",
                      y_label=f"GLUE score ({doc['split']}, ×100)", colors=colors,
                      shapes={f: shapes[f] for f in shapes if f in used})


def _shapes(doc: dict) -> dict[str, str]:
    """{form: marker shape}: fp32 a circle, the others in glueslim.forms order (stable across renders)."""
    return form_shapes([*FORMS, *sorted({r.get("form", "fp32") for r in doc["rows"]} - set(FORMS))])


def _ablation_views(doc: dict) -> list[dict]:
    out = []
    for a in doc.get("ablations") or []:
        rows = [[{"text": _f_cell(v, c["format"]),
                  "sort": (_sortval(v) if num(v) is not None else ("" if v is None else str(v)))}
                 for v, c in zip(row, a["columns"])] for row in a["rows"]]
        out.append({**a, "cells": rows})
    return out


def build_charts(doc: dict) -> dict:
    """The colours and charts that the page and the standalone figures share (built once per run)."""
    colors = _model_colors(doc)
    return {"colors": colors, "speed": _speed_views(doc, colors), "pareto": _pareto_chart(doc, colors),
            "relative": relative_view(doc, colors, _shapes(doc))}


def figures(doc: dict, charts: dict | None = None) -> dict[str, str]:
    """The page's main charts as standalone SVG files: {file name: SVG text} (for Snakemake's report)."""
    charts = charts or build_charts(doc)
    empty = svg_chart({}, "no data", x_label="")
    svgs = (charts["pareto"], charts["speed"]["length_chart"], charts["speed"]["batch_chart"], charts["relative"])
    return {name: standalone_svg(str(svg or empty)) for name, svg in zip(FIGURES, svgs)}


def _model_colors(doc: dict) -> dict[str, str]:
    """{row: colour}: one colour per model, shared by its deployed forms (told apart by marker shape), the same
    in every chart (in --models order, so stable across renders)."""
    source = {r["model"]: r.get("source_model", r["model"]) for r in doc["rows"]}
    order = unique(source.get(m, m) for m in [*(doc.get("curves") or {}), *source])
    index = {m: i for i, m in enumerate(order)}
    return {m: PALETTE[index[source.get(m, m)] % len(PALETTE)] for m in unique([*(doc.get("curves") or {}), *source])}


def render_html(doc: dict, charts: dict | None = None) -> str:
    """The self-contained leaderboard page for a leaderboard.json document."""
    charts = charts or build_charts(doc)
    colors, speed = charts["colors"], charts["speed"]
    prov = doc["provenance"]
    stage_total = sum(prov["stage_seconds"].values()) if prov["stage_seconds"] else None
    primary = (doc.get("pareto") or {}).get("latency") or (speed["batch_keys"] or [None])[0]
    return _environment().get_template(TEMPLATE_NAME).render(
        doc=doc,
        prov=prov,
        batch_keys=speed["batch_keys"],
        length_keys=speed["length_keys"],
        speed=speed,
        primary=primary,
        colors=colors,
        pareto_chart=charts["pareto"],
        relative_chart=charts["relative"],
        noise_title=NOISE_TITLE,
        has_published=any(r.get("published") for r in doc["rows"]),
        seeded=any((r.get("seeds") or {}).get("n_runs", 1) > 1 for r in doc["rows"]),
        teacher_runs=next(((r.get("seeds") or {}).get("n_runs", 1) for r in doc["rows"] if r["is_teacher"]), 1),
        has_wnli="wnli" in doc["tasks"],
        task_metric_names={t: gtasks.get_task(t).metrics for t in doc["tasks"]},
        curve_views=_curve_views(doc),
        ablations=_ablation_views(doc),
        config_pretty=json.dumps(prov["config"], indent=2, sort_keys=True, ensure_ascii=False),
        stage_total=stage_total,
        chart_css=markupsafe.Markup(CHART_CSS),
        below_peak_pct=BELOW_PEAK_PCT,
    )
