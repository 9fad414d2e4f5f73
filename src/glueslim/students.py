"""Student builders, chosen by name; any student meets any loss set of the distiller (glueslim.distiller).

`build_student(spec, teacher, seed)` returns the student and what its record (glueslim.json) says about it:

- `teacher_layers` (DistilBERT-style): the teacher's width with fewer layers, each initialised from a
  teacher layer (`layer_map`, default every other one; `make_student`);
- `albert` (ALBERT-style): factorised embeddings (a truncated SVD of the teacher's) and one layer shared
  by every depth, initialised from one teacher layer (`make_albert_student`);
- `checkpoint`: a pre-trained compact model, a hub id (huawei-noah/TinyBERT_General_4L_312D) or a local
  folder (this workflow's general distillation, a published MiniLM), whose shape wins, with a new head
  sized like the teacher's; its vocabulary must be the teacher's;
- `random`: a BERT of any shape (TinyBERT's 4 layers x 312 and so on) with the teacher's vocabulary,
  initialised at random.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import torch
from transformers import (
    AlbertConfig, AlbertForSequenceClassification, AutoModelForSequenceClassification, BertConfig,
    BertForSequenceClassification, PreTrainedModel,
)

from glueslim.errors import UserError
from glueslim.heads import layer_list
from glueslim.modelfiles import check_model_dir


@dataclass(frozen=True)
class StudentSpec:
    """A student: its builder's name and the options that builder reads (the others stay None)."""

    builder: str
    num_layers: int | None = None  # teacher_layers: default half the teacher's; albert: the teacher's depth
    layer_map: tuple[int, ...] | None = None  # teacher_layers, albert: the teacher layer (0-based) behind each
    embedding_size: int | None = None  # albert: the factorised embedding size E
    init: str | None = None  # checkpoint: hub id or local folder
    hidden_size: int | None = None  # random: the shape
    num_heads: int | None = None
    intermediate_size: int | None = None


def build_student(spec: StudentSpec, teacher: PreTrainedModel, seed: int) -> tuple[PreTrainedModel, dict]:
    """The student of `spec` for `teacher`, and its record fields. A bad spec raises UserError."""
    if spec.builder not in BUILDERS:
        raise UserError(f"student builder {spec.builder!r}: expected one of {', '.join(BUILDERS)}")
    try:
        return BUILDERS[spec.builder](spec, teacher, seed)
    except ValueError as e:
        raise UserError(str(e)) from None


def default_layer_map(teacher_layers: int, student_layers: int | None = None) -> list[int]:
    """Every k-th teacher layer from the bottom: 12 -> 6 gives [0, 2, 4, 6, 8, 10]."""
    n = student_layers or max(1, teacher_layers // 2)
    if not 1 <= n <= teacher_layers:
        raise ValueError(f"a student needs between 1 and {teacher_layers} layers, not {n}")
    return [i * teacher_layers // n for i in range(n)]


def make_student(teacher: PreTrainedModel, layer_map: list[int]) -> PreTrainedModel:
    """A student of the teacher's width with len(layer_map) layers; layer i starts as teacher layer layer_map[i].

    Embeddings, pooler and classifier are copied as they are.
    """
    n_teacher = teacher.config.num_hidden_layers
    bad = [j for j in layer_map if not 0 <= j < n_teacher]
    if bad or not layer_map:
        raise ValueError(f"layer_map {layer_map} must name teacher layers 0..{n_teacher - 1}")
    cfg = copy.deepcopy(teacher.config)
    cfg.num_hidden_layers = len(layer_map)
    student = type(teacher)(cfg)
    prefix, t_layers = layer_list(teacher)
    _, s_layers = layer_list(student)
    outside = {k: v for k, v in teacher.state_dict().items() if not k.startswith(prefix + ".")}
    missing, unexpected = student.load_state_dict(outside, strict=False)
    if unexpected or any(not k.startswith(prefix + ".") for k in missing):
        raise RuntimeError(f"student/teacher mismatch: missing {missing}, unexpected {unexpected}")
    for i, j in enumerate(layer_map):
        s_layers[i].load_state_dict(t_layers[j].state_dict())
    return student


# BERT layer tensor -> ALBERT's shared layer tensor (transformers' module names)
_ALBERT_LAYER = {
    "attention.self.query": "attention.query", "attention.self.key": "attention.key",
    "attention.self.value": "attention.value", "attention.output.dense": "attention.dense",
    "attention.output.LayerNorm": "attention.LayerNorm", "intermediate.dense": "ffn",
    "output.dense": "ffn_output", "output.LayerNorm": "full_layer_layer_norm",
}


@torch.no_grad()
def make_albert_student(teacher: PreTrainedModel, embedding_size: int, num_layers: int | None = None,
                        init_layer: int | None = None) -> PreTrainedModel:
    """An ALBERT-style student of a BERT teacher: factorised embeddings and one layer shared by all depths.

    Embeddings: a truncated SVD of the teacher's word embeddings W ~ U_k S_k V_k^T gives the V x E table
    (U_k S_k) and the E -> H projection (V_k); position and token-type embeddings are projected onto
    the same basis. The shared layer starts as teacher layer `init_layer` (default: the middle one);
    pooler and classifier are copied.
    """
    tc = teacher.config
    n_teacher = tc.num_hidden_layers
    init_layer = n_teacher // 2 if init_layer is None else init_layer
    if not 0 <= init_layer < n_teacher:
        raise ValueError(f"init_layer {init_layer} must name a teacher layer 0..{n_teacher - 1}")
    if not 1 <= embedding_size <= tc.hidden_size:
        raise ValueError(f"embedding_size {embedding_size} must be between 1 and the hidden size {tc.hidden_size}")
    cfg = AlbertConfig(
        vocab_size=tc.vocab_size, embedding_size=embedding_size, hidden_size=tc.hidden_size,
        num_hidden_layers=num_layers or n_teacher, num_hidden_groups=1, inner_group_num=1,
        num_attention_heads=tc.num_attention_heads, intermediate_size=tc.intermediate_size,
        hidden_act=tc.hidden_act, max_position_embeddings=tc.max_position_embeddings,
        type_vocab_size=tc.type_vocab_size, layer_norm_eps=tc.layer_norm_eps, pad_token_id=tc.pad_token_id,
        num_labels=tc.num_labels, id2label=tc.id2label, label2id=tc.label2id, problem_type=tc.problem_type,
        hidden_dropout_prob=tc.hidden_dropout_prob, attention_probs_dropout_prob=tc.attention_probs_dropout_prob,
        classifier_dropout_prob=getattr(tc, "classifier_dropout", None) or tc.hidden_dropout_prob,
    )
    student = AlbertForSequenceClassification(cfg)
    t = teacher.state_dict()
    s = student.state_dict()
    u, sv, vh = torch.linalg.svd(t["bert.embeddings.word_embeddings.weight"].float(), full_matrices=False)
    basis = vh[:embedding_size]  # E x H
    new = {
        "albert.embeddings.word_embeddings.weight": u[:, :embedding_size] * sv[:embedding_size],
        "albert.embeddings.position_embeddings.weight": t["bert.embeddings.position_embeddings.weight"] @ basis.T,
        "albert.embeddings.token_type_embeddings.weight": t["bert.embeddings.token_type_embeddings.weight"] @ basis.T,
        "albert.encoder.embedding_hidden_mapping_in.weight": basis.T.contiguous(),
        "albert.encoder.embedding_hidden_mapping_in.bias": torch.zeros(tc.hidden_size),
        "albert.pooler.weight": t["bert.pooler.dense.weight"], "albert.pooler.bias": t["bert.pooler.dense.bias"],
        "classifier.weight": t["classifier.weight"], "classifier.bias": t["classifier.bias"],
    }
    shared = "albert.encoder.albert_layer_groups.0.albert_layers.0."
    for bert_name, albert_name in _ALBERT_LAYER.items():
        for p in ("weight", "bias"):
            new[f"{shared}{albert_name}.{p}"] = t[f"bert.encoder.layer.{init_layer}.{bert_name}.{p}"]
    s.update(new)
    student.load_state_dict(s)
    return student


def _teacher_layers(spec: StudentSpec, teacher: PreTrainedModel, seed: int) -> tuple[PreTrainedModel, dict]:
    layer_map = list(spec.layer_map or default_layer_map(teacher.config.num_hidden_layers, spec.num_layers))
    student = make_student(teacher, layer_map)
    return student, {"num_layers": student.config.num_hidden_layers, "layer_map": layer_map, "arch": "distilbert",
                     "embedding_size": None}


def _albert(spec: StudentSpec, teacher: PreTrainedModel, seed: int) -> tuple[PreTrainedModel, dict]:
    layer_map = list(spec.layer_map or [teacher.config.num_hidden_layers // 2])
    if len(layer_map) != 1:
        raise ValueError(f"an ALBERT-style student shares one layer: layer_map {layer_map} must name one")
    if spec.embedding_size is None:
        raise ValueError("an ALBERT-style student needs an embedding size")
    student = make_albert_student(teacher, spec.embedding_size, spec.num_layers, layer_map[0])
    return student, {"num_layers": student.config.num_hidden_layers, "layer_map": layer_map, "arch": "albert",
                     "embedding_size": spec.embedding_size}


def student_config(teacher_config, num_layers: int, hidden_size: int, num_heads: int, intermediate_size: int):
    """A BertConfig of the given shape with the teacher's vocabulary, positions and labels."""
    tc = teacher_config
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size {hidden_size} must be a multiple of num_heads {num_heads}")
    return BertConfig(
        vocab_size=tc.vocab_size, hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, intermediate_size=intermediate_size, hidden_act=tc.hidden_act,
        max_position_embeddings=tc.max_position_embeddings, type_vocab_size=tc.type_vocab_size,
        pad_token_id=tc.pad_token_id, layer_norm_eps=tc.layer_norm_eps, num_labels=tc.num_labels,
        id2label=tc.id2label, label2id=tc.label2id, problem_type=tc.problem_type,
    )


def _random(spec: StudentSpec, teacher: PreTrainedModel, seed: int) -> tuple[PreTrainedModel, dict]:
    shape = (spec.num_layers, spec.hidden_size, spec.num_heads, spec.intermediate_size)
    if None in shape:
        raise ValueError("a random student needs its shape: num_layers, hidden_size, num_heads, intermediate_size")
    torch.manual_seed(seed)
    student = BertForSequenceClassification(student_config(teacher.config, *shape))
    return student, _shape_record(student, "random")


def _checkpoint(spec: StudentSpec, teacher: PreTrainedModel, seed: int) -> tuple[PreTrainedModel, dict]:
    if not spec.init:
        raise ValueError("a checkpoint student needs init: a hub id or a local folder")
    if os.path.isdir(spec.init):
        check_model_dir(spec.init)  # a damaged folder: one line naming the file (glueslim.modelfiles)
    tc = teacher.config
    kwargs = dict(num_labels=tc.num_labels, ignore_mismatched_sizes=True, weights_only=True)
    if tc.problem_type == "regression":
        kwargs["problem_type"] = "regression"
    else:
        kwargs.update(id2label=tc.id2label, label2id=tc.label2id)
    student = AutoModelForSequenceClassification.from_pretrained(spec.init, **kwargs)
    if student.config.vocab_size != tc.vocab_size:
        raise UserError(f"student checkpoint {spec.init}: vocabulary of {student.config.vocab_size} tokens, the "
                        f"teacher's has {tc.vocab_size}: distillation needs the teacher's tokenizer")
    return student, _shape_record(student, spec.init)


def _shape_record(student: PreTrainedModel, init: str) -> dict:
    c = student.config
    return {"arch": "tinybert", "init": init, "num_layers": c.num_hidden_layers, "hidden_size": c.hidden_size,
            "num_heads": c.num_attention_heads, "intermediate_size": c.intermediate_size}


BUILDERS = {"teacher_layers": _teacher_layers, "albert": _albert, "checkpoint": _checkpoint, "random": _random}
