"""A model's transformer layers and their attention heads: find them, gate them, remove them.

Pure model surgery, no data and no training. `prune_heads` removes heads with transformers'
`prune_linear_layer` (query/key/value rows and the output projection's columns) and records the
original indices of the removed heads in `config.pruned_heads`; `apply_recorded_pruning` re-creates
that architecture on a freshly built model (`modeling.architecture`). Head importance and the `prune`
command are in `glueslim.prune`.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from transformers.pytorch_utils import prune_linear_layer


def layer_list(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The model's stack of transformer layers (BERT: bert.encoder.layer) and its qualified name."""
    n = model.config.num_hidden_layers
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n and name.endswith("layer"):
            return name, module
    raise ValueError(f"cannot find the {n} transformer layers in {type(model).__name__}")


def _attention(layer):
    """(self-attention module with query/key/value, output projection) of one BERT-family layer."""
    return layer.attention.self, layer.attention.output


def heads_per_layer(model) -> list[int]:
    return [_attention(layer)[0].query.out_features // _attention(layer)[0].attention_head_size
            for layer in layer_list(model)[1]]


@contextmanager
def head_gates(model):
    """Multiply each head's attention output by a gate of ones (layers x heads) that collects gradients."""
    layers = layer_list(model)[1]
    p = next(model.parameters())
    gates = [torch.ones(n, dtype=p.dtype, device=p.device, requires_grad=True) for n in heads_per_layer(model)]
    hooks = []
    for layer, gate in zip(layers, gates):
        def hook(module, args, output, gate=gate):
            out = output[0]
            shape = out.shape
            gated = (out.view(*shape[:-1], gate.numel(), -1) * gate.to(out.dtype)[:, None]).view(shape)
            return (gated, *output[1:])
        hooks.append(_attention(layer)[0].register_forward_hook(hook))
    try:
        yield gates
    finally:
        for h in hooks:
            h.remove()


def prune_heads(model, heads: dict[int, list[int]]) -> None:
    """Remove the given heads (indices into each layer's *current* heads) in place, and record them."""
    layers = layer_list(model)[1]
    for layer_idx, drop in heads.items():
        attn, out = _attention(layers[int(layer_idx)])
        n, size = attn.query.out_features // attn.attention_head_size, attn.attention_head_size
        if not drop:
            continue
        if len(set(drop)) >= n or min(drop) < 0 or max(drop) >= n:
            raise ValueError(f"layer {layer_idx}: cannot prune heads {drop} of {n}")
        keep = torch.tensor([h * size + i for h in range(n) if h not in set(drop) for i in range(size)])
        attn.query = prune_linear_layer(attn.query, keep)
        attn.key = prune_linear_layer(attn.key, keep)
        attn.value = prune_linear_layer(attn.value, keep)
        out.dense = prune_linear_layer(out.dense, keep, dim=1)
        for holder in (attn, layers[int(layer_idx)].attention):
            if hasattr(holder, "num_attention_heads"):
                holder.num_attention_heads = n - len(set(drop))
            if hasattr(holder, "all_head_size"):
                holder.all_head_size = attn.query.out_features
    recorded = {int(k): list(v) for k, v in (getattr(model.config, "pruned_heads", None) or {}).items()}
    for layer_idx, drop in heads.items():  # record as indices of the original heads
        original = [h for h in range(model.config.num_attention_heads) if h not in recorded.get(int(layer_idx), [])]
        recorded[int(layer_idx)] = sorted(recorded.get(int(layer_idx), []) + [original[h] for h in drop])
    model.config.pruned_heads = {str(k): v for k, v in sorted(recorded.items()) if v}


def apply_recorded_pruning(model) -> None:
    """Re-create a saved pruned architecture (config.pruned_heads) on a freshly built model."""
    saved = getattr(model.config, "pruned_heads", None) or {}
    model.config.pruned_heads = {}
    prune_heads(model, {int(k): list(v) for k, v in saved.items()})
