"""Distillation losses against hand-computed values: prediction KD (kl, soft_ce, the alpha mix with hard
labels), intermediate matches through projections and token masks, attention scores."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from glueslim.losses import (
    MATCH_LOSSES, PREDICTION_LOSSES, attention_mse, cosine_loss, hidden_mse, kd_kl, kl, pkd_cls_loss,
    prediction_loss, soft_cross_entropy, task_loss,
)


# ---------------------------------------------------------------- prediction layer

def test_kd_kl_is_t_squared_kl_of_teacher_to_student():
    s = torch.tensor([[1.0, 0.0, -1.0]])
    t = torch.tensor([[0.5, 0.5, 0.0]])
    T = 2.0
    ps = [math.exp(v / T) for v in (1.0, 0.0, -1.0)]
    ps = [v / sum(ps) for v in ps]
    pt = [math.exp(v / T) for v in (0.5, 0.5, 0.0)]
    pt = [v / sum(pt) for v in pt]
    kl_ = sum(a * math.log(a / b) for a, b in zip(pt, ps))
    assert math.isclose(kd_kl(s, t, T).item(), T * T * kl_, rel_tol=1e-5)
    assert kd_kl(t, t, T).item() < 1e-7  # identical distributions


def test_distillation_loss_mixes_kd_and_gold_ce():
    s = torch.tensor([[2.0, -1.0], [0.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    y = torch.tensor([0, 1])
    ce = torch.nn.functional.cross_entropy(s, y)
    kd = kd_kl(s, t, 3.0)
    got = prediction_loss("kl", s, t, y, alpha=0.7, temperature=3.0)
    assert torch.isclose(got, 0.7 * kd + 0.3 * ce)
    assert torch.isclose(prediction_loss("kl", s, t, y, alpha=0.0, temperature=3.0), ce)
    # alpha 1: the KD term alone, no labels needed
    assert torch.equal(prediction_loss("kl", s, t, None, alpha=1.0, temperature=3.0), kd)


def test_regression_distillation_is_weighted_mse():
    s = torch.tensor([[1.0], [3.0]])
    t = torch.tensor([[2.0], [3.0]])
    y = torch.tensor([0.0, 5.0])
    # MSE(s,t) = (1 + 0)/2 = 0.5 ; MSE(s,y) = (1 + 4)/2 = 2.5
    assert math.isclose(prediction_loss("kl", s, t, y, alpha=0.4, temperature=2.0).item(), 0.4 * 0.5 + 0.6 * 2.5,
                        rel_tol=1e-6)
    assert math.isclose(task_loss(s, y).item(), 2.5)
    assert math.isclose(kl(s, t, 2.0).item(), 0.5)  # T plays no part in regression
    assert math.isclose(prediction_loss("soft_ce", s, t, y, alpha=0.4, temperature=2.0).item(), 0.4 * 0.5 + 0.6 * 2.5,
                        rel_tol=1e-6)


def test_soft_cross_entropy_matches_hand_computation():
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    T = 2.0
    expect = 0.0
    for si, ti in zip(s.tolist(), t.tolist()):
        pt = [math.exp(v / T) for v in ti]
        pt = [v / sum(pt) for v in pt]
        zs = [v / T for v in si]
        lse = math.log(sum(math.exp(v) for v in zs))
        expect += -sum(p * (z - lse) for p, z in zip(pt, zs))
    assert soft_cross_entropy(s, t, T).item() == pytest.approx(expect / 2, rel=1e-6)
    # regression head: MSE
    assert soft_cross_entropy(torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [1.0]])).item() == pytest.approx(2.5)
    assert prediction_loss("soft_ce", s, t, None, 1.0, T).item() == pytest.approx(expect / 2, rel=1e-6)


def test_each_prediction_loss_gives_temperature_its_own_meaning():
    """kl = T^2 * (soft CE - teacher entropy): the same gradient direction, scaled by T^2."""
    s = torch.tensor([[1.0, -0.5, 0.2]])
    t = torch.tensor([[0.3, 0.1, -1.0]])
    T = 3.0
    p_t = torch.softmax(t / T, -1)
    entropy = -(p_t * p_t.log()).sum()
    assert kl(s, t, T).item() == pytest.approx(T**2 * (soft_cross_entropy(s, t, T) - entropy).item(), rel=1e-5)
    assert set(PREDICTION_LOSSES) == {"kl", "soft_ce"} and set(MATCH_LOSSES) == {"mse", "cosine", "pkd"}


# ---------------------------------------------------------------- intermediate layers

def test_hidden_mse_through_projection_and_token_mask():
    s = torch.tensor([[[1.0, 2.0], [5.0, 5.0]]])  # (1, 2 tokens, 2)
    t = torch.tensor([[[1.0, 0.0, 2.0], [0.0, 0.0, 0.0]]])
    proj = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        proj.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))  # s W -> [1, 2, 3], [5, 5, 10]
    # token 1 only: ((1-1)^2 + (2-0)^2 + (3-2)^2) / 3 = 5/3
    mask = torch.tensor([[1, 0]])
    assert hidden_mse(s, t, proj, mask).item() == pytest.approx(5 / 3)
    assert MATCH_LOSSES["mse"](s, t, proj, mask).item() == pytest.approx(5 / 3)  # embeddings: the same loss
    # both tokens: (5/3 + (25 + 25 + 100)/3) / 2
    assert hidden_mse(s, t, proj).item() == pytest.approx((5 / 3 + 50) / 2)
    with pytest.raises(ValueError, match="projection"):
        hidden_mse(s, t)


def test_cosine_and_pkd_losses():
    s = torch.tensor([[[1.0, 0.0]]])
    t = torch.tensor([[[0.0, 3.0]]])
    assert cosine_loss(s, t).item() == pytest.approx(1.0)
    # normalised [CLS]: |(1,0) - (0,1)|^2 = 2 ; identical directions: 0
    assert pkd_cls_loss(s[:, 0], t[:, 0]).item() == pytest.approx(2.0)
    assert pkd_cls_loss(torch.tensor([[2.0, 2.0]]), torch.tensor([[5.0, 5.0]])).item() == pytest.approx(0.0, abs=1e-7)


def test_attention_mse_leaves_padded_queries_and_keys_out():
    B, H, L = 1, 2, 3
    s = torch.zeros(B, H, L, L)
    t = torch.zeros(B, H, L, L)
    t[..., :2, :2] = 2.0  # real pairs differ by 2
    mask = torch.tensor([[1, 1, 0]])
    # anything at a padded query or key must not count, however large
    s[..., 2, :] = 1e6
    s[..., :, 2] = -1e6
    assert attention_mse(s, t, mask).item() == pytest.approx(4.0)
    s2 = s.clone()
    s2[..., 2, :] = -7.0
    assert attention_mse(s2, t, mask).item() == pytest.approx(4.0)
    # without a mask every pair counts: 8 of 18 pairs differ by 2 -> 4*8/18 ... on clean tensors
    clean = torch.zeros(B, H, L, L)
    assert attention_mse(clean, t).item() == pytest.approx(4 * 8 / 18)
    # different head counts: head-averaged maps
    assert attention_mse(torch.zeros(1, 1, 3, 3), t, mask).item() == pytest.approx(4.0)
