"""`glueslim leaderboard`: gather scores, profiles, training logs and provenance into one leaderboard.

Reads (under --results):
  scores/{model}.json                      written by `glueslim score`
  profile/{model}.json                     written by `glueslim profile`
  models/{model}/{task}/glueslim.json      written by `glueslim finetune` / `glueslim distill`
  models/{model}/{task}/train_log.jsonl    written by `glueslim finetune` / `glueslim distill`
  data/{task}/manifest.json                written by `glueslim prepare-data`
  benchmarks/{rule}/**/*.tsv               Snakemake `benchmark:` files (optional)

Writes reports/leaderboard.json (see docs/leaderboard-json.md) and one self-contained
reports/leaderboard.html (inline CSS/JS/SVG, no network access needed to open it).

`build_leaderboard` only reads; `render_html` is pure; `run` writes both files atomically.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import jinja2
import markupsafe

from glueslim import __version__
from glueslim import io as gio
from glueslim import tasks as gtasks
from glueslim.cli import UserError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE_NAME = "leaderboard.html.j2"
NOTE = ("Scores are GLUE dev-set (validation) scores computed locally; "
        "the GLUE test server is not used.")
# Relative difference above which a stored score that we recompute is reported as a warning.
_RECOMPUTE_TOL = 1e-6


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------

def _clean(obj: Any) -> Any:
    """Copy of a JSON-like value with non-finite floats (NaN, inf) replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _num(x: Any) -> float | None:
    """A finite number or None (bools are not numbers here)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def _ratio(num: Any, den: Any, scale: float = 1.0) -> float | None:
    """num/den*scale, or None when either is missing or den is not positive."""
    n, d = _num(num), _num(den)
    if n is None or d is None or d <= 0:
        return None
    return n / d * scale


def _unique(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def canonical_json(obj: Any) -> str:
    """The canonical form that config_sha256 hashes: sorted keys, no whitespace, ASCII only."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def config_sha256(config: Any) -> str:
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


# what writes each input: (Snakemake rule, `python -m glueslim` command)
PRODUCERS = {
    "scores": ("score", "score"),
    "profile": ("profile", "profile"),
    "teacher_model": ("finetune_teacher", "finetune"),
    "student_model": ("distill_student", "distill"),
    "manifest": ("prepare_data", "prepare-data"),
}


def _maker(model: str, teacher: str) -> tuple[str, str]:
    return PRODUCERS["teacher_model" if model == teacher else "student_model"]


def _read_required(path: Path, producer: tuple[str, str], *, jsonl: bool = False) -> Any:
    """Read an input another rule writes; a missing or unreadable file is a UserError naming both."""
    rule, command = producer
    if not path.is_file():
        raise UserError(f"missing input {path} (written by the Snakemake rule `{rule}`: "
                        f"python -m glueslim {command} ...); run that stage first")
    try:
        return gio.read_jsonl(path) if jsonl else gio.read_json(path)
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise UserError(f"{path} (written by the Snakemake rule `{rule}`) is not valid JSON: {e}") from None


def _require_dict(obj: Any, path: Path, what: str = "a JSON object") -> dict:
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected {what}, got {type(obj).__name__}")
    return obj


# --------------------------------------------------------------------------------------------
# input readers
# --------------------------------------------------------------------------------------------

def _task_entry(model: str, task: str, entry: Any, path: Path, warnings: list[str]) -> dict:
    """Check one task of a score file; recompute its score from its metrics."""
    if not isinstance(entry, dict) or not isinstance(entry.get("metrics"), dict):
        raise UserError(f"{path}: tasks.{task} has no \"metrics\" object")
    metrics = entry["metrics"]
    keys = gtasks.get_task(task).metrics
    missing = [k for k in keys if _num(metrics.get(k)) is None]
    if missing:
        raise UserError(f"{path}: tasks.{task}.metrics lacks finite value(s) for {', '.join(missing)}")
    score = gtasks.task_mean(task, {k: float(metrics[k]) for k in keys})
    stored = _num(entry.get("score"))
    if stored is not None and abs(stored - score) > _RECOMPUTE_TOL * max(1.0, abs(score)):
        warnings.append(f"{model}/{task}: stored score {stored:.6f} differs from the mean of its "
                        f"metrics {score:.6f}; the recomputed value is used")
    return {"metrics": _clean(dict(metrics)), "score": score, "n": _clean(entry.get("n"))}


def _read_scores(results: Path, model: str, tasks: Sequence[str], warnings: list[str]) -> dict:
    path = results / "scores" / f"{model}.json"
    doc = _require_dict(_read_required(path, PRODUCERS["scores"]), path)
    if doc.get("model") not in (None, model):
        raise UserError(f"{path}: file is for model {doc.get('model')!r}, expected {model!r}")
    per_task = doc.get("tasks") or {}
    if not isinstance(per_task, dict):
        raise UserError(f"{path}: \"tasks\" must be an object")
    out: dict[str, dict | None] = {}
    for task in tasks:
        if per_task.get(task) is None:
            warnings.append(f"{model}: no {task} score in {path}; its GLUE score is left empty")
            out[task] = None
        else:
            out[task] = _task_entry(model, task, per_task[task], path, warnings)
    return {"split": doc.get("split", "dev"), "tasks": out,
            "stored_glue_score": _num(doc.get("glue_score"))}


def _read_profile(results: Path, model: str) -> dict:
    path = results / "profile" / f"{model}.json"
    return _require_dict(_clean(_read_required(path, PRODUCERS["profile"])), path)


def _latency(profile: dict) -> dict[str, dict]:
    """{"batch_<bs>": {...}} for the profiled batch sizes (at the MACs sequence length when several)."""
    seq = (profile.get("macs") or {}).get("seq_length")
    entries = [e for e in profile.get("latency") or [] if isinstance(e, dict)]
    lens = {e.get("seq_length") for e in entries}
    if len(lens) > 1 and seq in lens:
        entries = [e for e in entries if e.get("seq_length") == seq]
    out: dict[str, dict] = {}
    for e in sorted(entries, key=lambda e: (_num(e.get("batch_size")) or 0)):
        bs = e.get("batch_size")
        key = f"batch_{bs}"
        if key in out:
            continue
        iqr = _num(e.get("iqr_ms"))
        if iqr is None and _num(e.get("q1_ms")) is not None and _num(e.get("q3_ms")) is not None:
            iqr = e["q3_ms"] - e["q1_ms"]
        out[key] = {
            "batch_size": bs,
            "seq_length": e.get("seq_length"),
            "median": _num(e.get("median_ms")),
            "iqr": iqr,
            "q1": _num(e.get("q1_ms")),
            "q3": _num(e.get("q3_ms")),
            "runs": e.get("runs"),
            "throughput_per_s": _num(e.get("throughput_per_s")),
        }
    return out


def _read_model_task(results: Path, model: str, task: str, teacher: str) -> tuple[dict, list[dict]]:
    producer = _maker(model, teacher)
    d = results / "models" / model / task
    meta = _require_dict(_clean(_read_required(d / "glueslim.json", producer)), d / "glueslim.json")
    curve = [_clean(r) for r in _read_required(d / "train_log.jsonl", producer, jsonl=True) if isinstance(r, dict)]
    curve.sort(key=lambda r: (_num(r.get("epoch")) is None, _num(r.get("epoch")) or 0))
    return meta, curve


def _read_manifest(results: Path, task: str) -> list[dict]:
    path = results / "data" / task / "manifest.json"
    man = _require_dict(_clean(_read_required(path, PRODUCERS["manifest"])), path)
    splits = man.get("splits") or {}
    source = man.get("source")
    out = []
    for f in man.get("source_files") or []:
        if not isinstance(f, dict):
            continue
        split = f.get("split")
        info = splits.get(split) if isinstance(splits, dict) else None
        info = info if isinstance(info, dict) else {}
        out.append({
            "task": task,
            "split": split,
            "path": f.get("path"),
            "sha256": f.get("sha256"),
            "rows": f.get("rows"),
            "official_rows": f.get("official_rows"),
            "rows_used": info.get("rows"),
            "capped": bool(info.get("capped", False)),
            "max_train": man.get("max_train"),
            "seed": man.get("seed"),
            "source": source,
        })
    return out


def read_stage_seconds(bench_dir: Path, warnings: list[str] | None = None,
                       exclude: Iterable[str] = ("leaderboard",)) -> dict[str, float]:
    """Sum the wall seconds (column `s`) of every Snakemake benchmark file, per rule folder.

    A file with several rows (a `repeat(...)` benchmark) counts as the mean of its rows.
    `exclude`d folders are skipped: the leaderboard's own benchmark is from a previous render.
    """
    exclude = set(exclude)
    totals: dict[str, float] = {}
    if not bench_dir.is_dir():
        return totals
    for rule_dir in sorted(p for p in bench_dir.iterdir() if p.is_dir() and p.name not in exclude):
        total, seen = 0.0, False
        for tsv in sorted(rule_dir.rglob("*.tsv")):
            try:
                with open(tsv, encoding="utf-8", newline="") as f:
                    vals = [_num(_float_or_none(r.get("s"))) for r in csv.DictReader(f, delimiter="\t")]
            except (OSError, UnicodeDecodeError, csv.Error) as e:
                vals = []
                if warnings is not None:
                    warnings.append(f"benchmark file {tsv} unreadable ({e}); skipped")
            vals = [v for v in vals if v is not None]
            if vals:
                total += sum(vals) / len(vals)
                seen = True
            elif warnings is not None:
                warnings.append(f"benchmark file {tsv} has no wall-seconds value; skipped")
        if seen:
            totals[rule_dir.name] = round(total, 3)
    return totals


def _float_or_none(s: Any) -> float | None:
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# the document
# --------------------------------------------------------------------------------------------

def _glue(scores: dict[str, float | None], tasks: Sequence[str], exclude: tuple[str, ...] = ()) -> float | None:
    """GLUE score over `tasks` minus `exclude`; None unless every one of those tasks has a score."""
    wanted = [t for t in tasks if t not in exclude]
    if not wanted or any(scores.get(t) is None for t in wanted):
        return None
    return gtasks.glue_score({t: scores[t] for t in wanted})


def _generated_at() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.strip().isdigit():
        ts = datetime.fromtimestamp(int(epoch), tz=timezone.utc)
    else:
        ts = datetime.now(timezone.utc)
    return ts.isoformat(timespec="seconds")


def _validate_args(models: Sequence[str], teacher: str, tasks: Sequence[str]) -> None:
    if not models:
        raise UserError("no models given (--models)")
    dup = sorted({m for m in models if list(models).count(m) > 1})
    if dup:
        raise UserError(f"model(s) listed twice in --models: {', '.join(dup)}")
    if teacher not in models:
        raise UserError(f"the teacher {teacher!r} must also be listed in --models ({', '.join(models)})")
    for m in models:
        if not m or "/" in m or m in (".", ".."):
            raise UserError(f"bad model name {m!r}")
    if not tasks:
        raise UserError("no tasks given (--tasks)")
    for t in tasks:
        try:
            task = gtasks.get_task(t)
        except ValueError as e:
            raise UserError(str(e)) from None
        if not task.metrics:
            raise UserError(f"task {t!r} has no dev metrics (test-only diagnostic set); leave it out of --tasks")
    dup_t = sorted({t for t in tasks if list(tasks).count(t) > 1})
    if dup_t:
        raise UserError(f"task(s) listed twice in --tasks: {', '.join(dup_t)}")


def build_leaderboard(
    results: str | os.PathLike,
    models: Sequence[str],
    teacher: str,
    tasks: Sequence[str],
    config: Any,
    generated_at: str | None = None,
) -> dict:
    """Read every input under `results` and return the leaderboard.json document (writes nothing)."""
    results = Path(results)
    models, tasks = list(models), list(tasks)
    _validate_args(models, teacher, tasks)
    warnings: list[str] = []

    try:
        cfg_sha = config_sha256(config)
    except (TypeError, ValueError) as e:
        raise UserError(f"the run config is not strict JSON: {e}") from None

    scores = {m: _read_scores(results, m, tasks, warnings) for m in models}
    profiles = {m: _read_profile(results, m) for m in models}
    metas: dict[str, dict[str, dict]] = {m: {} for m in models}
    curves: dict[str, dict[str, list[dict]]] = {m: {} for m in models}
    for m in models:
        for t in tasks:
            if scores[m]["tasks"][t] is None and not (results / "models" / m / t).is_dir():
                continue  # no score and no model: nothing to show, already warned
            metas[m][t], curves[m][t] = _read_model_task(results, m, t, teacher)
            if not curves[m][t]:
                warnings.append(f"{m}/{t}: train_log.jsonl has no epochs")
    data = [entry for t in tasks for entry in _read_manifest(results, t)]

    splits = _unique(s["split"] for s in scores.values())
    if len(splits) != 1:
        raise UserError(f"score files mix splits {splits}; every model must be scored on the same split")
    split = splits[0]

    # ---- rows
    t_prof = profiles[teacher]
    t_params = (t_prof.get("parameters") or {}).get("total")
    t_lat = _latency(t_prof)
    t_scores = {t: (e["score"] if e else None) for t, e in scores[teacher]["tasks"].items()}
    t_glue = _glue(t_scores, tasks)
    t_glue_nw = _glue(t_scores, tasks, exclude=("wnli",))

    rows = []
    for m in models:
        prof = profiles[m]
        params = prof.get("parameters") or {}
        macs = prof.get("macs") or {}
        lat = _latency(prof)
        task_scores = {t: (e["score"] if e else None) for t, e in scores[m]["tasks"].items()}
        glue = _glue(task_scores, tasks)
        glue_nw = _glue(task_scores, tasks, exclude=("wnli",))
        stored = scores[m]["stored_glue_score"]
        if stored is not None and glue is not None and abs(stored - glue) > _RECOMPUTE_TOL * max(1.0, abs(glue)):
            warnings.append(f"{m}: stored glue_score {stored:.6f} differs from the recomputed {glue:.6f} "
                            f"over {', '.join(tasks)}; the recomputed value is used")
        meta_vals = list(metas[m].values())
        methods = _unique(v.get("method") for v in meta_vals if v.get("method") is not None)
        bases = _unique(v.get("base_model") for v in meta_vals if v.get("base_model") is not None)
        teachers = _unique(v.get("teacher") for v in meta_vals if v.get("teacher") is not None)
        layers = _unique(v.get("num_layers") for v in meta_vals if v.get("num_layers") is not None)
        for field, vals in (("method", methods), ("base_model", bases), ("teacher", teachers),
                            ("num_layers", layers)):
            if len(vals) > 1:
                warnings.append(f"{m}: tasks disagree on {field} ({'; '.join(map(str, vals))})")
        macs_total = _num(macs.get("total"))
        macs_bs = _num(macs.get("batch_size")) or 1.0
        size = _num(prof.get("size_on_disk_bytes"))
        rows.append({
            "model": m,
            "is_teacher": m == teacher,
            "method": "; ".join(map(str, methods)) if methods else None,
            "base_model": "; ".join(map(str, bases)) if bases else None,
            "distilled_from": "; ".join(map(str, teachers)) if teachers else None,
            "num_layers": layers[0] if len(layers) == 1 else None,
            "parameters": params.get("total"),
            "parameters_without_embeddings": params.get("without_embeddings"),
            "size_on_disk_mb": size / 1e6 if size is not None else None,
            "macs": macs_total / macs_bs if macs_total is not None else None,
            "seq_length": macs.get("seq_length"),
            "latency_ms": lat,
            "speedup": {k: _ratio(t_lat[k]["median"], v["median"]) for k, v in lat.items() if k in t_lat},
            "compression": _ratio(t_params, params.get("total")),
            "peak_memory_mb": _num(prof.get("peak_memory_mb")),
            "peak_memory_kind": prof.get("peak_memory_kind"),
            "task_scores": task_scores,
            "task_metrics": {t: (e["metrics"] if e else None) for t, e in scores[m]["tasks"].items()},
            "task_n": {t: (e["n"] if e else None) for t, e in scores[m]["tasks"].items()},
            "glue_score": glue,
            "glue_score_without_wnli": glue_nw,
            "pct_of_teacher": _ratio(glue, t_glue, 100.0),
            "pct_of_teacher_without_wnli": _ratio(glue_nw, t_glue_nw, 100.0),
            "pct_of_teacher_by_task": {t: _ratio(task_scores[t], t_scores[t], 100.0) for t in tasks},
            "hyperparameters": {t: metas[m][t].get("hyperparameters") for t in metas[m]},
        })
    order = {m: i for i, m in enumerate(models)}
    rows.sort(key=lambda r: (r["glue_score"] is None, -(r["glue_score"] or 0.0), order[r["model"]]))

    # ---- provenance: versions / device come from the teacher's profile; disagreement is flagged
    dev = t_prof.get("device") or {}
    for m in models:
        other = profiles[m].get("device") or {}
        diff = [k for k in ("type", "name", "cpu_model", "threads", "gpu_name", "torch", "transformers")
                if other.get(k) != dev.get(k)]
        if m != teacher and diff:
            warnings.append(f"{m} was profiled on a different setup than the teacher ({', '.join(diff)} "
                            "differ); its latency and speed-up are not comparable")
    versions = {
        "glueslim": __version__,
        "python": dev.get("python"),
        "torch": dev.get("torch"),
        "transformers": dev.get("transformers"),
        "cuda": dev.get("cuda"),
        "jinja2": jinja2.__version__,
    }
    for d in data:
        if d["capped"]:
            warnings.append(f"{d['task']} {d['split']}: capped to {d['rows_used']} of {d['rows']} rows "
                            f"(max_train={d['max_train']}); scores are not comparable to full-data runs")

    return _clean({
        "schema_version": SCHEMA_VERSION,
        "generated_at": generated_at or _generated_at(),
        "split": split,
        "note": NOTE,
        "teacher": teacher,
        "tasks": tasks,
        "rows": rows,
        "curves": curves,
        "provenance": {
            "config": config,
            "config_sha256": cfg_sha,
            "versions": versions,
            "device": dev,
            "data": data,
            "stage_seconds": read_stage_seconds(results / "benchmarks", warnings),
        },
        "warnings": warnings,
    })


# --------------------------------------------------------------------------------------------
# SVG chart
# --------------------------------------------------------------------------------------------

PALETTE = ("#1f77b4", "#d95f02", "#2ca02c", "#7570b3", "#e7298a", "#66a61e")


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


def _fmt_tick(v: float) -> str:
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.3g}"


def svg_line_chart(
    series: Mapping[str, Sequence[tuple[Any, Any]]],
    title: str,
    *,
    width: int = 300,
    height: int = 180,
    x_label: str = "epoch",
) -> markupsafe.Markup:
    """A small inline SVG line chart: one <polyline> per series, dots at the points, axis ticks,
    legend. Non-finite / missing y values are skipped. All text is escaped."""
    esc = markupsafe.escape
    left, right, top, bottom = 42, 10, 34, 30
    pw, ph = width - left - right, height - top - bottom
    pts = {name: [(float(x), float(y)) for x, y in s if _num(x) is not None and _num(y) is not None]
           for name, s in series.items()}
    xs = [x for p in pts.values() for x, _ in p]
    ys = [y for p in pts.values() for _, y in p]
    parts = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{esc(title)}">',
             f"<title>{esc(title)}</title>",
             f'<text class="chart-title" x="{left}" y="14">{esc(title)}</text>']
    if xs:
        if all(x == int(x) for x in xs) and max(xs) - min(xs) <= 12:
            xt = [float(v) for v in range(int(min(xs)), int(max(xs)) + 1)]
            if len(xt) == 1:
                xt = [xt[0] - 1, xt[0], xt[0] + 1] if xt[0] > 0 else [xt[0], xt[0] + 1]
        else:
            xt = _nice_ticks(min(xs), max(xs))
        yt = _nice_ticks(min(ys), max(ys))
        x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]

        def sx(x: float) -> float:
            return left + (x - x0) / (x1 - x0) * pw

        def sy(y: float) -> float:
            return top + ph - (y - y0) / (y1 - y0) * ph

        for v in yt:
            parts.append(f'<line class="grid" x1="{left}" x2="{left + pw}" y1="{sy(v):.1f}" y2="{sy(v):.1f}"/>'
                         f'<text class="tick" x="{left - 4}" y="{sy(v) + 3:.1f}" text-anchor="end">'
                         f"{esc(_fmt_tick(v))}</text>")
        for v in xt:
            parts.append(f'<line class="axis" x1="{sx(v):.1f}" x2="{sx(v):.1f}" y1="{top + ph}" y2="{top + ph + 3}"/>'
                         f'<text class="tick" x="{sx(v):.1f}" y="{top + ph + 13}" text-anchor="middle">'
                         f"{esc(_fmt_tick(v))}</text>")
    else:
        sx = sy = None  # type: ignore[assignment]
        parts.append(f'<text class="tick" x="{left + pw / 2:.1f}" y="{top + ph / 2:.1f}" '
                     f'text-anchor="middle">no data</text>')
    parts.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}"/>'
                 f'<line class="axis" x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}"/>'
                 f'<text class="tick" x="{left + pw / 2:.1f}" y="{height - 3}" text-anchor="middle">'
                 f"{esc(x_label)}</text>")
    lx = left
    for i, (name, p) in enumerate(pts.items()):
        color = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in p) if sx else ""
        parts.append(f'<polyline class="series" data-series="{esc(name)}" fill="none" stroke="{color}" '
                     f'stroke-width="1.8" points="{coords}"/>')
        if sx:
            parts.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.2" fill="{color}"/>' for x, y in p)
        # legend: a swatch and the name, left to right under the title
        parts.append(f'<rect x="{lx}" y="20" width="10" height="3" fill="{color}"/>'
                     f'<text class="legend" x="{lx + 13}" y="25">{esc(name)}</text>')
        lx += 20 + 6 * len(str(name))
    parts.append("</svg>")
    return markupsafe.Markup("".join(parts))


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

def _f_score(x: Any) -> str:
    """A [0,1] (or [-1,1]) metric as a GLUE-paper percentage with one decimal."""
    v = _num(x)
    return "—" if v is None else f"{v * 100:.1f}"


def _f_num(x: Any, digits: int = 1, scale: float = 1.0) -> str:
    v = _num(x)
    return "—" if v is None else f"{v * scale:,.{digits}f}"


def _sortval(x: Any, scale: float = 1.0) -> str:
    v = _num(x)
    return "" if v is None else repr(v * scale)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(score=_f_score, num=_f_num, sortval=_sortval)
    env.globals.update(svg_line_chart=svg_line_chart)
    return env


def _curve_views(doc: dict) -> list[dict]:
    """Per model, per task: the two loss charts (pre-rendered SVG) and the per-epoch table columns."""
    views = []
    for row in doc["rows"]:
        m = row["model"]
        cards = []
        for t in doc["tasks"]:
            curve = doc["curves"].get(m, {}).get(t)
            if curve is None:
                continue
            metric_keys = [k for k in gtasks.get_task(t).metrics
                           if any(k in (r.get("val_metrics") or {}) for r in curve)]
            metric_keys += _unique(k for r in curve for k in (r.get("val_metrics") or {}) if k not in metric_keys)
            chart = svg_line_chart(
                {"train loss": [(r.get("epoch"), r.get("train_loss")) for r in curve],
                 "val loss": [(r.get("epoch"), r.get("val_loss")) for r in curve]},
                f"{m} · {t}: loss per epoch")
            cards.append({"task": t, "chart": chart, "epochs": curve, "metric_keys": metric_keys,
                          "hyperparameters": row["hyperparameters"].get(t)})
        views.append({"model": m, "is_teacher": row["is_teacher"], "cards": cards})
    return views


def render_html(doc: dict) -> str:
    """The self-contained leaderboard page for a leaderboard.json document."""
    batch_keys = _unique(k for r in doc["rows"] for k in r["latency_ms"])
    batch_keys.sort(key=lambda k: int(k.split("_", 1)[1]) if k.split("_", 1)[1].isdigit() else 10**9)
    prov = doc["provenance"]
    stage_total = sum(prov["stage_seconds"].values()) if prov["stage_seconds"] else None
    return _environment().get_template(TEMPLATE_NAME).render(
        doc=doc,
        prov=prov,
        batch_keys=batch_keys,
        has_wnli="wnli" in doc["tasks"],
        task_metric_names={t: gtasks.get_task(t).metrics for t in doc["tasks"]},
        curve_views=_curve_views(doc),
        config_pretty=json.dumps(prov["config"], indent=2, sort_keys=True, ensure_ascii=False),
        stage_total=stage_total,
    )


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", type=Path, default=Path("results"), help="results folder (default: results)")
    p.add_argument("--models", nargs="+", required=True, help="model names, as under results/scores/")
    p.add_argument("--teacher", required=True, help="the teacher model (must be one of --models)")
    p.add_argument("--tasks", nargs="+", required=True, help="GLUE tasks to report (e.g. cola sst2 ...)")
    cfg = p.add_mutually_exclusive_group()
    cfg.add_argument("--config-json", default=None, help="the run config as a JSON string (for provenance)")
    cfg.add_argument("--config-file", type=Path, default=None, help="the run config as a JSON file instead")
    p.add_argument("--out-json", type=Path, default=Path("reports/leaderboard.json"))
    p.add_argument("--out-html", type=Path, default=Path("reports/leaderboard.html"))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _load_config(args: argparse.Namespace) -> Any:
    if args.config_file is not None:
        if not args.config_file.is_file():
            raise UserError(f"--config-file {args.config_file} does not exist")
        text, where = args.config_file.read_text(encoding="utf-8"), str(args.config_file)
    else:
        text, where = (args.config_json if args.config_json is not None else "{}"), "--config-json"
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as e:
        raise UserError(f"{where} is not valid JSON: {e}") from None


def run(args: argparse.Namespace) -> None:
    config = _load_config(args)
    doc = build_leaderboard(args.results, args.models, args.teacher, args.tasks, config)
    html = render_html(doc)
    for w in doc["warnings"]:
        log.warning("%s", w)
    gio.atomic_write_json(args.out_json, doc)
    gio.atomic_write_text(args.out_html, html)
    log.info("wrote %s and %s (%d models, %d tasks)", args.out_json, args.out_html, len(doc["rows"]), len(doc["tasks"]))
