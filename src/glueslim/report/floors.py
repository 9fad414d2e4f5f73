"""Floors of the timed points, per kernel dtype: the time the matrix products alone would take at the device's
measured peak of the kernels that run them, and, for a row far from its floor, what holds it back.

A profile measures the peak of every kernel dtype its model runs (`peaks`: float32 always; bfloat16, float16 or
int8 for a deployed form). Per dtype, the leaderboard takes the best peak any profile measured on the same device
(the peak belongs to the device; one job's may be low) and recomputes each point's floor per op class:

    floor = 2 * (linear MACs / peak[linear dtype] + attention MACs / peak[attention dtype]
                 + other MACs / peak[float32])

A float32 peak is never applied to a bf16, fp16 or int8 kernel: without that dtype's peak on the device, or
without the per-class MACs of a point, the profile's own floor is kept (when it was computed for that dtype).
Profiles from before per-dtype peaks keep the rule they were written for: the fastest kernel the job measured.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping, Sequence

from glueslim.report.values import num, unique

FLOAT32 = "float32"
BELOW_PEAK_PCT = 80.0  # a row under this % of its peak at the largest batch gets a "held back by" note
# op names of matrix products (torch profiler, ONNX Runtime node types): the time not in them holds a row back
_MATMUL_WORDS = ("mm", "matmul", "gemm", "linear", "attention", "einsum", "conv")


def device_of(profile: Mapping) -> dict:
    return profile.get("device") if isinstance(profile.get("device"), dict) else {}


def device_key(profile: Mapping) -> str:
    d = device_of(profile)
    return json.dumps([d.get(k) for k in ("type", "name", "gpu_name", "threads")])


def is_legacy(profile: Mapping) -> bool:
    """A profile from before deployed forms: no per-dtype `peaks`, no `form`."""
    return "peaks" not in profile and "form" not in profile


def peak_key(dtype: str, backend: str | None) -> str:
    """The key of a peak: its dtype, prefixed with the library for ONNX Runtime's own kernels
    ("onnxruntime:int8"), so that the best peak per key over a device never mixes two libraries' kernels
    (as glueslim.peaks.candidate_key)."""
    return dtype if backend in (None, "pytorch") else f"{backend}:{dtype}"


def profile_peaks(profile: Mapping) -> dict[str, float]:
    """{peak key: FLOP/s} measured in one profile job: `peaks` and the `peak_flops` candidates."""
    peak = profile.get("peak_flops") if isinstance(profile.get("peak_flops"), dict) else {}
    cands = peak.get("candidates") if isinstance(peak.get("candidates"), dict) else {}
    out = {str(k): float(v) for k, v in cands.items() if num(v) is not None and v > 0}
    if not out and num(peak.get("flops_per_s")) and peak.get("dtype"):
        out[peak_key(str(peak["dtype"]), peak.get("backend"))] = float(peak["flops_per_s"])
    peaks = profile.get("peaks") if isinstance(profile.get("peaks"), dict) else {}
    for dtype, p in peaks.items():
        v = num(p.get("flops_per_s")) if isinstance(p, dict) else num(p)
        key = peak_key(str(dtype), p.get("backend") if isinstance(p, dict) else None)
        if v is not None and v > 0:
            out[key] = max(out.get(key, 0.0), v)
    return out


def device_peaks(profiles: Mapping[str, Mapping]) -> dict[str, dict[str, float]]:
    """{device key: {peak key: best FLOP/s over every profile taken on that device}}."""
    out: dict[str, dict[str, float]] = {}
    for prof in profiles.values():
        best = out.setdefault(device_key(prof), {})
        for kind, v in profile_peaks(prof).items():
            best[kind] = max(best.get(kind, 0.0), v)
    return out


def kernel_keys(profile: Mapping, kernels: Mapping[str, str], backend: str) -> dict[str, str]:
    """{op class: peak key} of a row: each class's kernel dtype, with the library whose kernels the profile
    measured for it (ONNX Runtime's on the CPU for an ONNX Runtime form)."""
    peaks = profile.get("peaks") if isinstance(profile.get("peaks"), dict) else {}
    on_ort_cpu = backend == "onnxruntime" and device_of(profile).get("type", "cpu") == "cpu"
    out = {}
    for cls in ("linear", "attention", "other"):
        dtype = kernels.get(cls) or FLOAT32
        p = peaks.get(dtype)
        lib = p.get("backend") if isinstance(p, dict) and p.get("backend") else (
            "onnxruntime" if on_ort_cpu else "pytorch")
        out[cls] = peak_key(dtype, lib)
    return out


def floor_dtype_text(kernels: Mapping[str, str], split: Mapping[str, float] | None = None) -> str:
    """How a floor is taken, in the profile's words: "float32" when every counted product runs in one dtype,
    else e.g. "int8 linear + float32 attention" (the classes with MACs, each with its kernel dtype)."""
    used = [c for c in ("linear", "attention", "other") if (split or {}).get(c)] or ["linear", "attention"]
    kinds = {kernels.get(c) or FLOAT32 for c in used}
    if len(kinds) == 1:
        return kinds.pop()
    return " + ".join(f"{kernels.get(c) or FLOAT32} {c}" for c in used)


def _dtype_words(text: Any) -> set[str]:
    return set(re.findall(r"[a-z]+[0-9]+", str(text or "")))


def class_macs(profile: Mapping, e: Mapping) -> dict[str, float] | None:
    """{"linear", "attention", "other"} MACs of one timed point (the whole batch), or None when the profile
    does not split its MACs at that sequence length."""
    total, bs, seq = num(e.get("macs")), num(e.get("batch_size")), e.get("seq_length")
    if total is None or bs is None:
        return None
    lin = att = None
    macs = profile.get("macs") if isinstance(profile.get("macs"), dict) else {}
    if macs.get("seq_length") == seq and num(macs.get("linear")) is not None and num(macs.get("attention")) is not None:
        per = num(macs.get("batch_size")) or 1.0
        lin, att = macs["linear"] / per * bs, macs["attention"] / per * bs
    else:
        for m in profile.get("macs_by_length") or []:
            if isinstance(m, dict) and m.get("seq_length") == seq and num(m.get("linear")) is not None \
                    and num(m.get("attention")) is not None:
                lin, att = m["linear"] * bs, m["attention"] * bs
    if lin is None or att is None:
        return None
    return {"linear": lin, "attention": att, "other": max(0.0, total - lin - att)}


def _legacy_floors(profile: Mapping, timed: Sequence[dict], best: Mapping[str, float]) -> dict:
    """The rule of profiles without per-dtype peaks: 2·MACs / the device's best peak of the fastest kernel
    the job measured (an old int8 model's: the faster of float32 matmul and the int8 kernel)."""
    peak = profile.get("peak_flops") if isinstance(profile.get("peak_flops"), dict) else {}
    peak_flops, peak_dtype = None, peak.get("dtype")
    for kind in profile_peaks(profile):
        v = best.get(kind)
        if v is not None and (peak_flops is None or v > peak_flops):
            peak_flops, peak_dtype = v, kind
    for e in timed:
        if e.get("macs") is not None and peak_flops:
            e["floor_ms"] = 2 * e["macs"] / peak_flops * 1000.0
            e["pct_of_peak"] = e["floor_ms"] / e["median"] * 100.0 if e.get("median") else None
            e["floor_dtype"] = peak_dtype
    return {"peak_flops_per_s": peak_flops, "peak_dtype": peak_dtype if peak_flops else None,
            "peaks": {peak_dtype: peak_flops} if peak_flops else {}, "floor_dtype": peak_dtype if peak_flops else None,
            "floors_from": "device" if peak_flops else None, "missing_peaks": []}


def _point_floor(profile: Mapping, e: Mapping, kernels: Mapping[str, str], keys: Mapping[str, str],
                 best: Mapping[str, float]) -> tuple[float, str] | None:
    """(floor ms, floor dtype) of a point from the device's peaks, or None when a needed peak or the MACs
    split is missing."""
    split = class_macs(profile, e)
    if split is not None:
        used = [c for c in ("linear", "attention", "other") if split[c] > 0]
        if all(best.get(keys[c]) for c in used):
            return (sum(2 * split[c] / best[keys[c]] for c in used) * 1000.0,
                    floor_dtype_text(kernels, split))
        return None
    if {kernels.get(c) or FLOAT32 for c in keys} == {FLOAT32} and num(e.get("macs")) is not None \
            and best.get(keys["linear"]):
        return 2 * e["macs"] / best[keys["linear"]] * 1000.0, FLOAT32
    return None


def apply_floors(profile: Mapping, timed: Sequence[dict], kernels: Mapping[str, str], backend: str,
                 best: Mapping[str, float]) -> dict:
    """Set each timed point's `floor_ms`, `pct_of_peak` and `floor_dtype` in place; return the row's figures:
    `peak_flops_per_s` and `peak_dtype` (the linear kernels' peak: they do most of the MACs), `peaks`
    ({peak key: FLOP/s} the floors use), `floor_dtype`, `floors_from` ("device": recomputed from the device's
    best peaks; "profile": the profile's own; "mixed"; None: no floor)."""
    if is_legacy(profile):
        return _legacy_floors(profile, timed, best)
    keys = kernel_keys(profile, kernels, backend)
    sources = set()
    for e in timed:
        found = _point_floor(profile, e, kernels, keys, best)
        if found is not None:
            e["floor_ms"], e["floor_dtype"] = found
            sources.add("device")
        elif num(e.get("floor_ms")) is not None and kernels["linear"] in _dtype_words(e.get("floor_dtype")):
            sources.add("profile")  # the profiler's own floor, computed for this dtype
        else:  # no floor for this dtype: never one at another dtype's peak
            e["floor_ms"] = e["pct_of_peak"] = None
            continue
        e["pct_of_peak"] = e["floor_ms"] / e["median"] * 100.0 if e.get("median") else None
    macs = profile.get("macs") if isinstance(profile.get("macs"), dict) else {}
    split = {c: num(macs.get(c)) or 0.0 for c in ("linear", "attention", "other")}
    peaks = {k: best[k] for k in unique(keys.values()) if best.get(k)}
    return {"peak_flops_per_s": best.get(keys["linear"]), "peak_dtype": keys["linear"] if best.get(
        keys["linear"]) else None, "peaks": peaks, "floor_dtype": floor_dtype_text(kernels, split),
        "floors_from": (sources.pop() if len(sources) == 1 else "mixed") if sources else None,
        "missing_peaks": [k for k in unique(keys.values()) if not best.get(k)]}


# --------------------------------------------------------------------------------------------
# what holds a row back from its floor
# --------------------------------------------------------------------------------------------

def _fraction(x: Any) -> float | None:
    """A share as a fraction (a value above 1 is read as a percentage)."""
    v = num(x)
    if v is None or v < 0:
        return None
    return v / 100.0 if v > 1.0 else v


def is_matmul(op: str) -> bool:
    """Whether an op name (torch profiler, ONNX Runtime node type) is a matrix product; ORT's
    (Dynamic)QuantizeLinear / DequantizeLinear are not."""
    name = op.lower().rsplit("::", 1)[-1]
    return not name.endswith("quantizelinear") and any(w in name for w in _MATMUL_WORDS)


def _largest_batch(latency: Mapping[str, Mapping]) -> Mapping | None:
    timed = [e for e in latency.values()
             if num(e.get("batch_size")) is not None and num(e.get("pct_of_peak")) is not None]
    return max(timed, key=lambda e: e["batch_size"], default=None)


def held_back(latency: Mapping[str, Mapping], profile: Mapping) -> dict | None:
    """Why a row runs under BELOW_PEAK_PCT % of its peak at its largest profiled batch, from the profile's
    `holdbacks` (share of time in matrix products, the top operations); None when it does not."""
    e = _largest_batch(latency)
    if e is None or e["pct_of_peak"] >= BELOW_PEAK_PCT:
        return None
    hb = profile.get("holdbacks") if isinstance(profile.get("holdbacks"), dict) else {}
    share = _fraction(hb.get("matmul_share"))
    top = []
    for o in hb.get("top_ops") or hb.get("top") or []:
        if isinstance(o, dict) and isinstance(o.get("op"), str):
            top.append({"op": o["op"], "ms": num(o.get("ms")), "share": _fraction(o.get("share")),
                        "matmul": bool(o.get("matmul", is_matmul(o["op"])))})
    others = [o for o in top if not o["matmul"] and o["share"] is not None][:3]
    listed = ", ".join(f"{o['op']} {o['share'] * 100:.0f}%" for o in others)
    if share is None:
        note = ("the profile has no breakdown of its time by operation (re-run profile to see what holds it back)"
                if not others else f"most time outside matrix products: {listed}")
    elif 1 - share >= 0.25:
        note = f"{(1 - share) * 100:.0f}% of the time outside matrix products" + (f": {listed}" if listed else "")
    else:
        note = (f"matrix products take {share * 100:.0f}% of the time but run below the measured peak at these "
                "shapes" + (f"; outside them: {listed}" if listed else ""))
    hb_bs = hb.get("batch_size")
    if hb and hb_bs is not None and hb_bs != e["batch_size"]:
        note += f" (breakdown at batch {hb_bs})"
    return {"batch_size": e["batch_size"], "pct_of_peak": e["pct_of_peak"], "matmul_share": share,
            "top": top, "note": note}
