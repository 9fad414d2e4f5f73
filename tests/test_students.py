"""Student builders: teacher layers (DistilBERT-style), ALBERT-style, a checkpoint, random (TinyBERT shape)."""

from __future__ import annotations

import pytest
import torch

from glueslim.errors import UserError
from glueslim.heads import layer_list
from glueslim.modeling import load_classifier
from glueslim.students import (
    BUILDERS, StudentSpec, build_student, default_layer_map, make_albert_student, make_student,
)
from glueslim.tasks import get_task


@pytest.fixture(scope="module")
def teacher(tiny_bert):
    return load_classifier(str(tiny_bert))


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


def test_albert_student_factorises_embeddings_and_shares_one_teacher_layer(tiny_bert):
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
        make_albert_student(teacher, embedding_size=8, init_layer=9)


def test_random_student_shape_is_independent_of_the_teacher(teacher):
    student, rec = build_student(StudentSpec("random", num_layers=2, hidden_size=24, num_heads=2,
                                             intermediate_size=40), teacher, seed=1)
    c = student.config
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size) == (2, 24, 2, 40)
    assert c.vocab_size == teacher.config.vocab_size and c.num_labels == teacher.config.num_labels
    assert rec == {"arch": "tinybert", "init": "random", "num_layers": 2, "hidden_size": 24, "num_heads": 2,
                   "intermediate_size": 40}
    again, _ = build_student(StudentSpec("random", num_layers=2, hidden_size=24, num_heads=2,
                                         intermediate_size=40), teacher, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(student.state_dict().values(), again.state_dict().values()))
    with pytest.raises(UserError, match="shape"):
        build_student(StudentSpec("random", num_layers=2), teacher, seed=1)
    with pytest.raises(UserError, match="multiple"):
        build_student(StudentSpec("random", num_layers=2, hidden_size=25, num_heads=2, intermediate_size=40),
                      teacher, seed=1)


def test_builders_by_name_record_what_they_built(teacher, tmp_path):
    assert set(BUILDERS) == {"teacher_layers", "albert", "checkpoint", "random"}
    s, rec = build_student(StudentSpec("teacher_layers"), teacher, seed=0)
    assert rec == {"num_layers": 2, "layer_map": [0, 2], "arch": "distilbert", "embedding_size": None}
    s, rec = build_student(StudentSpec("albert", num_layers=3, embedding_size=8), teacher, seed=0)
    assert rec == {"num_layers": 3, "layer_map": [2], "arch": "albert", "embedding_size": 8}
    with pytest.raises(UserError, match="shares one layer"):
        build_student(StudentSpec("albert", layer_map=(1, 2), embedding_size=8), teacher, seed=0)
    with pytest.raises(UserError, match="builder"):
        build_student(StudentSpec("pkd"), teacher, seed=0)
    # a checkpoint: its shape wins, with a head like the teacher's
    small, _ = build_student(StudentSpec("random", num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32),
                             teacher, seed=0)
    small.save_pretrained(tmp_path / "small")
    s, rec = build_student(StudentSpec("checkpoint", init=str(tmp_path / "small"), num_layers=7), teacher, seed=0)
    assert rec["init"] == str(tmp_path / "small") and rec["num_layers"] == 1 and rec["hidden_size"] == 16
    assert s.config.num_labels == teacher.config.num_labels


def test_checkpoint_student_needs_the_teachers_vocabulary(teacher, tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(vocab_size=teacher.config.vocab_size + 7, hidden_size=16, num_hidden_layers=1,
                     num_attention_heads=2, intermediate_size=32)
    BertForSequenceClassification(cfg).save_pretrained(tmp_path / "other")
    with pytest.raises(UserError, match="vocabulary"):
        build_student(StudentSpec("checkpoint", init=str(tmp_path / "other")), teacher, seed=0)
