import math

import torch

from glueslim.losses import distillation_loss, kd_kl, softmax_t, task_loss

X = torch.tensor([0.02, 0.90, 0.03, 0.05])


def test_softmax_with_temperature_matches_the_worked_example():
    expected = {
        1: [0.1834, 0.4423, 0.1853, 0.1890],
        3: [0.2297, 0.3079, 0.2304, 0.2320],
        5: [0.2381, 0.2839, 0.2385, 0.2395],
    }
    for t, want in expected.items():
        assert torch.allclose(softmax_t(X, t), torch.tensor(want), atol=1e-4), t


def test_kd_kl_is_t_squared_kl_of_teacher_to_student():
    s = torch.tensor([[1.0, 0.0, -1.0]])
    t = torch.tensor([[0.5, 0.5, 0.0]])
    T = 2.0
    ps = [math.exp(v / T) for v in (1.0, 0.0, -1.0)]
    ps = [v / sum(ps) for v in ps]
    pt = [math.exp(v / T) for v in (0.5, 0.5, 0.0)]
    pt = [v / sum(pt) for v in pt]
    kl = sum(a * math.log(a / b) for a, b in zip(pt, ps))
    assert math.isclose(kd_kl(s, t, T).item(), T * T * kl, rel_tol=1e-5)
    assert kd_kl(t, t, T).item() < 1e-7  # identical distributions


def test_distillation_loss_mixes_kd_and_gold_ce():
    s = torch.tensor([[2.0, -1.0], [0.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    y = torch.tensor([0, 1])
    ce = torch.nn.functional.cross_entropy(s, y)
    kd = kd_kl(s, t, 3.0)
    got = distillation_loss(s, t, y, alpha=0.7, temperature=3.0)
    assert torch.isclose(got, 0.7 * kd + 0.3 * ce)
    assert torch.isclose(distillation_loss(s, t, y, alpha=0.0, temperature=3.0), ce)


def test_regression_distillation_is_weighted_mse():
    s = torch.tensor([[1.0], [3.0]])
    t = torch.tensor([[2.0], [3.0]])
    y = torch.tensor([0.0, 5.0])
    # MSE(s,t) = (1 + 0)/2 = 0.5 ; MSE(s,y) = (1 + 4)/2 = 2.5
    assert math.isclose(distillation_loss(s, t, y, alpha=0.4, temperature=2.0).item(), 0.4 * 0.5 + 0.6 * 2.5, rel_tol=1e-6)
    assert math.isclose(task_loss(s, y).item(), 2.5)
