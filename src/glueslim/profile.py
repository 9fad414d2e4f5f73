"""`glueslim profile`: how big and how fast one saved sequence-classification model is.

The counting is `glueslim.flops`'s, the timing `glueslim.timing`'s; `run` takes the steps in order
and records the figures.

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
    (same parameters and MACs; see `_counted_model`).
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
from pathlib import Path

import torch

from glueslim.errors import UserError
from glueslim.flops import count_macs, count_parameters
from glueslim.int8 import WEIGHTS as INT8_WEIGHTS
from glueslim.io import atomic_write_json
from glueslim.modeling import architecture, load_for_inference, pick_device
from glueslim.progress import Progress
from glueslim.timing import (MIN_RUNS, MIN_WARMUP, best_peak, device_info, measure_compiled, measure_latency,
                             measure_peak, peak_memory, plan_points, with_floor)

log = logging.getLogger(__name__)

WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt")
NOT_WEIGHTS = {"training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt"}


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


def _load(model_dir: Path):
    try:
        return load_for_inference(str(model_dir))
    except (OSError, ValueError) as e:
        raise UserError(f"--model-dir {model_dir}: cannot load the model ({e})") from None


def _plan(args: argparse.Namespace, model) -> tuple[list[tuple[int, int]], list[dict]]:
    """The (batch, length) points to time and the lengths skipped (longer than the model takes)."""
    max_len = getattr(model.config, "max_position_embeddings", None)
    if max_len is not None and args.seq_length > max_len:
        raise UserError(f"--seq-length {args.seq_length} exceeds the model's max_position_embeddings ({max_len})")
    points, skipped = plan_points(args.seq_length, args.batch_sizes, args.seq_lengths or [],
                                  args.length_batch_size, max_len)
    for s in skipped:
        log.warning("not timing %d tokens: %s", s["seq_length"], s["reason"])
    return points, skipped


def _counted_model(model_dir: Path, model, device: torch.device):
    """The model whose parameters and MACs are counted, and the device to time `model` on.

    int8 keeps the float model's parameters and MACs; its packed weights are no nn.Parameters and
    FlopCounterMode does not see quantized kernels, so count on the float architecture."""
    if not (model_dir / INT8_WEIGHTS).exists():
        return model, device
    return architecture(str(model_dir)), torch.device("cpu")  # dynamic int8 kernels exist for the CPU only


def size_on_disk(model_dir: Path) -> int:
    """Bytes of the weight files in `model_dir` (not trainer state)."""
    return sum(
        p.stat().st_size
        for pattern in WEIGHT_PATTERNS
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
        raw.append(entry)
        progress.update(1, b * (warmup + runs))
    progress.close()
    return raw, peak_memory(device)


def _with_floors(entries: list[dict], by_length: dict[int, dict], peak: dict) -> list[dict]:
    return [with_floor(e, by_length[e["seq_length"]]["total"], peak["flops_per_s"]) for e in entries]


def _log_figures(peak: dict, latency: list[dict], latency_compiled: list[dict]) -> None:
    log.info("peak %.1f GFLOP/s (%s matmul, %d threads; before/after the sweep: %s)", peak["flops_per_s"] / 1e9,
             peak["dtype"], peak["threads"], " / ".join(f"{p / 1e9:.1f}" for p in peak["measured_flops_per_s"]))
    for entry in latency:
        log.info("batch %3d x %4d tokens: median %9.3f ms, IQR %8.3f ms, floor %8.3f ms (%5.1f%% of peak), "
                 "%d runs after %d warm-up, %d threads, %s", entry["batch_size"], entry["seq_length"],
                 entry["median_ms"], entry["iqr_ms"], entry["floor_ms"] or float("nan"),
                 entry["pct_of_peak"] or float("nan"), entry["runs"], entry["warmup"], entry["threads"],
                 entry["device"])
    for e in latency_compiled:
        log.info("torch.compile, batch %3d x %4d tokens: median %9.3f ms (%5.1f%% of peak), compiled in %.1f s",
                 e["batch_size"], e["seq_length"], e["median_ms"], e["pct_of_peak"] or float("nan"),
                 e["compile_seconds"])


def run(args: argparse.Namespace) -> None:
    _check_arguments(args)
    device = pick_device(args.device)
    model_dir = Path(args.model_dir)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    model = _load(model_dir)
    points, skipped = _plan(args, model)
    counted, device = _counted_model(model_dir, model, device)
    parameters = count_parameters(counted)
    # on CPU, before any move to the GPU; per sequence (batch 1): a batch of b costs exactly b times
    by_length = {n: count_macs(counted, n, batch_size=1) for n in sorted({n for _, n in points})}
    size = size_on_disk(model_dir)

    # the device's peak, measured before and after the sweep (outside the peak-memory window); the
    # better of the two, so that a burst of load from elsewhere during one does not lower the floor
    first_peak = measure_peak(device, model)
    raw, (peak_mb, peak_kind) = _time_eager(model, points, args.warmup, args.runs, device)
    # after the peak-memory reading, which is the eager model's
    compiled = measure_compiled(model, [(b, args.seq_length) for b in args.compile_batch_sizes], args.warmup,
                                args.runs, device)
    peak = best_peak([first_peak, measure_peak(device, model)])
    latency = _with_floors(raw, by_length, peak)
    latency_compiled = _with_floors(compiled["latency"], by_length, peak)
    _log_figures(peak, latency, latency_compiled)

    atomic_write_json(
        args.out,
        {
            "model": args.name,
            "model_dir": str(args.model_dir),
            "parameters": parameters,
            "macs": by_length[args.seq_length],
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
