"""Tests of glueslim.report.build: the leaderboard arithmetic, sweeps and floors, Pareto frontier, provenance."""

from __future__ import annotations

import json

import pytest

from glueslim.errors import UserError
from glueslim.report.build import build_leaderboard, config_sha256, int8_support, pareto_frontier
from report_fixtures import CONFIG, PEAK, STUDENT, STUDENT_PARAMS, TASKS, TEACHER, build, results, row_of


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
    assert prov["config_sha256"] == config_sha256(CONFIG)
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
                           "peak_flops_per_s": PEAK, "peak_dtype": "float32", "floor_dtype": "float32",
                           "timed_with": "PyTorch eager", "emulated": False}
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


def test_fewer_runs_than_configured_is_warned(results):
    config = {**CONFIG, "profile": {"runs": 30}}
    doc = build(results, config=config)
    assert sum("fewer than the 30 configured" in w for w in doc["warnings"]) == 2 * 4  # 2 models x 4 points


def test_pareto_frontier():
    pts = [("a", 10.0, 0.80), ("b", 5.0, 0.70), ("c", 6.0, 0.65), ("d", 20.0, 0.80), ("e", 5.0, 0.60)]
    # c: b is faster and better; d: a is as good and faster; e: ties b on latency, worse
    assert pareto_frontier(pts) == ["b", "a"]
    assert pareto_frontier([]) == []


def test_base_model_per_task_folder_is_one_value(results):
    for t in TASKS:
        path = results / "models" / STUDENT / t / "glueslim.json"
        meta = json.loads(path.read_text())
        meta["base_model"] = f"results/models/{TEACHER}/{t}"
        path.write_text(json.dumps(meta))
    doc = build(results)
    assert row_of(doc, STUDENT)["base_model"] == "results/models/teacher/{task}"
    assert not any("base_model" in w for w in doc["warnings"])


def test_config_sha256_is_canonical():
    a = config_sha256({"b": 1, "a": [1, 2]})
    assert a == config_sha256({"a": [1, 2], "b": 1})
    import hashlib
    assert a == hashlib.sha256(b'{"a":[1,2],"b":1}').hexdigest()


def test_teacher_must_be_listed(results):
    with pytest.raises(UserError, match="teacher"):
        build_leaderboard(results, [STUDENT], TEACHER, TASKS, {})


def test_int8_support_is_stated_from_the_cpu_flags():
    assert int8_support(["avx2", "avx512f", "avx512_vnni"]) == "int8: AVX512-VNNI (no AVX-VNNI, AMX-INT8)"
    assert int8_support(["amx_int8", "avx512_vnni"]) == "int8: AVX512-VNNI, AMX-INT8 (no AVX-VNNI)"
    assert int8_support(["avx2", "fma"]).startswith("int8: none of AVX512-VNNI, AVX-VNNI, AMX-INT8")


def test_a_student_trained_on_a_transfer_set_is_named_in_the_warnings(results):
    assert not any("transfer set" in w for w in build(results)["warnings"])
    for task, n in (("sst2", 1200), ("mrpc", 0)):  # mrpc not capped: nothing beyond it
        meta = results / "models" / STUDENT / task / "glueslim.json"
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "transfer_rows": n}))
    [line] = [w for w in build(results)["warnings"] if "transfer set" in w]
    assert line == (f"{STUDENT} also trained on a transfer set: the capped tasks' other training texts, gold labels "
                    "dropped, labelled by the teacher (sst2 1200 texts); the teacher and the no-KD twins saw only "
                    "the capped labelled set")
