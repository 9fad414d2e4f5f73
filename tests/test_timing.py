"""glueslim.timing: latency statistics, peak FLOP/s and the floor, the sweep plan, torch.compile failures."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_classifier
from glueslim.errors import UserError
from glueslim.int8 import int8_linears
from glueslim.timing import (MIN_RUNS, best_peak, measure_compiled, measure_latency, measure_peak, measure_peak_flops,
                             peak_memory, plan_points, with_floor)

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


def test_best_peak_keeps_the_better_run_of_each_kernel():
    before = {"flops_per_s": 2.0, "dtype": "int8", "candidates": {"float32": 1.0, "int8": 2.0}}
    after = {"flops_per_s": 3.0, "dtype": "float32", "candidates": {"float32": 3.0, "int8": 1.5}}
    got = best_peak([before, after])
    assert got["flops_per_s"] == 3.0 and got["dtype"] == "float32"
    assert got["candidates"] == {"float32": 3.0, "int8": 2.0}
    assert got["measured_flops_per_s"] == [2.0, 3.0]


def test_peak_memory_on_cpu_is_the_process_peak():
    mb, kind = peak_memory(torch.device("cpu"))
    assert kind == "process_peak_rss" and mb > 0


def test_int8_model_peak_includes_the_int8_kernel(tiny):
    import copy
    import warnings

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        int8 = quantize_dynamic(copy.deepcopy(tiny), {torch.nn.Linear}, dtype=torch.qint8)
    assert int8_linears(int8) and not int8_linears(tiny)
    assert set(measure_peak("cpu", tiny)["candidates"]) == {"float32"}
    peak = measure_peak("cpu", int8)  # a float32 peak would not bound int8 kernels: the faster one is kept
    assert set(peak["candidates"]) == {"float32", "int8"}
    assert peak["flops_per_s"] == max(peak["candidates"].values())
    i8 = measure_peak_flops("cpu", kind="int8_dynamic", sizes=(64,), runs=2, warmup=1)
    assert i8["dtype"] == "int8" and i8["flops_per_s"] > 0 and "int8" in i8["method"]


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
