"""Distillation losses as pure functions of tensors (TextBrewer-style: chosen by config, not by subclass)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def softmax_t(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Softmax with temperature: softmax(z / T)."""
    return F.softmax(logits / temperature, dim=-1)


def kd_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(p_t || p_s) with p = softmax(z / T), averaged over the batch.

    This is Hinton et al.'s soft-target term as DistilBERT implements it (KLDivLoss on log_softmax(s/T)
    against softmax(t/T)); it equals the soft cross-entropy minus the teacher's (constant) entropy, and the
    T^2 factor keeps its gradient scale independent of T.
    """
    log_ps = F.log_softmax(student / temperature, dim=-1)
    log_pt = F.log_softmax(teacher / temperature, dim=-1)
    kl = F.kl_div(log_ps, log_pt, reduction="batchmean", log_target=True)
    return kl * temperature**2


def distillation_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    labels: torch.Tensor,
    alpha: float,
    temperature: float,
) -> torch.Tensor:
    """DistilBERT-style task loss.

    Classification: alpha * T^2 * KL(p_t || p_s) + (1 - alpha) * CE(s, gold).
    Regression (one output, STS-B): alpha * MSE(s, t) + (1 - alpha) * MSE(s, gold).
    """
    if student.shape[-1] == 1:
        s = student.squeeze(-1)
        return alpha * F.mse_loss(s, teacher.squeeze(-1)) + (1 - alpha) * F.mse_loss(s, labels.float())
    return alpha * kd_kl(student, teacher, temperature) + (1 - alpha) * F.cross_entropy(student, labels)


def task_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Plain fine-tuning loss: cross-entropy, or MSE for a one-output regression head."""
    if logits.shape[-1] == 1:
        return F.mse_loss(logits.squeeze(-1), labels.float())
    return F.cross_entropy(logits, labels)
