"""Tests of the leaderboard's deployed-form rows (report/deployed.py, report/floors.py): form and backend per row,
the row order, floors at the dtype-correct peak, emulated rows, what holds a row back, skipped forms, the CPU's
instructions per dtype, and their escaping in the page."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from glueslim.errors import UserError
from glueslim.report.deployed import instruction_sets
from glueslim.report.floors import is_matmul
from glueslim.report.render import render_html
from report_fixtures import (EVIL, PARAMS, PEAK, STUDENT, TASKS, TEACHER, add_form, build, results,  # noqa: F401
                             row_of)

P = PARAMS[TEACHER]
LOWER = {"sst2": {"accuracy": 0.89}, "mrpc": {"f1": 0.88, "accuracy": 0.84}}  # GLUE (0.89 + 0.86) / 2 = 0.875


def _int8_floor_ms(bs: int, int8_peak: float, f32_peak: float, params: int = P) -> float:
    """A form row's MACs at 128 tokens (report_fixtures.add_form): attention 1000 per sequence, the rest linear."""
    lin, att = (params * 128 - 1000) * bs, 1000 * bs
    return (2 * lin / int8_peak + 2 * att / f32_peak) * 1000


def test_form_rows_sit_with_their_model_fp32_first_and_ratios_are_against_the_teacher_fp32(results):
    bf16 = add_form(results, TEACHER, "bf16")
    i8 = add_form(results, TEACHER, "int8-static", metrics=LOWER)
    s8 = add_form(results, STUDENT, "int8-static")
    doc = build(results, models=(TEACHER, STUDENT, bf16, s8, i8))
    assert [r["model"] for r in doc["rows"]] == [TEACHER, bf16, i8, STUDENT, s8]
    t, b, q = row_of(doc, TEACHER), row_of(doc, bf16), row_of(doc, i8)
    assert (t["form"], t["backend"], t["source_model"], t["native"], t["emulated"]) == ("fp32", "pytorch", TEACHER,
                                                                                        True, False)
    assert (b["form"], b["backend"], b["source_model"], b["is_teacher"]) == ("bf16", "pytorch", TEACHER, False)
    assert b["kernels"] == {"linear": "bfloat16", "attention": "bfloat16", "other": "float32"}
    assert row_of(doc, s8)["source_model"] == STUDENT
    assert q["pct_of_teacher"] == pytest.approx(0.875 / 0.88 * 100)
    assert b["pct_of_teacher"] == pytest.approx(100.0)
    assert b["speedup"] == pytest.approx({"batch_1": 2.0, "batch_32": 2.0})  # half the teacher fp32's latency
    assert row_of(doc, s8)["speedup"]["batch_1"] == pytest.approx(10.0 / 2.0)
    assert b["latency_by_length_ms"] == {}  # a form row has a batch sweep only
    assert b["method"] == "fine-tuned teacher + bf16"
    assert [f["form"] for f in doc["forms"]] == ["fp32", "bf16", "int8-static"]
    assert doc["forms"][2]["rows"] == [i8, s8]
    assert doc["forms"][2]["kernels"] == {"linear": "int8", "attention": "float32", "other": "float32"}
    # the heat map and the Pareto plot take every (model, form) row
    html = render_html(doc)
    heat = re.search(r'id="heatmap-table">.*?</table>', html, re.S).group(0)
    assert heat.count('class="hv"') == 5 * (len(TASKS) + 1)
    pareto = re.search(r'aria-label="GLUE score against latency.*?</svg>', html, re.S).group(0)
    assert pareto.count('class="point"') == 5
    # a model's forms share its colour; each form has its marker shape; the training curves are shown once
    assert re.search(rf'<polygon class="point" data-model="{bf16}"[^>]*data-shape="diamond"', pareto)
    assert re.search(rf'<polygon class="point" data-model="{i8}"[^>]*data-shape="triangle"', pareto)
    fill = dict(re.findall(r'data-model="([^"]+)" data-frontier="\d" fill="(#[0-9a-f]+)"', pareto))
    assert fill[TEACHER] == fill[bf16] == fill[i8] != fill[STUDENT] == fill[s8]
    assert "form (marker shape)" in pareto
    assert html.count('<svg class="chart"') == len(TASKS) * 2
    summary = re.search(r'id="summary-table">.*?</table>', html, re.S).group(0)
    assert "bf16 <span class=\"pm\">· PyTorch</span>" in summary and "fp32 <span class=\"pm\">· PyTorch</span>" in summary


def test_int8_floors_use_the_device_best_int8_peak_never_the_float32_one(results):
    # the student's job measured a better float32 peak; another int8 job a better int8 peak; a job on another
    # device (4 threads) an even better one, which does not count
    path = results / "profile" / f"{STUDENT}.json"
    prof = json.loads(path.read_text())
    prof["peak_flops"].update(flops_per_s=2 * PEAK, candidates={"float32": 2 * PEAK})
    path.write_text(json.dumps(prof))
    i8 = add_form(results, TEACHER, "int8-static", peaks={"float32": PEAK, "int8": 4 * PEAK})
    s8 = add_form(results, STUDENT, "int8-dynamic", peaks={"float32": PEAK, "int8": 8 * PEAK})
    other = add_form(results, STUDENT, "int8-static", peaks={"float32": PEAK, "int8": 80 * PEAK})
    path = results / "profile" / f"{other}.json"
    prof = json.loads(path.read_text())
    prof["device"]["threads"] = 4
    path.write_text(json.dumps(prof))
    doc = build(results, models=(TEACHER, STUDENT, i8, s8, other))
    q = row_of(doc, i8)
    e = q["latency_ms"]["batch_32"]
    assert e["floor_ms"] == pytest.approx(_int8_floor_ms(32, 8 * PEAK, 2 * PEAK))
    assert e["floor_ms"] != pytest.approx(2 * P * 128 * 32 / (2 * PEAK) * 1000)
    assert e["pct_of_peak"] == pytest.approx(e["floor_ms"] / 100.0 * 100)
    assert e["floor_dtype"] == q["floor_dtype"] == "int8 linear + float32 attention"
    assert q["peaks"] == {"int8": 8 * PEAK, "float32": 2 * PEAK} and q["floors_from"] == "device"
    assert q["peak_flops_per_s"] == 8 * PEAK and q["timing"]["peak_dtype"] == "int8"
    # the fp32 rows: 2 MACs / the device's best float32 peak, as before
    t = row_of(doc, TEACHER)
    assert t["latency_ms"]["batch_1"]["floor_ms"] == pytest.approx(2 * P * 128 / (2 * PEAK) * 1000)
    assert t["floor_dtype"] == "float32"
    assert doc["provenance"]["device_peak_flops"] == {"float32": 2 * PEAK, "int8": 8 * PEAK}
    html = render_html(doc)
    assert f"floor {_int8_floor_ms(32, 8 * PEAK, 2 * PEAK):,.0f} (int8 linear + float32 attention)" in html
    assert "float32 (linear layers) + float32 (attention)" not in html
    assert "int8 (linear layers) + float32 (attention) peak" in html


def test_an_onnx_runtime_row_is_bounded_by_onnx_runtime_peaks_only(results):
    # the torch int8 kernel of another job reached 8 peak; ONNX Runtime's MatMulInteger 2 peak: the ORT row's
    # floor uses ONNX Runtime's kernels, the torch row's torch's
    i8 = add_form(results, TEACHER, "int8-static", peaks={"float32": PEAK, "int8": 8 * PEAK})
    ort = add_form(results, TEACHER, "onnx-int8", peaks={"float32": PEAK / 2, "int8": 2 * PEAK})
    doc = build(results, models=(TEACHER, STUDENT, i8, ort))
    o = row_of(doc, ort)
    assert (o["backend"], o["timed_with"]) == ("onnxruntime", "an ONNX Runtime session")
    assert o["peaks"] == {"onnxruntime:int8": 2 * PEAK, "onnxruntime:float32": PEAK / 2}
    assert o["latency_ms"]["batch_32"]["floor_ms"] == pytest.approx(_int8_floor_ms(32, 2 * PEAK, PEAK / 2))
    assert row_of(doc, i8)["latency_ms"]["batch_32"]["floor_ms"] == pytest.approx(_int8_floor_ms(32, 8 * PEAK, PEAK))
    assert doc["provenance"]["device_peak_flops"] == {"float32": PEAK, "int8": 8 * PEAK, "onnxruntime:int8": 2 * PEAK,
                                                      "onnxruntime:float32": PEAK / 2}


def test_a_bf16_row_without_a_bf16_peak_gets_no_float32_floor(results):
    bf16 = add_form(results, TEACHER, "bf16", peaks={"float32": PEAK})  # no bfloat16 peak on this device
    doc = build(results, models=(TEACHER, STUDENT, bf16))
    b = row_of(doc, bf16)
    assert all(e["floor_ms"] is None and e["pct_of_peak"] is None for e in b["latency_ms"].values())
    assert b["peak_flops_per_s"] is None and b["floors_from"] is None and "bfloat16" not in b["peaks"]
    assert any(w.startswith(f"{bf16}: no bfloat16 matmul peak") and "never at another dtype's peak" in w
               for w in doc["warnings"])


def test_without_the_per_class_macs_the_profile_own_floor_is_kept_only_for_its_dtype(results):
    bf16 = add_form(results, TEACHER, "bf16", peaks={"float32": PEAK, "bfloat16": 3 * PEAK})
    path = results / "profile" / f"{bf16}.json"
    prof = json.loads(path.read_text())
    for k in ("linear", "attention"):
        prof["macs"].pop(k)
    own = {e["batch_size"]: e["floor_ms"] for e in prof["latency"]}
    path.write_text(json.dumps(prof))
    doc = build(results, models=(TEACHER, STUDENT, bf16))
    b = row_of(doc, bf16)
    assert b["latency_ms"]["batch_1"]["floor_ms"] == pytest.approx(own[1]) and b["floors_from"] == "profile"
    assert b["latency_ms"]["batch_1"]["floor_dtype"] == "bfloat16"
    # a floor the profile computed at the float32 peak for a bf16 row is dropped
    for e in prof["latency"]:
        e["floor_dtype"], e["floor_ms"] = "float32", 2 * e["macs"] / PEAK * 1000
    path.write_text(json.dumps(prof))
    b = row_of(build(results, models=(TEACHER, STUDENT, bf16)), bf16)
    assert all(e["floor_ms"] is None for e in b["latency_ms"].values()) and b["floors_from"] is None


def test_an_emulated_form_is_marked_wherever_its_latency_appears(results):
    reason = "this CPU has no AVX512-BF16 or AMX-BF16 instructions: bf16 would be emulated (slower than fp32)"
    bf16 = add_form(results, TEACHER, "bf16", native=False, reason=reason, lat={1: 25.0, 32: 520.0},
                    peaks={"float32": PEAK, "bfloat16": PEAK / 4})
    doc = build(results, models=(TEACHER, STUDENT, bf16))
    b = row_of(doc, bf16)
    assert b["emulated"] is True and b["native"] is False and b["not_native_reason"] == reason
    assert b["timing"]["emulated"] is True and doc["forms"][1]["emulated_rows"] == [bf16]
    html = render_html(doc)
    for table in ("summary-table", "latency-batch-table", "leaderboard-table"):
        body = re.search(rf'id="{table}">.*?</table>', html, re.S).group(0)
        line = next(tr for tr in body.split("<tr") if f">{bf16}<" in tr)
        assert 'class="emu"' in line and ">emulated<" in line, table
    assert f"{bf16} (emulated)" in re.search(r'aria-label="GLUE score against latency.*?</svg>', html, re.S).group(0)
    assert f"{bf16} (emulated)" in re.search(r'aria-label="Latency against batch size.*?</svg>', html, re.S).group(0)
    fp32 = re.search(r'id="summary-table">.*?</table>', html, re.S).group(0)
    assert next(tr for tr in fp32.split("<tr") if f">{TEACHER}<" in tr).count('class="emu"') == 0


def test_a_row_under_80_percent_of_its_peak_says_what_holds_it_back(results):
    hb = {"batch_size": 32, "seq_length": 128, "matmul_share": 0.62,
          "top_ops": [{"op": "aten::addmm", "ms": 1000.0, "share": 0.5, "matmul": True},
                      {"op": "aten::softmax", "ms": 240.0, "share": 0.12, "matmul": False},
                      {"op": "aten::_int_mm", "ms": 240.0, "share": 0.12, "matmul": True},
                      {"op": "aten::layer_norm", "ms": 180.0, "share": 0.09, "matmul": False}]}
    i8 = add_form(results, TEACHER, "int8-static", lat={1: 100.0, 32: 2000.0}, holdbacks=hb)
    bare = add_form(results, STUDENT, "int8-static", lat={1: 100.0, 32: 2000.0})
    doc = build(results, models=(TEACHER, STUDENT, i8, bare))
    q = row_of(doc, i8)
    assert q["latency_ms"]["batch_32"]["pct_of_peak"] < 80
    assert q["held_back"]["batch_size"] == 32 and q["held_back"]["matmul_share"] == pytest.approx(0.62)
    assert q["held_back"]["note"] == "38% of the time outside matrix products: aten::softmax 12%, aten::layer_norm 9%"
    assert "no breakdown" in row_of(doc, bare)["held_back"]["note"]
    assert row_of(doc, TEACHER)["held_back"] is None  # the fixture's fp32 rows sit above their floors' 80%
    html = render_html(doc)
    assert re.search(rf"<strong>{i8}</strong>: [0-9.]+% of its int8 linear \+ float32 attention peak at batch 32; held "
                     "back by 38% of the time outside matrix products: aten::softmax 12%", html)


def test_matrix_products_are_told_from_other_ops():
    for op in ("aten::addmm", "aten::mm", "aten::bmm", "aten::_int_mm", "aten::linear", "MatMul", "MatMulInteger",
               "FusedMatMul", "Gemm", "Attention", "DynamicQuantizeMatMul", "aten::scaled_dot_product_attention"):
        assert is_matmul(op), op
    for op in ("aten::softmax", "aten::layer_norm", "aten::gelu", "SkipLayerNormalization", "DynamicQuantizeLinear",
               "DequantizeLinear", "aten::add", "aten::embedding", "Transpose"):
        assert not is_matmul(op), op


def test_instruction_sets_per_dtype_from_the_cpu_flags():
    isa = instruction_sets(["avx2", "avx512f", "avx512_vnni"])
    assert isa["int8"]["native"] and isa["int8"]["present"] == ["AVX512-VNNI"]
    assert isa["int8"]["text"] == "int8: AVX512-VNNI (no AVX-VNNI, AMX-INT8)"
    assert not isa["bfloat16"]["native"] and isa["bfloat16"]["text"].startswith("bf16: none of AVX512-BF16, AMX-BF16")
    assert not isa["float16"]["native"]
    amx = instruction_sets(["avx512_bf16", "amx_bf16", "amx_int8", "amx_fp16"])
    assert amx["bfloat16"]["text"] == "bf16: AVX512-BF16, AMX-BF16" and amx["float16"]["present"] == ["AMX-FP16"]


def test_the_page_states_the_cpu_instructions_per_dtype(results):
    path = results / "profile" / f"{TEACHER}.json"
    prof = json.loads(path.read_text())
    prof["device"]["cpu_flags"] = ["avx2", "avx512f", "avx512_vnni", "amx_tile"]
    path.write_text(json.dumps(prof))
    doc = build(results)
    assert doc["provenance"]["instruction_sets"]["int8"]["native"] is True
    assert doc["provenance"]["int8_support"] == "int8: AVX512-VNNI (no AVX-VNNI, AMX-INT8)"
    html = render_html(doc)
    head = html[:html.index('<nav class="toc">')]
    assert "CPU instructions per dtype" in head and "int8: AVX512-VNNI (no AVX-VNNI, AMX-INT8)" in head
    assert "bf16: none of AVX512-BF16, AMX-BF16" in head and "fp16: none of AVX512-FP16, AMX-FP16" in head
    assert "<dt>bfloat16 instructions</dt>" in html


def test_skipped_forms_are_notes_in_the_page_and_the_document(results):
    skipped = [{"model": TEACHER, "form": "fp16", "row": "teacher-fp16", "reason": EVIL},
               {"model": STUDENT, "form": "bf16", "row": "distil3-bf16", "reason": "no AVX512-BF16 or AMX-BF16"}]
    doc = build(results, skipped_forms=skipped)
    assert doc["skipped_forms"][0] == {**skipped[0], "note": f"teacher-fp16 not run: {EVIL}"}
    assert doc["skipped_forms"][1]["note"] == "distil3-bf16 not run: no AVX512-BF16 or AMX-BF16"
    html = render_html(doc)
    assert "distil3-bf16 not run: no AVX512-BF16 or AMX-BF16" in html
    assert "teacher-fp16 not run: &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html and html.count("<script") == 2
    assert build(results)["skipped_forms"] == []
    for bad in ({"model": TEACHER}, [{"model": TEACHER, "form": "fp16", "row": "teacher-fp16"}], ["x"],
                [{"model": TEACHER, "form": "fp16", "row": "teacher-fp16", "reason": 3}]):
        with pytest.raises(UserError, match=r"skipped forms"):
            build(results, skipped_forms=bad)


def test_a_hostile_form_backend_and_reason_are_escaped(results):
    evil = EVIL.replace("/", "_")
    row = add_form(results, TEACHER, evil, backend=evil, native=False, reason=EVIL, row="teacher-evil")
    doc = build(results, models=(TEACHER, STUDENT, row))
    r = row_of(doc, row)
    assert (r["form"], r["backend"], r["emulated"]) == (evil, evil, True)
    html = render_html(doc)
    assert "<script>alert" not in html and html.count("<script") == 2
    assert "&lt;script&gt;alert(1)&lt;_script&gt;" in html


def test_old_profiles_and_records_without_forms_read_as_fp32_pytorch(results):
    doc = build(results)
    for r in doc["rows"]:
        assert (r["form"], r["backend"], r["native"], r["emulated"], r["not_native_reason"]) == (
            "fp32", "pytorch", True, False, None)
        assert r["held_back"] is None and r["kernels"] == {"linear": "float32", "attention": "float32", "other": "float32"}
    assert [f["form"] for f in doc["forms"]] == ["fp32"]
    assert "form (marker shape)" not in render_html(doc)  # one form: no shape legend


def test_cli_passes_skipped_forms(results, tmp_path):
    out = tmp_path / "rep"
    skipped = [{"model": TEACHER, "form": "bf16", "row": "teacher-bf16", "reason": "no AVX512-BF16"}]
    cmd = [sys.executable, "-m", "glueslim", "leaderboard", "--results", str(results), "--models", TEACHER, STUDENT,
           "--teacher", TEACHER, "--tasks", *TASKS, "--out-json", str(out / "l.json"), "--out-html", str(out / "l.html")]
    proc = subprocess.run([*cmd, "--skipped-forms", json.dumps(skipped)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "l.json").read_text())
    assert doc["skipped_forms"][0]["note"] == "teacher-bf16 not run: no AVX512-BF16"
    assert "teacher-bf16 not run: no AVX512-BF16" in (out / "l.html").read_text()
    proc = subprocess.run([*cmd, "--skipped-forms", "[{"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--skipped-forms is not valid JSON" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([*cmd, "--skipped-forms", '{"a": 1}'], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--skipped-forms: expected a JSON list" in proc.stderr
