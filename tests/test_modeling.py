import pytest
import torch

from glueslim.modeling import default_layer_map, layer_list, load_classifier, make_student
from glueslim.tasks import get_task


def test_default_layer_map_takes_every_other_layer():
    assert default_layer_map(12) == [0, 2, 4, 6, 8, 10]
    assert default_layer_map(6) == [0, 2, 4]
    assert default_layer_map(12, 4) == [0, 3, 6, 9]
    with pytest.raises(ValueError):
        default_layer_map(6, 7)


def test_student_copies_the_intended_teacher_tensors(tiny_bert):
    teacher = load_classifier(str(tiny_bert), get_task("rte"))
    student = make_student(teacher, [1, 3])
    assert student.config.num_hidden_layers == 2
    t, s = teacher.state_dict(), student.state_dict()
    for i, j in enumerate([1, 3]):
        for k in [k for k in t if k.startswith(f"bert.encoder.layer.{j}.")]:
            sk = k.replace(f"layer.{j}.", f"layer.{i}.")
            assert torch.equal(s[sk], t[k]), sk
    for k in s:
        if not k.startswith("bert.encoder.layer."):
            assert torch.equal(s[k], t[k]), k  # embeddings, pooler, classifier
    # and not a different layer by accident
    assert not torch.equal(s["bert.encoder.layer.0.attention.self.query.weight"],
                           t["bert.encoder.layer.0.attention.self.query.weight"])
    # the student runs
    out = student(input_ids=torch.tensor([[2, 7, 8, 3]])).logits
    assert out.shape == (1, 2)


def test_student_rejects_a_map_outside_the_teacher(tiny_bert):
    teacher = load_classifier(str(tiny_bert), get_task("sst2"))
    with pytest.raises(ValueError, match="layer_map"):
        make_student(teacher, [0, 4])
    assert layer_list(teacher)[0] == "bert.encoder.layer"


def test_regression_head_has_one_output(tiny_bert):
    model = load_classifier(str(tiny_bert), get_task("stsb"))
    assert model.config.num_labels == 1 and model.config.problem_type == "regression"
    model = load_classifier(str(tiny_bert), get_task("rte"))
    assert model.config.id2label == {0: "entailment", 1: "not_entailment"}


def test_albert_student_factorises_embeddings_and_shares_one_teacher_layer(tiny_bert):
    from glueslim.modeling import make_albert_student

    teacher = load_classifier(str(tiny_bert), get_task("rte"))
    t = teacher.state_dict()
    full = make_albert_student(teacher, embedding_size=32, num_layers=3, init_layer=2)  # E = H: exact
    s = full.state_dict()
    w = s["albert.embeddings.word_embeddings.weight"] @ s["albert.encoder.embedding_hidden_mapping_in.weight"].T
    assert torch.allclose(w, t["bert.embeddings.word_embeddings.weight"], atol=1e-4)
    shared = "albert.encoder.albert_layer_groups.0.albert_layers.0."
    assert torch.equal(s[shared + "attention.query.weight"], t["bert.encoder.layer.2.attention.self.query.weight"])
    assert torch.equal(s[shared + "ffn_output.weight"], t["bert.encoder.layer.2.output.dense.weight"])
    assert torch.equal(s["classifier.weight"], t["classifier.weight"])
    small = make_albert_student(teacher, embedding_size=8)
    assert small.config.num_hidden_layers == teacher.config.num_hidden_layers
    n_small = sum(p.numel() for p in small.parameters())
    assert n_small < sum(p.numel() for p in teacher.parameters()) / 2  # one layer instead of four, E=8
    assert small(input_ids=torch.tensor([[101, 2000, 102]])).logits.shape == (1, 2)
    with pytest.raises(ValueError, match="init_layer"):
        make_albert_student(teacher, init_layer=9)
