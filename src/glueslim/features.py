"""What a distiller compares: a model's features by name, and the declarations of which to match.

The adaptor, `forward_features(model, inputs)`, runs one forward pass and returns a dict with the `logits`,
the `hidden` states (layer 0 is the embedding output, 1..N the transformer layers) and the `attention`
scores, read with `pick(features, feature, layer)` for feature `embedding`, `hidden`, `attention` or
`cls` (the [CLS] vector of a layer). Attention scores (Q K^T / sqrt(d), before the softmax) come from
forward hooks on the query and key projections, installed only for that pass (`capture_qk`): a finished
student is a plain classifier, predicted and profiled on transformers' normal (sdpa) path.

Intermediate matches are declared TextBrewer-style as a list of
`{teacher_layer, student_layer, feature, loss, weight, proj}` (loss a name in losses.MATCH_LOSSES, proj
`linear` or null); `check_matches` fills in the defaults and checks them, `default_matches` builds
TinyBERT's: the embeddings, then per student layer m the attention scores and hidden states of teacher
layer g(m) = m*N/M (`uniform_layer_map`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from glueslim.losses import MATCH_LOSSES

FEATURES = ("embedding", "hidden", "attention", "cls")
DEFAULT_INTERMEDIATE = ("embedding", "attention", "hidden")
QUERY_NAMES = ("query", "q_lin", "q_proj")
KEY_NAMES = ("key", "k_lin", "k_proj")


# ---------------------------------------------------------------- attention scores by hooks

def _projections(model: nn.Module, names: tuple[str, ...]) -> list[nn.Module]:
    found = [m for name, m in model.named_modules() if name.rsplit(".", 1)[-1] in names and isinstance(m, nn.Linear)]
    if not found:
        raise ValueError(f"no query/key projection ({'/'.join(names)}) found in {type(model).__name__}")
    return found


class capture_qk:
    """Context manager: forward hooks on the query and key projections, so that `scores(i)` gives layer
    i's (0-based) unnormalised attention scores Q K^T / sqrt(d), shape (B, H, L, L), for the one forward
    pass run inside the `with`. Outputs are kept in call order, so a layer shared by every depth (ALBERT)
    gives one score map per depth. The hooks exist only inside the `with`: inference never pays for them,
    and the attention implementation (sdpa, eager) does not matter."""

    def __init__(self, model: nn.Module):
        self.heads = model.config.num_attention_heads
        self.mods = list(zip(_projections(model, QUERY_NAMES), _projections(model, KEY_NAMES)))
        self.q: list[torch.Tensor] = []
        self.k: list[torch.Tensor] = []
        self.handles: list = []

    def __enter__(self):
        for q, k in self.mods:
            self.handles.append(q.register_forward_hook(lambda _m, _i, out: self.q.append(out)))
            self.handles.append(k.register_forward_hook(lambda _m, _i, out: self.k.append(out)))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def scores(self, i: int) -> torch.Tensor:
        q, k = self.q[i], self.k[i]
        b, n, width = q.shape
        d = width // self.heads
        q = q.view(b, n, self.heads, d).transpose(1, 2)
        k = k.view(b, k.shape[1], self.heads, d).transpose(1, 2)
        return (q @ k.transpose(-1, -2)) / math.sqrt(d)


# ---------------------------------------------------------------- the adaptor

def forward_features(model: nn.Module, inputs: dict) -> dict:
    """One forward pass of `model` on `inputs`: {"logits", "hidden" (tuple, 0 = embeddings), "attention"
    (the capture_qk whose scores the pass left)}; read a feature with `pick`."""
    with capture_qk(model) as cap:
        out = model(**inputs, output_hidden_states=True)
    return {"logits": out.logits, "hidden": out.hidden_states, "attention": cap}


def pick(features: dict, feature: str, layer: int) -> torch.Tensor:
    """Feature `feature` of layer `layer` (0 = embeddings): attention scores (B, H, L, L), hidden states or
    embeddings (B, L, d), or the [CLS] vector (B, d)."""
    if feature == "attention":
        return features["attention"].scores(layer - 1)
    h = features["hidden"][layer]
    return h[:, 0] if feature == "cls" else h


# ---------------------------------------------------------------- match declarations

def uniform_layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """TinyBERT's g(m) = m * N / M (rounded down): the teacher layer for student layers m = 1..M
    (0, the embeddings, always maps to 0). 4 of 12: [3, 6, 9, 12]; 4 of 6: [1, 3, 4, 6]."""
    if not 1 <= student_layers:
        raise ValueError(f"a student needs at least one layer, not {student_layers}")
    return [m * teacher_layers // student_layers for m in range(1, student_layers + 1)]


def default_matches(student_layers: int, teacher_layers: int, features=DEFAULT_INTERMEDIATE,
                    layer_map: list[int] | None = None, weight: float = 1.0) -> list[dict]:
    """TinyBERT's intermediate matches for the chosen features: `embedding` (layer 0, projected MSE),
    `attention` (scores MSE) and `hidden` (projected MSE) for every student layer m against teacher layer
    layer_map[m-1] (default uniform), and `cls` (BERT-PKD, normalised [CLS] of the same layers)."""
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise ValueError(f"unknown intermediate feature(s) {unknown}: expected {', '.join(FEATURES)}")
    layer_map = list(layer_map) if layer_map else uniform_layer_map(student_layers, teacher_layers)
    if len(layer_map) != student_layers or any(not 1 <= j <= teacher_layers for j in layer_map):
        raise ValueError(f"layer_map {layer_map} must name one teacher layer 1..{teacher_layers} for each of the "
                         f"{student_layers} student layers")
    out = []
    if "embedding" in features:
        out.append({"teacher_layer": 0, "student_layer": 0, "feature": "embedding", "loss": "mse",
                    "weight": weight, "proj": "linear"})
    for m, j in enumerate(layer_map, 1):
        if "attention" in features:
            out.append({"teacher_layer": j, "student_layer": m, "feature": "attention", "loss": "mse",
                        "weight": weight, "proj": None})
        if "hidden" in features:
            out.append({"teacher_layer": j, "student_layer": m, "feature": "hidden", "loss": "mse",
                        "weight": weight, "proj": "linear"})
        if "cls" in features:
            out.append({"teacher_layer": j, "student_layer": m, "feature": "cls", "loss": "pkd",
                        "weight": weight, "proj": "linear"})
    return out


def check_matches(matches: list[dict], student_layers: int, teacher_layers: int) -> list[dict]:
    """Normalise and check a declarative match list (defaults: loss mse, weight 1, proj linear for
    hidden/embedding/cls features and none for attention)."""
    out = []
    for i, m in enumerate(matches):
        unknown = set(m) - {"teacher_layer", "student_layer", "feature", "loss", "weight", "proj"}
        if unknown:
            raise ValueError(f"match {i}: unknown key(s) {sorted(unknown)}")
        feature = m.get("feature", "hidden")
        if feature not in FEATURES:
            raise ValueError(f"match {i}: feature {feature!r} is not one of {', '.join(FEATURES)}")
        t, s = m.get("teacher_layer", 0 if feature == "embedding" else None), \
            m.get("student_layer", 0 if feature == "embedding" else None)
        lo = 1 if feature == "attention" else 0
        if not (isinstance(t, int) and lo <= t <= teacher_layers and isinstance(s, int) and lo <= s <= student_layers):
            raise ValueError(f"match {i}: {feature} needs teacher_layer in {lo}..{teacher_layers} and student_layer "
                             f"in {lo}..{student_layers} (0 = embeddings), not {t} and {s}")
        loss = m.get("loss", "pkd" if feature == "cls" else "mse")
        if loss not in MATCH_LOSSES or (feature == "attention" and loss != "mse"):
            raise ValueError(f"match {i}: loss {loss!r} for feature {feature} "
                             f"(attention: mse; others: {tuple(MATCH_LOSSES)})")
        proj = m.get("proj", None if feature == "attention" else "linear")
        if proj not in (None, "linear") or (feature == "attention" and proj):
            raise ValueError(f"match {i}: proj {proj!r} (linear or null; attention scores take none)")
        out.append({"teacher_layer": t, "student_layer": s, "feature": feature, "loss": loss,
                    "weight": float(m.get("weight", 1.0)), "proj": proj})
    return out
