"""`glueslim profile`: how big and how fast one saved sequence-classification model is.

What each figure in results/profile/<name>.json means:

parameters
    `total`: every parameter of the model (tied weights counted once).
    `embeddings`: the input-embedding block (word, position and token-type tables and its
    LayerNorm; for BERT `model.base_model.embeddings`). `without_embeddings` = the rest:
    encoder, pooler, classifier. Embedding tables cost memory but almost no compute, so
    `without_embeddings` is the figure that tracks MACs.
macs
    Multiply-accumulates of one forward pass of `batch_size` full-length sequences of
    `seq_length` random tokens (no padding, attention mask of ones), counted by torch's own
    `torch.utils.flop_counter.FlopCounterMode`: MACs = FLOPs / 2. Only matrix products are
    counted (no biases, softmax, GELU, LayerNorm, embedding look-ups).
    `linear`: the nn.Linear layers (aten mm/addmm), `attention`: the two products QK^T and
    softmax(.)V (aten bmm, or one fused scaled-dot-product-attention op), `other`: any other op
    FlopCounterMode counts (e.g. convolutions); `by_op` lists the aten ops. The pooler and
    classifier of BERT see only the [CLS] token, so they add hidden^2 + hidden*labels MACs.
    torch's registry has no formula for the fused CPU kernel
    `aten._scaled_dot_product_flash_attention_for_cpu` that transformers' "sdpa" attention
    runs on CPU: without help it counts attention as 0. It is added here with the same
    formula torch uses for the CUDA fused kernels, so counts do not depend on the device.
    FlopCounterMode does not see int8 kernels: an int8 model is counted on its float architecture
    (same parameters and MACs; see `run`).
macs_by_length
    The same split per sequence (batch 1) at every sequence length that was timed. MACs are
    exactly proportional to the batch size (every op is per sequence), so a batch of b costs
    b times these.
size_on_disk_bytes
    Bytes of the weight files in the model folder (*.safetensors, plus *.bin / *.pt if
    present; trainer state such as training_args.bin or optimizer.pt is not weights).
peak_flops
    The device's measured peak: the best FLOP/s of `runs` timed square matrix products
    (torch.matmul, 2n^3 FLOPs, in the model's dtype, same threads, after warm-up) over the
    sizes `matmul_sizes`, measured before and after the latency sweep (`measured_flops_per_s`)
    and the better of the two kept; `candidates`: {kernel dtype: best FLOP/s} of each kernel measured. An upper bound the model's own matrix products can approach, not
    a vendor datasheet number. An int8 model (int8 Linear kernels, float attention products) is
    also timed on a dynamic-int8 n x n nn.Linear, and the faster of the two peaks is kept
    (`candidates` lists both): a float32 peak does not bound int8 kernels.
sweeps
    What was timed: `length`: batch `batch_size` at each of `seq_lengths` (lengths above the
    model's max_position_embeddings are listed in `skipped`); `batch`: each of `batch_sizes` at
    `seq_length` (the length of `macs`). A (batch, length) point in both is timed once.
latency
    One entry per timed (batch_size, seq_length) point: wall time of one forward pass under
    torch.inference_mode after `warmup` untimed passes, over `runs` timed passes (at least
    MIN_RUNS, and never fewer than asked for): median, quartiles (statistics.quantiles,
    inclusive method), IQR, min, max in milliseconds, `throughput_per_s` = batch_size / median
    (examples per second), `threads`, `device` and `timer`. `macs` = per-sequence MACs x
    batch_size; `floor_ms` = 2 x macs / peak_flops: the time the matrix products alone would
    take at the measured peak; `pct_of_peak` = floor_ms / median x 100, the fraction of the
    device's peak FLOP/s the forward pass reaches (the leaderboard recomputes both with the best
    peak any profile job measured on the same device). CPU: time.perf_counter; CUDA: CUDA events
    around each pass, then synchronize.
peak_memory_mb (MiB) and peak_memory_kind
    "cuda_max_allocated": torch.cuda.max_memory_allocated over the timed runs (tensors only,
    not the CUDA context). "process_peak_rss": on CPU, the peak resident set size of the whole
    process so far (resource.getrusage; includes Python, torch and loading the model).
device
    Where the figures were taken: CPU model and speed-relevant instruction-set flags, threads,
    GPU, library versions. Latencies are only comparable between identical `device` records.
"""

from __future__ import annotations

import argparse
import logging
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from glueslim.errors import UserError
from glueslim.io import atomic_write_json
from glueslim import quantize
from glueslim.modeling import architecture, load_for_inference, pick_device

log = logging.getLogger(__name__)

MIN_RUNS = 20
MIN_WARMUP = 1
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "fma")
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt")
NOT_WEIGHTS = {"training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt"}

_aten = torch.ops.aten
LINEAR_OPS = {_aten.mm, _aten.addmm}
ATTENTION_OPS = {
    _aten.bmm,
    _aten.baddbmm,
    _aten._scaled_dot_product_flash_attention,
    _aten._scaled_dot_product_efficient_attention,
    _aten._scaled_dot_product_cudnn_attention,
    _aten._scaled_dot_product_flash_attention_for_cpu,
}


def _sdpa_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of QK^T and softmax(.)V for shapes [batch, heads, seq, head_dim] (as torch's sdpa_flop)."""
    b, h, s_q, d = query
    s_k, d_v = key[-2], value[-1]
    return 2 * b * h * s_q * s_k * d + 2 * b * h * s_q * s_k * d_v


def _dummy_inputs(model, batch_size: int, seq_length: int, device) -> dict:
    """Full-length random token ids and an all-ones attention mask."""
    if batch_size < 1 or seq_length < 1:
        raise UserError(f"batch size and sequence length must be at least 1 (got {batch_size}, {seq_length})")
    max_len = getattr(model.config, "max_position_embeddings", None)
    if max_len is not None and seq_length > max_len:
        raise UserError(f"--seq-length {seq_length} exceeds the model's max_position_embeddings ({max_len})")
    ids = torch.randint(0, model.config.vocab_size, (batch_size, seq_length), device=device)
    # transformers turns the mask into a dense one with .item()-style checks, impossible on
    # "meta"; an all-ones mask is dropped by the sdpa path anyway, so omit it there
    mask = None if ids.device.type == "meta" else torch.ones_like(ids)
    return {"input_ids": ids, "attention_mask": mask}


def count_parameters(model) -> dict:
    total = sum(p.numel() for p in model.parameters())
    embeddings = sum(p.numel() for p in model.base_model.embeddings.parameters())
    return {"total": total, "embeddings": embeddings, "without_embeddings": total - embeddings}


def count_macs(model, seq_length: int, batch_size: int = 1) -> dict:
    """MACs of one forward pass, counted by FlopCounterMode on the model's own device ("meta" works)."""
    inputs = _dummy_inputs(model, batch_size, seq_length, next(model.parameters()).device)
    counter = FlopCounterMode(
        display=False, custom_mapping={_aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops}
    )
    with torch.inference_mode(), counter:
        model(**inputs)
    flops = counter.get_flop_counts()["Global"]  # {aten op: FLOPs} over the whole forward pass
    total = sum(flops.values()) // 2
    linear = sum(v for op, v in flops.items() if op in LINEAR_OPS) // 2
    attention = sum(v for op, v in flops.items() if op in ATTENTION_OPS) // 2
    by_op = {str(op): v // 2 for op, v in sorted(flops.items(), key=lambda kv: str(kv[0]))}
    return {
        "total": total,
        "linear": linear,
        "attention": attention,
        "other": total - linear - attention,
        "seq_length": seq_length,
        "batch_size": batch_size,
        "by_op": by_op,
    }


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
    inputs = _dummy_inputs(model, batch_size, seq_length, device)
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


def _int8_linear(n: int):
    """An n x n nn.Linear with torch's dynamic int8 kernel (what an int8 model's Linear layers run)."""
    import warnings

    with warnings.catch_warnings():  # torch points users of the eager API at torchao; it is still supported
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic
        return quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(n, n)), {torch.nn.Linear}, dtype=torch.qint8)


def has_int8_linear(model) -> bool:
    try:
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    except ImportError:  # pragma: no cover
        return False
    return any(isinstance(m, DynamicLinear) for m in model.modules())


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
        if kind == "int8_dynamic":
            lin, a = _int8_linear(n), torch.randn(n, n)

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
    if has_int8_linear(model) and torch.device(device).type == "cpu":
        peaks.append(measure_peak_flops(device, kind="int8_dynamic"))
    best = max(peaks, key=lambda p: p["flops_per_s"])
    return {**best, "candidates": {p["dtype"]: p["flops_per_s"] for p in peaks}}


def with_floor(entry: dict, macs_per_sequence: int | None, peak_flops: float | None) -> dict:
    """A latency entry with `macs` (whole batch), `floor_ms` = 2*macs/peak and `pct_of_peak` added."""
    macs = None if macs_per_sequence is None else macs_per_sequence * entry["batch_size"]
    floor = 2 * macs / peak_flops * 1000.0 if macs is not None and peak_flops else None
    median = entry.get("median_ms")
    return {**entry, "macs": macs, "floor_ms": floor,
            "pct_of_peak": floor / median * 100.0 if floor is not None and median else None}


def device_info(device, threads: int | None = None) -> dict:
    import transformers

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


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-dir", required=True, help="saved model folder (config.json + model.safetensors)")
    p.add_argument("--name", required=True, help="model name recorded in the output")
    p.add_argument("--out", required=True, help="output JSON, e.g. results/profile/NAME.json")
    p.add_argument("--seq-length", type=int, default=128,
                   help="length of the MACs figure and of the batch-size sweep (default 128)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32],
                   help="batch-size sweep, at --seq-length (default 1 32)")
    p.add_argument("--seq-lengths", type=int, nargs="*", default=[32, 64, 128, 256, 512],
                   help="sequence-length sweep, at --length-batch-size (default 32 64 128 256 512; none: no sweep)")
    p.add_argument("--length-batch-size", type=int, default=1, help="batch size of the length sweep (default 1)")
    p.add_argument("--compile-batch-sizes", type=int, nargs="*", default=[],
                   help="also time torch.compile'd forward passes at these batch sizes (at --seq-length), beside "
                        "the eager ones (default: none)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--runs", type=int, default=20, help=f"timed runs per point (at least {MIN_RUNS})")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")


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
                compiled(**_dummy_inputs(model, b, n, device))  # compiles for this shape
            seconds = time.perf_counter() - t0
            entry = measure_latency(compiled, n, b, warmup, runs, device)
            out["latency"].append({**entry, "compile_seconds": round(seconds, 3), "compiler": "torch.compile"})
        except Exception as e:  # noqa: BLE001 - the eager figures stand; the report says why this one is missing
            out["errors"].append({"batch_size": b, "seq_length": n, "error": f"{type(e).__name__}: {str(e)[:300]}"})
            log.warning("torch.compile at batch %d x %d tokens failed: %s", b, n, e)
    torch._dynamo.reset()
    return out


def run(args: argparse.Namespace) -> None:
    # check cheap arguments before loading anything
    if args.runs < MIN_RUNS:
        raise UserError(f"--runs {args.runs} is too few: at least {MIN_RUNS} timed runs are needed")
    if args.warmup < MIN_WARMUP:
        raise UserError(f"--warmup {args.warmup} is too few: at least {MIN_WARMUP} warm-up run is needed")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads {args.threads} must be at least 1")
    for flag, values in (("--seq-length", [args.seq_length]), ("--batch-sizes", args.batch_sizes),
                         ("--seq-lengths", args.seq_lengths), ("--length-batch-size", [args.length_batch_size]),
                         ("--compile-batch-sizes", args.compile_batch_sizes)):
        if any(v < 1 for v in values):
            raise UserError(f"{flag} {' '.join(map(str, values))}: every value must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    device = pick_device(args.device)
    model_dir = Path(args.model_dir)
    if not (model_dir / "config.json").is_file():
        raise UserError(f"--model-dir {model_dir}: no config.json there")
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    try:
        model = load_for_inference(str(model_dir))
    except (OSError, ValueError) as e:
        raise UserError(f"--model-dir {model_dir}: cannot load the model ({e})") from None

    max_len = getattr(model.config, "max_position_embeddings", None)
    if max_len is not None and args.seq_length > max_len:
        raise UserError(f"--seq-length {args.seq_length} exceeds the model's max_position_embeddings ({max_len})")
    points, skipped = plan_points(args.seq_length, args.batch_sizes, args.seq_lengths or [],
                                  args.length_batch_size, max_len)
    for s in skipped:
        log.warning("not timing %d tokens: %s", s["seq_length"], s["reason"])

    # int8 keeps the float model's parameters and MACs; its packed weights are no nn.Parameters and
    # FlopCounterMode does not see quantized kernels, so count on the float architecture
    counted = architecture(str(model_dir)) if (model_dir / quantize.WEIGHTS).exists() else model
    if counted is not model:
        device = torch.device("cpu")  # dynamic int8 kernels exist for the CPU only
    parameters = count_parameters(counted)
    # on CPU, before any move to the GPU; per sequence (batch 1): a batch of b costs exactly b times
    by_length = {n: count_macs(counted, n, batch_size=1) for n in sorted({n for _, n in points})}
    macs = by_length[args.seq_length]
    size = sum(
        p.stat().st_size
        for pattern in WEIGHT_PATTERNS
        for p in model_dir.glob(pattern)
        if p.is_file() and p.name not in NOT_WEIGHTS
    )

    # the device's peak, measured before and after the sweep (outside the peak-memory window); the
    # better of the two, so that a burst of load from elsewhere during one does not lower the floor
    peaks = [measure_peak(device, model)]
    if device.type == "cuda":
        model.to(device)
        torch.cuda.reset_peak_memory_stats(device)
    raw = []
    for b, n in points:
        entry = measure_latency(model, n, b, args.warmup, args.runs, device)
        if entry["runs"] < args.runs:  # measure_latency guarantees it; the report relies on it
            raise RuntimeError(f"batch {b}, {n} tokens: {entry['runs']} timed runs, {args.runs} asked for")
        raw.append(entry)
    if device.type == "cuda":
        peak_mb, peak_kind = torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    else:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        peak_mb = rss / 2**20 if sys.platform == "darwin" else rss / 2**10
        peak_kind = "process_peak_rss"
    # after the peak-memory reading, which is the eager model's
    compiled = measure_compiled(model, [(b, args.seq_length) for b in args.compile_batch_sizes], args.warmup,
                                args.runs, device)
    peaks.append(measure_peak(device, model))
    candidates = {k: max(p["candidates"].get(k, 0.0) for p in peaks) for k in peaks[0]["candidates"]}
    peak = {**max(peaks, key=lambda p: p["flops_per_s"]), "candidates": candidates,
            "measured_flops_per_s": [p["flops_per_s"] for p in peaks]}
    log.info("peak %.1f GFLOP/s (%s matmul, %d threads; before/after the sweep: %s)", peak["flops_per_s"] / 1e9,
             peak["dtype"], peak["threads"], " / ".join(f"{p / 1e9:.1f}" for p in peak["measured_flops_per_s"]))
    latency = []
    for entry in raw:
        entry = with_floor(entry, by_length[entry["seq_length"]]["total"], peak["flops_per_s"])
        log.info("batch %3d x %4d tokens: median %9.3f ms, IQR %8.3f ms, floor %8.3f ms (%5.1f%% of peak), "
                 "%d runs after %d warm-up, %d threads, %s", entry["batch_size"], entry["seq_length"],
                 entry["median_ms"], entry["iqr_ms"], entry["floor_ms"] or float("nan"),
                 entry["pct_of_peak"] or float("nan"), entry["runs"], entry["warmup"], entry["threads"],
                 entry["device"])
        latency.append(entry)
    latency_compiled = [with_floor(e, by_length[e["seq_length"]]["total"], peak["flops_per_s"])
                        for e in compiled["latency"]]
    for e in latency_compiled:
        log.info("torch.compile, batch %3d x %4d tokens: median %9.3f ms (%5.1f%% of peak), compiled in %.1f s",
                 e["batch_size"], e["seq_length"], e["median_ms"], e["pct_of_peak"] or float("nan"),
                 e["compile_seconds"])

    atomic_write_json(
        args.out,
        {
            "model": args.name,
            "model_dir": str(args.model_dir),
            "parameters": parameters,
            "macs": macs,
            "macs_by_length": [{k: m[k] for k in ("seq_length", "total", "linear", "attention", "other")}
                               for m in by_length.values()],
            "size_on_disk_bytes": size,
            "peak_flops": peak,
            "sweeps": {
                "batch": {"seq_length": args.seq_length, "batch_sizes": list(args.batch_sizes)},
                "length": {"batch_size": args.length_batch_size, "seq_lengths": sorted(set(args.seq_lengths or []))},
                "skipped": skipped,
            },
            "latency": latency,
            "latency_compiled": latency_compiled,
            "compile_errors": compiled["errors"],
            "peak_memory_mb": round(peak_mb, 3),
            "peak_memory_kind": peak_kind,
            "device": device_info(device, args.threads),
        },
    )
