"""`glueslim profile`: how big and how fast one saved sequence-classification model is, in its deployed form.

The counting is `glueslim.flops`'s, the timing `glueslim.timing`'s, the peaks `glueslim.peaks`'s, what holds a
form back `glueslim.holdbacks`'s; `run` takes the steps in order and records the figures. The folder may be any
deployed form (glueslim.forms): fp32 (the model's own folder) is timed eager as it always was; every other form
is timed through the runner it is deployed with.

What each figure in results/profile/<name>.json means:

form, backend
    The folder's deployed form (glueslim.json `form`, "fp32" when none) and its runtime, "pytorch" or
    "onnxruntime" (glueslim.forms.FORMS).
native, not_native_reason
    Whether the profiling device runs the form's kernels natively (forms.not_native with this CPU's
    flags): false for bf16 on a CPU without AVX512-BF16/AMX-BF16, say, whose bf16 products are emulated.
    Such a form is still timed (the workflow profiles it only when emulation was allowed) and flagged;
    the reason is one sentence, null when native.
kernels
    {"linear", "attention", "other"}: the kernel dtype of each op class of `macs` for this form
    ("float32", "bfloat16", "float16", "int8"): int8 forms run int8 Linear kernels and float32
    attention products; "other" is always float32.
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
    Every form is counted on its float architecture (modeling.architecture of the folder: same
    parameters and MACs): FlopCounterMode does not see int8, torchao or ONNX Runtime kernels.
macs_by_length
    The same split per sequence (batch 1) at every sequence length that was timed. MACs are
    exactly proportional to the batch size (every op is per sequence), so a batch of b costs
    b times these.
size_on_disk_bytes
    Bytes of the weight files in the model folder: *.safetensors, plus *.bin / *.pt if present
    (trainer state such as training_args.bin or optimizer.pt is not weights); for an ONNX Runtime
    form its *.onnx graph (and external *.onnx.data) only.
peak_flops
    The peak the leaderboard reads (for an fp32 model exactly as before): the device's measured
    peak of the kernels that run the form's Linear layers (float32 for fp32), i.e. `peaks`'
    entry of kernels.linear, plus `candidates`: {key: FLOP/s} of every peak in `peaks` (key =
    the dtype; "onnxruntime:<dtype>" for ONNX Runtime's kernels, so that a leaderboard taking
    the best peak per key over a device never mixes two libraries).
peaks
    {dtype: peak} for every kernel dtype the form runs ("float32" always). Each: the best FLOP/s
    (`flops_per_s`) of `runs` timed square matrix products (2n^3 FLOPs, after `warmup`, same
    device and threads) over the sizes `matmul_sizes` (`best_size` the one that reached it):
    float32/bfloat16/float16: torch.matmul in that dtype; int8: torch._int_mm (int8 x int8 ->
    int32, oneDNN with VNNI/AMX on the CPU), the kernel a compiled torchao int8 Linear runs; for
    an ONNX Runtime form, a one-node MatMul (float32) or MatMulInteger (int8) graph in ONNX
    Runtime with the same threads (onnx_forms.ort_peak_flops). `method`, `dtype`, `backend`,
    `threads`, `tf32` (CUDA) say which. Measured before and after the latency sweep
    (`measured_flops_per_s`) and the better kept. An upper bound the model's own products can
    approach, not a vendor datasheet number. A measurement that failed has `flops_per_s` null
    and its `error`.
sweeps
    What was timed: `length`: batch `batch_size` at each of `seq_lengths` (lengths above the
    model's max_position_embeddings are listed in `skipped`); `batch`: each of `batch_sizes` at
    `seq_length` (the length of `macs`). A (batch, length) point in both is timed once.
    `runner`: what was timed: "eager" for fp32; for other forms "torch.compile"
    (forms.load_model(compiled=True): inductor, freezing on the CPU, one static graph per shape)
    or "onnxruntime" (an onnx_forms.OrtClassifier session). Other forms are timed at the batch
    sweep only: their `length.seq_lengths` is empty and `length.not_timed` says why.
latency
    One entry per timed (batch_size, seq_length) point: wall time of one forward pass under
    torch.inference_mode after `warmup` untimed passes, over `runs` timed passes (at least
    MIN_RUNS, and never fewer than asked for): median, quartiles (statistics.quantiles,
    inclusive method), IQR, min, max in milliseconds, `throughput_per_s` = batch_size / median
    (examples per second), `threads`, `device` and `timer`. `macs` = per-sequence MACs x
    batch_size. `floor_ms`: the time the matrix products alone would take at the measured peaks,
    2 x MACs of each op class / the peak of that class's kernel dtype (`kernels`), summed (for an
    fp32 model exactly 2 x macs / peak_flops, as before); `floor_parts` {"linear", "attention",
    "other": {"dtype", "macs" (whole batch), "ms"}} its terms; `floor_dtype` in words: "float32",
    or e.g. "int8 linear + float32 attention" when the classes differ. `pct_of_peak` = floor_ms /
    median x 100, the fraction of the kernels' peak the forward pass reaches (the leaderboard may
    recompute floors with the best peak any profile job measured on the same device). `runner`:
    "eager", "torch.compile" (then `compile_seconds`: the first call at that shape) or
    "onnxruntime". CPU: time.perf_counter; CUDA: CUDA events around each pass, then synchronize.
    For a form other than fp32 these are its deployed runner's figures.
latency_compiled, compile_errors
    fp32 only: torch.compile'd passes at --compile-batch-sizes (`compile_seconds`, `compiler`),
    same fields and floors as `latency`. compile_errors: {"batch_size", "seq_length", "error"} per
    point whose compilation failed: for fp32 that point has no compiled figure; for another form
    its `latency` entry was timed eager instead (runner "eager").
holdbacks
    At the largest batch of the batch sweep (at seq_length), with the runner that was timed:
    where the time goes. `total_ms` per forward pass, `matmul_ms` and `matmul_share` (0-1) in
    matrix products (aten mm/addmm/bmm/matmul/linear/_int_mm, scaled_dot_product attention,
    oneDNN/mkldnn/MKL linear kernels, inductor kernels named for mm/linear; ONNX Runtime MatMul,
    MatMulInteger, Gemm, FusedMatMul, Attention...), `top_ops`: the 8 largest [{"op", "ms",
    "share", "matmul"}] (inductor's generated non-product kernels appear as one entry).
    `source`: torch.profiler key_averages, self CPU time (self device time on CUDA) over `runs`
    passes after one untimed one; or ONNX Runtime's session profiling, node time by op type
    (onnx_forms.ort_time_by_op: a CPU session, its top op types and "other" for the rest).
    `batch_size`, `seq_length`, `runner` say what was profiled. Null figures and an `error` when
    profiling failed. Explains a low pct_of_peak: the time outside matrix products.
peak_memory_mb (MiB) and peak_memory_kind
    "cuda_max_allocated": torch.cuda.max_memory_allocated over the timed runs (tensors only,
    not the CUDA context). "process_peak_rss": on CPU, the peak resident set size of the whole
    process so far (resource.getrusage; includes Python, torch and loading the model).
device
    Where the figures were taken: CPU model and speed-relevant instruction-set flags
    (`cpu_flags`: those of timing.SPEED_FLAGS it has: avx2, avx512f, fma, avx512_vnni, avx_vnni,
    avx512_bf16, avx512_fp16, amx_tile, amx_int8, amx_bf16, amx_fp16), threads, GPU, library versions. Latencies are only
    comparable between identical `device` records.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from glueslim.errors import UserError
from glueslim.flops import count_macs, count_parameters, dummy_inputs
from glueslim.forms import FORMS, cpu_flags, form_of, not_native
from glueslim.holdbacks import ort_holdbacks, torch_holdbacks
from glueslim.io import atomic_write_json
from glueslim.modeling import architecture, load_for_inference, pick_device
from glueslim.peaks import best_peaks, form_kernels, legacy_peak, measure_peaks, peak_dtypes, peak_figures
from glueslim.progress import Progress
from glueslim.timing import (MIN_RUNS, MIN_WARMUP, device_info, measure_compiled, measure_latency, peak_memory,
                             plan_points, time_deployed, with_form_floor)

log = logging.getLogger(__name__)

WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt")
ONNX_PATTERNS = ("*.onnx", "*.onnx.data")
NOT_WEIGHTS = {"training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt"}
LENGTH_SWEEP_FP32_ONLY = "the length sweep is timed for fp32 models only; deployed forms at the batch sweep"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-dir", required=True,
                   help="saved model folder (config.json + weights), fp32 or any deployed form (glueslim deploy)")
    p.add_argument("--name", required=True, help="model name recorded in the output")
    p.add_argument("--out", required=True, help="output JSON, e.g. results/profile/NAME.json")
    p.add_argument("--seq-length", type=int, default=128,
                   help="length of the MACs figure and of the batch-size sweep (default 128)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32],
                   help="batch-size sweep, at --seq-length (default 1 32)")
    p.add_argument("--seq-lengths", type=int, nargs="*", default=[32, 64, 128, 256, 512],
                   help="sequence-length sweep, at --length-batch-size (default 32 64 128 256 512; none: no sweep; "
                        "fp32 models only)")
    p.add_argument("--length-batch-size", type=int, default=1, help="batch size of the length sweep (default 1)")
    p.add_argument("--compile-batch-sizes", type=int, nargs="*", default=[],
                   help="also time torch.compile'd forward passes at these batch sizes (at --seq-length), beside "
                        "the eager ones (default: none; fp32 models only: other forms are timed compiled anyway)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--runs", type=int, default=20, help=f"timed runs per point (at least {MIN_RUNS})")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse bad arguments before loading anything."""
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
    if not (Path(args.model_dir) / "config.json").is_file():
        raise UserError(f"--model-dir {Path(args.model_dir)}: no config.json there")


def _load(model_dir: Path, fp32: bool):
    """The fp32 model itself; for any other form its float architecture, on which it is counted (its kernels
    are invisible to FlopCounterMode; the form is timed through its own runner)."""
    try:
        if fp32:
            return load_for_inference(str(model_dir))
        return architecture(str(model_dir)).float().eval()
    except (OSError, ValueError) as e:
        raise UserError(f"--model-dir {model_dir}: cannot load the model ({e})") from None


def _plan(args: argparse.Namespace, model, fp32: bool) -> tuple[list[tuple[int, int]], list[dict]]:
    """The (batch, length) points to time and the lengths skipped (longer than the model takes)."""
    max_len = getattr(model.config, "max_position_embeddings", None)
    if max_len is not None and args.seq_length > max_len:
        raise UserError(f"--seq-length {args.seq_length} exceeds the model's max_position_embeddings ({max_len})")
    points, skipped = plan_points(args.seq_length, args.batch_sizes, (args.seq_lengths or []) if fp32 else [],
                                  args.length_batch_size, max_len)
    for s in skipped:
        log.warning("not timing %d tokens: %s", s["seq_length"], s["reason"])
    return points, skipped


def _runner_device(form, device: torch.device) -> torch.device:
    """Where the form runs: int8 kernels on the CPU; ONNX Runtime on CUDA only when it has that provider."""
    if form.weights == "int8" or (form.backend == "onnxruntime" and not_native(form.name, device.type) is not None):
        return torch.device("cpu")
    return device


def size_on_disk(model_dir: Path, backend: str = "pytorch") -> int:
    """Bytes of the weight files in `model_dir` (not trainer state; an ONNX Runtime form: its graph)."""
    patterns = ONNX_PATTERNS if backend == "onnxruntime" else WEIGHT_PATTERNS
    return sum(
        p.stat().st_size
        for pattern in patterns
        for p in model_dir.glob(pattern)
        if p.is_file() and p.name not in NOT_WEIGHTS
    )


def _time_eager(model, points: list[tuple[int, int]], warmup: int, runs: int,
                device: torch.device) -> tuple[list[dict], tuple[float, str]]:
    """Eager latency at every point, and the peak memory (MiB, kind) over those runs."""
    if device.type == "cuda":
        model.to(device)
        torch.cuda.reset_peak_memory_stats(device)
    raw = []
    progress = Progress(len(points), "profile: latency sweep", unit="sequences")  # logs between points only
    for b, n in points:
        entry = measure_latency(model, n, b, warmup, runs, device)
        if entry["runs"] < runs:  # measure_latency guarantees it; the report relies on it
            raise RuntimeError(f"batch {b}, {n} tokens: {entry['runs']} timed runs, {runs} asked for")
        raw.append({**entry, "runner": "eager"})
        progress.update(1, b * (warmup + runs))
    progress.close()
    return raw, peak_memory(device)


def _holdbacks(form, model_dir: Path, runner, b: int, n: int, device: torch.device, threads: int, name: str) -> dict:
    """Where the time of one forward pass at (b, n) goes; an error recorded, never a failed job."""
    about = {"batch_size": b, "seq_length": n, "runner": name}
    try:
        if form.backend == "onnxruntime":
            return ort_holdbacks(model_dir, threads, **about)
        return torch_holdbacks(runner, dummy_inputs(runner, b, n, device), device=device, **about)
    except Exception as e:  # noqa: BLE001 - the latency figures stand without it
        log.warning("no holdbacks at batch %d x %d tokens: %s", b, n, e)
        return {**about, "total_ms": None, "matmul_ms": None, "matmul_share": None, "top_ops": [],
                "error": f"{type(e).__name__}: {str(e)[:300]}"}


def _log_figures(peaks: dict, latency: list[dict], latency_compiled: list[dict], holdbacks: dict) -> None:
    for dtype, p in peaks.items():
        log.info("%s peak %s GFLOP/s (%s, %s threads; before/after the sweep: %s)", dtype,
                 f"{p['flops_per_s'] / 1e9:.1f}" if p.get("flops_per_s") else "n/a", p.get("method"), p.get("threads"),
                 " / ".join(f"{x / 1e9:.1f}" if x else "n/a" for x in p.get("measured_flops_per_s", [])))
    for entry in latency:
        log.info("%s, batch %3d x %4d tokens: median %9.3f ms, IQR %8.3f ms, floor %8.3f ms (%5.1f%% of %s peak), "
                 "%d runs after %d warm-up, %d threads, %s", entry["runner"], entry["batch_size"], entry["seq_length"],
                 entry["median_ms"], entry["iqr_ms"], entry["floor_ms"] or float("nan"),
                 entry["pct_of_peak"] or float("nan"), entry["floor_dtype"], entry["runs"], entry["warmup"],
                 entry["threads"], entry["device"])
    for e in latency_compiled:
        log.info("torch.compile, batch %3d x %4d tokens: median %9.3f ms (%5.1f%% of peak), compiled in %.1f s",
                 e["batch_size"], e["seq_length"], e["median_ms"], e["pct_of_peak"] or float("nan"),
                 e["compile_seconds"])
    if holdbacks.get("matmul_share") is not None:
        log.info("batch %d x %d tokens: %.0f%% of the time in matrix products; top: %s", holdbacks["batch_size"],
                 holdbacks["seq_length"], 100 * holdbacks["matmul_share"],
                 ", ".join(f"{o['op']} {100 * (o['share'] or 0):.0f}%" for o in holdbacks["top_ops"][:4]))


def _runner_name(latency: list[dict]) -> str:
    """The runner(s) of a sweep: "eager", "torch.compile", "onnxruntime", or e.g. "torch.compile, eager"."""
    names = []
    for e in latency:
        if e["runner"] not in names:
            names.append(e["runner"])
    return ", ".join(names)


def _sweeps(args: argparse.Namespace, fp32: bool, skipped: list[dict], runner: str) -> dict:
    length = {"batch_size": args.length_batch_size, "seq_lengths": sorted(set(args.seq_lengths or [])) if fp32 else []}
    if not fp32:
        length["not_timed"] = LENGTH_SWEEP_FP32_ONLY
    return {"batch": {"seq_length": args.seq_length, "batch_sizes": list(args.batch_sizes)}, "length": length,
            "skipped": skipped, "runner": runner}


def _time_fp32(args, form, model_dir: Path, model, points, device: torch.device, threads: int):
    """fp32, as it always was: eager at every point, then torch.compile at --compile-batch-sizes; holdbacks of
    the eager model at the largest batch."""
    raw, memory = _time_eager(model, points, args.warmup, args.runs, device)
    holdbacks = _holdbacks(form, model_dir, model, max(args.batch_sizes), args.seq_length, device, threads, "eager")
    # after the peak-memory reading, which is the eager model's
    compiled = measure_compiled(model, [(b, args.seq_length) for b in args.compile_batch_sizes], args.warmup,
                                args.runs, device)
    return raw, memory, compiled, holdbacks


def _time_form(args, form, model_dir: Path, points, device: torch.device, threads: int):
    """Another form, through its deployed runner at the batch sweep; holdbacks at the largest batch, profiled
    right after that point was timed (its compiled graph still warm)."""
    if args.compile_batch_sizes:
        log.warning("--compile-batch-sizes is for fp32 models: the %s form is timed through its own runner", form.name)
    largest, found = (max(args.batch_sizes), args.seq_length), {}

    def after(entry, runner):
        if (entry["batch_size"], entry["seq_length"]) == largest:
            found["holdbacks"] = _holdbacks(form, model_dir, runner, *largest, device, threads, entry["runner"])

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timed = time_deployed(model_dir, form, device, points, args.warmup, args.runs, threads, after=after)
    return timed["latency"], peak_memory(device), {"latency": [], "errors": timed["errors"]}, found["holdbacks"]


def run(args: argparse.Namespace) -> None:
    _check_arguments(args)
    model_dir = Path(args.model_dir)
    form = FORMS[form_of(model_dir)]
    fp32 = form.name == "fp32"
    device = _runner_device(form, pick_device(args.device))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    reason = not_native(form.name, device.type, cpu_flags() if device.type == "cpu" else None)
    if reason:
        log.warning("the %s form is not native on this %s, timed anyway: %s", form.name, device.type, reason)
    model = _load(model_dir, fp32)
    points, skipped = _plan(args, model, fp32)
    parameters = count_parameters(model)
    # on CPU, before any move to the GPU; per sequence (batch 1): a batch of b costs exactly b times
    by_length = {n: count_macs(model, n, batch_size=1) for n in sorted({n for _, n in points})}
    size = size_on_disk(model_dir, form.backend)
    kernels = form_kernels(form)

    # the peaks, measured before and after the sweep (outside the peak-memory window); the better of the
    # two, so that a burst of load from elsewhere during one does not lower the floor
    first_peaks = measure_peaks(device, peak_dtypes(kernels), form.backend, threads)
    if fp32:
        raw, (peak_mb, peak_kind), compiled, holdbacks = _time_fp32(args, form, model_dir, model, points, device,
                                                                     threads)
    else:
        del model  # counted; the form's own runner is timed
        raw, (peak_mb, peak_kind), compiled, holdbacks = _time_form(args, form, model_dir, points, device, threads)
    peaks = best_peaks([first_peaks, measure_peaks(device, peak_dtypes(kernels), form.backend, threads)])
    figures = peak_figures(peaks)
    latency = [with_form_floor(e, by_length[e["seq_length"]], figures, kernels) for e in raw]
    latency_compiled = [with_form_floor(e, by_length[e["seq_length"]], figures, kernels) for e in compiled["latency"]]
    _log_figures(peaks, latency, latency_compiled, holdbacks)

    atomic_write_json(
        args.out,
        {
            "model": args.name,
            "model_dir": str(args.model_dir),
            "form": form.name,
            "backend": form.backend,
            "native": reason is None,
            "not_native_reason": reason,
            "kernels": kernels,
            "parameters": parameters,
            "macs": by_length[args.seq_length],
            "macs_by_length": [{k: m[k] for k in ("seq_length", "total", "linear", "attention", "other")}
                               for m in by_length.values()],
            "size_on_disk_bytes": size,
            "peak_flops": legacy_peak(peaks, kernels),
            "peaks": peaks,
            "sweeps": _sweeps(args, fp32, skipped, _runner_name(raw)),
            "latency": latency,
            "latency_compiled": latency_compiled,
            "compile_errors": compiled["errors"],
            "holdbacks": holdbacks,
            "peak_memory_mb": round(peak_mb, 3),
            "peak_memory_kind": peak_kind,
            "device": device_info(device, args.threads),
        },
    )
