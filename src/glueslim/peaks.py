"""The peaks that bound a deployed form: one measured matrix-product peak per kernel dtype the form runs.

The meaning of each figure is documented where it is recorded, in `glueslim.profile`.
"""

from __future__ import annotations

import logging

import torch

from glueslim.forms import Form
from glueslim.timing import measure_peak_flops

log = logging.getLogger(__name__)

OP_CLASSES = ("linear", "attention", "other")


def form_kernels(form: Form) -> dict[str, str]:
    """{op class: kernel dtype} of `form`: its Linear and attention kernels; any other counted product in float32."""
    return {"linear": form.linear_dtype, "attention": form.attention_dtype, "other": "float32"}


def peak_dtypes(kernels: dict[str, str]) -> list[str]:
    """The kernel dtypes whose peak is measured: float32 always, then the form's others, each once."""
    out = ["float32"]
    for dtype in kernels.values():
        if dtype not in out:
            out.append(dtype)
    return out


def _measure_one(device: torch.device, dtype: str, backend: str, threads: int) -> dict:
    if backend == "onnxruntime" and device.type == "cpu":
        from glueslim.onnx_forms import ort_peak_flops
        return {"backend": "onnxruntime", **ort_peak_flops(dtype, threads)}
    return measure_peak_flops(device, dtype)


def measure_peaks(device, dtypes: list[str], backend: str = "pytorch", threads: int | None = None) -> dict[str, dict]:
    """{dtype: peak dict} on `device` with the current threads: torch products for PyTorch forms (and for ONNX
    Runtime on a GPU), a one-node ONNX Runtime graph for ONNX Runtime forms on the CPU. A measurement that
    fails is recorded with its `error` and no FLOP/s (floors that need it are then null), never a failed job."""
    device = torch.device(device)
    threads = threads or torch.get_num_threads()
    out = {}
    for dtype in dtypes:
        try:
            out[dtype] = _measure_one(device, dtype, backend, threads)
        except Exception as e:  # noqa: BLE001 - the latency stands; the floor that needs this peak is null
            log.warning("no %s peak on %s (%s): %s", dtype, device.type, backend, e)
            out[dtype] = {"flops_per_s": None, "dtype": dtype, "backend": backend,
                          "error": f"{type(e).__name__}: {str(e)[:300]}"}
    return out


def best_peaks(runs: list[dict[str, dict]]) -> dict[str, dict]:
    """Per dtype, the best of several `measure_peaks` results, with every FLOP/s measured
    (`measured_flops_per_s`, in order): a burst of load from elsewhere during one does not lower the floor."""
    out = {}
    for dtype in runs[0]:
        measured = [r[dtype] for r in runs if dtype in r]
        best = max(measured, key=lambda p: p.get("flops_per_s") or 0.0)
        out[dtype] = {**best, "measured_flops_per_s": [p.get("flops_per_s") for p in measured]}
    return out


def candidate_key(peak: dict) -> str:
    """The key of a peak in `peak_flops.candidates`: its dtype, prefixed for ONNX Runtime's own kernels (so a
    leaderboard's best peak per dtype over a device never mixes two libraries' kernels)."""
    return peak["dtype"] if peak.get("backend", "pytorch") == "pytorch" else f"{peak['backend']}:{peak['dtype']}"


def legacy_peak(peaks: dict[str, dict], kernels: dict[str, str]) -> dict:
    """`peak_flops` as the leaderboard reads it: the peak of the form's Linear kernels (float32 for an fp32
    model, as before), `candidates` {key: FLOP/s} of every dtype measured, `measured_flops_per_s` of that peak."""
    main = peaks[kernels["linear"]]
    return {**main, "candidates": {candidate_key(p): p.get("flops_per_s") for p in peaks.values()}}


def peak_figures(peaks: dict[str, dict]) -> dict[str, float | None]:
    """{dtype: FLOP/s} of `best_peaks`' result, for the floors."""
    return {dtype: p.get("flops_per_s") for dtype, p in peaks.items()}
