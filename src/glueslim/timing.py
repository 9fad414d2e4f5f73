"""How fast one model runs: forward-pass latency, the device's peak FLOP/s, the floor they give, memory.

The meaning of each figure is documented where it is recorded, in `glueslim.profile`.
"""

from __future__ import annotations

import functools
import logging
import platform
import resource
import statistics
import sys
import time

import torch
import transformers

from glueslim.errors import UserError
from glueslim.flops import dummy_inputs

log = logging.getLogger(__name__)

MIN_RUNS = 20
MIN_WARMUP = 1
SPEED_FLAGS = ("avx2", "avx512f", "fma", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
               "amx_int8", "amx_bf16", "amx_fp16")  # the instructions the kernels of each form need


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


def measure_latency(model, seq_length: int, batch_size: int, warmup: int, runs: int, device,
                    move: bool = True) -> dict:
    """Forward-pass latency of `model` (moved to `device` unless `move` is false: a deployed runner is loaded
    where it runs) on random full-length batches."""
    if runs < MIN_RUNS:
        raise UserError(f"--runs {runs} is too few: at least {MIN_RUNS} timed runs are needed")
    if warmup < MIN_WARMUP:
        raise UserError(f"--warmup {warmup} is too few: at least {MIN_WARMUP} warm-up run is needed")
    device = torch.device(device)
    if move:
        model.to(device)
    model.eval()
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


def time_deployed(model_dir, form, device, points: list[tuple[int, int]], warmup: int, runs: int, threads: int,
                  after=None) -> dict:
    """Latency of a deployed form's own runner at each (batch, length) point: an ONNX Runtime session (one for
    all points, `threads` intra-op threads), or for a PyTorch form forms.load_model(compiled=True), loaded and
    compiled afresh for each shape (static shapes; `compile_seconds` = the first call). A form that does not
    compile is timed eager at that point, its error recorded in `errors`, never a failed job. `after(entry,
    runner)` runs after each point with its latency entry and the runner just timed (its graph still warm)."""
    import torch._dynamo

    from glueslim.forms import load_model

    out: dict = {"latency": [], "errors": []}
    device = torch.device(device)
    if form.backend == "onnxruntime":
        from glueslim.onnx_forms import OrtClassifier
        runner = OrtClassifier(str(model_dir), threads=threads, device=device.type)
        for b, n in points:
            out["latency"].append({**measure_latency(runner, n, b, warmup, runs, device, move=False),
                                     "runner": "onnxruntime"})
            if after:
                after(out["latency"][-1], runner)
        return out
    eager = None
    for b, n in points:
        torch._dynamo.reset()  # one static graph per shape, never a dynamic-shape recompilation
        try:
            runner = load_model(model_dir, device, compiled=True)
            t0 = time.perf_counter()
            with torch.inference_mode():
                runner(**dummy_inputs(runner, b, n, device))  # compiles for this shape
            seconds = time.perf_counter() - t0
            entry = {**measure_latency(runner, n, b, warmup, runs, device, move=False), "runner": "torch.compile",
                     "compile_seconds": round(seconds, 3)}
        except Exception as e:  # noqa: BLE001 - the eager runner stands in; the profile says why
            out["errors"].append({"batch_size": b, "seq_length": n, "error": f"{type(e).__name__}: {str(e)[:300]}"})
            log.warning("torch.compile of the %s form at batch %d x %d tokens failed, timing it eager: %s",
                        form.name, b, n, e)
            torch._dynamo.reset()
            runner = eager = eager or load_model(model_dir, device)
            entry = {**measure_latency(eager, n, b, warmup, runs, device, move=False), "runner": "eager"}
        out["latency"].append(entry)
        if after:
            after(entry, runner)
    torch._dynamo.reset()
    return out


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


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "int8": torch.int8}


def measure_peak_flops(device, dtype: torch.dtype | str = torch.float32, sizes: tuple[int, ...] | None = None,
                       runs: int = 10, warmup: int = 2) -> dict:
    """The device's peak matrix-product throughput in one kernel dtype: the best FLOP/s of `runs` timed
    n x n products, 2 n^3 FLOPs each.

    float32 / bfloat16 / float16: torch.matmul of two n x n matrices of that dtype. int8: torch._int_mm
    (int8 x int8 -> int32, oneDNN on the CPU), the integer product an int8 Linear runs. Best, not median:
    the floor it yields must be a lower bound on the time of the model's matrix products.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    name = dtype if isinstance(dtype, str) else str(dtype).replace("torch.", "")
    if name not in DTYPES:
        raise ValueError(f"no peak measurement for dtype {name!r}; choose one of {', '.join(DTYPES)}")
    sizes = sizes or ((4096, 8192) if cuda else (512, 1024))
    best, best_n = 0.0, None
    for n in sizes:
        if name == "int8":
            pair = [torch.randint(-128, 128, (n, n), dtype=torch.int8, device=device) for _ in range(2)]
            product = functools.partial(torch._int_mm, *pair)
        else:
            pair = [torch.randn(n, n, device=device).to(DTYPES[name]) for _ in range(2)]
            product = functools.partial(torch.matmul, *pair)
        for ms in _time_calls(product, warmup, runs, device):
            if ms > 0 and 2 * n**3 / (ms / 1000.0) > best:
                best, best_n = 2 * n**3 / (ms / 1000.0), n
        del pair, product
    return {
        "flops_per_s": best,
        "method": ("best of timed square torch._int_mm (int8 x int8 -> int32)" if name == "int8"
                   else "best of timed square torch.matmul"),
        "dtype": name,
        "backend": "pytorch",
        "matmul_sizes": list(sizes),
        "best_size": best_n,
        "runs": runs,
        "warmup": warmup,
        "threads": torch.get_num_threads(),
        "tf32": bool(torch.backends.cuda.matmul.allow_tf32) if cuda else None,
    }


def with_floor(entry: dict, macs_per_sequence: int | None, peak_flops: float | None) -> dict:
    """A latency entry with `macs` (whole batch), `floor_ms` = 2*macs/peak and `pct_of_peak` added."""
    macs = None if macs_per_sequence is None else macs_per_sequence * entry["batch_size"]
    floor = 2 * macs / peak_flops * 1000.0 if macs is not None and peak_flops else None
    median = entry.get("median_ms")
    return {**entry, "macs": macs, "floor_ms": floor,
            "pct_of_peak": floor / median * 100.0 if floor is not None and median else None}


def floor_dtype(kernels: dict[str, str], macs: dict[str, int]) -> str:
    """How a floor was taken: "float32" when every counted product runs in one dtype, else e.g. "int8 linear +
    float32 attention" (the op classes with MACs, each with its kernel dtype)."""
    used = [c for c in ("linear", "attention", "other") if macs.get(c)] or ["linear"]
    if len({kernels[c] for c in used}) == 1:
        return kernels[used[0]]
    return " + ".join(f"{kernels[c]} {c}" for c in used)


def with_form_floor(entry: dict, macs_per_sequence: dict | None, peaks: dict[str, float | None],
                    kernels: dict[str, str]) -> dict:
    """A latency entry with `macs` (whole batch), `floor_ms`, `pct_of_peak`, `floor_dtype` and `floor_parts`.

    floor_ms = sum over op classes (linear, attention, other) of 2 x MACs / the peak of that class's kernel
    dtype (`kernels`, e.g. int8 Linear and float32 attention products); MACs of one dtype are added before
    dividing, so a model whose products all run in one dtype gets exactly 2 x macs / peak (`with_floor`)."""
    if macs_per_sequence is None:
        return {**with_floor(entry, None, None), "floor_dtype": None, "floor_parts": None}
    b = entry["batch_size"]
    split = {c: macs_per_sequence.get(c, 0) * b for c in ("linear", "attention", "other")}
    parts = {c: {"dtype": kernels[c], "macs": m,
                 "ms": 2 * m / peaks[kernels[c]] * 1000.0 if peaks.get(kernels[c]) else None}
             for c, m in split.items()}
    by_dtype: dict[str, int] = {}
    for c, m in split.items():
        by_dtype[kernels[c]] = by_dtype.get(kernels[c], 0) + m
    missing = any(m and not peaks.get(d) for d, m in by_dtype.items())
    floor = None if missing else sum(2 * m / peaks[d] * 1000.0 for d, m in by_dtype.items() if m)
    median = entry.get("median_ms")
    return {**entry, "macs": macs_per_sequence["total"] * b, "floor_ms": floor,
            "pct_of_peak": floor / median * 100.0 if floor is not None and median else None,
            "floor_dtype": floor_dtype(kernels, split), "floor_parts": parts}


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
