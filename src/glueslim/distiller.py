"""The one distiller: a loss set chosen by name, for any student from any builder (glueslim.students).

A loss set is prediction-layer KD (`PredictionKD`: a losses.PREDICTION_LOSSES name, alpha, temperature,
against the teacher's cached logits, `batch["teacher_logits"]`) and/or intermediate matches
(glueslim.features: hidden states, embeddings, attention scores, [CLS], each through an optional
projection from `PROJECTIONS`, against a live, frozen teacher). `distiller(student, teacher, matches, kd)`
returns a `Stage`, what train.train needs: the module to train, its `loss_fn` and `forward_fn`.

- prediction KD only (DistilBERT-style: `kl` with hard labels, alpha < 1; TinyBERT's stage 2: `soft_ce`,
  alpha 1): the student itself and a plain loss of its logits; the teacher is not needed;
- intermediate matches (TinyBERT's stage 1, general distillation on unlabeled text): `IntermediateDistiller`,
  the student plus the projections, trained as one model (the teacher held outside its module tree);
- both at once: the same module, the weighted match losses plus the prediction KD.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

import torch
from torch import nn

from glueslim.features import check_matches, forward_features, pick
from glueslim.losses import MATCH_LOSSES, PREDICTION_LOSSES, attention_mse, prediction_loss

PROJECTIONS = {"linear": lambda d_student, d_teacher: nn.Linear(d_student, d_teacher)}


@dataclass(frozen=True)
class PredictionKD:
    """Prediction-layer KD: alpha * PREDICTION_LOSSES[loss](s, t, T) + (1 - alpha) * hard-label task loss.
    alpha 0 is no KD at all: the task loss on the gold labels (`kd` False)."""

    loss: str
    alpha: float
    temperature: float

    def __post_init__(self):
        if self.loss not in PREDICTION_LOSSES:
            raise ValueError(f"prediction loss {self.loss!r}: expected one of {', '.join(PREDICTION_LOSSES)}")
        if not 0 <= self.alpha <= 1 or not self.temperature > 0:
            raise ValueError(f"alpha {self.alpha} must be in [0, 1] and temperature {self.temperature} above 0")

    @property
    def kd(self) -> bool:
        """Whether the teacher's logits take part (alpha > 0)."""
        return self.alpha > 0

    def __call__(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        return prediction_loss(self.loss, logits, batch.get("teacher_logits"), batch.get("labels"), self.alpha,
                               self.temperature)


@dataclass(frozen=True)
class Stage:
    """What train.train needs for one stage: `model` (the student, or the student with projections) and
    the `loss_fn` / `forward_fn` it calls (forward_fn None: loss_fn receives the logits)."""

    model: nn.Module
    loss_fn: Callable
    forward_fn: Callable | None = None

    @property
    def student(self) -> nn.Module:
        return self.model.student if isinstance(self.model, IntermediateDistiller) else self.model


def match_loss(match: dict, s: torch.Tensor, t: torch.Tensor, proj: nn.Module | None,
               mask: torch.Tensor | None) -> torch.Tensor:
    """The loss of one checked match on the student's and teacher's picked features."""
    if match["feature"] == "attention":
        return attention_mse(s.float(), t.float(), mask)
    if match["loss"] == "pkd":  # BERT-PKD compares [CLS] vectors
        s, t, mask = s[:, 0] if s.dim() == 3 else s, t[:, 0] if t.dim() == 3 else t, None
    elif s.dim() == 2:  # [CLS] vectors
        s, t, mask = s[:, None], t[:, None], None
    return MATCH_LOSSES[match["loss"]](s, t, proj, mask)


class IntermediateDistiller(nn.Module):
    """The student plus the learned projections of its intermediate matches, trained as one model by
    train.train (the projections are optimised and checkpointed with it; the teacher is held outside
    the module tree, frozen). `model(**inputs)` is the student's plain forward (evaluation);
    `model(**inputs, distill=True)` returns `.loss`, the weighted sum of the match losses, `.logits` and
    `.parts`."""

    def __init__(self, student: nn.Module, teacher: nn.Module, matches: list[dict]):
        super().__init__()
        self.student = student
        self.__dict__["teacher"] = teacher.eval().requires_grad_(False)  # not a submodule: not trained or saved
        self.matches = check_matches(matches, student.config.num_hidden_layers, teacher.config.num_hidden_layers)
        ds, dt = student.config.hidden_size, teacher.config.hidden_size
        self.proj = nn.ModuleDict({str(i): PROJECTIONS[m["proj"]](ds, dt)
                                   for i, m in enumerate(self.matches) if m["proj"]})
        self.config = student.config

    def forward(self, distill: bool = False, **inputs):
        if not distill:
            return self.student(**inputs)
        teacher = self.teacher
        if next(teacher.parameters()).device != inputs["input_ids"].device:
            teacher.to(inputs["input_ids"].device)
        mask = inputs.get("attention_mask")
        s_feats = forward_features(self.student, inputs)
        with torch.no_grad():
            t_feats = forward_features(teacher, inputs)
        parts = {}
        for i, m in enumerate(self.matches):
            s = pick(s_feats, m["feature"], m["student_layer"])
            t = pick(t_feats, m["feature"], m["teacher_layer"])
            key = f"{m['feature']}:{m['student_layer']}<-{m['teacher_layer']}"
            parts[key] = m["weight"] * match_loss(m, s, t, self.proj[str(i)] if m["proj"] else None, mask)
        # + 0 * logits: the head takes part in the graph, so DistributedDataParallel finds a gradient for every
        # parameter (a stage without prediction loss trains no head)
        logits = s_feats["logits"]
        loss = torch.stack(list(parts.values())).sum() + 0.0 * logits.float().sum()
        return SimpleNamespace(loss=loss, logits=logits, parts={k: v.detach() for k, v in parts.items()})


def distill_forward(model, inputs):
    return model(**inputs, distill=True)


def intermediate_loss(out, batch):
    return out.loss


def distiller(student: nn.Module, teacher: nn.Module | None, matches: list[dict] | None = None,
              kd: PredictionKD | None = None) -> Stage:
    """The Stage that trains `student` with the intermediate `matches` against `teacher` and/or the
    prediction-layer KD `kd` against the cached teacher logits. Without matches the student is trained as
    it is (no wrapper, no teacher): the loss is a function of its logits."""
    if not matches:
        if kd is None:
            raise ValueError("a distillation stage needs prediction-layer KD or intermediate matches")
        return Stage(student, kd)
    model = IntermediateDistiller(student, teacher, matches)
    if kd is None:
        return Stage(model, intermediate_loss, distill_forward)

    def loss_fn(out, batch):
        return out.loss + kd(out.logits.float(), batch)

    return Stage(model, loss_fn, distill_forward)
