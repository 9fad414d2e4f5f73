"""glueslim.modeling: loading a classifier and every model folder the workflow writes."""

import json

import torch

from conftest import tiny_classifier as tiny
from glueslim.heads import heads_per_layer, prune_heads
from glueslim.int8 import WEIGHTS, quantize, save_int8
from glueslim.modeling import load_classifier, load_for_inference
from glueslim.tasks import get_task

X = torch.tensor([[2, 7, 8, 9, 3], [2, 11, 12, 3, 0]])
MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])


def test_regression_head_has_one_output(tiny_bert):
    model = load_classifier(str(tiny_bert), get_task("stsb"))
    assert model.config.num_labels == 1 and model.config.problem_type == "regression"
    model = load_classifier(str(tiny_bert), get_task("rte"))
    assert model.config.id2label == {0: "entailment", 1: "not_entailment"}


def test_pruned_model_round_trips_through_save_and_load(tmp_path):
    model = tiny()
    prune_heads(model, {0: [0, 1], 1: [3]})
    model.save_pretrained(tmp_path)
    (tmp_path / "glueslim.json").write_text(json.dumps({"method": "x"}))
    loaded = load_for_inference(str(tmp_path))
    assert heads_per_layer(loaded) == [2, 3]
    assert torch.allclose(loaded(input_ids=X, attention_mask=MASK).logits,
                          model(input_ids=X, attention_mask=MASK).logits, atol=1e-6)


def test_int8_folder_loads_through_the_common_loader_and_is_smaller(tmp_path):
    model = tiny(hidden=64)
    model.save_pretrained(tmp_path / "f32")
    _, tensors = quantize(tiny(hidden=64))
    (tmp_path / "q").mkdir()
    save_int8(tmp_path / "q", tensors)
    model.config.to_json_file(tmp_path / "q" / "config.json")
    q = load_for_inference(str(tmp_path / "q"))
    assert type(q.bert.encoder.layer[0].attention.self.query).__module__.startswith("torch.ao.nn.quantized")
    f32 = (tmp_path / "f32" / "model.safetensors").stat().st_size
    assert (tmp_path / "q" / WEIGHTS).stat().st_size < f32
