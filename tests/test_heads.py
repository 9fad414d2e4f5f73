"""glueslim.heads: removing attention heads, gating them, finding a model's layers."""

import torch

from conftest import tiny_classifier as tiny
from glueslim.heads import head_gates, heads_per_layer, layer_list, prune_heads

X = torch.tensor([[2, 7, 8, 9, 3], [2, 11, 12, 3, 0]])
MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])


def test_layer_list_finds_the_transformer_layers():
    name, layers = layer_list(tiny(layers=3))
    assert name == "bert.encoder.layer" and len(layers) == 3


def test_pruning_removes_exactly_the_chosen_heads_and_the_model_runs():
    model = tiny()
    q0 = model.bert.encoder.layer[0].attention.self.query.weight.detach().clone()
    o0 = model.bert.encoder.layer[0].attention.output.dense.weight.detach().clone()
    prune_heads(model, {0: [1, 3], 1: [0]})
    assert heads_per_layer(model) == [2, 3]
    d = 8  # head size 32 / 4
    keep = [*range(0, d), *range(2 * d, 3 * d)]  # heads 0 and 2 of layer 0
    assert torch.equal(model.bert.encoder.layer[0].attention.self.query.weight, q0[keep])
    assert torch.equal(model.bert.encoder.layer[0].attention.output.dense.weight, o0[:, keep])
    assert model.config.pruned_heads == {"0": [1, 3], "1": [0]}
    assert model(input_ids=X, attention_mask=MASK).logits.shape == (2, 2)
    # pruning again uses the current indices and records original ones
    prune_heads(model, {0: [1]})  # current head 1 of layer 0 is original head 2
    assert model.config.pruned_heads["0"] == [1, 2, 3]


def test_pruning_equals_gating_the_heads_off():
    model = tiny()
    with torch.no_grad(), head_gates(model) as gates:
        gates[0][1] = 0.0
        gates[1][2] = 0.0
        gated = model(input_ids=X, attention_mask=MASK).logits
    prune_heads(model, {0: [1], 1: [2]})
    pruned = model(input_ids=X, attention_mask=MASK).logits
    assert torch.allclose(gated, pruned, atol=1e-5)
