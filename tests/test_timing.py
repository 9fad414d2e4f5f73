"""glueslim.timing, glueslim.peaks, glueslim.holdbacks: latency statistics, peak FLOP/s per kernel dtype and the
floors they give, the sweep plan, torch.compile failures, what holds a forward pass back."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_classifier
from glueslim import peaks as peaks_mod
from glueslim.errors import UserError
from glueslim.flops import count_macs, dummy_inputs
from glueslim.forms import FORMS
from glueslim.holdbacks import is_matmul, summarise, torch_holdbacks
from glueslim.peaks import best_peaks, form_kernels, legacy_peak, measure_peaks, peak_dtypes
from glueslim.timing import (MIN_RUNS, floor_dtype, measure_compiled, measure_latency, measure_peak_flops, peak_memory,
                             plan_points, with_floor, with_form_floor)

P = 64  # the tiny model's max_position_embeddings


@pytest.fixture(scope="module")
def tiny():
    return tiny_classifier(vocab=100)  # 2 layers, hidden 32, P positions


def test_measure_latency(tiny):
    got = measure_latency(tiny, seq_length=8, batch_size=2, warmup=1, runs=MIN_RUNS + 1, device="cpu")
    assert got["runs"] == MIN_RUNS + 1 and got["warmup"] == 1
    # every timing states where and how it was taken
    assert got["device"] == "cpu" and got["threads"] == torch.get_num_threads() and got["timer"] == "perf_counter"
    assert (got["batch_size"], got["seq_length"]) == (2, 8)
    assert 0 < got["min_ms"] <= got["q1_ms"] <= got["median_ms"] <= got["q3_ms"] <= got["max_ms"]
    assert got["iqr_ms"] == pytest.approx(got["q3_ms"] - got["q1_ms"])
    assert got["throughput_per_s"] == pytest.approx(2 / (got["median_ms"] / 1000))


def test_measure_latency_refuses_too_few_runs(tiny):
    with pytest.raises(UserError, match=rf"--runs {MIN_RUNS - 1}\b.*{MIN_RUNS}"):
        measure_latency(tiny, 8, 1, warmup=1, runs=MIN_RUNS - 1, device="cpu")
    with pytest.raises(UserError, match="--warmup 0"):
        measure_latency(tiny, 8, 1, warmup=0, runs=MIN_RUNS, device="cpu")
    with pytest.raises(UserError, match="max_position_embeddings"):
        measure_latency(tiny, P + 1, 1, warmup=1, runs=MIN_RUNS, device="cpu")


def test_peak_flops_and_floor():
    peak = measure_peak_flops("cpu", sizes=(64, 128), runs=3, warmup=1)
    assert peak["flops_per_s"] > 0 and peak["best_size"] in (64, 128)
    assert peak["matmul_sizes"] == [64, 128] and peak["runs"] == 3 and peak["dtype"] == "float32"
    # floor = 2 * MACs (per sequence x batch) / peak; pct_of_peak = floor / median
    entry = {"batch_size": 4, "seq_length": 8, "median_ms": 10.0}
    got = with_floor(entry, macs_per_sequence=250_000_000, peak_flops=1e12)
    assert got["macs"] == 1_000_000_000
    assert got["floor_ms"] == pytest.approx(2.0)  # 2e9 FLOPs at 1e12 FLOP/s
    assert got["pct_of_peak"] == pytest.approx(20.0)
    assert with_floor(entry, None, 1e12)["floor_ms"] is None


def test_best_peaks_keeps_the_better_run_of_each_kernel():
    before = {"float32": {"flops_per_s": 1.0, "dtype": "float32"}, "int8": {"flops_per_s": 2.0, "dtype": "int8"}}
    after = {"float32": {"flops_per_s": 3.0, "dtype": "float32"}, "int8": {"flops_per_s": 1.5, "dtype": "int8"}}
    got = best_peaks([before, after])
    assert got["float32"]["flops_per_s"] == 3.0 and got["int8"]["flops_per_s"] == 2.0
    assert got["float32"]["measured_flops_per_s"] == [1.0, 3.0] and got["int8"]["measured_flops_per_s"] == [2.0, 1.5]
    # the leaderboard's peak_flops: the Linear kernels' peak, every dtype as a candidate
    legacy = legacy_peak(got, form_kernels(FORMS["int8-dynamic"]))
    assert legacy["dtype"] == "int8" and legacy["flops_per_s"] == 2.0 and legacy["measured_flops_per_s"] == [2.0, 1.5]
    assert legacy["candidates"] == {"float32": 3.0, "int8": 2.0}
    ort = {d: {**p, "backend": "onnxruntime"} for d, p in got.items()}  # never merged with torch's kernels
    assert set(legacy_peak(ort, form_kernels(FORMS["onnx-int8"]))["candidates"]) == {"onnxruntime:float32",
                                                                                     "onnxruntime:int8"}


def test_every_kernel_dtype_has_a_peak():
    for dtype in ("float32", "bfloat16", "float16", "int8"):
        got = measure_peak_flops("cpu", dtype, sizes=(32, 64), runs=2, warmup=1)
        assert got["dtype"] == dtype and got["flops_per_s"] > 0 and got["backend"] == "pytorch"
        assert ("torch._int_mm" in got["method"]) == (dtype == "int8")
    assert measure_peak_flops("cpu", torch.bfloat16, sizes=(32,), runs=2, warmup=1)["dtype"] == "bfloat16"
    with pytest.raises(ValueError, match="float64"):
        measure_peak_flops("cpu", "float64")
    # which peaks a form needs: float32 always, then its kernels' dtypes
    assert peak_dtypes(form_kernels(FORMS["fp32"])) == ["float32"]
    assert peak_dtypes(form_kernels(FORMS["bf16"])) == ["float32", "bfloat16"]
    assert peak_dtypes(form_kernels(FORMS["int8-static"])) == ["float32", "int8"]


def test_a_failed_peak_is_recorded_not_fatal(monkeypatch):
    def fake(device, dtype):
        if dtype == "float16":
            raise RuntimeError("no float16 matmul here")
        return {"flops_per_s": 5.0, "dtype": dtype, "backend": "pytorch"}

    monkeypatch.setattr(peaks_mod, "measure_peak_flops", fake)
    got = measure_peaks("cpu", ["float32", "float16"])
    assert got["float32"]["flops_per_s"] == 5.0
    assert got["float16"]["flops_per_s"] is None and "no float16 matmul" in got["float16"]["error"]
    entry = with_form_floor({"batch_size": 1, "median_ms": 1.0}, {"total": 10, "linear": 8, "attention": 2,
                                                                  "other": 0}, {"float32": 5.0, "float16": None},
                            form_kernels(FORMS["fp16"]))
    assert entry["floor_ms"] is None and entry["pct_of_peak"] is None  # no floor from a peak never measured


def test_form_floor_takes_each_op_class_at_its_kernels_peak(tiny):
    macs = count_macs(tiny, 16)  # per sequence
    entry = {"batch_size": 4, "seq_length": 16, "median_ms": 2.0}
    peaks = {"float32": 1e10, "int8": 4e10}
    got = with_form_floor(entry, macs, peaks, form_kernels(FORMS["int8-dynamic"]))
    linear_ms = 2 * 4 * macs["linear"] / 4e10 * 1000
    rest_ms = 2 * 4 * (macs["attention"] + macs["other"]) / 1e10 * 1000
    assert got["floor_ms"] == pytest.approx(linear_ms + rest_ms)
    assert got["pct_of_peak"] == pytest.approx(got["floor_ms"] / 2.0 * 100)
    assert got["macs"] == 4 * macs["total"] and got["floor_dtype"] == "int8 linear + float32 attention"
    assert got["floor_parts"]["linear"] == {"dtype": "int8", "macs": 4 * macs["linear"], "ms": pytest.approx(linear_ms)}
    assert got["floor_parts"]["attention"]["dtype"] == "float32"
    # one dtype for every product: exactly the old floor, 2 x macs / peak
    fp32 = with_form_floor(entry, macs, {"float32": 1e10}, form_kernels(FORMS["fp32"]))
    old = with_floor(entry, macs["total"], 1e10)
    assert fp32["floor_ms"] == old["floor_ms"] and fp32["pct_of_peak"] == old["pct_of_peak"]
    assert fp32["floor_dtype"] == "float32"
    assert with_form_floor(entry, None, peaks, form_kernels(FORMS["fp32"]))["floor_ms"] is None


def test_floor_dtype_names_only_the_classes_with_macs():
    k = {"linear": "int8", "attention": "float32", "other": "float32"}
    assert floor_dtype(k, {"linear": 5, "attention": 3, "other": 0}) == "int8 linear + float32 attention"
    assert floor_dtype(k, {"linear": 5, "attention": 3, "other": 2}) == \
        "int8 linear + float32 attention + float32 other"
    assert floor_dtype({"linear": "bfloat16", "attention": "bfloat16", "other": "float32"},
                       {"linear": 5, "attention": 3, "other": 0}) == "bfloat16"


def test_matrix_products_are_told_from_the_rest():
    products = ["aten::mm", "aten::addmm", "aten::bmm", "aten::_int_mm", "aten::linear",
                "aten::_scaled_dot_product_flash_attention_for_cpu", "onednn::qlinear_pointwise",
                "mkldnn::_linear_pointwise", "cpp_fused_mm_3", "MatMul", "MatMulInteger", "FusedMatMul", "Gemm",
                "QAttention", "DynamicQuantizeMatMul"]
    rest = ["aten::native_layer_norm", "aten::gelu", "aten::round", "torchao::choose_qparams_affine",
            "## Call CompiledFxGraph fabc ##", "cpp_fused_add_gelu_1", "DynamicQuantizeLinear", "DequantizeLinear",
            "SkipLayerNormalization", "QEmbedLayerNormalization", "BiasGelu", "other"]
    assert [op for op in products if not is_matmul(op)] == []
    assert [op for op in rest if is_matmul(op)] == []


def test_holdbacks_summary_shares():
    got = summarise([("aten::addmm", 6.0), ("aten::gelu", 3.0), ("aten::addmm", 1.0)] +
                    [(f"op{i}", 0.1) for i in range(10)], batch_size=2)
    assert got["batch_size"] == 2 and got["total_ms"] == pytest.approx(11.0)
    assert got["matmul_ms"] == pytest.approx(7.0) and got["matmul_share"] == pytest.approx(7 / 11)
    assert len(got["top_ops"]) == 8 and got["top_ops"][0] == {"op": "aten::addmm", "ms": 7.0,
                                                              "share": pytest.approx(7 / 11), "matmul": True}


def test_torch_holdbacks_of_an_eager_model(tiny):
    got = torch_holdbacks(tiny, dummy_inputs(tiny, 2, 16, "cpu"), runs=2, batch_size=2, seq_length=16)
    assert got["runs"] == 2 and got["total_ms"] > 0 and 0 < got["matmul_share"] <= 1
    assert got["matmul_share"] == pytest.approx(got["matmul_ms"] / got["total_ms"])
    assert all(0 <= o["share"] <= 1 for o in got["top_ops"]) and sum(o["share"] for o in got["top_ops"]) <= 1 + 1e-9
    assert "aten::addmm" in {o["op"] for o in got["top_ops"]}  # the Linear layers, eager


def test_peak_memory_on_cpu_is_the_process_peak():
    mb, kind = peak_memory(torch.device("cpu"))
    assert kind == "process_peak_rss" and mb > 0


def test_plan_points_times_each_point_once_and_skips_too_long():
    points, skipped = plan_points(128, [1, 8, 32], [512, 32, 128, 1024], 1, max_len=512)
    assert points == [(1, 128), (8, 128), (32, 128), (1, 32), (1, 512)]  # (1, 128) is in both sweeps
    assert skipped == [{"batch_size": 1, "seq_length": 1024,
                        "reason": "longer than the model's max_position_embeddings (512)"}]
    assert plan_points(64, [2], [], 1, None) == ([(2, 64)], [])


def test_a_model_that_does_not_compile_keeps_its_eager_figures(tiny, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("inductor: no C++ compiler")

    monkeypatch.setattr(torch, "compile", lambda model, **k: broken)
    got = measure_compiled(tiny, [(1, 8)], 1, MIN_RUNS, torch.device("cpu"))
    assert got["latency"] == []
    assert got["errors"] == [{"batch_size": 1, "seq_length": 8, "error": "RuntimeError: inductor: no C++ compiler"}]
