"""Deployed forms of a model: the registry (FORMS), whether a device runs a form natively, and loading any form.

A form is how a trained model is shipped: its weights' dtype and the runtime that executes it (PyTorch eager /
torch.compile, or ONNX Runtime). `fp32` is the model's own folder; every other form is a folder written by the
`deploy` command (glueslim.deploy) with `form` in its glueslim.json. The leaderboard row of a form is
`<model>-<form>`.

This module does not import torch at import time (Snakemake reads FORMS and `not_native` while it builds the
job graph); `load_model` imports the runtime a folder needs (glueslim.torch_forms, glueslim.onnx_forms).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from glueslim.errors import UserError
from glueslim.io import read_json

RECORD_FILE = "glueslim.json"  # = glueslim.record.RECORD_FILE


@dataclass(frozen=True)
class Form:
    name: str
    backend: str  # "pytorch" | "onnxruntime"
    weights: str  # dtype of the saved weights: "float32" | "bfloat16" | "float16" | "int8"
    linear_dtype: str  # dtype of the Linear (matrix-product) kernels: the floor's peak
    attention_dtype: str  # dtype of the attention products (QK^T, PV)
    calibrated: bool  # activation scales from a calibration sample of training examples
    description: str


FORMS: dict[str, Form] = {f.name: f for f in (
    Form("fp32", "pytorch", "float32", "float32", "float32", False,
         "the trained model as saved: float32 weights, PyTorch eager"),
    Form("bf16", "pytorch", "bfloat16", "bfloat16", "bfloat16", False,
         "weights cast to bfloat16 (half the size on disk), every kernel in bfloat16"),
    Form("fp16", "pytorch", "float16", "float16", "float16", False,
         "weights cast to float16 (half the size on disk), every kernel in float16"),
    Form("int8-dynamic", "pytorch", "int8", "int8", "float32", False,
         "torchao Int8DynamicActivationInt8Weight on every Linear: int8 per-row weights, activations quantized "
         "per token at run time; attention products in float32"),
    Form("int8-static", "pytorch", "int8", "int8", "float32", True,
         "torchao Int8StaticActivationInt8Weight on every Linear: int8 per-row weights, one int8 activation scale "
         "per Linear calibrated on a seeded sample of training examples; attention products in float32"),
    Form("onnx", "onnxruntime", "float32", "float32", "float32", False,
         "ONNX export with ONNX Runtime's transformer fusions, float32, ORT CPU execution provider"),
    Form("onnx-int8", "onnxruntime", "int8", "int8", "float32", False,
         "the fused ONNX graph with ONNX Runtime dynamic int8 quantization (per-channel weights) of its MatMuls"),
)}

INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
FP16_FLAGS = ("amx_fp16", "avx512_fp16")


def cpu_flags() -> set[str]:
    """The CPU's feature flags (the `flags` line of /proc/cpuinfo); an empty set where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def _form(name: str) -> Form:
    if name not in FORMS:
        raise UserError(f"form {name!r} is not a deployed form; choose one of: {', '.join(FORMS)}")
    return FORMS[name]


def _cuda_reason(form: Form) -> str | None:
    if form.backend == "onnxruntime":
        if form.weights == "int8":
            return ("ONNX Runtime's dynamic int8 operators (DynamicQuantizeLinear, MatMulInteger) run on its CPU "
                    "execution provider only")
        try:
            import onnxruntime
            providers = onnxruntime.get_available_providers()
        except ImportError:
            providers = []
        if "CUDAExecutionProvider" not in providers:
            return "this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)"
        return None
    if form.weights == "int8":
        return "torchao's int8 activation-and-weight kernels used here run on the CPU only"
    if form.weights == "bfloat16":
        import torch
        if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
            return f"this GPU ({torch.cuda.get_device_name()}) has no bfloat16 support: bf16 would be emulated"
    return None


def not_native(form: str, device_type: str, flags: set[str] | None = None) -> str | None:
    """None when `device_type` ("cpu" or "cuda") runs `form` natively, else one sentence saying why not.

    `flags` are the CPU's feature flags (default: this machine's, `cpu_flags()`); they decide for "cpu".
    For "cuda": float16 always runs natively, bfloat16 when the visible GPU supports it (assumed when none is
    visible), torch int8 and ONNX Runtime int8 never (CPU kernels), ONNX float32 when onnxruntime has a CUDA
    execution provider."""
    f = _form(form)
    if f.name == "fp32":
        return None
    if device_type == "cuda":
        return _cuda_reason(f)
    if device_type != "cpu":
        return f"glueslim deploys forms for cpu and cuda devices, not {device_type!r}"
    flags = cpu_flags() if flags is None else set(flags)
    if f.weights == "bfloat16" and not flags & set(BF16_FLAGS):
        return ("this CPU has no AVX512-BF16 or AMX-BF16 instructions: bf16 would be emulated "
                "(slower than fp32)")
    if f.weights == "float16" and not flags & set(FP16_FLAGS):
        return ("this CPU has no AMX-FP16 or AVX512-FP16 instructions: fp16 would be emulated "
                "(slower than fp32)")
    if f.weights == "int8" and not flags & set(INT8_FLAGS):
        return ("this CPU has no int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX-INT8): int8 "
                "kernels would fall back to slower instruction sequences")
    return None


def form_of(model_dir: str | os.PathLike) -> str:
    """The form of a model folder: glueslim.json's `form`, "fp32" when it names none (or has no record)."""
    path = Path(model_dir) / RECORD_FILE
    if not path.exists():
        return "fp32"
    try:
        record = read_json(path)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not readable JSON ({e}); re-run the job that wrote the folder") from e
    form = record.get("form", "fp32") if isinstance(record, dict) else "fp32"
    if form not in FORMS:
        raise UserError(f"{path}: form {form!r} is not one of {', '.join(FORMS)}; re-run the deploy job that wrote "
                        "it with this glueslim")
    return form


def run_device(form: str, device_type: str) -> str:
    """Where `form` runs when `device_type` is asked for: the CPU for forms without CUDA kernels (torch int8,
    ONNX Runtime int8, ONNX without a CUDA execution provider), else `device_type`."""
    if device_type == "cuda" and FORMS[form].weights == "int8":
        return "cpu"
    if device_type == "cuda" and FORMS[form].backend == "onnxruntime" and not_native(form, "cuda"):
        return "cpu"
    return device_type


def load_model(model_dir: str | os.PathLike, device="cpu", compiled: bool = False, threads: int | None = None):
    """The model of any form's folder, in eval mode: `model(**batch).logits`, `model.config`, `.eval()`.

    fp32 folders load through modeling.load_for_inference; bf16/fp16/int8 folders through torch_forms; onnx
    folders give an onnx_forms.OrtClassifier (`threads` intra-op threads; default torch's thread count).
    A form without CUDA kernels stays on the CPU whatever `device` says (`run_device`; `model_device` tells
    where its inputs go). With `compiled`, a PyTorch model is returned as torch.compile(model) (inductor; on
    the CPU with `torch._inductor.config.freezing = True`, which this sets process-wide: weights become
    constants of the compiled graph). ONNX models ignore `compiled` (ORT optimises its graph itself)."""
    form = _form(form_of(model_dir))
    where = run_device(form.name, getattr(device, "type", str(device).split(":")[0]))
    if where == "cpu":
        device = "cpu"
    if form.backend == "onnxruntime":
        import torch
        from glueslim.onnx_forms import OrtClassifier
        return OrtClassifier(str(model_dir), threads=threads or torch.get_num_threads(), device=str(device))
    from glueslim import torch_forms
    model = torch_forms.load(str(model_dir), form.name, device)
    return torch_forms.compile_model(model) if compiled else model


def model_device(model):
    """The torch.device a loaded model's inputs go to: the CPU for ONNX Runtime and int8 models."""
    import torch
    params = getattr(model, "parameters", None)
    if not callable(params):  # an OrtClassifier takes CPU tensors whatever its execution provider
        return torch.device("cpu")
    first = next(iter(params()), None)
    return first.device if first is not None else torch.device("cpu")
