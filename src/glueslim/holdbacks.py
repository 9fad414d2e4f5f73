"""What holds a model's forward pass back from its floor: the share of its time spent in matrix products and the
operations that take the rest, from torch.profiler (PyTorch) or ONNX Runtime's own session profiling.

The meaning of each figure is documented where it is recorded, in `glueslim.profile`.
"""

from __future__ import annotations

import re

import torch

TOP = 8
RUNS = 3
# lower-case substrings of the names of operations that are matrix products: aten's products and fused attention,
# oneDNN / mkldnn / MKL linear kernels, inductor kernels whose names say mm/linear, ONNX Runtime's MatMul, Gemm,
# MatMulInteger, FusedMatMul, QGemm and (Multi-Head / Q)Attention
MATMUL_NAMES = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear",
                "aten::_int_mm", "_weight_int8pack_mm", "scaled_dot_product", "qlinear", "mkldnn::_linear",
                "mkldnn_linear", "onednn::", "mkl::", "_mkl_linear", "matmul", "gemm", "attention")
INDUCTOR_MM = re.compile(r"(^|_)(mm|bmm|addmm|linear|gemm)(_|$)")


def is_matmul(op: str) -> bool:
    """Whether the operation named `op` is a matrix product (its time is what the floor bounds)."""
    low = op.lower()
    return any(n in low for n in MATMUL_NAMES) or (low.startswith(("cpp_", "triton_")) and bool(INDUCTOR_MM.search(low)))


def _name(key: str) -> str:
    if key.startswith("## Call CompiledFxGraph"):
        return "inductor-generated kernels (## Call CompiledFxGraph ##)"
    return key[:100]


def summarise(ops: list[tuple[str, float]], **about) -> dict:
    """The holdbacks record from [(op name, ms per forward pass)]: total, matrix-product share, top ops."""
    merged: dict[str, float] = {}
    for op, ms in ops:
        merged[_name(op)] = merged.get(_name(op), 0.0) + max(float(ms), 0.0)
    total = sum(merged.values())
    matmul = sum(ms for op, ms in merged.items() if is_matmul(op))
    top = sorted(merged.items(), key=lambda kv: -kv[1])[:TOP]
    return {
        **about,
        "total_ms": total,
        "matmul_ms": matmul,
        "matmul_share": matmul / total if total else None,
        "top_ops": [{"op": op, "ms": ms, "share": ms / total if total else None, "matmul": is_matmul(op)}
                    for op, ms in top],
    }


def torch_holdbacks(model, inputs: dict, runs: int = RUNS, device=None, **about) -> dict:
    """Self time per operation of `runs` forward passes of `model` (torch.profiler, after one untimed pass), per
    pass: self CPU time on the CPU, self device time of the kernels on a GPU."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device is not None and torch.device(device).type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch.inference_mode():
        model(**inputs)
        with profile(activities=activities) as prof:
            for _ in range(runs):
                model(**inputs)
            if cuda:
                torch.cuda.synchronize(device)
    ops = [(e.key, (e.self_device_time_total if cuda else e.self_cpu_time_total) / 1000.0 / runs)
           for e in prof.key_averages()]
    source = f"torch.profiler key_averages, self {'device' if cuda else 'CPU'} time"
    return summarise(ops, source=source, runs=runs, **about)


def ort_holdbacks(model_dir, threads: int, batch_size: int, seq_length: int, **about) -> dict:
    """ONNX Runtime's own node times per op type (onnx_forms.ort_time_by_op: its session profiler over a few runs;
    its top operators and "other" for the rest), per run, at `batch_size` x `seq_length`."""
    from glueslim.onnx_forms import ort_time_by_op

    by_op = ort_time_by_op(str(model_dir), batch_size, seq_length, threads)
    return summarise([(r["op"], r["ms"]) for r in by_op], source="onnxruntime session profiling, node time by op "
                     "type", batch_size=batch_size, seq_length=seq_length, **about)
