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
from glueslim.errors import UserError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE_NAME = "leaderboard.html.j2"
NOTE = ("Scores are GLUE dev-set (validation) scores computed locally; "
        "the GLUE test server is not used.")
# Relative difference above which a stored score that we recompute is reported as a warning.
_RECOMPUTE_TOL = 1e-6
# the profiler's floor on timed runs (glueslim.profile.MIN_RUNS; not imported: it pulls in torch)
MIN_RUNS = 20


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
    if model == teacher:
        return PRODUCERS["teacher_model"]
    # students, baselines, pruned and int8 models come from different rules
    return (f"rule that builds model `{model}` (e.g. `{PRODUCERS['student_model'][0]}`)", None)


def _read_required(path: Path, producer: tuple[str, str], *, jsonl: bool = False) -> Any:
    """Read an input another rule writes; a missing or unreadable file is a UserError naming both."""
    rule, command = producer
    who = f"Snakemake {rule}" if " " in rule else f"Snakemake rule `{rule}`"
    if not path.is_file():
        how = f": python -m glueslim {command} ..." if command else ""
        raise UserError(f"missing input {path} (written by the {who}{how}); run that stage first")
    try:
        return gio.read_jsonl(path) if jsonl else gio.read_json(path)
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise UserError(f"{path} (written by the {who}) is not valid JSON: {e}") from None


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


def _lat_entry(e: dict) -> dict:
    """One timed point of a profile, in leaderboard.json's units and names."""
    iqr = _num(e.get("iqr_ms"))
    if iqr is None and _num(e.get("q1_ms")) is not None and _num(e.get("q3_ms")) is not None:
        iqr = e["q3_ms"] - e["q1_ms"]
    return {
        "batch_size": e.get("batch_size"),
        "seq_length": e.get("seq_length"),
        "median": _num(e.get("median_ms")),
        "iqr": iqr,
        "q1": _num(e.get("q1_ms")),
        "q3": _num(e.get("q3_ms")),
        "min": _num(e.get("min_ms")),
        "max": _num(e.get("max_ms")),
        "runs": e.get("runs"),
        "warmup": e.get("warmup"),
        "threads": e.get("threads"),
        "device": e.get("device"),
        "throughput_per_s": _num(e.get("throughput_per_s")),
        "macs": _num(e.get("macs")),
        "floor_ms": _num(e.get("floor_ms")),
        "pct_of_peak": _num(e.get("pct_of_peak")),
    }


def _entries(profile: dict) -> list[dict]:
    return [e for e in profile.get("latency") or [] if isinstance(e, dict)]


def _latency(profile: dict) -> dict[str, dict]:
    """{"batch_<bs>": {...}}: the batch-size sweep, at the MACs sequence length.

    Profiles with a `sweeps` record give the sweep's batch sizes; older ones (one length only)
    every entry at the MACs length.
    """
    seq = (profile.get("macs") or {}).get("seq_length")
    entries = _entries(profile)
    sweep = ((profile.get("sweeps") or {}).get("batch") or {})
    if isinstance(sweep.get("batch_sizes"), list):
        seq = sweep.get("seq_length", seq)
        entries = [e for e in entries if e.get("seq_length") == seq and e.get("batch_size") in sweep["batch_sizes"]]
    else:
        lens = {e.get("seq_length") for e in entries}
        if len(lens) > 1 and seq in lens:
            entries = [e for e in entries if e.get("seq_length") == seq]
    out: dict[str, dict] = {}
    for e in sorted(entries, key=lambda e: (_num(e.get("batch_size")) or 0)):
        out.setdefault(f"batch_{e.get('batch_size')}", _lat_entry(e))
    return out


def _latency_by_length(profile: dict) -> tuple[int | None, dict[str, dict]]:
    """(batch size, {"seq_<n>": {...}}): the sequence-length sweep, if the profile has one."""
    sweep = ((profile.get("sweeps") or {}).get("length") or {})
    bs, lengths = sweep.get("batch_size"), sweep.get("seq_lengths")
    if not isinstance(lengths, list) or not lengths:
        return None, {}
    entries = [e for e in _entries(profile) if e.get("batch_size") == bs and e.get("seq_length") in lengths]
    out: dict[str, dict] = {}
    for e in sorted(entries, key=lambda e: (_num(e.get("seq_length")) or 0)):
        out.setdefault(f"seq_{e.get('seq_length')}", _lat_entry(e))
    return bs, out


def _macs_by_length(profile: dict) -> dict[str, dict]:
    """{"seq_<n>": {"total", "linear", "attention"}} per sequence (batch 1)."""
    out: dict[str, dict] = {}
    for m in profile.get("macs_by_length") or []:
        if isinstance(m, dict) and m.get("seq_length") is not None:
            out[f"seq_{m['seq_length']}"] = {k: _num(m.get(k)) for k in ("total", "linear", "attention")}
    return dict(sorted(out.items(), key=lambda kv: int(kv[0][4:]) if kv[0][4:].isdigit() else 10**9))


# --------------------------------------------------------------------------------------------
# ablation tables: results/ablations/*.json, written by other stages (see the README)
# --------------------------------------------------------------------------------------------

ABLATION_FORMATS = ("text", "int", "float", "score", "pct", "ms", "params", "macs", "ratio")


def _ablation_column(c: Any, i: int, path: Path) -> dict:
    if isinstance(c, str):
        return {"key": c, "label": c, "format": "text" if i == 0 else "float", "title": None}
    if isinstance(c, dict) and isinstance(c.get("label", c.get("key")), str):
        fmt = c.get("format", "float")
        if fmt not in ABLATION_FORMATS:
            raise UserError(f"{path}: columns[{i}].format {fmt!r} is not one of {', '.join(ABLATION_FORMATS)}")
        label = c.get("label", c.get("key"))
        title = c.get("title")
        return {"key": str(c.get("key", label)), "label": label, "format": fmt,
                "title": title if isinstance(title, str) else None}
    raise UserError(f"{path}: columns[{i}] must be a string or an object with a \"label\" or \"key\"")


def read_ablations(ablation_dir: Path) -> list[dict]:
    """Every results/ablations/*.json, sorted by (`order`, file name), checked and normalised.

    A malformed file is a UserError naming the file: a table that silently disappeared from the
    report would be worse than a failed render.
    """
    out = []
    if not ablation_dir.is_dir():
        return out
    for path in sorted(ablation_dir.glob("*.json")):
        try:
            doc = gio.read_json(path)
        except (ValueError, UnicodeDecodeError) as e:
            raise UserError(f"ablation table {path} is not valid JSON: {e}") from None
        doc = _require_dict(_clean(doc), path, 'an object {"title", "caption", "columns", "rows"}')
        title, caption = doc.get("title"), doc.get("caption", "")
        if not isinstance(title, str) or not title.strip():
            raise UserError(f"{path}: \"title\" must be a non-empty string")
        if caption is None:
            caption = ""
        if not isinstance(caption, str):
            raise UserError(f"{path}: \"caption\" must be a string")
        cols = doc.get("columns")
        if not isinstance(cols, list) or not cols:
            raise UserError(f"{path}: \"columns\" must be a non-empty list")
        columns = [_ablation_column(c, i, path) for i, c in enumerate(cols)]
        keys = [c["key"] for c in columns]
        raw_rows = doc.get("rows")
        if not isinstance(raw_rows, list):
            raise UserError(f"{path}: \"rows\" must be a list")
        rows = []
        for r, row in enumerate(raw_rows):
            if isinstance(row, dict):
                unknown = [k for k in row if k not in keys]
                if unknown:
                    raise UserError(f"{path}: rows[{r}] has keys not among the columns: {', '.join(unknown)}")
                row = [row.get(k) for k in keys]
            if not isinstance(row, list) or len(row) != len(columns):
                raise UserError(f"{path}: rows[{r}] must be a list of {len(columns)} values or an object by column key")
            for v in row:
                if isinstance(v, (dict, list)):
                    raise UserError(f"{path}: rows[{r}] holds a {type(v).__name__}; cells are strings, numbers or null")
            rows.append(row)
        order = _num(doc.get("order"))
        out.append({"id": path.stem, "source": str(path), "order": order, "title": title, "caption": caption,
                    "columns": columns, "rows": rows})
    out.sort(key=lambda a: (a["order"] is None, a["order"] or 0.0, a["id"]))
    return out


def _read_model_task(results: Path, model: str, task: str, teacher: str) -> tuple[dict, list[dict] | None]:
    """A model folder's glueslim.json (required) and train_log.jsonl (None when the model was not
    trained, e.g. one quantized or pruned after training without a copy of its source's log)."""
    producer = _maker(model, teacher)
    d = results / "models" / model / task
    meta = _require_dict(_clean(_read_required(d / "glueslim.json", producer)), d / "glueslim.json")
    if not (d / "train_log.jsonl").exists():
        return meta, None
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


def _device_key(profile: dict) -> str:
    d = profile.get("device") if isinstance(profile.get("device"), dict) else {}
    return json.dumps([d.get(k) for k in ("type", "name", "gpu_name", "threads")])


def _peak_candidates(peak: dict) -> dict[str, float]:
    """{kernel dtype: FLOP/s} measured in one profile job."""
    cands = peak.get("candidates") if isinstance(peak.get("candidates"), dict) else {}
    out = {str(k): v for k, v in cands.items() if _num(v) is not None and v > 0}
    if not out and _num(peak.get("flops_per_s")) and peak.get("dtype"):
        out[str(peak["dtype"])] = float(peak["flops_per_s"])
    return out


def _device_peaks(profiles: Mapping[str, dict]) -> dict[str, dict[str, float]]:
    """{device key: {kernel dtype: best FLOP/s over every profile taken on that device}}."""
    out: dict[str, dict[str, float]] = {}
    for prof in profiles.values():
        peak = prof.get("peak_flops") if isinstance(prof.get("peak_flops"), dict) else {}
        best = out.setdefault(_device_key(prof), {})
        for kind, v in _peak_candidates(peak).items():
            best[kind] = max(best.get(kind, 0.0), float(v))
    return out


def _per_task_path(value: Any, task: str) -> Any:
    """A path whose folder is named after the task, with that folder written as {task}."""
    if not isinstance(value, str) or "/" not in value:
        return value
    return "/".join("{task}" if part == task else part for part in value.split("/"))


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


def int8_support(cpu_flags: Sequence[str]) -> str:
    """What the CPU offers int8 kernels: the int8 rows' speed-up depends on it."""
    flags = set(cpu_flags)
    have = [name for flag, name in (("amx_int8", "AMX-INT8"), ("avx512_vnni", "AVX512-VNNI"),
                                    ("avx_vnni", "AVX-VNNI")) if flag in flags]
    if have:
        return f"int8 dot-product instructions: {', '.join(have)}"
    return "no VNNI or AMX int8 instructions: int8 kernels fall back to plain AVX2/AVX-512, smaller speed-ups"


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
            metas[m][t], curve = _read_model_task(results, m, t, teacher)
            if curve is not None:  # an empty log (a model not trained after its source was) is shown as such
                curves[m][t] = curve
    data = [entry for t in tasks for entry in _read_manifest(results, t)]

    splits = _unique(s["split"] for s in scores.values())
    if len(splits) != 1:
        raise UserError(f"score files mix splits {splits}; every model must be scored on the same split")
    split = splits[0]

    # ---- rows
    t_prof = profiles[teacher]
    t_params = (t_prof.get("parameters") or {}).get("total")
    t_lat = _latency(t_prof)
    _, t_lat_len = _latency_by_length(t_prof)
    cfg_profile = config.get("profile") if isinstance(config, dict) else None
    cfg_runs = _num(cfg_profile.get("runs")) if isinstance(cfg_profile, dict) else None
    t_scores = {t: (e["score"] if e else None) for t, e in scores[teacher]["tasks"].items()}
    t_glue = _glue(t_scores, tasks)
    t_glue_nw = _glue(t_scores, tasks, exclude=("wnli",))

    device_peaks = _device_peaks(profiles)
    rows = []
    for m in models:
        prof = profiles[m]
        params = prof.get("parameters") or {}
        macs = prof.get("macs") or {}
        lat = _latency(prof)
        lat_compiled = {f"batch_{e.get('batch_size')}": {**_lat_entry(e),
                                                          "compile_seconds": _num(e.get("compile_seconds"))}
                        for e in prof.get("latency_compiled") or [] if isinstance(e, dict)}
        len_bs, lat_len = _latency_by_length(prof)
        points = {(e.get("batch_size"), e.get("seq_length")): e for e in [*lat.values(), *lat_len.values()]}
        for e in points.values():
            runs = _num(e.get("runs"))
            floor_runs = max(MIN_RUNS, cfg_runs or 0)
            if runs is None or runs < floor_runs:
                warnings.append(f"{m}: latency at batch {e.get('batch_size')} x {e.get('seq_length')} tokens is from "
                                f"{e.get('runs')} timed runs, fewer than the {int(floor_runs)} configured; "
                                "re-run the profile rule")
        for skip in ((prof.get("sweeps") or {}).get("skipped") or []):
            if isinstance(skip, dict):
                warnings.append(f"{m}: {skip.get('seq_length')} tokens not timed ({skip.get('reason')})")
        peak = prof.get("peak_flops") if isinstance(prof.get("peak_flops"), dict) else {}
        dev_m = prof.get("device") if isinstance(prof.get("device"), dict) else {}
        timed = [*lat.values(), *lat_len.values(), *lat_compiled.values()]
        for err in prof.get("compile_errors") or []:
            if isinstance(err, dict):
                warnings.append(f"{m}: no torch.compile figure at batch {err.get('batch_size')} "
                                f"({str(err.get('error'))[:160]})")
        # floors against the device's best measured peak of the model's kernels (every profile on
        # the same device counts: the peak belongs to the device, one job's measurement may be low)
        peak_flops, peak_dtype = None, peak.get("dtype")
        for kind in _peak_candidates(peak):
            best = device_peaks.get(_device_key(prof), {}).get(kind)
            if best is not None and (peak_flops is None or best > peak_flops):
                peak_flops, peak_dtype = best, kind
        for e in timed:
            if e.get("macs") is not None and peak_flops:
                e["floor_ms"] = 2 * e["macs"] / peak_flops * 1000.0
                e["pct_of_peak"] = e["floor_ms"] / e["median"] * 100.0 if e.get("median") else None
        task_scores = {t: (e["score"] if e else None) for t, e in scores[m]["tasks"].items()}
        glue = _glue(task_scores, tasks)
        glue_nw = _glue(task_scores, tasks, exclude=("wnli",))
        stored = scores[m]["stored_glue_score"]
        if stored is not None and glue is not None and abs(stored - glue) > _RECOMPUTE_TOL * max(1.0, abs(glue)):
            warnings.append(f"{m}: stored glue_score {stored:.6f} differs from the recomputed {glue:.6f} "
                            f"over {', '.join(tasks)}; the recomputed value is used")
        meta_vals = list(metas[m].values())
        methods = _unique(v.get("method") for v in meta_vals if v.get("method") is not None)
        # a student of each task starts from that task's teacher (results/models/teacher/<task>): one value
        bases = _unique(_per_task_path(v.get("base_model"), t) for t, v in metas[m].items()
                        if v.get("base_model") is not None)
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
            "macs_linear": _ratio(macs.get("linear"), macs_bs),
            "macs_attention": _ratio(macs.get("attention"), macs_bs),
            "macs_by_length": _macs_by_length(prof),
            "seq_length": macs.get("seq_length"),
            "latency_ms": lat,
            "latency_compiled_ms": lat_compiled,
            "speedup": {k: _ratio(t_lat[k]["median"], v["median"]) for k, v in lat.items() if k in t_lat},
            "length_batch_size": len_bs,
            "latency_by_length_ms": lat_len,
            "speedup_by_length": {k: _ratio(t_lat_len[k]["median"], v["median"])
                                  for k, v in lat_len.items() if k in t_lat_len},
            "peak_flops_per_s": peak_flops,
            "timing": {
                "device": dev_m.get("name"),
                "device_type": dev_m.get("type"),
                "threads": dev_m.get("threads"),
                "warmup": min((e["warmup"] for e in timed if _num(e.get("warmup")) is not None), default=None),
                "runs": min((e["runs"] for e in timed if _num(e.get("runs")) is not None), default=None),
                "peak_flops_per_s": peak_flops,
                "peak_dtype": peak_dtype if peak_flops is not None else None,
            },
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

    # ---- Pareto frontier of GLUE score against latency at the smallest profiled batch
    pareto_key = min(t_lat, key=lambda k: int(k[6:]) if k[6:].isdigit() else 10**9) if t_lat else None
    candidates = [(r["model"], r["latency_ms"][pareto_key]["median"], r["glue_score"]) for r in rows
                  if pareto_key in r["latency_ms"] and _num(r["latency_ms"][pareto_key]["median"]) is not None
                  and r["glue_score"] is not None]
    frontier = pareto_frontier(candidates)
    for r in rows:
        r["pareto_optimal"] = (r["model"] in frontier) if any(c[0] == r["model"] for c in candidates) else None

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

    ablations = read_ablations(results / "ablations")
    return _clean({
        "schema_version": SCHEMA_VERSION,
        "generated_at": generated_at or _generated_at(),
        "split": split,
        "note": NOTE,
        "teacher": teacher,
        "tasks": tasks,
        "rows": rows,
        "pareto": {"latency": pareto_key, "score": "glue_score", "frontier": frontier},
        "curves": curves,
        "provenance": {
            "config": config,
            "config_sha256": cfg_sha,
            "versions": versions,
            "device": dev,
            "int8_support": int8_support((dev or {}).get("cpu_flags") or []),
            "peak_flops": t_prof.get("peak_flops"),
            "device_peak_flops": device_peaks.get(_device_key(t_prof), {}),
            "data": data,
            "stage_seconds": read_stage_seconds(results / "benchmarks", warnings),
        },
        "ablations": ablations,
        "warnings": warnings,
    })


# --------------------------------------------------------------------------------------------
# SVG charts (inline, no JavaScript; every string escaped)
# --------------------------------------------------------------------------------------------

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
    if abs(v) < 1:
        return f"{v:.3g}"
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
        return _num(v) is not None and (not self.log or v > 0)


def _svg_open(width: int, height: int, title: str, cls: str = "chart") -> list[str]:
    esc = markupsafe.escape
    return [f'<svg class="{cls}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="{esc(title)}">', f"<title>{esc(title)}</title>"]


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
                 f'<line class="axis" x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}"/>'
                 f'<text class="axis-label" x="{left + pw / 2:.1f}" y="{height - 4}" text-anchor="middle">'
                 f"{esc(x_label)}</text>")
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
) -> markupsafe.Markup:
    """An inline SVG line chart: one <polyline> per series, a dot per point, ticks, axis labels, legend.

    A point is (x, y) or (x, y, tooltip). Missing or non-finite values, and values <= 0 on a log axis,
    are skipped. `legend`: "top" (one row under the title) or "right" (one per line). All text is
    escaped. Series named in `dashed` are drawn as dashed reference lines without dots.
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
    xa = _Axis([_num(p[0]) for s in series.values() for p in s], left, left + pw, log=x_log, ticks=x_ticks,
               integer=integer_x)
    ya = _Axis([_num(p[1]) for s in series.values() for p in s], top + ph, top, log=y_log)
    pts = {str(n): [p for p in s if xa.ok(_num(p[0])) and ya.ok(_num(p[1]))] for n, s in series.items()}
    parts = _svg_open(width, height, title, "chart large" if large else "chart")
    parts.append(f'<text class="chart-title" x="{left}" y="14">{esc(title)}</text>')
    if any(pts.values()):
        _frame(parts, xa, ya, left, top, pw, ph, x_label, y_label, height)
    else:
        parts.append(f'<text class="tick" x="{left + pw / 2:.1f}" y="{top + ph / 2:.1f}" '
                     f'text-anchor="middle">no data</text>')
        parts.append(f'<line class="axis" x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}"/>'
                     f'<text class="axis-label" x="{left + pw / 2:.1f}" y="{height - 4}" text-anchor="middle">'
                     f"{esc(x_label)}</text>")
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
        for q in p:
            tip = f"<title>{esc(q[2])}</title>" if len(q) > 2 and q[2] is not None else ""
            parts.append(f'<circle cx="{xa(float(q[0])):.1f}" cy="{ya(float(q[1])):.1f}" r="2.4" '
                         f'fill="{color}">{tip}</circle>')
        if name in dashed:
            continue  # one legend key for all of them, below
        if legend == "right":
            lx, ly = width - legend_w, top + 6 + 14 * legend_i
            parts.append(f'<rect x="{lx}" y="{ly - 4}" width="10" height="3" fill="{color}"/>'
                         f'<text class="legend" x="{lx + 13}" y="{ly}">{esc(name)}</text>')
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


def pareto_frontier(points: Sequence[tuple[str, float, float]]) -> list[str]:
    """Names of the points no other point beats: (name, cost, score), lower cost and higher score better.

    Sorted by cost (ties: best score first), a point is on the frontier when its score is strictly
    higher than every cheaper point's.
    """
    best, out = -math.inf, []
    for name, _, score in sorted(points, key=lambda p: (p[1], -p[2])):
        if score > best:
            out.append(name)
            best = score
    return out


def svg_pareto(
    points: Sequence[Mapping[str, Any]],
    title: str,
    *,
    x_label: str,
    y_label: str,
    width: int = 760,
    height: int = 400,
    colors: Mapping[str, str] | None = None,
) -> markupsafe.Markup:
    """Score (y) against latency (x, log scale), marker area proportional to `size` (parameters), the
    Pareto frontier as a dashed staircase: the best score reachable within each latency budget.

    points: {"name", "x", "y", "size", "is_teacher", "tooltip"}; ones without a positive x or a y are left out.
    """
    esc = markupsafe.escape
    pts = [p for p in points if _num(p.get("x")) is not None and p["x"] > 0 and _num(p.get("y")) is not None]
    left, right, top, bottom = 54, 180, 28, 34
    pw, ph = width - left - right, height - top - bottom
    parts = _svg_open(width, height, title, "chart large")
    parts.append(f'<text class="chart-title" x="{left}" y="15">{esc(title)}</text>')
    if not pts:
        parts.append(f'<text class="tick" x="{left + pw / 2:.1f}" y="{top + ph / 2:.1f}" text-anchor="middle">'
                     "no model has both a GLUE score and a latency</text></svg>")
        return markupsafe.Markup("".join(parts))
    xa = _Axis([p["x"] for p in pts], left, left + pw, log=True)
    ys = [p["y"] for p in pts]
    pad = max((max(ys) - min(ys)) * 0.12, 0.5)
    ya = _Axis([min(ys) - pad, max(ys) + pad], top + ph, top)
    _frame(parts, xa, ya, left, top, pw, ph, x_label, y_label, height)
    sizes = [_num(p.get("size")) for p in pts if _num(p.get("size"))]
    smax, rmax = (max(sizes) if sizes else None), 17.0

    def radius(size: Any) -> float:
        s = _num(size)
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
        parts.append(f'<circle class="point" data-model="{esc(p["name"])}" data-frontier="{int(on)}" '
                     f'cx="{cx:.1f}" cy="{cy:.1f}" r="{r:.1f}" fill="{color}" fill-opacity="0.75"{stroke}>'
                     f"<title>{esc(tip)}</title></circle>")
        text = f'{p["name"]}{" ★" if on else ""}'
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
    parts.append("</svg>")
    return markupsafe.Markup("".join(parts))


def heat_color(pct: Any, span: float = 20.0) -> tuple[str, str]:
    """(background, text) colours for a % of the teacher: white at 100, orange-red below, blue above,
    saturated `span` points away. Grey when missing."""
    v = _num(pct)
    if v is None:
        return "#eef0f2", "#5b6470"
    d = max(-1.0, min(1.0, (v - 100.0) / span))
    target = (214, 96, 77) if d < 0 else (67, 147, 195)
    a = abs(d)
    rgb = tuple(round(255 + (c - 255) * a) for c in target)
    return "#%02x%02x%02x" % rgb, ("#fff" if a > 0.65 else "#1b1f24")


def standalone_svg(svg: str) -> str:
    """An inline chart as a file of its own: XML namespace and the chart CSS inside it."""
    head, rest = svg.split(">", 1)
    return (head.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1) + ">"
            + f"<style>{CHART_CSS}</style>" + rest + "\n")


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


def _f_sig(x: Any, digits: int = 3) -> str:
    """A number with `digits` significant digits (small floors stay readable), thousands separated."""
    v = _num(x)
    if v is None:
        return "—"
    if v == 0 or abs(v) >= 10 ** (digits - 1):
        return f"{v:,.0f}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    return f"{v:,.{decimals}f}"


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
    env.filters.update(score=_f_score, num=_f_num, sig=_f_sig, sortval=_sortval, hms=_hms, si=_si, timing=_timing_text,
                       heat_bg=lambda v: heat_color(v)[0], heat_fg=lambda v: heat_color(v)[1])
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


def _key_int(key: str) -> int:
    tail = key.split("_", 1)[-1]
    return int(tail) if tail.isdigit() else 10**9


def _f_cell(v: Any, fmt: str) -> str:
    """An ablation-table cell as text, by its column's format (strings are shown as they are)."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, str) or _num(v) is None:
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
    s = _num(seconds)
    if s is None:
        return "—"
    s = int(round(s))
    return f"{s // 3600:d}:{(s % 3600) // 60:02d}:{s % 60:02d}"


def _si(x: Any, unit: str = "FLOP/s") -> str:
    v = _num(x)
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


def _speed_views(doc: dict, colors: Mapping[str, str]) -> dict:
    """The latency-against-length and -batch charts (SVG) and the column keys of their tables."""
    rows = doc["rows"]
    length_keys = sorted(_unique(k for r in rows for k in r.get("latency_by_length_ms") or {}), key=_key_int)
    batch_keys = sorted(_unique(k for r in rows for k in r["latency_ms"]), key=_key_int)

    def tip(r: dict, e: dict) -> str:
        floor = "" if e.get("floor_ms") is None else f", floor {e['floor_ms']:.2f} ms ({e.get('pct_of_peak') or 0:.1f}% of peak)"
        iqr = "" if e.get("iqr") is None else f" ± {e['iqr']:.2f}"
        return (f"{r['model']}: batch {e.get('batch_size')} × {e.get('seq_length')} tokens: "
                f"{e['median']:.2f}{iqr} ms (median ± IQR, {e.get('runs')} runs){floor}")

    by_len = {r["model"]: [(e.get("seq_length"), e.get("median"), tip(r, e))
                           for k in length_keys if (e := (r.get("latency_by_length_ms") or {}).get(k))
                           and e.get("median") is not None] for r in rows}
    by_batch = {r["model"]: [(e.get("batch_size"), e.get("median"), tip(r, e))
                             for k in batch_keys if (e := r["latency_ms"].get(k)) and e.get("median") is not None]
                for r in rows}
    floors = {}  # the floor of each model, dashed, in its colour
    for r in rows:
        for name, src, keys, xkey in (("len", "latency_by_length_ms", length_keys, "seq_length"),
                                      ("batch", "latency_ms", batch_keys, "batch_size")):
            pts = [(e.get(xkey), e.get("floor_ms")) for k in keys if (e := (r.get(src) or {}).get(k))
                   and e.get("floor_ms") is not None]
            if pts:
                floors.setdefault(name, {})[f"{r['model']} floor"] = pts
    floor_colors = {f"{m} floor": c for m, c in colors.items()}
    by_len.update(floors.get("len", {}))
    by_batch.update(floors.get("batch", {}))
    dashed = [*floors.get("len", {}), *floors.get("batch", {})]
    colors = {**colors, **floor_colors}
    len_bs = _unique(r.get("length_batch_size") for r in rows if r.get("length_batch_size") is not None)
    seqs = _unique(r.get("seq_length") for r in rows if r.get("seq_length") is not None)
    len_title = "Latency against sequence length" + (f" (batch {len_bs[0]})" if len(len_bs) == 1 else "")
    batch_title = "Latency against batch size" + (f" ({seqs[0]} tokens)" if len(seqs) == 1 else "")
    return {
        "length_keys": length_keys,
        "batch_keys": batch_keys,
        "length_chart": svg_chart(by_len, len_title + ": median, and floor (dashed)", x_label="sequence length (tokens)",
                                  y_label="ms per forward pass", x_log=True, y_log=True,
                                  x_ticks=[_key_int(k) for k in length_keys] or None, width=620, height=330,
                                  legend="right", colors=colors, large=True, dashed=dashed,
                                  dashed_label="floor: 2·MACs / peak") if length_keys else None,
        "batch_chart": svg_chart(by_batch, batch_title + ": median, and floor (dashed)", x_label="batch size (sequences)",
                                 y_label="ms per forward pass", x_log=True, y_log=True,
                                 x_ticks=[_key_int(k) for k in batch_keys] or None, width=620, height=330,
                                 legend="right", colors=colors, large=True, dashed=dashed,
                                 dashed_label="floor: 2·MACs / peak") if batch_keys else None,
    }


def _pareto_chart(doc: dict, colors: Mapping[str, str]) -> markupsafe.Markup | None:
    key = (doc.get("pareto") or {}).get("latency")
    if key is None:
        return None
    pts = []
    for r in doc["rows"]:
        lat = r["latency_ms"].get(key) or {}
        if lat.get("median") is None or r["glue_score"] is None:
            continue
        params = "—" if r["parameters"] is None else f"{r['parameters'] / 1e6:.1f}M parameters"
        pts.append({"name": r["model"], "x": lat["median"], "y": r["glue_score"] * 100, "size": r["parameters"],
                    "is_teacher": r["is_teacher"],
                    "tooltip": f"{r['model']} ({r['method'] or '—'}): GLUE {r['glue_score'] * 100:.1f}, "
                               f"{lat['median']:.2f} ms at {key.replace('_', ' ')} × {lat.get('seq_length')} tokens, {params}"})
    seq = next((r["latency_ms"][key].get("seq_length") for r in doc["rows"] if key in r["latency_ms"]), None)
    return svg_pareto(pts, "GLUE score against latency: which model to ship",
                      x_label=f"latency, ms (median, {key.replace('_', ' ')} × {seq} tokens, log scale)",
                      y_label=f"GLUE score ({doc['split']}, ×100)", colors=colors)


def _ablation_views(doc: dict) -> list[dict]:
    out = []
    for a in doc.get("ablations") or []:
        rows = [[{"text": _f_cell(v, c["format"]),
                  "sort": (_sortval(v) if _num(v) is not None else ("" if v is None else str(v)))}
                 for v, c in zip(row, a["columns"])] for row in a["rows"]]
        out.append({**a, "cells": rows})
    return out


def _charts(doc: dict) -> dict:
    """The colours and charts that the page and the standalone figures share (built once per run)."""
    colors = _model_colors(doc)
    return {"colors": colors, "speed": _speed_views(doc, colors), "pareto": _pareto_chart(doc, colors)}


def figures(doc: dict, charts: dict | None = None) -> dict[str, str]:
    """The page's main charts as standalone SVG files: {file name: SVG text} (for Snakemake's report)."""
    charts = charts or _charts(doc)
    empty = svg_chart({}, "no data", x_label="")
    out = {
        "pareto.svg": charts["pareto"] or empty,
        "latency_vs_length.svg": charts["speed"]["length_chart"] or empty,
        "latency_vs_batch.svg": charts["speed"]["batch_chart"] or empty,
    }
    return {k: standalone_svg(str(v)) for k, v in out.items()}


FIGURES = ("pareto.svg", "latency_vs_length.svg", "latency_vs_batch.svg")


def _model_colors(doc: dict) -> dict[str, str]:
    """One colour per model, the same in every chart (in --models order, so stable across renders)."""
    order = list(doc.get("curves") or {}) or [r["model"] for r in doc["rows"]]
    order += [r["model"] for r in doc["rows"] if r["model"] not in order]
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(order)}


def render_html(doc: dict, charts: dict | None = None) -> str:
    """The self-contained leaderboard page for a leaderboard.json document."""
    charts = charts or _charts(doc)
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
        has_wnli="wnli" in doc["tasks"],
        task_metric_names={t: gtasks.get_task(t).metrics for t in doc["tasks"]},
        curve_views=_curve_views(doc),
        ablations=_ablation_views(doc),
        config_pretty=json.dumps(prov["config"], indent=2, sort_keys=True, ensure_ascii=False),
        stage_total=stage_total,
        chart_css=markupsafe.Markup(CHART_CSS),
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
    p.add_argument("--out-figures", type=Path, default=None,
                   help=f"also write the main charts as standalone SVG files here ({', '.join(FIGURES)})")


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
    charts = _charts(doc)
    html = render_html(doc, charts)
    for w in doc["warnings"]:
        log.warning("%s", w)
    gio.atomic_write_json(args.out_json, doc)
    gio.atomic_write_text(args.out_html, html)
    if args.out_figures is not None:
        for name, svg in figures(doc, charts).items():
            gio.atomic_write_text(args.out_figures / name, svg)
    log.info("wrote %s and %s (%d models, %d tasks)", args.out_json, args.out_html, len(doc["rows"]), len(doc["tasks"]))
