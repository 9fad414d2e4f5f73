"""Tests of glueslim.report: leaderboard arithmetic, escaping, self-containedness, errors, charts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from glueslim import report
from glueslim.errors import UserError

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


def build(results: Path, models=(TEACHER, STUDENT), config=CONFIG) -> dict:
    return report.build_leaderboard(results, list(models), TEACHER, TASKS, config,
                                    generated_at="2025-01-02T03:04:05+00:00")


def row_of(doc: dict, model: str) -> dict:
    return next(r for r in doc["rows"] if r["model"] == model)


# ------------------------------------------------------------------ arithmetic

def test_glue_score_and_pct_of_teacher(results):
    doc = build(results)
    t, s = row_of(doc, TEACHER), row_of(doc, STUDENT)
    assert t["task_scores"] == pytest.approx({"sst2": 0.90, "mrpc": 0.86})
    assert s["task_scores"] == pytest.approx({"sst2": 0.85, "mrpc": 0.78})
    assert t["glue_score"] == pytest.approx(0.88)
    assert s["glue_score"] == pytest.approx(0.815)
    assert s["glue_score_without_wnli"] == pytest.approx(0.815)  # no wnli in the task list
    assert t["pct_of_teacher"] == pytest.approx(100.0)
    assert s["pct_of_teacher"] == pytest.approx(0.815 / 0.88 * 100)  # 92.61...
    assert s["pct_of_teacher_by_task"] == pytest.approx({"sst2": 0.85 / 0.90 * 100, "mrpc": 0.78 / 0.86 * 100})
    assert s["task_metrics"]["mrpc"] == {"f1": 0.80, "accuracy": 0.76}


def test_speedup_compression_and_sizes(results):
    doc = build(results)
    s, t = row_of(doc, STUDENT), row_of(doc, TEACHER)
    assert s["speedup"] == pytest.approx({"batch_1": 10.0 / 4.0, "batch_32": 200.0 / 80.0})
    assert t["speedup"] == pytest.approx({"batch_1": 1.0, "batch_32": 1.0})
    assert s["compression"] == pytest.approx(2.0)
    assert s["latency_ms"]["batch_1"]["median"] == pytest.approx(4.0)
    assert s["latency_ms"]["batch_32"]["iqr"] == pytest.approx(8.0)
    assert s["parameters"] == 11_350_000
    assert s["parameters_without_embeddings"] == 11_350_000 - 11_350_000 // 2
    assert s["size_on_disk_mb"] == pytest.approx(11_350_000 * 4 / 1e6)
    assert s["macs"] == 11_350_000 * 128 and s["seq_length"] == 128


def test_rows_sorted_by_glue_desc_and_document_shape(results):
    # list the student first: it must still come second
    doc = build(results, models=(STUDENT, TEACHER))
    glue = [r["glue_score"] for r in doc["rows"]]
    assert glue == sorted(glue, reverse=True)
    assert [r["model"] for r in doc["rows"]] == [TEACHER, STUDENT]
    assert doc["schema_version"] == 1 and doc["split"] == "dev" and doc["teacher"] == TEACHER
    assert doc["tasks"] == TASKS
    assert len(doc["curves"][STUDENT]["sst2"]) == 3
    prov = doc["provenance"]
    assert prov["config_sha256"] == report.config_sha256(CONFIG)
    assert prov["stage_seconds"] == {"distill_student": pytest.approx(30.25),
                                     "finetune_teacher": pytest.approx(150.5)}
    assert {(d["task"], d["split"]) for d in prov["data"]} == {(t, s) for t in TASKS for s in ("train", "validation")}
    train = next(d for d in prov["data"] if d["split"] == "train")
    assert train["capped"] is True and train["rows_used"] == 2000 and train["sha256"] == "a" * 64
    assert prov["device"]["threads"] == 2
    json.dumps(doc, allow_nan=False)  # strict JSON


def test_latency_sweeps_floor_and_macs_split(results):
    doc = build(results)
    s, t = row_of(doc, STUDENT), row_of(doc, TEACHER)
    assert list(s["latency_ms"]) == ["batch_1", "batch_32"]  # the batch sweep only, at 128 tokens
    assert list(s["latency_by_length_ms"]) == ["seq_32", "seq_128", "seq_512"] and s["length_batch_size"] == 1
    assert s["latency_by_length_ms"]["seq_512"]["median"] == pytest.approx(20.0)
    assert s["speedup_by_length"] == pytest.approx({"seq_32": 1.5, "seq_128": 2.5, "seq_512": 3.0})
    assert t["speedup_by_length"] == pytest.approx({"seq_32": 1.0, "seq_128": 1.0, "seq_512": 1.0})
    e = s["latency_ms"]["batch_32"]
    assert e["floor_ms"] == pytest.approx(2 * STUDENT_PARAMS * 128 * 32 / PEAK * 1000)
    assert e["pct_of_peak"] == pytest.approx(e["floor_ms"] / 80.0 * 100)
    assert (e["runs"], e["warmup"], e["threads"], e["device"]) == (20, 3, 2, "cpu")
    assert s["timing"] == {"device": "cpu", "device_type": "cpu", "threads": 2, "warmup": 3, "runs": 20,
                           "peak_flops_per_s": PEAK, "peak_dtype": "float32"}
    assert s["peak_flops_per_s"] == PEAK and doc["provenance"]["peak_flops"]["flops_per_s"] == PEAK
    assert s["macs_linear"] == STUDENT_PARAMS * 100 and s["macs_attention"] == 1000
    assert s["macs_by_length"]["seq_512"] == {"total": STUDENT_PARAMS * 512,
                                              "linear": STUDENT_PARAMS * 512 - 7 * 512**2, "attention": 7 * 512**2}


def test_floor_uses_the_device_best_peak(results):
    # the student's job measured a lower peak (load from elsewhere): the device's best, the teacher's, is used
    path = results / "profile" / f"{STUDENT}.json"
    prof = json.loads(path.read_text())
    prof["peak_flops"].update(flops_per_s=PEAK / 2, candidates={"float32": PEAK / 2})
    path.write_text(json.dumps(prof))
    doc = build(results)
    s = row_of(doc, STUDENT)
    assert s["peak_flops_per_s"] == PEAK and s["timing"]["peak_dtype"] == "float32"
    assert s["latency_ms"]["batch_1"]["floor_ms"] == pytest.approx(2 * STUDENT_PARAMS * 128 / PEAK * 1000)
    assert doc["provenance"]["device_peak_flops"] == {"float32": PEAK}
    # an int8 model: its faster int8 kernel bounds it, the float32 one does not
    prof["peak_flops"].update(flops_per_s=4 * PEAK, dtype="int8", candidates={"float32": PEAK / 2, "int8": 4 * PEAK})
    path.write_text(json.dumps(prof))
    doc = build(results)
    s, t = row_of(doc, STUDENT), row_of(doc, TEACHER)
    assert s["peak_flops_per_s"] == 4 * PEAK and s["timing"]["peak_dtype"] == "int8"
    assert t["peak_flops_per_s"] == PEAK  # the teacher runs float32 kernels only
    assert s["latency_ms"]["batch_1"]["floor_ms"] == pytest.approx(2 * STUDENT_PARAMS * 128 / (4 * PEAK) * 1000)


def test_profile_without_sweeps_still_reads(results):
    # a profile from before the sweeps: one length, no floor
    path = results / "profile" / f"{STUDENT}.json"
    prof = json.loads(path.read_text())
    for key in ("sweeps", "macs_by_length", "peak_flops"):
        del prof[key]
    prof["latency"] = [{k: v for k, v in e.items() if k not in ("macs", "floor_ms", "pct_of_peak")}
                       for e in prof["latency"] if e["seq_length"] == 128]
    path.write_text(json.dumps(prof))
    doc = build(results)
    s = row_of(doc, STUDENT)
    assert list(s["latency_ms"]) == ["batch_1", "batch_32"] and s["latency_by_length_ms"] == {}
    assert s["latency_ms"]["batch_1"]["floor_ms"] is None and s["speedup"]["batch_1"] == pytest.approx(2.5)
    assert "<svg" in report.render_html(doc)


def test_fewer_runs_than_configured_is_warned(results):
    config = {**CONFIG, "profile": {"runs": 30}}
    doc = build(results, config=config)
    assert sum("fewer than the 30 configured" in w for w in doc["warnings"]) == 2 * 4  # 2 models x 4 points


def test_pareto_frontier():
    pts = [("a", 10.0, 0.80), ("b", 5.0, 0.70), ("c", 6.0, 0.65), ("d", 20.0, 0.80), ("e", 5.0, 0.60)]
    # c: b is faster and better; d: a is as good and faster; e: ties b on latency, worse
    assert report.pareto_frontier(pts) == ["b", "a"]
    assert report.pareto_frontier([]) == []


def test_pareto_in_document_and_chart(results):
    doc = build(results)
    assert doc["pareto"] == {"latency": "batch_1", "score": "glue_score", "frontier": [STUDENT, TEACHER]}
    assert row_of(doc, STUDENT)["pareto_optimal"] is True
    html = report.render_html(doc)
    m = re.search(r'<svg class="chart large"[^>]*aria-label="GLUE score against latency[^"]*".*?</svg>', html, re.S)
    assert m, "no Pareto chart"
    svg = m.group(0)
    assert svg.count('class="point"') == 2 and svg.count('data-frontier="1"') == 2
    assert 'class="frontier"' in svg
    # marker area proportional to parameters: the teacher has 2x the student's
    r = {name: float(rad) for name, rad in re.findall(r'data-model="([^"]+)"[^>]* r="([0-9.]+)"', svg)}
    assert (r[TEACHER] / r[STUDENT]) ** 2 == pytest.approx(2.0, rel=0.02)


def test_heat_map_cells(results):
    html = report.render_html(build(results))
    table = re.search(r'<table class="heat sortable" id="heatmap-table">.*?</table>', html, re.S).group(0)
    assert table.count('class="hv"') == 2 * (len(TASKS) + 1)
    bg, _ = report.heat_color(0.85 / 0.90 * 100)
    assert f"background:{bg}" in table and "94.4" in table  # student sst2: 85/90
    assert report.heat_color(100.0) == ("#ffffff", "#1b1f24")
    assert report.heat_color(None)[0] == "#eef0f2"
    assert report.heat_color(50.0) == report.heat_color(80.0)  # saturated 20 points away
    assert report.heat_color(90.0)[0] != report.heat_color(110.0)[0]


def test_speed_section_tables_and_charts(results):
    html = report.render_html(build(results))
    for table_id in ("summary-table", "latency-length-table", "latency-batch-table", "compute-table",
                     "leaderboard-table", "heatmap-table"):
        assert f'id="{table_id}"' in html
    assert "512 tokens (ms)" in html and "batch 32 (ms)" in html
    assert "Latency against sequence length (batch 1)" in html and "Latency against batch size (128 tokens)" in html
    assert "3 warm-up + 20 timed runs" in html and "2 threads" in html  # every timing states how
    assert "floor 14.53" in html  # teacher batch 1 x 32 tokens: 2 * 22.7e6 * 32 MACs / 1e11 FLOP/s = 14.53 ms
    assert "100.0 GFLOP/s" in html


def test_base_model_per_task_folder_is_one_value(results):
    for t in TASKS:
        path = results / "models" / STUDENT / t / "glueslim.json"
        meta = json.loads(path.read_text())
        meta["base_model"] = f"results/models/{TEACHER}/{t}"
        path.write_text(json.dumps(meta))
    doc = build(results)
    assert row_of(doc, STUDENT)["base_model"] == "results/models/teacher/{task}"
    assert not any("base_model" in w for w in doc["warnings"])


# ------------------------------------------------------------------ ablations

def test_ablation_tables(results):
    abl = results / "ablations"
    _write(abl / "b_temperature.json", {
        "title": "KD temperature", "caption": "distil on " + EVIL, "order": 2,
        "columns": ["temperature", {"key": "glue", "label": "GLUE", "format": "score"},
                    {"key": "params", "label": "Params", "format": "params"}],
        "rows": [[1.0, 0.801, 11_350_000], {"temperature": 2.0, "glue": 0.815, "params": None}]})
    _write(abl / "a_layers.json", {"title": EVIL, "columns": ["layers", "pct"], "rows": [[EVIL, 93.25]], "order": 1})
    doc = build(results)
    assert [a["id"] for a in doc["ablations"]] == ["a_layers", "b_temperature"]
    t = doc["ablations"][1]
    assert [c["format"] for c in t["columns"]] == ["text", "score", "params"]
    assert t["rows"][1] == [2.0, 0.815, None]
    html = report.render_html(doc)
    assert "80.1" in html and "81.5" in html and "11.3M" in html and "93.25" in html and "KD temperature" in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)" in html
    assert html.index("a_layers.json") < html.index("b_temperature.json")


@pytest.mark.parametrize("bad, message", [
    ({"columns": ["a"], "rows": []}, "title"),
    ({"title": "t", "columns": [], "rows": []}, "columns"),
    ({"title": "t", "columns": ["a", "b"], "rows": [[1]]}, r"rows\[0\]"),
    ({"title": "t", "columns": ["a"], "rows": [{"zz": 1}]}, "zz"),
    ({"title": "t", "columns": [{"label": "a", "format": "weird"}], "rows": []}, "format"),
    ({"title": "t", "columns": ["a"], "rows": [[[1, 2]]]}, "cells"),
])
def test_bad_ablation_table_names_the_file(results, bad, message):
    _write(results / "ablations" / "broken.json", bad)
    with pytest.raises(UserError, match=message) as e:
        build(results)
    assert "broken.json" in str(e.value)


def test_standalone_figures_are_valid_svg(results):
    import xml.etree.ElementTree as ET

    figs = report.figures(build(results))
    assert sorted(figs) == sorted(report.FIGURES)
    for name, svg in figs.items():
        root = ET.fromstring(svg)
        assert root.tag == "{http://www.w3.org/2000/svg}svg", name
        assert root.find("{http://www.w3.org/2000/svg}style") is not None


def test_log_axis_ticks():
    assert report._log_ticks(1.0, 1000.0) == [1.0, 10.0, 100.0, 1000.0]
    assert report._log_ticks(30.0, 600.0) == [50.0, 100.0, 200.0, 500.0]
    ticks = report._log_ticks(145.0, 213.0)  # less than a decade: a linear grid inside the range
    assert len(ticks) >= 2 and all(145 <= t <= 213 for t in ticks)
    svg = report.svg_chart({"m": [(32, 1.0), (512, 100.0)], "m floor": [(32, 0.1), (512, 10.0)]}, "t",
                           x_label="len", x_log=True, y_log=True, x_ticks=[32, 128, 512], dashed=["m floor"])
    assert ">128</text>" in svg and 'stroke-dasharray="4 3"' in svg
    assert svg.count("<circle") == 2  # dashed reference lines have no dots


def test_config_sha256_is_canonical():
    a = report.config_sha256({"b": 1, "a": [1, 2]})
    assert a == report.config_sha256({"a": [1, 2], "b": 1})
    import hashlib
    assert a == hashlib.sha256(b'{"a":[1,2],"b":1}').hexdigest()


def test_missing_task_is_null_safe(results):
    path = results / "scores" / f"{STUDENT}.json"
    doc = json.loads(path.read_text())
    del doc["tasks"]["mrpc"]
    path.write_text(json.dumps(doc))
    lb = build(results)
    s = row_of(lb, STUDENT)
    assert s["task_scores"]["mrpc"] is None and s["glue_score"] is None and s["pct_of_teacher"] is None
    assert s["pct_of_teacher_by_task"]["mrpc"] is None
    assert lb["rows"][-1]["model"] == STUDENT  # null GLUE sorts last
    assert any("mrpc" in w for w in lb["warnings"])
    html = report.render_html(lb)
    assert "—" in html


def test_stored_score_is_recomputed(results):
    path = results / "scores" / f"{STUDENT}.json"
    doc = json.loads(path.read_text())
    doc["tasks"]["sst2"]["score"] = 0.99
    doc["glue_score"] = 0.99
    path.write_text(json.dumps(doc))
    lb = build(results)
    assert row_of(lb, STUDENT)["task_scores"]["sst2"] == pytest.approx(0.85)
    assert row_of(lb, STUDENT)["glue_score"] == pytest.approx(0.815)
    assert any("differs" in w for w in lb["warnings"])


# ------------------------------------------------------------------ errors

def test_missing_profile_is_user_error_naming_path(results):
    missing = results / "profile" / f"{STUDENT}.json"
    missing.unlink()
    with pytest.raises(UserError) as e:
        build(results)
    assert str(missing) in str(e.value) and "profile" in str(e.value)


def test_missing_scores_and_metadata_name_the_rule(results):
    # a model that was not trained (e.g. quantized after training) has no train_log.jsonl: no curve
    (results / "models" / STUDENT / "sst2" / "train_log.jsonl").unlink()
    doc = build(results)
    assert "sst2" not in doc["curves"][STUDENT] and "mrpc" in doc["curves"][STUDENT]
    assert row_of(doc, STUDENT)["method"] == "DistilBERT-style KD"
    report.render_html(doc)
    (results / "models" / STUDENT / "sst2" / "glueslim.json").unlink()
    with pytest.raises(UserError, match=r"glueslim\.json.*builds model `distil3`.*distill_student"):
        build(results)
    (results / "models" / TEACHER / "sst2" / "glueslim.json").unlink()
    with pytest.raises(UserError, match=r"glueslim\.json.*`finetune_teacher`"):
        build(results)
    (results / "scores" / f"{TEACHER}.json").unlink()
    with pytest.raises(UserError, match=r"scores/teacher\.json.*`score`"):
        build(results)


def test_teacher_must_be_listed(results):
    with pytest.raises(UserError, match="teacher"):
        report.build_leaderboard(results, [STUDENT], TEACHER, TASKS, {})


# ------------------------------------------------------------------ HTML

@pytest.fixture
def evil_html(tmp_path: Path) -> tuple[dict, str]:
    results = make_results(tmp_path, student_name=EVIL.replace("/", "_"), method=EVIL)
    doc = report.build_leaderboard(results, [TEACHER, EVIL.replace("/", "_")], TEACHER, TASKS, CONFIG)
    return doc, report.render_html(doc)


def test_html_escapes_every_string(evil_html):
    doc, html = evil_html
    assert "<script>alert" not in html
    assert "alert(1)" in html  # it is shown, escaped
    assert "&lt;script&gt;alert(1)" in html
    assert "<b>9000</b>" not in html  # device strings too
    # the embedded JSON cannot close its <script> block
    m = re.search(r'<script type="application/json" id="leaderboard-data">(.*?)</script>', html, re.S)
    assert m and "<" not in m.group(1)
    assert json.loads(m.group(1))["rows"][0]["model"] == doc["rows"][0]["model"]
    # only our two script blocks
    assert html.count("<script") == 2


def test_html_is_self_contained(evil_html):
    _, html = evil_html
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "<link" not in html.lower()
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.I)
    assert "@import" not in html and "url(" not in html
    assert "dev-set" in html and "test server is not used" in html


def test_html_has_table_curves_and_provenance(results):
    html = report.render_html(build(results))
    assert 'class="teacher"' in html and 'class="badge">teacher<' in html
    assert html.count('<svg class="chart"') == len(TASKS) * 2
    assert report.config_sha256(CONFIG) in html
    assert "Fake CPU" in html and "avx2 fma" in html
    assert "aaaaaaaaaaaaaaaa" in html  # data sha256 (abbreviated)
    assert "150.5" in html  # finetune wall seconds
    assert "90.0" in html and "81.5" in html  # scores ×100 with one decimal
    assert "2.50×" in html  # speed-up


def test_svg_chart_one_polyline_per_series():
    svg = report.svg_line_chart(
        {"train <loss>": [(1, 0.5), (2, 0.3), (3, 0.2)], "val loss": [(1, 0.6), (2, float("nan")), (3, 0.4)],
         "empty": []},
        "title & <b>")
    assert svg.count("<polyline") == 3
    assert "<b>" not in svg and "title &amp; &lt;b&gt;" in svg and "train &lt;loss&gt;" in svg
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    # a single point and no points at all still render
    assert report.svg_line_chart({"a": [(1, 1.0)]}, "one").count("<polyline") == 1
    assert "no data" in report.svg_line_chart({"a": []}, "none")


# ------------------------------------------------------------------ CLI

def test_cli_writes_json_and_html(results, tmp_path):
    out_json, out_html = tmp_path / "rep" / "leaderboard.json", tmp_path / "rep" / "leaderboard.html"
    cmd = [sys.executable, "-m", "glueslim", "leaderboard", "--results", str(results),
           "--models", TEACHER, STUDENT, "--teacher", TEACHER, "--tasks", *TASKS,
           "--config-json", json.dumps(CONFIG), "--out-json", str(out_json), "--out-html", str(out_html)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out_json.read_text())
    assert doc["provenance"]["config"] == CONFIG
    assert out_html.read_text().startswith("<!DOCTYPE html>")
    (results / "profile" / f"{STUDENT}.json").unlink()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "profile" in proc.stderr and "Traceback" not in proc.stderr


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit non-interlaced PNG, decoded with zlib alone."""
    import struct
    import zlib

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    bpp = 3 if color == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], (prev[x - bpp] if x >= bpp else 0)
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line) if bpp == 3 else bytes(v for i, v in enumerate(line) if i % 4 != 3))
        prev = line
    return width, height, rows


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Debian's chromium, headless, offline, with a throw-away profile (the documented command)."""
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
        capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian: apt-get install chromium)")
def test_html_renders_in_headless_chromium(results, tmp_path):
    _write(results / "ablations" / "t.json", {"title": "An ablation", "columns": ["a", "b"], "rows": [["x", 1]]})
    html = tmp_path / "leaderboard.html"
    html.write_text(report.render_html(build(results)), encoding="utf-8")
    # the page's script ran to its end without an error, and every section is in the rendered DOM
    dom = chromium(tmp_path, "--dump-dom", html.as_uri()).stdout
    assert 'data-ready="1"' in dom
    for anchor in ("leaderboard", "pareto", "heatmap", "speed", "compute", "curves", "ablations", "provenance"):
        assert f'id="{anchor}"' in dom
    assert 'tabindex="0"' in dom  # sortable headers were wired up
    png = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={png}", "--window-size=1400,2400", html.as_uri())
    width, height, rows = read_png(png)
    assert (width, height) == (1400, 2400)
    pixels = {row[i:i + 3] for row in rows[::4] for i in range(0, len(row), 12)}
    assert len(pixels) > 100  # text, tables and charts, not a blank or error page
    white = sum(row[i:i + 3] == b"\xff\xff\xff" for row in rows[::4] for i in range(0, len(row), 12))
    assert white < 0.97 * len(rows[::4]) * (width // 4)
    assert bytes.fromhex("fff4d6") in pixels  # the teacher's highlighted row
    assert any(abs(p[0] - 0x1f) < 40 and abs(p[1] - 0x77) < 40 and p[2] > 0x90 for p in pixels)  # chart blue


def test_int8_support_is_stated_from_the_cpu_flags():
    from glueslim.report import int8_support

    assert int8_support(["avx2", "avx512f", "avx512_vnni"]) == "int8 dot-product instructions: AVX512-VNNI"
    assert "AMX-INT8" in int8_support(["amx_int8", "avx512_vnni"])
    assert int8_support(["avx2", "fma"]).startswith("no VNNI or AMX")
