"""The int8 model format: dynamic int8 quantization of every Linear layer, saved without pickle.

`torch.ao.quantization.quantize_dynamic` stores each Linear's weight as int8 (per-tensor scale and
zero point) and quantizes activations on the fly, on the CPU (fbgemm/x86 or onednn kernels; the speed-up
depends on the CPU's int8 instructions: VNNI or AMX). Embeddings and LayerNorms stay fp32.
`save_int8` writes `model_int8.safetensors` (WEIGHTS): the int8 weights, their scales and zero points,
and every other tensor in fp32; `load_int8` rebuilds the quantized model from it bit for bit.
Parameters and MACs are those of the float model; size on disk and latency drop. The `quantize`
command is in `glueslim.quantize`; `modeling.load_for_inference` loads such a folder.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

WEIGHTS = "model_int8.safetensors"
SCHEME = "int8-dynamic"


def dynamic_int8(model: nn.Module) -> nn.Module:
    """`model` with every nn.Linear replaced by torch's dynamic int8 Linear."""
    with warnings.catch_warnings():  # torch points users of the eager API at torchao; it is still supported
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic
        return quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def int8_linears(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every dynamic int8 Linear in `model`."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    return [(name, m) for name, m in model.named_modules() if isinstance(m, DynamicLinear)]


def quantize(model: nn.Module) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The int8 model, and the tensors that describe it exactly (for safetensors)."""
    floats = {k: v.detach().clone() for k, v in model.state_dict().items()}
    qmodel = dynamic_int8(model.eval())
    tensors = {}
    for name, m in int8_linears(qmodel):
        w = m.weight()
        floats.pop(f"{name}.weight")
        tensors[f"{name}.weight.int8"] = w.int_repr().contiguous()
        tensors[f"{name}.weight.scale"] = torch.tensor([w.q_scale()], dtype=torch.float64)
        tensors[f"{name}.weight.zero_point"] = torch.tensor([w.q_zero_point()], dtype=torch.int64)
    tensors.update({k: v.contiguous() for k, v in floats.items()})
    return qmodel, tensors


def rebuild(float_model: nn.Module, tensors: dict[str, torch.Tensor]) -> nn.Module:
    """Re-create the quantized model from `quantize`'s tensors, on an architecture-only float model."""
    floats = {k: v for k, v in tensors.items() if not k.endswith((".int8", ".scale", ".zero_point"))}
    missing, unexpected = float_model.load_state_dict(floats, strict=False)
    qnames = {k[: -len(".weight.int8")] for k in tensors if k.endswith(".weight.int8")}
    if unexpected or any(k[: -len(".weight")] not in qnames for k in missing):
        raise ValueError(f"int8 weights do not fit the model: missing {missing}, unexpected {unexpected}")
    qmodel = dynamic_int8(float_model.eval())
    for name, m in int8_linears(qmodel):
        qw = torch._make_per_tensor_quantized_tensor(
            tensors[f"{name}.weight.int8"], float(tensors[f"{name}.weight.scale"]),
            int(tensors[f"{name}.weight.zero_point"]))
        m.set_weight_bias(qw, m.bias())
    return qmodel


def save_int8(model_dir: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write `quantize`'s tensors to `model_dir`/WEIGHTS."""
    save_file(tensors, str(Path(model_dir) / WEIGHTS), metadata={"format": "pt", "quantization": SCHEME})


def load_int8(model_dir: str | Path, float_model: nn.Module) -> nn.Module:
    """The quantized model saved in `model_dir`, on `float_model`'s architecture (its weights are replaced)."""
    return rebuild(float_model, load_file(str(Path(model_dir) / WEIGHTS)))
