"""A small results/ folder for the report tests (two models, two tasks, hand-chosen numbers), and helpers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glueslim.report.build import build_leaderboard

EVIL = "<script>alert(1)</script>\"&'"
TEACHER = "teacher"
STUDENT = "distil3"
TASKS = ["sst2", "mrpc"]
CONFIG = {"models": [TEACHER, STUDENT], "note": EVIL, "lr": 3e-5, "tasks": TASKS}


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1), encoding="utf-8")


# hand-chosen scores: teacher sst2 0.90, mrpc mean(0.88, 0.84) = 0.86 -> GLUE 0.88
#                     student sst2 0.85, mrpc mean(0.80, 0.76) = 0.78 -> GLUE 0.815
METRICS = {
    TEACHER: {"sst2": {"accuracy": 0.90}, "mrpc": {"f1": 0.88, "accuracy": 0.84}},
    STUDENT: {"sst2": {"accuracy": 0.85}, "mrpc": {"f1": 0.80, "accuracy": 0.76}},
}
PARAMS = {TEACHER: 22_700_000, STUDENT: 11_350_000}  # compression 2.0
STUDENT_PARAMS = PARAMS[STUDENT]
LAT = {TEACHER: {1: 10.0, 32: 200.0}, STUDENT: {1: 4.0, 32: 80.0}}  # speed-up 2.5 at both
# batch 1: the length sweep (128 tokens shared with the batch sweep)
LAT_LEN = {TEACHER: {32: 3.0, 128: 10.0, 512: 60.0}, STUDENT: {32: 2.0, 128: 4.0, 512: 20.0}}
PEAK = 1e11  # FLOP/s


def _entry(model: str, bs: int, seq: int, med: float) -> dict:
    macs = PARAMS[model] * seq * bs
    return {"batch_size": bs, "seq_length": seq, "device": "cpu", "threads": 2, "timer": "perf_counter",
            "warmup": 3, "runs": 20, "median_ms": med, "q1_ms": med * 0.95, "q3_ms": med * 1.05,
            "iqr_ms": med * 0.1, "min_ms": med * 0.9, "max_ms": med * 1.2, "throughput_per_s": bs / med * 1000,
            "macs": macs, "floor_ms": 2 * macs / PEAK * 1000, "pct_of_peak": 2 * macs / PEAK * 1000 / med * 100}


def _profile(model: str, device_name: str = "cpu") -> dict:
    return {
        "model": model,
        "model_dir": f"results/models/{model}/sst2/model",
        "parameters": {"total": PARAMS[model], "embeddings": PARAMS[model] // 2,
                       "without_embeddings": PARAMS[model] - PARAMS[model] // 2},
        "macs": {"total": PARAMS[model] * 128, "linear": PARAMS[model] * 100, "attention": 1000,
                 "other": 10, "seq_length": 128, "batch_size": 1},
        "macs_by_length": [{"seq_length": n, "total": PARAMS[model] * n, "linear": PARAMS[model] * n - 7 * n * n,
                            "attention": 7 * n * n, "other": 0} for n in (32, 128, 512)],
        "size_on_disk_bytes": PARAMS[model] * 4,
        "peak_flops": {"flops_per_s": PEAK, "candidates": {"float32": PEAK},
                       "method": "best of timed square torch.matmul", "dtype": "float32",
                       "matmul_sizes": [512, 1024], "best_size": 1024, "runs": 10, "warmup": 2, "threads": 2,
                       "tf32": None},
        "sweeps": {"batch": {"seq_length": 128, "batch_sizes": [1, 32]},
                   "length": {"batch_size": 1, "seq_lengths": [32, 128, 512]}, "skipped": []},
        "latency": [_entry(model, bs, 128, med) for bs, med in LAT[model].items()]
                   + [_entry(model, 1, n, med) for n, med in LAT_LEN[model].items() if n != 128],
        "peak_memory_mb": 512.0,
        "peak_memory_kind": "rss",
        "device": {"type": device_name, "name": "cpu", "cpu_model": "Fake CPU <b>9000</b>",
                   "cpu_flags": ["avx2", "fma"], "threads": 2, "torch": "2.4.0",
                   "transformers": "4.45.0", "python": "3.11.9", "cuda": None, "gpu_name": None},
    }


def make_results(root: Path, *, student_name: str = STUDENT, method: str = "DistilBERT-style KD") -> Path:
    results = root / "results"
    names = {TEACHER: TEACHER, STUDENT: student_name}
    for key, model in names.items():
        tasks = {}
        for t, m in METRICS[key].items():
            n = 872 if t == "sst2" else 408
            tasks[t] = {"metrics": m, "score": sum(m.values()) / len(m), "n": n}
        scores = [v["score"] for v in tasks.values()]
        _write(results / "scores" / f"{model}.json", {
            "model": model, "split": "dev", "tasks": tasks,
            "glue_score": sum(scores) / len(scores), "glue_score_without_wnli": sum(scores) / len(scores)})
        prof = _profile(key)
        prof["model"] = model
        _write(results / "profile" / f"{model}.json", prof)
        for t in TASKS:
            d = results / "models" / model / t
            _write(d / "glueslim.json", {
                "model": model, "task": t,
                "method": "fine-tuned teacher" if key == TEACHER else method,
                "base_model": "sentence-transformers/all-MiniLM-L6-v2",
                "teacher": None if key == TEACHER else TEACHER,
                "num_layers": 6 if key == TEACHER else 3,
                "layer_map": None if key == TEACHER else [0, 2, 4],
                "hyperparameters": {"lr": 5e-5, "epochs": 3, "batch_size": 32}})
            metric = "accuracy"
            lines = [{"epoch": e, "step": 10 * e, "train_loss": 0.7 / e, "val_loss": 0.6 / e + 0.05,
                      "val_metrics": {metric: 0.7 + 0.05 * e} | ({"f1": 0.7 + 0.04 * e} if t == "mrpc" else {}),
                      "seconds": 12.5, "examples": 400, "lr": 0.0} for e in (1, 2, 3)]
            (d / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    for t in TASKS:
        _write(results / "data" / t / "manifest.json", {
            "task": t, "source": {"kind": "local", "path": "/data/glue"},
            "splits": {"train": {"file": "train.jsonl", "rows": 2000, "rows_source": 67349, "capped": True},
                       "validation": {"file": "validation.jsonl", "rows": 872, "rows_source": 872, "capped": False}},
            "source_files": [
                {"split": "train", "path": f"/data/glue/{t}/train.tsv", "sha256": "a" * 64, "rows": 67349,
                 "official_rows": 67349},
                {"split": "validation", "path": f"/data/glue/{t}/dev.tsv", "sha256": "b" * 64, "rows": 872,
                 "official_rows": 872}],
            "max_train": 2000, "seed": 13})
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    bench = {"finetune_teacher": {"sst2": 100.5, "mrpc": 50.0}, "distill_student": {"distil3_sst2": 30.25},
             "leaderboard": {"leaderboard": 9.0}}  # the report's own (stale) benchmark is left out
    for rule, files in bench.items():
        for name, secs in files.items():
            p = results / "benchmarks" / rule / f"{name}.tsv"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(header + f"{secs}\t0:01:40\t900\t1000\t800\t850\t1\t2\t90\t95\n", encoding="utf-8")
    return results


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return make_results(tmp_path)


def build(results: Path, models=(TEACHER, STUDENT), config=CONFIG, **kwargs) -> dict:
    return build_leaderboard(results, list(models), TEACHER, TASKS, config,
                             generated_at="2025-01-02T03:04:05+00:00", **kwargs)


def row_of(doc: dict, model: str) -> dict:
    return next(r for r in doc["rows"] if r["model"] == model)


# --------------------------------------------------------------------------------------------
# deployed forms: a <model>-<form> row beside its model's
# --------------------------------------------------------------------------------------------

KERNELS = {"bf16": ("bfloat16", "bfloat16"), "fp16": ("float16", "float16"), "int8-dynamic": ("int8", "float32"),
           "int8-static": ("int8", "float32"), "onnx": ("float32", "float32"), "onnx-int8": ("int8", "float32")}


def add_form(results: Path, source: str, form: str, *, lat: dict | None = None, metrics: dict | None = None,
             peaks: dict | None = None, native: bool = True, reason: str | None = None,
             holdbacks: dict | None = None, backend: str | None = None, row: str | None = None) -> str:
    """Write the score, profile and model files of the row `<source>-<form>` (a deployed form of `source`, which
    make_results wrote): its latencies `lat` {batch size: ms} (default: half the source's), its metrics
    (default: the source's), the profile's `peaks` {dtype: FLOP/s} (default float32 PEAK and int8 4 PEAK) and its
    own floors at those peaks. Returns the row name."""
    row = row or f"{source}-{form}"
    backend = backend or ("onnxruntime" if form.startswith("onnx") else "pytorch")
    base = json.loads((results / "profile" / f"{source}.json").read_text())
    base_scores = json.loads((results / "scores" / f"{source}.json").read_text())
    metrics = metrics or {t: e["metrics"] for t, e in base_scores["tasks"].items()}
    tasks = {t: {"metrics": m, "score": sum(m.values()) / len(m), "n": 100} for t, m in metrics.items()}
    _write(results / "scores" / f"{row}.json", {"model": row, "split": "dev", "tasks": tasks})
    lin_dt, att_dt = KERNELS.get(form, ("float32", "float32"))
    kernels = {"linear": lin_dt, "attention": att_dt, "other": "float32"}
    peaks = peaks if peaks is not None else {"float32": PEAK, "int8": 4 * PEAK}
    lib = "onnxruntime" if backend == "onnxruntime" else "pytorch"
    lat = lat or {e["batch_size"]: e["median_ms"] / 2 for e in base["latency"] if e["seq_length"] == 128}
    # as glueslim.profile writes it: every product is a linear layer or an attention product (no "other")
    macs = {**base["macs"], "linear": base["macs"]["total"] - base["macs"]["attention"], "other": 0}
    entries = []
    for bs, med in lat.items():
        e = {**next(x for x in base["latency"] if x["seq_length"] == 128), "batch_size": bs, "median_ms": med,
             "q1_ms": med * 0.95, "q3_ms": med * 1.05, "iqr_ms": med * 0.1, "min_ms": med * 0.9, "max_ms": med * 1.2,
             "macs": macs["total"] * bs, "runner": "onnxruntime" if lib == "onnxruntime" else "torch.compile"}
        lin, att = macs["linear"] * bs, macs["attention"] * bs
        if peaks.get(lin_dt) and peaks.get(att_dt):
            e["floor_ms"] = (2 * lin / peaks[lin_dt] + 2 * att / peaks[att_dt]) * 1000
            e["pct_of_peak"] = e["floor_ms"] / med * 100
            e["floor_dtype"] = lin_dt if lin_dt == att_dt else f"{lin_dt} linear + {att_dt} attention"
        else:
            e.pop("floor_ms", None), e.pop("pct_of_peak", None)
            e["floor_dtype"] = None
        entries.append(e)
    peak_dicts = {dt: {"flops_per_s": v, "dtype": dt, "backend": lib, "method": "timed matmul"} for dt, v in peaks.items()}
    key = (lambda dt: dt if lib == "pytorch" else f"{lib}:{dt}")
    prof = {**base, "model": row, "form": form, "backend": backend, "native": native,
            "not_native_reason": reason, "latency": entries, "kernels": kernels, "macs": macs,
            "peaks": peak_dicts,
            "peak_flops": {**peak_dicts.get(lin_dt, {"flops_per_s": None, "dtype": lin_dt}),
                           "candidates": {key(dt): v for dt, v in peaks.items()}},
            "sweeps": {"batch": {"seq_length": 128, "batch_sizes": sorted(lat)},
                       "length": {"batch_size": 1, "seq_lengths": [], "not_timed": "batch sweep only"},
                       "skipped": [], "runner": e["runner"]},
            "size_on_disk_bytes": base["size_on_disk_bytes"] // (4 if "int8" in form else 2)}
    prof.pop("macs_by_length", None)
    if holdbacks is not None:
        prof["holdbacks"] = holdbacks
    _write(results / "profile" / f"{row}.json", prof)
    for t in TASKS:
        src = json.loads((results / "models" / source / t / "glueslim.json").read_text())
        _write(results / "models" / row / t / "glueslim.json", {
            **src, "model": row, "method": f"{src['method']} + {form}", "form": form, "backend": backend,
            "deployed_from": f"results/models/{source}/{t}", "kernels": {"linear": lin_dt, "attention": att_dt},
            "native": native})
        (results / "models" / row / t / "train_log.jsonl").write_text(
            (results / "models" / source / t / "train_log.jsonl").read_text(), encoding="utf-8")
    return row


# --------------------------------------------------------------------------------------------
# seeds: score files of a row's other runs (`<row>-seed<S>`), which have no profile or model folder
# --------------------------------------------------------------------------------------------

def write_scores(results: Path, run: str, metrics: dict) -> None:
    """results/scores/<run>.json with these metrics {task: {metric: value}} (scores: the metrics' mean)."""
    tasks = {t: {"metrics": m, "score": sum(m.values()) / len(m), "n": 100} for t, m in metrics.items()}
    _write(results / "scores" / f"{run}.json", {"model": run, "split": "dev", "tasks": tasks})


def add_model(results: Path, name: str) -> str:
    """Another student row `name` (the fixture student's profile, model folders and scores under its name)."""
    make_results(results.parent, student_name=name)
    return name
