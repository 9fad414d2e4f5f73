import json

import torch
from transformers import BertConfig, BertForSequenceClassification, DataCollatorWithPadding

from glueslim.modeling import load_for_inference
from glueslim.prune import head_gates, head_importance, heads_per_layer, heads_to_prune, prune_heads
from glueslim.quantize import WEIGHTS, quantize, rebuild


def tiny(layers=2, heads=4, hidden=32, seed=0, init=0.02):
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=50, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=64, max_position_embeddings=64, num_labels=2, initializer_range=init)
    return BertForSequenceClassification(cfg).eval()


X = torch.tensor([[2, 7, 8, 9, 3], [2, 11, 12, 3, 0]])
MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])


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


def test_pruned_model_round_trips_through_save_and_load(tmp_path):
    model = tiny()
    prune_heads(model, {0: [0, 1], 1: [3]})
    model.save_pretrained(tmp_path)
    (tmp_path / "glueslim.json").write_text(json.dumps({"method": "x"}))
    loaded = load_for_inference(str(tmp_path))
    assert heads_per_layer(loaded) == [2, 3]
    assert torch.allclose(loaded(input_ids=X, attention_mask=MASK).logits,
                          model(input_ids=X, attention_mask=MASK).logits, atol=1e-6)


def test_int8_outputs_stay_close_and_reload_bit_for_bit(tmp_path):
    model = tiny(hidden=64)
    with torch.no_grad():
        ref = model(input_ids=X, attention_mask=MASK).logits
    qmodel, tensors = quantize(tiny(hidden=64))
    with torch.no_grad():
        out = qmodel(input_ids=X, attention_mask=MASK).logits
    assert torch.allclose(out, ref, atol=0.05), (out, ref)
    assert sum(k.endswith(".int8") for k in tensors) == 2 * 6 + 2  # 6 Linears per layer, pooler, classifier
    assert all(t.dtype == torch.int8 for k, t in tensors.items() if k.endswith(".int8"))
    again = rebuild(tiny(hidden=64, seed=1), tensors)  # other random weights: all must be overwritten
    with torch.no_grad():
        assert torch.equal(again(input_ids=X, attention_mask=MASK).logits, out)


def test_int8_folder_loads_through_the_common_loader_and_is_smaller(tmp_path):
    from safetensors.torch import save_file

    model = tiny(hidden=64)
    model.save_pretrained(tmp_path / "f32")
    _, tensors = quantize(tiny(hidden=64))
    (tmp_path / "q").mkdir()
    save_file(tensors, str(tmp_path / "q" / WEIGHTS))
    model.config.to_json_file(tmp_path / "q" / "config.json")
    q = load_for_inference(str(tmp_path / "q"))
    assert type(q.bert.encoder.layer[0].attention.self.query).__module__.startswith("torch.ao.nn.quantized")
    f32 = (tmp_path / "f32" / "model.safetensors").stat().st_size
    assert (tmp_path / "q" / WEIGHTS).stat().st_size < f32
