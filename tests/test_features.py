"""The adaptor (features by name, attention scores by hooks) and the match declarations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from glueslim.features import (
    capture_qk, check_matches, default_matches, forward_features, pick, uniform_layer_map,
)


@pytest.fixture(scope="module")
def teacher(tiny_bert):
    from glueslim.modeling import load_classifier

    return load_classifier(str(tiny_bert))


def test_uniform_layer_map_and_default_matches():
    assert uniform_layer_map(4, 12) == [3, 6, 9, 12]
    assert uniform_layer_map(4, 6) == [1, 3, 4, 6]
    assert uniform_layer_map(2, 6) == [3, 6]
    assert uniform_layer_map(6, 6) == [1, 2, 3, 4, 5, 6]
    m = default_matches(4, 12)
    assert m[0] == {"teacher_layer": 0, "student_layer": 0, "feature": "embedding", "loss": "mse", "weight": 1.0,
                    "proj": "linear"}
    assert [(x["student_layer"], x["teacher_layer"]) for x in m if x["feature"] == "attention"] == \
        [(1, 3), (2, 6), (3, 9), (4, 12)]
    assert len(default_matches(4, 12, ["hidden"])) == 4
    assert [x["teacher_layer"] for x in default_matches(2, 6, ["attention"], layer_map=[2, 5])] == [2, 5]
    with pytest.raises(ValueError):
        default_matches(2, 6, ["hidden"], layer_map=[1, 7])
    with pytest.raises(ValueError):
        check_matches([{"feature": "attention", "teacher_layer": 1, "student_layer": 1, "loss": "cosine"}], 2, 6)
    assert check_matches([{"feature": "cls", "teacher_layer": 6, "student_layer": 2}], 2, 6)[0]["loss"] == "pkd"


def test_check_matches_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown key"):
        check_matches([{"feature": "hidden", "teacher_layer": 1, "student_layer": 1, "layer": 3}], 2, 6)
    with pytest.raises(ValueError, match="feature"):
        check_matches([{"feature": "logits", "teacher_layer": 1, "student_layer": 1}], 2, 6)
    with pytest.raises(ValueError, match="loss"):
        check_matches([{"feature": "hidden", "teacher_layer": 1, "student_layer": 1, "loss": "l1"}], 2, 6)
    with pytest.raises(ValueError, match="proj"):
        check_matches([{"feature": "hidden", "teacher_layer": 1, "student_layer": 1, "proj": "mlp"}], 2, 6)


def test_hooked_scores_are_the_pre_softmax_attention(teacher):
    """softmax(hooked Q K^T / sqrt(d) + mask) equals the eager implementation's attention probabilities,
    and the hooks are gone after the `with`."""
    from transformers import AutoModelForSequenceClassification

    eager = AutoModelForSequenceClassification.from_config(teacher.config, attn_implementation="eager").eval()
    eager.load_state_dict(teacher.state_dict())
    ids = torch.tensor([[2, 40, 50, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    hooks = lambda: sum(len(m._forward_hooks) for m in eager.modules() if isinstance(m, nn.Linear))  # noqa: E731
    before = hooks()
    with torch.no_grad(), capture_qk(eager) as cap:
        assert hooks() == before + 2 * teacher.config.num_hidden_layers
        out = eager(input_ids=ids, attention_mask=mask, output_attentions=True)
    for i in range(teacher.config.num_hidden_layers):
        scores = cap.scores(i) + (1 - mask[:, None, None, :]) * torch.finfo(torch.float32).min
        torch.testing.assert_close(scores.softmax(-1), out.attentions[i], atol=1e-5, rtol=1e-4)
    assert not cap.handles
    assert hooks() == before


def test_forward_features_picks_each_feature_by_name(teacher):
    inputs = {"input_ids": torch.tensor([[2, 40, 50, 3, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 1, 0]])}
    hooks = lambda: sum(len(m._forward_hooks) for m in teacher.modules() if isinstance(m, nn.Linear))  # noqa: E731
    before = hooks()
    with torch.no_grad():
        f = forward_features(teacher.eval(), inputs)
        plain = teacher(**inputs).logits
    n, width, heads = teacher.config.num_hidden_layers, teacher.config.hidden_size, teacher.config.num_attention_heads
    torch.testing.assert_close(f["logits"], plain)
    assert len(f["hidden"]) == n + 1
    assert pick(f, "embedding", 0).shape == (1, 5, width)
    assert torch.equal(pick(f, "cls", n), f["hidden"][n][:, 0])
    assert pick(f, "attention", 1).shape == (1, heads, 5, 5)
    assert hooks() == before  # no hook left behind
