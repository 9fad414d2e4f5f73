"""The PyTorch deployed forms: build, save and load bf16, fp16, int8-dynamic and int8-static models.

- bf16 / fp16: every weight cast to that dtype and saved as `model.safetensors` in it (half the fp32 size).
- int8-dynamic: torchao `Int8DynamicActivationInt8WeightConfig` on every nn.Linear: int8 weights with one
  scale per output row, activations quantized per token at run time (symmetric).
- int8-static: torchao `Int8StaticActivationInt8WeightConfig` on every nn.Linear: the same int8 weights, and
  one activation scale per Linear fixed ahead of time (symmetric, per tensor: max|x| / 127.5 over calibration
  batches drawn from a seeded sample of the task's TRAINING split, never dev).
The int8 forms are saved without pickle in `model_int8_torchao.safetensors` (torchao's safetensors support:
each Int8Tensor flattened into plain tensors plus JSON metadata) and loaded onto the float architecture
(modeling.architecture), quantized with the same config so every module has its saved structure, then filled
with `load_state_dict(assign=True)`: the loaded model computes exactly what the saved one did.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import DataCollatorWithPadding

from glueslim.batching import MODEL_INPUTS, encode, sorted_batches
from glueslim.data import load_split
from glueslim.errors import UserError
from glueslim.modelfiles import DAMAGED, TORCHAO_INT8
from glueslim.modeling import architecture, check_local_model, load_for_inference, load_weights, read_safetensors

FLOAT_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
INT8_FORMS = ("int8-dynamic", "int8-static")
KEEP_FLOAT: tuple[str, ...] = ()  # Linear layers left in float32 by the int8 forms (fully-qualified names)


def _torchao():
    """torchao's quantization API."""
    import torchao.quantization as q
    return q


# ---- calibration: a seeded sample of training examples -------------------------------------------------------

def calibration_rows(data_dir: str | Path, n: int, seed: int) -> tuple[list[dict], Path]:
    """A random.Random(seed) sample of `n` records of the prepared TRAINING split (all of them when it has fewer),
    in file order, and the file they come from."""
    if n < 1:
        raise UserError(f"calibration examples = {n}: expected a whole number >= 1")
    rows = load_split(data_dir, "train")
    keep = sorted(random.Random(seed).sample(range(len(rows)), min(n, len(rows))))
    return [rows[i] for i in keep], Path(data_dir) / "train.jsonl"


def calibration_batches(tokenizer, data_dir: str | Path, n: int = 256, seed: int = 42, max_seq_length: int = 128,
                        batch_size: int = 1) -> tuple[list[dict[str, torch.Tensor]], dict]:
    """Model-input batches of `calibration_rows` and the record's `calibration` entry: {"split": "train",
    "examples", "seed", "source", "max_seq_length"}. One example per batch by default, so that no padding
    token's activation sets a scale (measured on a fine-tuned MiniLM-L3, SST-2 dev: int8-static agreed with
    fp32 on 98.3% of predictions calibrated this way, 97.7% with padded batches of 16); larger batches are
    grouped by length."""
    rows, source = calibration_rows(data_dir, n, seed)
    feats = encode(tokenizer, rows, max_seq_length)
    collate = DataCollatorWithPadding(tokenizer)
    batches = [collate([{k: v for k, v in feats[i].items() if k in MODEL_INPUTS} for i in idx])
               for idx in sorted_batches([len(f["input_ids"]) for f in feats], batch_size)]
    info = {"split": "train", "examples": len(rows), "seed": seed, "source": str(source),
            "max_seq_length": max_seq_length}
    return [dict(b) for b in batches], info


def int8_linears(model: nn.Module, keep_float: tuple[str, ...] = KEEP_FLOAT) -> list[str]:
    """Fully-qualified names of the Linear layers the int8 forms quantize."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear) and name not in keep_float]


@torch.inference_mode()
def activation_scales(model: nn.Module, batches: list[dict], names: list[str]) -> dict[str, torch.Tensor]:
    """Per Linear in `names`: the symmetric per-tensor int8 scale of its input, max|x| / 127.5 over `batches`,
    shaped (1,) * the input's ndim (what torchao's static config broadcasts against)."""
    amax: dict[str, tuple[float, int]] = {}
    modules = dict(model.named_modules())

    def hook(name):
        def record(_module, inputs, _output):
            x = inputs[0]
            amax[name] = (max(amax.get(name, (0.0, 0))[0], float(x.detach().abs().max())), x.ndim)
        return record

    handles = [modules[n].register_forward_hook(hook(n)) for n in names]
    try:
        model.eval()
        device = next(model.parameters()).device
        for batch in batches:
            model(**{k: v.to(device) for k, v in batch.items()})
    finally:
        for h in handles:
            h.remove()
    missing = [n for n in names if n not in amax]
    if missing:
        raise ValueError(f"calibration never ran Linear layer(s) {', '.join(missing[:3])}")
    return {n: torch.full((1,) * nd, max(a, 1e-8) / 127.5, dtype=torch.float32) for n, (a, nd) in amax.items()}


# ---- building a form in memory ---------------------------------------------------------------------------------

def quantize_int8(model: nn.Module, form: str, scales: dict[str, torch.Tensor] | None = None,
                  keep_float: tuple[str, ...] = KEEP_FLOAT) -> nn.Module:
    """`model` (float32, CPU) with torchao's int8 `form` applied in place to every Linear not in `keep_float`;
    int8-static needs the activation `scales` of every such Linear."""
    q = _torchao()
    names = int8_linears(model, keep_float)
    if form == "int8-dynamic":
        wanted = set(names)
        q.quantize_(model, q.Int8DynamicActivationInt8WeightConfig(),
                    filter_fn=lambda m, fqn: isinstance(m, nn.Linear) and fqn in wanted)
    elif form == "int8-static":
        missing = [n for n in names if n not in (scales or {})]
        if missing:
            raise ValueError(f"int8-static: no activation scale for {', '.join(missing[:3])}")
        for name in names:
            config = q.Int8StaticActivationInt8WeightConfig(act_quant_scale=scales[name],
                                                            granularity=[q.PerTensor(), q.PerRow()])
            q.quantize_(model, config, filter_fn=lambda m, fqn, name=name: fqn == name)
    else:
        raise ValueError(f"{form!r} is not an int8 form ({', '.join(INT8_FORMS)})")
    return model.eval()


def build(model: nn.Module, form: str, calibration: list[dict] | None = None) -> nn.Module:
    """The in-memory `form` of a float32 model (changed in place): cast, or quantized (int8-static calibrates on
    the `calibration` batches first)."""
    if form == "fp32":
        return model.eval()
    if form in FLOAT_DTYPES:
        return model.to(FLOAT_DTYPES[form]).eval()
    model = model.to("cpu").eval()  # torchao's int8 kernels used here are CPU kernels
    scales = None
    if form == "int8-static":
        if not calibration:
            raise ValueError("int8-static needs calibration batches")
        scales = activation_scales(model, calibration, int8_linears(model))
    return quantize_int8(model, form, scales)


def scheme(form: str) -> dict:
    """The record's `quantization` entry of an int8 form."""
    q = _torchao()
    return {"library": f"torchao {getattr(__import__('torchao'), '__version__', '?')}",
            "config": "Int8StaticActivationInt8WeightConfig" if form == "int8-static"
            else "Int8DynamicActivationInt8WeightConfig",
            "layers": "every nn.Linear" + (f" except {', '.join(KEEP_FLOAT)}" if KEEP_FLOAT else ""),
            "weights": "int8, symmetric, one scale per output row",
            "activations": ("int8, symmetric, one scale per Linear from calibration (max|x|/127.5)"
                            if form == "int8-static" else "int8, symmetric, one scale per token at run time"),
            "granularity": [type(g).__name__ for g in (q.PerTensor(), q.PerRow())] if form == "int8-static"
            else ["PerRow", "PerRow"]}


# ---- saving and loading ----------------------------------------------------------------------------------------

def save(model: nn.Module, form: str, out_dir: str | Path) -> None:
    """Write the form's weights and config.json to `out_dir` (the tokenizer and record are the caller's)."""
    out_dir = Path(out_dir)
    if form in FLOAT_DTYPES or form == "fp32":
        model.save_pretrained(out_dir, safe_serialization=True)  # config.json records the dtype
        return
    from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict
    tensors, metadata = flatten_tensor_state_dict(model.state_dict())
    metadata = {**metadata, "format": "pt", "glueslim_form": form}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out_dir / TORCHAO_INT8), metadata=metadata)
    model.config.to_json_file(out_dir / "config.json")


def load(model_dir: str, form: str, device="cpu") -> nn.Module:
    """The `form` model saved in `model_dir`, in eval mode; int8 forms stay on the CPU."""
    if form == "fp32":
        return load_for_inference(model_dir, device)
    check_local_model(model_dir)
    model = architecture(model_dir)
    if form in FLOAT_DTYPES:
        model = model.to(FLOAT_DTYPES[form])
        state = read_safetensors(model_dir)
        wrong = sorted({str(v.dtype) for v in state.values() if v.is_floating_point() and v.dtype != model.dtype})
        if wrong:
            raise UserError(f"{model_dir}/model.safetensors: weights in {', '.join(wrong)}, not {model.dtype} as its "
                            f"form {form} says: {DAMAGED}")
        load_weights(model, state, model_dir)
        return model.to(device).eval()
    if form not in INT8_FORMS:
        raise ValueError(f"{form!r} is not a PyTorch form")
    return _load_int8(model_dir, form, model)


def _load_int8(model_dir: str, form: str, model: nn.Module) -> nn.Module:
    from torchao.prototype.safetensors.safetensors_support import unflatten_tensor_state_dict
    path = Path(model_dir) / TORCHAO_INT8
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
        saved_form = metadata.get("glueslim_form")
        if saved_form != form:
            raise UserError(f"{path}: holds the {saved_form or 'unknown'} form, glueslim.json says {form}: {DAMAGED}")
        state, left = unflatten_tensor_state_dict(tensors, metadata)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not a torchao int8 weights file ({type(e).__name__}: {e}): {DAMAGED}") from e
    quantized = [n[: -len("._weight_qdata")] for n in tensors if n.endswith("._weight_qdata")]
    keep_float = tuple(n for n in int8_linears(model, ()) if n not in set(quantized))
    scales = {n: tensors[f"{n}._weight_act_quant_scale"] for n in quantized if f"{n}._weight_act_quant_scale" in tensors}
    quantize_int8(model, form, scales, keep_float)  # the saved structure; its tensors are replaced below
    load_weights(model, {**state, **left}, model_dir, assign=True)
    return model.eval()


def compile_model(model: nn.Module) -> nn.Module:
    """torch.compile(model) with the inductor backend; on the CPU with `torch._inductor.config.freezing = True`
    (set process-wide: weights become constants of the graph, which lets inductor pre-pack them for oneDNN and
    fold the int8 dequantization)."""
    device = next(model.parameters()).device
    if device.type == "cpu":
        import torch._inductor.config as inductor_config
        inductor_config.freezing = True
    return torch.compile(model, backend="inductor")
