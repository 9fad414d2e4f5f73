"""The one distiller: projections and the frozen teacher, the plain student for prediction KD, and any
student builder meeting any loss set."""

from __future__ import annotations

import pytest
import torch

from glueslim.distiller import IntermediateDistiller, PredictionKD, distiller
from glueslim.features import default_matches
from glueslim.students import StudentSpec, build_student

BATCH = {"input_ids": torch.tensor([[2, 40, 50, 3, 0], [2, 60, 3, 0, 0]]),
         "attention_mask": torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]])}
LABELLED = {**BATCH, "labels": torch.tensor([1, 0]), "teacher_logits": torch.tensor([[0.5, -0.5], [-1.0, 2.0]])}


@pytest.fixture(scope="module")
def teacher(tiny_bert):
    from glueslim.modeling import load_classifier

    return load_classifier(str(tiny_bert))


def _random(teacher, seed=0):
    return build_student(StudentSpec("random", num_layers=2, hidden_size=24, num_heads=2, intermediate_size=40),
                         teacher, seed)[0]


def test_student_shape_is_independent_and_projections_map_widths(teacher):
    student = _random(teacher)
    w = IntermediateDistiller(student, teacher, default_matches(2, 4))
    assert {k: tuple(p.weight.shape) for k, p in w.proj.items()} == {"0": (32, 24), "2": (32, 24), "4": (32, 24)}
    assert "teacher" not in dict(w.named_children())  # the teacher is neither trained nor saved
    out = w(**BATCH, distill=True)
    assert out.loss.requires_grad and out.logits.shape == (2, 2)
    assert set(out.parts) == {"embedding:0<-0", "attention:1<-2", "hidden:1<-2", "attention:2<-4", "hidden:2<-4"}
    out.loss.backward()
    assert w.proj["0"].weight.grad is not None
    assert not any(p.grad is not None for p in teacher.parameters())
    assert w(**BATCH).logits.shape == (2, 2)  # the plain forward: the student alone


def test_prediction_kd_alone_trains_the_plain_student(teacher):
    """No wrapper, no teacher: the same module (and parameter order) as the student, a loss of its logits."""
    student = _random(teacher)
    stage = distiller(student, None, kd=PredictionKD("kl", 0.5, 2.0))
    assert stage.model is student and stage.student is student and stage.forward_fn is None
    logits = student(**BATCH).logits.float()
    from glueslim.losses import prediction_loss

    assert torch.equal(stage.loss_fn(logits, LABELLED),
                       prediction_loss("kl", logits, LABELLED["teacher_logits"], LABELLED["labels"], 0.5, 2.0))
    with pytest.raises(ValueError, match="needs"):
        distiller(student, teacher)
    with pytest.raises(ValueError, match="prediction loss"):
        PredictionKD("mse", 0.5, 1.0)


LOSS_SETS = {
    "prediction kl + hard labels": (None, PredictionKD("kl", 0.5, 2.0)),
    "prediction soft_ce": (None, PredictionKD("soft_ce", 1.0, 1.0)),
    "hidden states": (["hidden"], None),
    "TinyBERT stage 1": (["embedding", "attention", "hidden"], None),
    "[CLS] (PKD) + prediction kl": (["cls"], PredictionKD("kl", 0.5, 2.0)),
}
BUILDERS = {
    "teacher_layers": StudentSpec("teacher_layers"),
    "albert": StudentSpec("albert", num_layers=2, embedding_size=8),
    "random": StudentSpec("random", num_layers=2, hidden_size=24, num_heads=2, intermediate_size=40),
    "checkpoint": None,  # a saved random student: the test's tmp folder
}


@pytest.mark.parametrize("builder", list(BUILDERS))
@pytest.mark.parametrize("loss_set", list(LOSS_SETS))
def test_any_builder_meets_any_loss_set(teacher, builder, loss_set, tmp_path):
    spec = BUILDERS[builder]
    if spec is None:
        _random(teacher).save_pretrained(tmp_path / "ckpt")
        spec = StudentSpec("checkpoint", init=str(tmp_path / "ckpt"))
    student, _ = build_student(spec, teacher, seed=0)
    features, kd = LOSS_SETS[loss_set]
    matches = default_matches(student.config.num_hidden_layers, teacher.config.num_hidden_layers, features) \
        if features else None
    stage = distiller(student, teacher, matches, kd)
    assert stage.student is student
    stage.model.train()
    inputs = {k: LABELLED[k] for k in ("input_ids", "attention_mask")}
    if stage.forward_fn is None:
        loss = stage.loss_fn(stage.model(**inputs).logits.float(), LABELLED)
    else:
        loss = stage.loss_fn(stage.forward_fn(stage.model, inputs), LABELLED)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    trained = [n for n, p in stage.model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert trained and not any(p.grad is not None for p in teacher.parameters())
    if matches:  # the projections learn with the student
        assert any(n.startswith("proj.") for n in trained)
    stage.model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("loss", ["kl", "soft_ce"])
def test_alpha_zero_is_exactly_the_task_loss_without_teacher_logits(teacher, loss):
    """A no-KD twin: alpha 0 is the gold-label loss itself, the soft term not computed, no teacher logits read."""
    from glueslim.losses import task_loss

    student = _random(teacher)
    kd = PredictionKD(loss, 0.0, 2.0)
    assert not kd.kd and PredictionKD(loss, 0.5, 2.0).kd
    stage = distiller(student, None, kd=kd)
    logits = student(**BATCH).logits.float()
    gold = {**BATCH, "labels": LABELLED["labels"]}  # no teacher_logits at all
    assert torch.equal(stage.loss_fn(logits, gold), task_loss(logits, LABELLED["labels"]))
    nan_teacher = {**LABELLED, "teacher_logits": torch.full((2, 2), float("nan"))}
    assert torch.equal(stage.loss_fn(logits, nan_teacher), task_loss(logits, LABELLED["labels"]))
    with pytest.raises(ValueError, match="needs the gold labels"):
        PredictionKD(loss, 0.5, 2.0)(logits, {"teacher_logits": LABELLED["teacher_logits"]})
    with pytest.raises(ValueError, match="needs the teacher's logits"):
        PredictionKD(loss, 0.5, 2.0)(logits, gold)
