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
                   "intermediate_size": 40, "head": "new"}
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
    assert rec == {"num_layers": 2, "layer_map": [0, 2], "arch": "distilbert", "embedding_size": None,
                   "head": "teacher"}  # a teacher_layers student always starts with the teacher's head
    s, rec = build_student(StudentSpec("albert", num_layers=3, embedding_size=8), teacher, seed=0)
    assert rec == {"num_layers": 3, "layer_map": [2], "arch": "albert", "embedding_size": 8, "head": "teacher"}
    with pytest.raises(UserError, match="shares one layer"):
        build_student(StudentSpec("albert", layer_map=(1, 2), embedding_size=8), teacher, seed=0)
    with pytest.raises(UserError, match="builder"):
        build_student(StudentSpec("pkd"), teacher, seed=0)
    # a checkpoint: its shape wins, with a head like the teacher's
    small, _ = build_student(StudentSpec("random", num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32),
                             teacher, seed=0)
    small.save_pretrained(tmp_path / "small")
    s, rec = build_student(StudentSpec("checkpoint", init=str(tmp_path / "small")), teacher, seed=0)
    assert rec["init"] == str(tmp_path / "small") and rec["num_layers"] == 1 and rec["hidden_size"] == 16
    assert rec["layer_map"] == [0] and rec["head"] == "new"
    assert s.config.num_labels == teacher.config.num_labels


def test_checkpoint_student_needs_the_teachers_vocabulary(teacher, tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(vocab_size=teacher.config.vocab_size + 7, hidden_size=16, num_hidden_layers=1,
                     num_attention_heads=2, intermediate_size=32)
    BertForSequenceClassification(cfg).save_pretrained(tmp_path / "other")
    with pytest.raises(UserError, match="vocabulary"):
        build_student(StudentSpec("checkpoint", init=str(tmp_path / "other")), teacher, seed=0)


# ---------------------------------------------------------------- checkpoint layers and the teacher's head

HEAD = ("bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A 3-layer BERT of the teacher's width and vocabulary on disk (a general-distilled checkpoint)."""
    from conftest import SHARED_VOCAB, make_tiny_bert

    return make_tiny_bert(tmp_path_factory.mktemp("ckpt3"), layers=3, hidden=32, vocab=SHARED_VOCAB)


def _saved(path):
    from transformers import BertForSequenceClassification

    return BertForSequenceClassification.from_pretrained(path).state_dict()


def test_checkpoint_student_keeps_the_chosen_layers(teacher, checkpoint):
    c = _saved(checkpoint)
    s, rec = build_student(StudentSpec("checkpoint", init=str(checkpoint), layer_map=(0, 2)), teacher, seed=0)
    assert s.config.num_hidden_layers == 2 and rec["num_layers"] == 2 and rec["layer_map"] == [0, 2]
    sd = s.state_dict()
    for i, j in enumerate([0, 2]):
        keys = [k for k in c if k.startswith(f"bert.encoder.layer.{j}.")]
        assert keys
        for k in keys:
            assert torch.equal(sd[k.replace(f"layer.{j}.", f"layer.{i}.")], c[k]), k
    w = "output.dense.weight"
    assert not torch.equal(sd[f"bert.encoder.layer.1.{w}"], c[f"bert.encoder.layer.1.{w}"])
    for k in ("bert.embeddings.word_embeddings.weight", "bert.embeddings.LayerNorm.weight"):
        assert torch.equal(sd[k], c[k])
    assert "bert.encoder.layer.2.output.dense.weight" not in sd
    # num_layers alone: every k-th checkpoint layer
    s, rec = build_student(StudentSpec("checkpoint", init=str(checkpoint), num_layers=2), teacher, seed=0)
    assert rec["layer_map"] == default_layer_map(3, 2) == [0, 1]
    assert torch.equal(s.state_dict()["bert.encoder.layer.1.attention.self.query.weight"],
                       c["bert.encoder.layer.1.attention.self.query.weight"])
    assert s(input_ids=torch.tensor([[101, 2000, 102]])).logits.shape == (1, 2)
    # no selection: every layer, recorded
    _, rec = build_student(StudentSpec("checkpoint", init=str(checkpoint)), teacher, seed=0)
    assert rec["layer_map"] == [0, 1, 2] and rec["num_layers"] == 3


@pytest.mark.parametrize("spec, message", [
    (dict(layer_map=(0, 5, -1)), r"layer\(s\) \[5, -1\] outside 0..2"),
    (dict(num_layers=4), "num_layers 4 must be between 1 and 3"),
    (dict(num_layers=3, layer_map=(0, 1)), "has 2 entries but num_layers = 3"),
])
def test_checkpoint_layers_outside_it_are_refused(teacher, checkpoint, spec, message):
    with pytest.raises(UserError, match=message):
        build_student(StudentSpec("checkpoint", init=str(checkpoint), **spec), teacher, seed=0)


def test_head_teacher_copies_the_teachers_pooler_and_classifier(tiny_bert, checkpoint):
    teacher = load_classifier(str(tiny_bert))
    t = {k: v.clone() for k, v in teacher.state_dict().items()}
    new, rec = build_student(StudentSpec("checkpoint", init=str(checkpoint), layer_map=(1,)), teacher, seed=0)
    assert rec["head"] == "new" and not torch.equal(new.state_dict()["classifier.weight"], t["classifier.weight"])
    for builder in (StudentSpec("checkpoint", init=str(checkpoint), layer_map=(1,), head="teacher"),
                    StudentSpec("random", num_layers=1, hidden_size=32, num_heads=2, intermediate_size=40,
                                head="teacher")):
        s, rec = build_student(builder, teacher, seed=0)
        assert rec["head"] == "teacher"
        sd = s.state_dict()
        assert all(torch.equal(sd[k], t[k]) for k in HEAD)
        s.classifier.weight.data.add_(1.0)  # a copy: training the student leaves the teacher alone
        assert torch.equal(teacher.state_dict()["classifier.weight"], t["classifier.weight"])
    # the checkpoint's own layers are untouched by the head copy
    ckpt = _saved(checkpoint)
    s, _ = build_student(StudentSpec("checkpoint", init=str(checkpoint), layer_map=(1,), head="teacher"), teacher, 0)
    assert torch.equal(s.state_dict()["bert.encoder.layer.0.output.dense.weight"],
                       ckpt["bert.encoder.layer.1.output.dense.weight"])
    # ALBERT maps its pooler's names
    s, rec = build_student(StudentSpec("albert", embedding_size=8, head="teacher"), teacher, seed=0)
    sd = s.state_dict()
    assert torch.equal(sd["albert.pooler.weight"], t["bert.pooler.dense.weight"]) and rec["head"] == "teacher"


def test_head_teacher_needs_the_teachers_width_and_a_pooler(teacher, tmp_path):
    with pytest.raises(UserError, match=r"student's width \(24\) to equal the teacher's \(32\): use head: new"):
        build_student(StudentSpec("random", num_layers=1, hidden_size=24, num_heads=2, intermediate_size=40,
                                  head="teacher"), teacher, seed=0)
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    cfg = DistilBertConfig(vocab_size=teacher.config.vocab_size, dim=32, n_layers=1, n_heads=4, hidden_dim=64)
    DistilBertForSequenceClassification(cfg).save_pretrained(tmp_path / "distil")
    with pytest.raises(UserError, match="DistilBertForSequenceClassification has none: use head: new"):
        build_student(StudentSpec("checkpoint", init=str(tmp_path / "distil"), head="teacher"), teacher, seed=0)
    with pytest.raises(UserError, match="head 'old'"):
        build_student(StudentSpec("random", head="old"), teacher, seed=0)
