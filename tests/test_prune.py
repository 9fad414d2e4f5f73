"""glueslim.prune: head importance (against finite differences) and which heads go."""

import torch
from transformers import DataCollatorWithPadding

from conftest import tiny_classifier as tiny
from glueslim.heads import head_gates
from glueslim.prune import head_importance, heads_to_prune


def test_importance_ranking_matches_a_hand_check():
    # importance of a head = mean |dL/dgate|; check it against finite differences of the loss
    model = tiny(layers=1, init=0.3).double()  # float64 so that finite differences are exact enough
    feats = [{"input_ids": [2, 7, 8, 3], "labels": 1}, {"input_ids": [2, 9, 3], "labels": 0}]
    collate = DataCollatorWithPadding(_Pad())
    scores = head_importance(model, feats, collate, batch_size=1)[0]

    def loss_with(gate_values, feat):
        with torch.no_grad(), head_gates(model) as gates:
            gates[0].copy_(gate_values)
            logits = model(input_ids=torch.tensor([feat["input_ids"]])).logits
            return torch.nn.functional.cross_entropy(logits, torch.tensor([feat["labels"]])).item()

    eps, raw = 1e-4, torch.zeros(4, dtype=torch.float64)
    for h in range(4):
        for f in feats:
            up, down = torch.ones(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
            up[h] += eps
            down[h] -= eps
            raw[h] += abs(loss_with(up, f) - loss_with(down, f)) / (2 * eps) / len(feats)
    expected = raw / raw.norm()
    assert torch.allclose(scores.double(), expected, atol=1e-4)
    assert scores.argsort().tolist() == expected.argsort().tolist()


class _Pad:  # the minimal tokenizer interface DataCollatorWithPadding needs
    padding_side = "right"
    pad_token_id = 0
    model_input_names = ["input_ids", "attention_mask"]

    def pad(self, feats, **kw):
        n = max(len(f["input_ids"]) for f in feats)
        return {"input_ids": torch.tensor([f["input_ids"] + [0] * (n - len(f["input_ids"])) for f in feats]),
                "attention_mask": torch.tensor([[1] * len(f["input_ids"]) + [0] * (n - len(f["input_ids"]))
                                                for f in feats]),
                "labels": torch.tensor([f["labels"] for f in feats])}


def test_heads_to_prune_takes_the_least_important_globally_and_keeps_one_per_layer():
    imp = [torch.tensor([0.1, 0.9, 0.2, 0.3]), torch.tensor([0.05, 0.06, 0.07, 0.95])]
    assert heads_to_prune(imp, 0.25) == {1: [0, 1]}
    assert heads_to_prune(imp, 0.5) == {0: [0], 1: [0, 1, 2]}
    everything = heads_to_prune(imp, 1.0)
    assert all(4 - len(v) >= 1 for v in everything.values())
