"""int8 dynamic quantization of every Linear layer, with torch's own eager-mode API.

`torch.ao.quantization.quantize_dynamic` stores each Linear's weight as int8 (per-tensor scale and
zero point) and quantizes activations on the fly, on the CPU (fbgemm/x86 or onednn kernels; the speed-up
depends on the CPU's int8 instructions: VNNI or AMX). Embeddings and LayerNorms stay fp32.
The result is saved without pickle: `model_int8.safetensors` holds the int8 weights, their scales and
zero points, and every other tensor in fp32; `modeling.load_for_inference` rebuilds the quantized model
from it bit for bit. Parameters and MACs are those of the float model; size on disk and latency drop.
"""

from __future__ import annotations

import argparse
import json
import shutil
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from glueslim.io import atomic_dir, atomic_write_json, read_json
from glueslim.modeling import load_for_inference, load_tokenizer

WEIGHTS = "model_int8.safetensors"
SCHEME = "int8-dynamic"


def _quantize_dynamic(model: nn.Module) -> nn.Module:
    with warnings.catch_warnings():  # torch points users of the eager API at torchao; it is still supported
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic
        return quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def _dynamic_linears(model: nn.Module):
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    return [(name, m) for name, m in model.named_modules() if isinstance(m, DynamicLinear)]


def quantize(model: nn.Module) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The int8 model, and the tensors that describe it exactly (for safetensors)."""
    floats = {k: v.detach().clone() for k, v in model.state_dict().items()}
    qmodel = _quantize_dynamic(model.eval())
    tensors = {}
    for name, m in _dynamic_linears(qmodel):
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
    qmodel = _quantize_dynamic(float_model.eval())
    for name, m in _dynamic_linears(qmodel):
        qw = torch._make_per_tensor_quantized_tensor(
            tensors[f"{name}.weight.int8"], float(tensors[f"{name}.weight.scale"]),
            int(tensors[f"{name}.weight.zero_point"]))
        m.set_weight_bias(qw, m.bias())
    return qmodel


def load_int8(model_dir: str | Path, float_model: nn.Module) -> nn.Module:
    return rebuild(float_model, load_file(str(Path(model_dir) / WEIGHTS)))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-dir", required=True, help="the float model to quantize")
    p.add_argument("--name", required=True)
    p.add_argument("--out", required=True)


def run(args: argparse.Namespace) -> None:
    model = load_for_inference(args.model_dir)
    tokenizer = load_tokenizer(args.model_dir)
    _, tensors = quantize(model)
    source = read_json(Path(args.model_dir) / "glueslim.json")
    with atomic_dir(args.out) as tmp:
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": "pt", "quantization": SCHEME})
        model.config.to_json_file(tmp / "config.json")
        tokenizer.save_pretrained(tmp)
        log = Path(args.model_dir) / "train_log.jsonl"
        if log.exists():  # the curves are the float model's
            shutil.copy(log, tmp / "train_log.jsonl")
        atomic_write_json(tmp / "glueslim.json", {
            **source, "model": args.name, "method": f"{source['method']} + int8",
            "quantized": SCHEME, "quantized_from": args.model_dir,
            "quantization": {"scheme": SCHEME, "layers": "every nn.Linear", "weights": "int8 per-tensor",
                             "activations": "int8, dynamic", "engine": torch.backends.quantized.engine},
        })
    print(json.dumps({"model": args.name, "int8_linears": sum(k.endswith(".int8") for k in tensors)}))
