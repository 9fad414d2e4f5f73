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
from glueslim.cli import UserError

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
LAT = {TEACHER: {1: 10.0, 32: 200.0}, STUDENT: {1: 4.0, 32: 80.0}}  # speed-up 2.5 at both


def _profile(model: str, device_name: str = "cpu") -> dict:
    return {
        "model": model,
        "model_dir": f"results/models/{model}/sst2/model",
        "parameters": {"total": PARAMS[model], "embeddings": PARAMS[model] // 2,
                       "without_embeddings": PARAMS[model] - PARAMS[model] // 2},
        "macs": {"total": PARAMS[model] * 128, "linear": PARAMS[model] * 100, "attention": 1000,
                 "other": 10, "seq_length": 128, "batch_size": 1},
        "size_on_disk_bytes": PARAMS[model] * 4,
        "latency": [
            {"batch_size": bs, "seq_length": 128, "warmup": 3, "runs": 20, "median_ms": med,
             "q1_ms": med * 0.95, "q3_ms": med * 1.05, "iqr_ms": med * 0.1, "min_ms": med * 0.9,
             "max_ms": med * 1.2, "throughput_per_s": bs / med * 1000}
            for bs, med in LAT[model].items()
        ],
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


def test_missing_scores_and_logs_name_the_rule(results):
    (results / "models" / STUDENT / "sst2" / "train_log.jsonl").unlink()
    with pytest.raises(UserError, match=r"train_log\.jsonl.*distill_student"):
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


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed")
def test_html_renders_in_headless_chromium(results, tmp_path):
    html = tmp_path / "leaderboard.html"
    html.write_text(report.render_html(build(results)), encoding="utf-8")
    png = tmp_path / "shot.png"
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}", "--window-size=1400,2000",
           html.as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120)
    assert png.is_file() and png.stat().st_size > 20_000
