"""Read the leaderboard's inputs under results/: score, profile, model and data files, ablation tables,
Snakemake benchmark files. Every reader checks what it reads; a missing or malformed input is a UserError
that names the file and the stage that writes it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from glueslim import io as gio
from glueslim import tasks as gtasks
from glueslim.errors import UserError
from glueslim.report import checks
from glueslim.report.values import clean, differs, num, unique

# what writes each input: (Snakemake rule, `python -m glueslim` command)
PRODUCERS = {
    "scores": ("score", "score"),
    "profile": ("profile", "profile"),
    "teacher_model": ("finetune_teacher", "finetune"),
    "student_model": ("distill_student", "distill"),
    "manifest": ("prepare_data", "prepare-data"),
}

ABLATION_FORMATS = ("text", "int", "float", "score", "pct", "ms", "params", "macs", "ratio")


def _float_or_none(s: Any) -> float | None:
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# required inputs
# --------------------------------------------------------------------------------------------

def maker(model: str, teacher: str) -> tuple[str, str | None]:
    """(rule, command) that writes a model's folder."""
    if model == teacher:
        return PRODUCERS["teacher_model"]
    # students, baselines, pruned and int8 models come from different rules
    return (f"rule that builds model `{model}` (e.g. `{PRODUCERS['student_model'][0]}`)", None)


def read_required(path: Path, producer: tuple[str, str | None], *, jsonl: bool = False) -> Any:
    """Read an input another rule writes; a missing or unreadable file is a UserError naming both."""
    rule, command = producer
    who = f"Snakemake {rule}" if " " in rule else f"Snakemake rule `{rule}`"
    if not path.is_file():
        how = f": python -m glueslim {command} ..." if command else ""
        what = "input is not a file:" if path.exists() else "missing input"
        raise UserError(f"{what} {path} (written by the {who}{how}); run that stage first")
    try:
        return gio.read_jsonl(path) if jsonl else gio.read_json(path)
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise UserError(f"{path} (written by the {who}) is not valid JSON: {e}; re-run that stage") from None
    except OSError as e:
        raise UserError(f"{path} cannot be read ({e.strerror}); check its permissions") from None


def require_dict(obj: Any, path: Path, what: str = "a JSON object") -> dict:
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected {what}, got {type(obj).__name__}")
    return obj


# --------------------------------------------------------------------------------------------
# score files
# --------------------------------------------------------------------------------------------

def _task_entry(model: str, task: str, entry: Any, path: Path, warnings: list[str]) -> dict:
    """Check one task of a score file; recompute its score from its metrics."""
    if not isinstance(entry, dict) or not isinstance(entry.get("metrics"), dict):
        raise UserError(f"{path}: tasks.{task} has no \"metrics\" object")
    metrics = checks.task_metrics(path, task, entry["metrics"])  # the task's keys, each finite and in range
    score = gtasks.task_mean(task, metrics)
    stored = num(entry.get("score"))
    if differs(stored, score):
        warnings.append(f"{model}/{task}: stored score {stored:.6f} differs from the mean of its "
                        f"metrics {score:.6f}; the recomputed value is used")
    return {"metrics": metrics, "score": score, "n": clean(entry.get("n"))}


def read_scores(results: Path, model: str, tasks: Sequence[str], warnings: list[str]) -> dict:
    """scores/{model}.json: {"split", "tasks": {task: {"metrics", "score", "n"} or None}, "stored_glue_score"}."""
    path = results / "scores" / f"{model}.json"
    doc = require_dict(read_required(path, PRODUCERS["scores"]), path)
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
            "stored_glue_score": num(doc.get("glue_score"))}


# --------------------------------------------------------------------------------------------
# profile files
# --------------------------------------------------------------------------------------------

def read_profile(results: Path, model: str) -> dict:
    path = results / "profile" / f"{model}.json"
    prof = require_dict(read_required(path, PRODUCERS["profile"]), path)
    checks.check_profile(path, prof)
    return clean(prof)


def lat_entry(e: dict) -> dict:
    """One timed point of a profile, in leaderboard.json's units and names."""
    iqr = num(e.get("iqr_ms"))
    if iqr is None and num(e.get("q1_ms")) is not None and num(e.get("q3_ms")) is not None:
        iqr = e["q3_ms"] - e["q1_ms"]
    return {
        "batch_size": e.get("batch_size"),
        "seq_length": e.get("seq_length"),
        "median": num(e.get("median_ms")),
        "iqr": iqr,
        "q1": num(e.get("q1_ms")),
        "q3": num(e.get("q3_ms")),
        "min": num(e.get("min_ms")),
        "max": num(e.get("max_ms")),
        "runs": e.get("runs"),
        "warmup": e.get("warmup"),
        "threads": e.get("threads"),
        "device": e.get("device"),
        "throughput_per_s": num(e.get("throughput_per_s")),
        "macs": num(e.get("macs")),
        "floor_ms": num(e.get("floor_ms")),
        "pct_of_peak": num(e.get("pct_of_peak")),
        "floor_dtype": e.get("floor_dtype") if isinstance(e.get("floor_dtype"), str) else None,
    }


def _entries(profile: dict) -> list[dict]:
    return [e for e in profile.get("latency") or [] if isinstance(e, dict)]


def _keyed(entries: Iterable[dict], field: str, prefix: str) -> dict[str, dict]:
    """{"<prefix>_<value of field>": lat_entry}, sorted by that value; the first entry of a value wins."""
    out: dict[str, dict] = {}
    for e in sorted(entries, key=lambda e: (num(e.get(field)) or 0)):
        out.setdefault(f"{prefix}_{e.get(field)}", lat_entry(e))
    return out


def latency(profile: dict) -> dict[str, dict]:
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
    return _keyed(entries, "batch_size", "batch")


def latency_by_length(profile: dict) -> tuple[int | None, dict[str, dict]]:
    """(batch size, {"seq_<n>": {...}}): the sequence-length sweep, if the profile has one."""
    sweep = ((profile.get("sweeps") or {}).get("length") or {})
    bs, lengths = sweep.get("batch_size"), sweep.get("seq_lengths")
    if not isinstance(lengths, list) or not lengths:
        return None, {}
    entries = [e for e in _entries(profile) if e.get("batch_size") == bs and e.get("seq_length") in lengths]
    return bs, _keyed(entries, "seq_length", "seq")


def latency_compiled(profile: dict) -> dict[str, dict]:
    """{"batch_<bs>": {..., "compile_seconds"}}: the torch.compile timings, if any."""
    return {f"batch_{e.get('batch_size')}": {**lat_entry(e), "compile_seconds": num(e.get("compile_seconds"))}
            for e in profile.get("latency_compiled") or [] if isinstance(e, dict)}


def macs_by_length(profile: dict) -> dict[str, dict]:
    """{"seq_<n>": {"total", "linear", "attention"}} per sequence (batch 1)."""
    out: dict[str, dict] = {}
    for m in profile.get("macs_by_length") or []:
        if isinstance(m, dict) and m.get("seq_length") is not None:
            out[f"seq_{m['seq_length']}"] = {k: num(m.get(k)) for k in ("total", "linear", "attention")}
    return dict(sorted(out.items(), key=lambda kv: int(kv[0][4:]) if kv[0][4:].isdigit() else 10**9))


# --------------------------------------------------------------------------------------------
# model folders, data manifests, benchmark files
# --------------------------------------------------------------------------------------------

def read_model_task(results: Path, model: str, task: str, teacher: str) -> tuple[dict, list[dict] | None]:
    """A model folder's glueslim.json (required) and train_log.jsonl (None when the model was not
    trained, e.g. one quantized or pruned after training without a copy of its source's log)."""
    producer = maker(model, teacher)
    d = results / "models" / model / task
    meta = require_dict(clean(read_required(d / "glueslim.json", producer)), d / "glueslim.json")
    if not (d / "train_log.jsonl").exists():
        return meta, None
    curve = [clean(r) for r in read_required(d / "train_log.jsonl", producer, jsonl=True) if isinstance(r, dict)]
    curve.sort(key=lambda r: (num(r.get("epoch")) is None, num(r.get("epoch")) or 0))
    return meta, curve


def read_manifest(results: Path, task: str) -> list[dict]:
    """One provenance entry per source file of data/{task}/manifest.json."""
    path = results / "data" / task / "manifest.json"
    man = require_dict(clean(read_required(path, PRODUCERS["manifest"])), path)
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
                    vals = [num(_float_or_none(r.get("s"))) for r in csv.DictReader(f, delimiter="\t")]
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


# --------------------------------------------------------------------------------------------
# ablation tables: results/ablations/*.json, written by other stages (README, "Ablation tables")
# --------------------------------------------------------------------------------------------

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


def _ablation_rows(raw_rows: Any, columns: list[dict], path: Path) -> list[list]:
    """The rows as lists in column order (an object row by column key); cells are scalars."""
    if not isinstance(raw_rows, list):
        raise UserError(f"{path}: \"rows\" must be a list")
    keys = [c["key"] for c in columns]
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
    return rows


def _read_ablation(path: Path) -> dict:
    try:
        doc = gio.read_json(path)
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"ablation table {path} is not valid JSON: {e}") from None
    doc = require_dict(clean(doc), path, 'an object {"title", "caption", "columns", "rows"}')
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
    rows = _ablation_rows(doc.get("rows"), columns, path)
    return {"id": path.stem, "source": str(path), "order": num(doc.get("order")), "title": title,
            "caption": caption, "columns": columns, "rows": rows}


def read_ablations(ablation_dir: Path) -> list[dict]:
    """Every results/ablations/*.json, sorted by (`order`, file name), checked and normalised.

    A malformed file is a UserError naming the file: a table that silently disappeared from the
    report would be worse than a failed render.
    """
    if not ablation_dir.is_dir():
        return []
    out = [_read_ablation(path) for path in sorted(ablation_dir.glob("*.json"))]
    out.sort(key=lambda a: (a["order"] is None, a["order"] or 0.0, a["id"]))
    return out


# --------------------------------------------------------------------------------------------
# all inputs of one leaderboard
# --------------------------------------------------------------------------------------------

@dataclass
class Inputs:
    """Everything read for one leaderboard, by model (and task)."""
    scores: dict[str, dict]
    profiles: dict[str, dict]
    metas: dict[str, dict[str, dict]]  # model -> task -> glueslim.json
    curves: dict[str, dict[str, list[dict]]]  # model -> task -> train_log.jsonl rows
    data: list[dict]  # manifest source files


def read_inputs(results: Path, models: list[str], teacher: str, tasks: list[str], warnings: list[str]) -> Inputs:
    """Score, profile and model files of every model, the data manifests of every task."""
    scores = {m: read_scores(results, m, tasks, warnings) for m in models}
    profiles = {m: read_profile(results, m) for m in models}
    metas: dict[str, dict[str, dict]] = {m: {} for m in models}
    curves: dict[str, dict[str, list[dict]]] = {m: {} for m in models}
    for m in models:
        for t in tasks:
            if scores[m]["tasks"][t] is None and not (results / "models" / m / t).is_dir():
                continue  # no score and no model: nothing to show, already warned
            metas[m][t], curve = read_model_task(results, m, t, teacher)
            if curve is not None:  # an empty log (a model not trained after its source was) is shown as such
                curves[m][t] = curve
    data = [entry for t in tasks for entry in read_manifest(results, t)]
    return Inputs(scores, profiles, metas, curves, data)


def split_of(scores: Mapping[str, dict]) -> str:
    """The one split every model was scored on."""
    splits = unique(s["split"] for s in scores.values())
    if len(splits) != 1:
        raise UserError(f"score files mix splits {splits}; every model must be scored on the same split")
    return splits[0]
