"""Build the leaderboard.json document from the collected inputs: one row per model and deployed form (scores,
sizes, latency and its floor at the dtype-correct peak, speed-up, % of the teacher's fp32 row), the Pareto
frontier, the best row per latency budget, the skipped forms, provenance and warnings.

`build_leaderboard` reads (through `collect`) and returns the document; it writes nothing. The document's
fields are described in the README, section "leaderboard.json".
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import jinja2

from glueslim import __version__
from glueslim import tasks as gtasks
from glueslim.errors import UserError
from glueslim.report import budget, collect, comparisons, deployed, floors, published_view, seeds
from glueslim.report.values import differs, num, ratio, unique

SCHEMA_VERSION = 1
NOTE = ("Scores are GLUE dev-set (validation) scores computed locally; "
        "the GLUE test server is not used.")
# the profiler's floor on timed runs (glueslim.timing.MIN_RUNS; not imported: it pulls in torch)
MIN_RUNS = 20
# provenance fields of glueslim.json that every task of a model should agree on: (row field, glueslim.json key)
_MODEL_FIELDS = (("method", "method"), ("base_model", "base_model"), ("distilled_from", "teacher"),
                 ("num_layers", "num_layers"))


def canonical_json(obj: Any) -> str:
    """The canonical form that config_sha256 hashes: sorted keys, no whitespace, ASCII only."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def config_sha256(config: Any) -> str:
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


def int8_support(cpu_flags: Sequence[str]) -> str:
    """What the CPU offers int8 kernels (kept for leaderboard.json readers; the page states every dtype)."""
    return deployed.instruction_sets(cpu_flags)["int8"]["text"]


def pareto_frontier(points: Sequence[tuple[str, float, float]]) -> list[str]:
    """Names of the points no other point beats: (name, cost, score), lower cost and higher score better.

    Sorted by cost (ties: best score first), a point is on the frontier when its score is strictly
    higher than every cheaper point's.
    """
    best, out = float("-inf"), []
    for name, _, score in sorted(points, key=lambda p: (p[1], -p[2])):
        if score > best:
            out.append(name)
            best = score
    return out


def _twice(values: Sequence[str]) -> str:
    return ", ".join(sorted({v for v in values if list(values).count(v) > 1}))


def _validate_args(models: Sequence[str], teacher: str, tasks: Sequence[str]) -> None:
    if not models:
        raise UserError("no models given (--models)")
    if _twice(models):
        raise UserError(f"model(s) listed twice in --models: {_twice(models)}")
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
    if _twice(tasks):
        raise UserError(f"task(s) listed twice in --tasks: {_twice(tasks)}")


def _per_task(score_doc: dict, key: str) -> dict[str, Any]:
    """{task: one field of its score entry, or None}."""
    return {t: (e[key] if e else None) for t, e in score_doc["tasks"].items()}


def _timing_warnings(m: str, prof: dict, points: Sequence[dict], cfg_runs: float | None,
                     warnings: list[str]) -> None:
    """Too few timed runs, lengths the profiler skipped, failed torch.compile runs."""
    floor_runs = max(MIN_RUNS, cfg_runs or 0)
    for e in {(e.get("batch_size"), e.get("seq_length")): e for e in points}.values():
        runs = num(e.get("runs"))
        if runs is None or runs < floor_runs:
            warnings.append(f"{m}: latency at batch {e.get('batch_size')} x {e.get('seq_length')} tokens is from "
                            f"{e.get('runs')} timed runs, fewer than the {int(floor_runs)} configured; "
                            "re-run the profile rule")
    for skip in ((prof.get("sweeps") or {}).get("skipped") or []):
        if isinstance(skip, dict):
            warnings.append(f"{m}: {skip.get('seq_length')} tokens not timed ({skip.get('reason')})")
    for err in prof.get("compile_errors") or []:
        if isinstance(err, dict):
            warnings.append(f"{m}: no torch.compile figure at batch {err.get('batch_size')} "
                            f"({str(err.get('error'))[:160]})")


def _least(timed: Sequence[dict], key: str) -> Any:
    return min((e[key] for e in timed if num(e.get(key)) is not None), default=None)


def _speedups(lat: Mapping[str, dict], teacher_lat: Mapping[str, dict]) -> dict[str, float | None]:
    return {k: ratio(teacher_lat[k]["median"], v["median"]) for k, v in lat.items() if k in teacher_lat}


def _model_fields(m: str, metas: Mapping[str, dict], warnings: list[str]) -> dict[str, list]:
    """{row field: the distinct values over the model's tasks}; tasks that disagree are warned about."""
    out = {}
    for field, key in _MODEL_FIELDS:
        # a student of each task starts from that task's teacher (results/models/teacher/<task>): one value
        out[field] = unique(_per_task_path(v.get(key), t) if key == "base_model" else v.get(key)
                            for t, v in metas.items() if v.get(key) is not None)
        if len(out[field]) > 1:
            warnings.append(f"{m}: tasks disagree on {key} ({'; '.join(map(str, out[field]))})")
    return out


def _per_task_path(value: Any, task: str) -> Any:
    """A path whose folder is named after the task, with that folder written as {task}."""
    if not isinstance(value, str) or "/" not in value:
        return value
    return "/".join("{task}" if part == task else part for part in value.split("/"))


def _row(m: str, inp: collect.Inputs, teacher: dict, tasks: list[str], device_peaks: dict, cfg_runs: float | None,
         models: list[str], warnings: list[str]) -> dict:
    """One (model, form) row of the leaderboard; `teacher` holds the teacher's fp32 figures the ratios are
    against."""
    prof = inp.profiles[m]
    params = prof.get("parameters") or {}
    macs = prof.get("macs") or {}
    lat, lat_compiled = collect.latency(prof), collect.latency_compiled(prof)
    len_bs, lat_len = collect.latency_by_length(prof)
    _timing_warnings(m, prof, [*lat.values(), *lat_len.values()], cfg_runs, warnings)
    timed = [*lat.values(), *lat_len.values(), *lat_compiled.values()]
    form = deployed.row_form(m, inp.metas[m], prof, models, warnings)
    fl = floors.apply_floors(prof, timed, form["kernels"], form["backend"],
                             device_peaks.get(floors.device_key(prof), {}))
    if fl["missing_peaks"]:
        warnings.append(f"{m}: no {' or '.join(fl['missing_peaks'])} matmul peak measured on its device; its floors "
                        "are the profile's own where it has them, never at another dtype's peak")
    peak_flops, peak_dtype = fl["peak_flops_per_s"], fl["peak_dtype"]
    dev = floors.device_of(prof)
    task_scores = _per_task(inp.scores[m], "score")
    glue = seeds.glue_of(task_scores, tasks)
    glue_nw = seeds.glue_of(task_scores, tasks, ("wnli",))
    stored = inp.scores[m]["stored_glue_score"]
    if differs(stored, glue):
        warnings.append(f"{m}: stored glue_score {stored:.6f} differs from the recomputed {glue:.6f} "
                        f"over {', '.join(tasks)}; the recomputed value is used")
    fields = _model_fields(m, inp.metas[m], warnings)
    macs_total = num(macs.get("total"))
    macs_bs = num(macs.get("batch_size")) or 1.0
    size = num(prof.get("size_on_disk_bytes"))
    joined = {f: ("; ".join(map(str, v)) if v else None) for f, v in fields.items()}
    return {
        "model": m,
        "is_teacher": m == teacher["model"],
        **form,
        "method": joined["method"],
        "base_model": joined["base_model"],
        "distilled_from": joined["distilled_from"],
        "num_layers": fields["num_layers"][0] if len(fields["num_layers"]) == 1 else None,
        "parameters": params.get("total"),
        "parameters_without_embeddings": params.get("without_embeddings"),
        "size_on_disk_mb": size / 1e6 if size is not None else None,
        "macs": macs_total / macs_bs if macs_total is not None else None,
        "macs_linear": ratio(macs.get("linear"), macs_bs),
        "macs_attention": ratio(macs.get("attention"), macs_bs),
        "macs_by_length": collect.macs_by_length(prof),
        "seq_length": macs.get("seq_length"),
        "latency_ms": lat,
        "latency_compiled_ms": lat_compiled,
        "speedup": _speedups(lat, teacher["latency"]),
        "length_batch_size": len_bs,
        "latency_by_length_ms": lat_len,
        "speedup_by_length": _speedups(lat_len, teacher["latency_by_length"]),
        "peak_flops_per_s": peak_flops,
        "peaks": fl["peaks"],
        "floor_dtype": fl["floor_dtype"],
        "floors_from": fl["floors_from"],
        "held_back": floors.held_back(lat, prof),
        "timing": {
            "device": dev.get("name"),
            "device_type": dev.get("type"),
            "threads": dev.get("threads"),
            "warmup": _least(timed, "warmup"),
            "runs": _least(timed, "runs"),
            "peak_flops_per_s": peak_flops,
            "peak_dtype": peak_dtype if peak_flops is not None else None,
            "floor_dtype": fl["floor_dtype"],
            "timed_with": form["timed_with"],
            "emulated": form["emulated"],
        },
        "compression": ratio(teacher["parameters"], params.get("total")),
        "peak_memory_mb": num(prof.get("peak_memory_mb")),
        "peak_memory_kind": prof.get("peak_memory_kind"),
        "task_scores": task_scores,
        "task_metrics": _per_task(inp.scores[m], "metrics"),
        "task_n": _per_task(inp.scores[m], "n"),
        "glue_score": glue,
        "glue_score_without_wnli": glue_nw,
        "pct_of_teacher": ratio(glue, teacher["glue"], 100.0),
        "pct_of_teacher_without_wnli": ratio(glue_nw, teacher["glue_without_wnli"], 100.0),
        "pct_of_teacher_by_task": {t: ratio(task_scores[t], teacher["task_scores"][t], 100.0) for t in tasks},
        "hyperparameters": {t: meta.get("hyperparameters") for t, meta in inp.metas[m].items()},
    }


def _teacher_figures(inp: collect.Inputs, teacher: str, tasks: list[str]) -> dict:
    """The teacher's figures that every row's speed-up, compression and % of teacher divide by."""
    prof = inp.profiles[teacher]
    task_scores = _per_task(inp.scores[teacher], "score")
    return {
        "model": teacher,
        "parameters": (prof.get("parameters") or {}).get("total"),
        "latency": collect.latency(prof),
        "latency_by_length": collect.latency_by_length(prof)[1],
        "task_scores": task_scores,
        "glue": seeds.glue_of(task_scores, tasks),
        "glue_without_wnli": seeds.glue_of(task_scores, tasks, ("wnli",)),
    }


def _mark_pareto(rows: list[dict], teacher_latency: Mapping[str, dict]) -> dict:
    """The Pareto frontier of GLUE score against latency at the smallest profiled batch; sets each
    row's `pareto_optimal` (None for a row without both figures)."""
    key = (min(teacher_latency, key=lambda k: int(k[6:]) if k[6:].isdigit() else 10**9)
           if teacher_latency else None)
    candidates = [(r["model"], r["latency_ms"][key]["median"], r["glue_score"]) for r in rows
                  if key in r["latency_ms"] and num(r["latency_ms"][key]["median"]) is not None
                  and r["glue_score"] is not None]
    frontier = pareto_frontier(candidates)
    for r in rows:
        r["pareto_optimal"] = (r["model"] in frontier) if any(c[0] == r["model"] for c in candidates) else None
    return {"latency": key, "score": "glue_score", "frontier": frontier}


def _setup_warnings(inp: collect.Inputs, models: list[str], teacher: str, warnings: list[str]) -> None:
    """Models profiled on another setup than the teacher; students trained on a transfer set; training data
    capped below the full set."""
    dev = inp.profiles[teacher].get("device") or {}
    for m in models:
        other = inp.profiles[m].get("device") or {}
        diff = [k for k in ("type", "name", "cpu_model", "threads", "gpu_name", "torch", "transformers")
                if other.get(k) != dev.get(k)]
        if m != teacher and diff:
            warnings.append(f"{m} was profiled on a different setup than the teacher ({', '.join(diff)} "
                            "differ); its latency and speed-up are not comparable")
    for m in models:
        xfer = {t: meta["transfer_rows"] for t, meta in inp.metas[m].items() if meta.get("transfer_rows")}
        if xfer:
            warnings.append(f"{m} also trained on a transfer set: the capped tasks' other training texts, gold labels "
                            "dropped, labelled by the teacher (" + ", ".join(f"{t} {n}" for t, n in xfer.items())
                            + " texts); the teacher and the no-KD twins saw only the capped labelled set")
    for d in inp.data:
        if d["capped"]:
            warnings.append(f"{d['task']} {d['split']}: capped to {d['rows_used']} of {d['rows']} rows "
                            f"(max_train={d['max_train']}); scores are not comparable to full-data runs")


def _provenance(results: Path, inp: collect.Inputs, teacher: str, config: Any, cfg_sha: str,
                device_peaks: dict, warnings: list[str]) -> dict:
    """Config, versions and device (from the teacher's profile), peaks, data files, wall time per rule."""
    t_prof = inp.profiles[teacher]
    dev = t_prof.get("device") or {}
    return {
        "config": config,
        "config_sha256": cfg_sha,
        "versions": {
            "glueslim": __version__,
            "python": dev.get("python"),
            "torch": dev.get("torch"),
            "transformers": dev.get("transformers"),
            "cuda": dev.get("cuda"),
            "jinja2": jinja2.__version__,
        },
        "device": dev,
        "int8_support": int8_support(dev.get("cpu_flags") or []),
        "instruction_sets": deployed.instruction_sets(dev.get("cpu_flags") or []),
        "peak_flops": t_prof.get("peak_flops"),
        "device_peak_flops": device_peaks.get(floors.device_key(t_prof), {}),
        "data": inp.data,
        "stage_seconds": collect.read_stage_seconds(results / "benchmarks", warnings),
    }


def _generated_at() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.strip().isdigit():
        ts = datetime.fromtimestamp(int(epoch), tz=timezone.utc)
    else:
        ts = datetime.now(timezone.utc)
    return ts.isoformat(timespec="seconds")


def build_leaderboard(
    results: str | os.PathLike,
    models: Sequence[str],
    teacher: str,
    tasks: Sequence[str],
    config: Any,
    generated_at: str | None = None,
    skipped_forms: Sequence[dict] | None = None,
    seed_runs: Mapping | None = None,
    twins: Mapping | None = None,
    published: Mapping | None = None,
    references: Mapping | None = None,
    ablation: Mapping | None = None,
) -> dict:
    """Read every input under `results` and return the leaderboard.json document (writes nothing).
    `skipped_forms`: the (model, form) rows the workflow did not run, with why ({"model", "form", "row",
    "reason"}), shown as notes. `seed_runs`, `twins`, `published` (with the loaded `references`), `ablation`:
    the leaderboard command's JSON flags of the same names (glueslim.report.seeds, comparisons, published_view)."""
    results = Path(results)
    models, tasks = list(models), list(tasks)
    _validate_args(models, teacher, tasks)
    skipped = deployed.check_skipped_forms(list(skipped_forms or []), "skipped forms")
    seed_map, twin_map = seeds.check_seed_runs(seed_runs, models), comparisons.check_twins(twins, models)
    pub_map, abl_spec = (published_view.check_published(published, models, references),
                         comparisons.check_ablation(ablation, models))
    warnings: list[str] = []
    try:
        cfg_sha = config_sha256(config)
    except (TypeError, ValueError) as e:
        raise UserError(f"the run config is not strict JSON: {e}") from None
    inp = collect.read_inputs(results, models, teacher, tasks, warnings)
    seed_records = seeds.apply(results, inp.scores, seed_map, tasks, warnings)  # seeded rows: mean scores
    split = collect.split_of(inp.scores)

    cfg_profile = config.get("profile") if isinstance(config, dict) else None
    cfg_runs = num(cfg_profile.get("runs")) if isinstance(cfg_profile, dict) else None
    teacher_figs = _teacher_figures(inp, teacher, tasks)
    device_peaks = floors.device_peaks(inp.profiles)
    rows = [_row(m, inp, teacher_figs, tasks, device_peaks, cfg_runs, models, warnings) for m in models]
    seeds.attach(rows, seed_records, teacher_figs["glue"])
    published_view.attach(rows, pub_map, references)
    deployed.sort_rows(rows, models)
    seeds.mark_noise(rows)
    pareto = _mark_pareto(rows, teacher_figs["latency"])

    _setup_warnings(inp, models, teacher, warnings)
    ablations = collect.read_ablations(results / "ablations")
    provenance = _provenance(results, inp, teacher, config, cfg_sha, device_peaks, warnings)
    return collect.clean({
        "schema_version": SCHEMA_VERSION,
        "generated_at": generated_at or _generated_at(),
        "split": split,
        "note": NOTE,
        "teacher": teacher,
        "tasks": tasks,
        "rows": rows,
        "pareto": pareto,
        "best_per_budget": budget.budget_tables(rows, teacher, score=pareto["score"]),
        "forms": deployed.forms_summary(rows),
        "skipped_forms": deployed.skipped_notes(skipped, models, warnings),
        "curves": inp.curves,
        "provenance": provenance,
        "ablations": ablations,
        "twins": comparisons.twin_table(rows, twin_map),
        "seed_ablation": comparisons.ablation_table(rows, abl_spec) if abl_spec else None,
        "published": published_view.table(references, pub_map) if references is not None else None,
        "warnings": warnings,
    })
