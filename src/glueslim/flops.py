"""What one forward pass costs: parameters, and MACs counted by torch's FlopCounterMode.

The meaning of each figure is documented where it is recorded, in `glueslim.profile`.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from glueslim.errors import UserError

_aten = torch.ops.aten
LINEAR_OPS = {_aten.mm, _aten.addmm}
ATTENTION_OPS = {
    _aten.bmm,
    _aten.baddbmm,
    _aten._scaled_dot_product_flash_attention,
    _aten._scaled_dot_product_efficient_attention,
    _aten._scaled_dot_product_cudnn_attention,
    _aten._scaled_dot_product_flash_attention_for_cpu,
}


def _sdpa_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of QK^T and softmax(.)V for shapes [batch, heads, seq, head_dim] (as torch's sdpa_flop)."""
    b, h, s_q, d = query
    s_k, d_v = key[-2], value[-1]
    return 2 * b * h * s_q * s_k * d + 2 * b * h * s_q * s_k * d_v


def dummy_inputs(model, batch_size: int, seq_length: int, device) -> dict:
    """Full-length random token ids and an all-ones attention mask."""
    if batch_size < 1 or seq_length < 1:
        raise UserError(f"batch size and sequence length must be at least 1 (got {batch_size}, {seq_length})")
    max_len = getattr(model.config, "max_position_embeddings", None)
    if max_len is not None and seq_length > max_len:
        raise UserError(f"--seq-length {seq_length} exceeds the model's max_position_embeddings ({max_len})")
    ids = torch.randint(0, model.config.vocab_size, (batch_size, seq_length), device=device)
    # transformers turns the mask into a dense one with .item()-style checks, impossible on
    # "meta"; an all-ones mask is dropped by the sdpa path anyway, so omit it there
    mask = None if ids.device.type == "meta" else torch.ones_like(ids)
    return {"input_ids": ids, "attention_mask": mask}


def count_parameters(model) -> dict:
    total = sum(p.numel() for p in model.parameters())
    embeddings = sum(p.numel() for p in model.base_model.embeddings.parameters())
    return {"total": total, "embeddings": embeddings, "without_embeddings": total - embeddings}


def count_macs(model, seq_length: int, batch_size: int = 1) -> dict:
    """MACs of one forward pass, counted by FlopCounterMode on the model's own device ("meta" works)."""
    inputs = dummy_inputs(model, batch_size, seq_length, next(model.parameters()).device)
    counter = FlopCounterMode(
        display=False, custom_mapping={_aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops}
    )
    with torch.inference_mode(), counter:
        model(**inputs)
    flops = counter.get_flop_counts()["Global"]  # {aten op: FLOPs} over the whole forward pass
    total = sum(flops.values()) // 2
    linear = sum(v for op, v in flops.items() if op in LINEAR_OPS) // 2
    attention = sum(v for op, v in flops.items() if op in ATTENTION_OPS) // 2
    by_op = {str(op): v // 2 for op, v in sorted(flops.items(), key=lambda kv: str(kv[0]))}
    return {
        "total": total,
        "linear": linear,
        "attention": attention,
        "other": total - linear - attention,
        "seq_length": seq_length,
        "batch_size": batch_size,
        "by_op": by_op,
    }
