"""How fast one model runs: forward-pass latency, the device's peak FLOP/s, the floor they give, memory.

The meaning of each figure is documented where it is recorded, in `glueslim.profile`.
"""

from __future__ import annotations

import logging
import platform
import resource
import statistics
import sys
import time

import torch
import transformers
from torch import nn

from glueslim.errors import UserError
from glueslim.flops import dummy_inputs
from glueslim.int8 import dynamic_int8, int8_linears

log = logging.getLogger(__name__)

MIN_RUNS = 20
MIN_WARMUP = 1
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "fma")


def _time_calls(fn, warmup: int, runs: int, device: torch.device) -> list[float]:
    """Milliseconds of each of `runs` calls of `fn` after `warmup` untimed ones (CUDA events on a GPU)."""
    cuda = device.type == "cuda"
    times_ms = []
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        if cuda:
            torch.cuda.synchronize(device)
        for _ in range(runs):
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize(device)
                times_ms.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                times_ms.append((time.perf_counter() - t0) * 1000.0)
    return times_ms


def measure_latency(model, seq_length: int, batch_size: int, warmup: int, runs: int, device) -> dict:
    """Forward-pass latency of `model` (moved to `device`) on random full-length batches."""
    if runs < MIN_RUNS:
        raise UserError(f"--runs {runs} is too few: at least {MIN_RUNS} timed runs are needed")
    if warmup < MIN_WARMUP:
        raise UserError(f"--warmup {warmup} is too few: at least {MIN_WARMUP} warm-up run is needed")
    device = torch.device(device)
    model.to(device).eval()
    inputs = dummy_inputs(model, batch_size, seq_length, device)
    cuda = device.type == "cuda"
    times_ms = _time_calls(lambda: model(**inputs), warmup, runs, device)
    if len(times_ms) < runs:  # never report from fewer timed runs than were asked for
        raise RuntimeError(f"only {len(times_ms)} of {runs} timed runs completed")
    q1, median, q3 = statistics.quantiles(times_ms, n=4, method="inclusive")
    return {
        "batch_size": batch_size,
        "seq_length": seq_length,
        "device": device.type,
        "threads": torch.get_num_threads(),
        "timer": "cuda_events" if cuda else "perf_counter",
        "warmup": warmup,
        "runs": len(times_ms),
        "median_ms": median,
        "q1_ms": q1,
        "q3_ms": q3,
        "iqr_ms": q3 - q1,
        "min_ms": min(times_ms),
        "max_ms": max(times_ms),
        "throughput_per_s": batch_size / (median / 1000.0),
    }


def plan_points(seq_length: int, batch_sizes: list[int], seq_lengths: list[int], length_batch_size: int,
                max_len: int | None) -> tuple[list[tuple[int, int]], list[dict]]:
    """The (batch, length) points to time, each once, batch sweep first; and the lengths skipped."""
    points: list[tuple[int, int]] = []
    skipped: list[dict] = []
    for b in batch_sizes:
        if (b, seq_length) not in points:
            points.append((b, seq_length))
    for n in sorted(set(seq_lengths)):
        if max_len is not None and n > max_len:
            skipped.append({"batch_size": length_batch_size, "seq_length": n,
                            "reason": f"longer than the model's max_position_embeddings ({max_len})"})
        elif (length_batch_size, n) not in points:
            points.append((length_batch_size, n))
    return points, skipped


def measure_compiled(model, points: list[tuple[int, int]], warmup: int, runs: int, device) -> dict:
    """Latency of torch.compile(model) (inductor, one graph per shape) at each (batch, length) point, with
    the seconds each compilation took; a model that does not compile (an int8 one, say) gets its error
    recorded instead, never a failed job."""
    if not points:
        return {"latency": [], "errors": []}
    import torch._dynamo

    compiled, out = torch.compile(model.to(device).eval(), dynamic=False), {"latency": [], "errors": []}
    for b, n in points:
        try:
            t0 = time.perf_counter()
            with torch.inference_mode():
                compiled(**dummy_inputs(model, b, n, device))  # compiles for this shape
            seconds = time.perf_counter() - t0
            entry = measure_latency(compiled, n, b, warmup, runs, device)
            out["latency"].append({**entry, "compile_seconds": round(seconds, 3), "compiler": "torch.compile"})
        except Exception as e:  # noqa: BLE001 - the eager figures stand; the report says why this one is missing
            out["errors"].append({"batch_size": b, "seq_length": n, "error": f"{type(e).__name__}: {str(e)[:300]}"})
            log.warning("torch.compile at batch %d x %d tokens failed: %s", b, n, e)
    torch._dynamo.reset()
    return out


def measure_peak_flops(device, dtype: torch.dtype = torch.float32, sizes: tuple[int, ...] | None = None,
                       runs: int = 10, warmup: int = 2, kind: str = "matmul") -> dict:
    """The device's peak matrix-product throughput: the best FLOP/s of `runs` timed n x n products.

    kind "matmul": torch.matmul of two n x n matrices of `dtype`; kind "int8_dynamic": an n x n
    dynamic-int8 nn.Linear on n rows (CPU; its time includes quantizing the activations, as in a
    model). 2 n^3 FLOPs each. Best, not median: the floor it yields must be a lower bound on the
    time of the model's matrix products.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    if kind not in ("matmul", "int8_dynamic") or (kind == "int8_dynamic" and cuda):
        raise ValueError(f"no peak measurement {kind!r} on {device.type}")
    sizes = sizes or ((4096, 8192) if cuda else (512, 1024))
    best, best_n = 0.0, None
    for n in sizes:
        if kind == "int8_dynamic":  # what an int8 model's Linear layers run
            lin, a = dynamic_int8(nn.Sequential(nn.Linear(n, n))), torch.randn(n, n)

            def product():
                return lin(a)
        else:
            a = torch.randn(n, n, device=device).to(dtype)
            b = torch.randn(n, n, device=device).to(dtype)

            def product():
                return torch.matmul(a, b)
        for ms in _time_calls(product, warmup, runs, device):
            if ms > 0 and 2 * n**3 / (ms / 1000.0) > best:
                best, best_n = 2 * n**3 / (ms / 1000.0), n
        del a, product
    return {
        "flops_per_s": best,
        "method": ("best of timed square torch.matmul" if kind == "matmul"
                   else "best of timed square dynamic-int8 nn.Linear"),
        "dtype": "int8" if kind == "int8_dynamic" else str(dtype).replace("torch.", ""),
        "matmul_sizes": list(sizes),
        "best_size": best_n,
        "runs": runs,
        "warmup": warmup,
        "threads": torch.get_num_threads(),
        "tf32": bool(torch.backends.cuda.matmul.allow_tf32) if cuda else None,
    }


def measure_peak(device, model) -> dict:
    """The peak that bounds `model`: float matmul in its dtype and, for an int8 model, the int8 kernel
    too (the faster of the two: its Linear layers run int8, its attention products float)."""
    dtype = next(model.parameters()).dtype
    peaks = [measure_peak_flops(device, dtype if dtype.is_floating_point else torch.float32)]
    if int8_linears(model) and torch.device(device).type == "cpu":
        peaks.append(measure_peak_flops(device, kind="int8_dynamic"))
    best = max(peaks, key=lambda p: p["flops_per_s"])
    return {**best, "candidates": {p["dtype"]: p["flops_per_s"] for p in peaks}}


def best_peak(peaks: list[dict]) -> dict:
    """The best of several `measure_peak` results, each candidate at its best, and every total measured."""
    candidates = {k: max(p["candidates"].get(k, 0.0) for p in peaks) for k in peaks[0]["candidates"]}
    return {**max(peaks, key=lambda p: p["flops_per_s"]), "candidates": candidates,
            "measured_flops_per_s": [p["flops_per_s"] for p in peaks]}


def with_floor(entry: dict, macs_per_sequence: int | None, peak_flops: float | None) -> dict:
    """A latency entry with `macs` (whole batch), `floor_ms` = 2*macs/peak and `pct_of_peak` added."""
    macs = None if macs_per_sequence is None else macs_per_sequence * entry["batch_size"]
    floor = 2 * macs / peak_flops * 1000.0 if macs is not None and peak_flops else None
    median = entry.get("median_ms")
    return {**entry, "macs": macs, "floor_ms": floor,
            "pct_of_peak": floor / median * 100.0 if floor is not None and median else None}


def peak_memory(device: torch.device) -> tuple[float, str]:
    """(MiB, kind): CUDA's max allocated since the last reset, or on CPU the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return (rss / 2**20 if sys.platform == "darwin" else rss / 2**10), "process_peak_rss"


def device_info(device, threads: int | None = None) -> dict:
    device = torch.device(device)
    cpuinfo = {}  # first processor's entries of /proc/cpuinfo (Linux)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                cpuinfo.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    cpu_model = cpuinfo.get("model name") or platform.processor() or platform.machine()
    flags = set(cpuinfo.get("flags", "").split())
    gpu_name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "type": device.type,
        "name": gpu_name or cpu_model,
        "cpu_model": cpu_model,
        "cpu_flags": [f for f in SPEED_FLAGS if f in flags],
        "threads": torch.get_num_threads(),
        "threads_requested": threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cuda": torch.version.cuda,
        "gpu_name": gpu_name,
    }
