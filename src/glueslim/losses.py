"""Distillation losses as pure functions of tensors, chosen by name from small registries (TextBrewer-style).

- `PREDICTION_LOSSES`: prediction-layer KD of student logits against teacher logits at a temperature T.
  Each name gives T one meaning:
  `kl`      DistilBERT (Hinton et al.): T^2 * KL(softmax(t/T) || softmax(s/T)); T softens both
            distributions and T^2 keeps the gradient scale independent of T;
  `soft_ce` TinyBERT: -sum softmax(t/T) log softmax(s/T), without the T^2 factor.
  Both are MSE(s, t) for a one-output regression head (T unused). `prediction_loss` mixes one of them with
  the hard-label `task_loss`: alpha * KD + (1 - alpha) * task loss (alpha 1: KD alone).
- `MATCH_LOSSES`: intermediate-layer matches of a feature (hidden states, embeddings, [CLS]) through an
  optional projection: `mse`, `cosine`, `pkd` (BERT-PKD's normalised [CLS]). Attention scores take
  `attention_mse`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def task_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Plain fine-tuning loss: cross-entropy, or MSE for a one-output regression head."""
    if logits.shape[-1] == 1:
        return F.mse_loss(logits.squeeze(-1), labels.float())
    return F.cross_entropy(logits, labels)


# ---------------------------------------------------------------- prediction layer

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


def kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """DistilBERT's prediction KD: `kd_kl`; MSE(s, t) for a one-output regression head."""
    if student.shape[-1] == 1:
        return F.mse_loss(student.squeeze(-1), teacher.squeeze(-1))
    return kd_kl(student, teacher, temperature)


def soft_cross_entropy(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """TinyBERT's prediction KD: -sum softmax(t/T) log softmax(s/T), averaged over the batch (no T^2
    factor); MSE(s, t) for a one-output regression head."""
    if student.shape[-1] == 1:
        return F.mse_loss(student.squeeze(-1).float(), teacher.squeeze(-1).float())
    p_t = F.softmax(teacher.float() / temperature, dim=-1)
    return -(p_t * F.log_softmax(student.float() / temperature, dim=-1)).sum(-1).mean()


PREDICTION_LOSSES = {"kl": kl, "soft_ce": soft_cross_entropy}


def prediction_loss(name: str, student: torch.Tensor, teacher: torch.Tensor | None, labels: torch.Tensor | None,
                    alpha: float, temperature: float) -> torch.Tensor:
    """alpha * KD(student, teacher) + (1 - alpha) * task_loss(student, labels), KD = PREDICTION_LOSSES[name].

    alpha 1 is the KD term alone (TinyBERT; no labels needed); alpha 0 is exactly the task loss, the soft
    term not computed (a no-KD twin; no teacher logits needed). DistilBERT, classification:
    alpha * T^2 * KL(p_t || p_s) + (1 - alpha) * CE(s, gold); regression: alpha * MSE(s, t) + (1 - alpha) * MSE(s, gold).
    """
    if alpha < 1 and labels is None:
        raise ValueError(f"prediction loss with alpha {alpha} < 1 needs the gold labels")
    if alpha == 0:
        return task_loss(student, labels)
    if teacher is None:
        raise ValueError(f"prediction loss with alpha {alpha} > 0 needs the teacher's logits")
    soft = PREDICTION_LOSSES[name](student, teacher, temperature)
    if alpha == 1:
        return soft
    return alpha * soft + (1 - alpha) * task_loss(student, labels)


# ---------------------------------------------------------------- intermediate layers

def _token_mean(d: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of a per-token loss d (B, L) over the tokens where mask (B, L) is 1 (all when mask is None)."""
    if mask is None:
        return d.mean()
    m = mask.to(d.dtype)
    return (d * m).sum() / m.sum().clamp_min(1)


def hidden_mse(student: torch.Tensor, teacher: torch.Tensor, proj: nn.Module | None = None,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """MSE(student W, teacher) of hidden states or embeddings (B, L, d_s) -> (B, L, d_t), averaged over the
    hidden dimension and the non-padding tokens (`mask`, the attention mask; all tokens when None)."""
    s = proj(student) if proj is not None else student
    if s.shape != teacher.shape:
        raise ValueError(f"hidden states of shape {tuple(s.shape)} and {tuple(teacher.shape)}: a projection "
                         "(proj: linear) is needed when the student and teacher widths differ")
    return _token_mean((s.float() - teacher.float()).pow(2).mean(-1), mask)  # fp32 under mixed precision too


def cosine_loss(student: torch.Tensor, teacher: torch.Tensor, proj: nn.Module | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """1 - cos(student W, teacher) per token, averaged over the non-padding tokens."""
    s = proj(student) if proj is not None else student
    return _token_mean(1 - F.cosine_similarity(s.float(), teacher.float(), dim=-1), mask)


def pkd_cls_loss(student: torch.Tensor, teacher: torch.Tensor, proj: nn.Module | None = None,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """BERT-PKD: squared distance of the L2-normalised [CLS] vectors (B, d), averaged over the batch
    (`mask` is unused: [CLS] is never padding)."""
    s = proj(student) if proj is not None else student
    return (F.normalize(s.float(), dim=-1) - F.normalize(teacher.float(), dim=-1)).pow(2).sum(-1).mean()


def attention_mse(student: torch.Tensor, teacher: torch.Tensor,
                  attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """MSE of unnormalised attention scores (B, H, L, L), over the (query, key) pairs where both are real
    tokens: a padded query or key is left out of the sum and of the count. Student and teacher with
    different numbers of heads are compared on their head-averaged maps."""
    if student.shape[1] != teacher.shape[1]:
        student, teacher = student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)
    d = (student - teacher).pow(2)
    if attention_mask is None:
        return d.mean()
    m = attention_mask.to(d.dtype)
    valid = (m[:, None, :, None] * m[:, None, None, :]).expand_as(d)
    return (d * valid).sum() / valid.sum().clamp_min(1)


MATCH_LOSSES = {"mse": hidden_mse, "cosine": cosine_loss, "pkd": pkd_cls_loss}
