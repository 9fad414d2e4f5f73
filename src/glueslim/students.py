"""Student builders, chosen by name; any student meets any loss set of the distiller (glueslim.distiller).

`build_student(spec, teacher, seed)` returns the student and what its record (glueslim.json) says about it:

- `teacher_layers` (DistilBERT-style): the teacher's width with fewer layers, each initialised from a
  teacher layer (`layer_map`, default every other one; `make_student`);
- `albert` (ALBERT-style): factorised embeddings (a truncated SVD of the teacher's) and one layer shared
  by every depth, initialised from one teacher layer (`make_albert_student`);
- `checkpoint`: a pre-trained compact model, a hub id (huawei-noah/TinyBERT_General_4L_312D) or a local
  folder (this workflow's general distillation, a published MiniLM), whose shape wins, with a new head
  sized like the teacher's; its vocabulary must be the teacher's. `num_layers` / `layer_map` keep only
  some of its layers (0-based indices into the checkpoint's; `num_layers` alone: every k-th);
- `random`: a BERT of any shape (TinyBERT's 4 layers x 312 and so on) with the teacher's vocabulary,
  initialised at random.

`head`: "new" (the builder's own head: a fresh one for checkpoint and random students) or "teacher" (the
fine-tuned teacher's pooler and classifier copied into the student, which needs the teacher's width;
teacher_layers and albert students always start with the teacher's head). Sentence-transformers
checkpoints ship no trained pooler, so a checkpoint student's pooler is otherwise random.
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
    init: str | None = None  # checkpoint: hub id or local folder (num_layers, layer_map: its layers to keep)
    hidden_size: int | None = None  # random: the shape
    num_heads: int | None = None
    intermediate_size: int | None = None
    head: str = "new"  # "new": the builder's head; "teacher": the teacher's pooler and classifier (HEADS)


HEADS = ("new", "teacher")


def build_student(spec: StudentSpec, teacher: PreTrainedModel, seed: int) -> tuple[PreTrainedModel, dict]:
    """The student of `spec` for `teacher`, and its record fields. A bad spec raises UserError."""
    if spec.builder not in BUILDERS:
        raise UserError(f"student builder {spec.builder!r}: expected one of {', '.join(BUILDERS)}")
    if spec.head not in HEADS:
        raise UserError(f"student head {spec.head!r}: expected one of {', '.join(HEADS)}")
    try:
        student, record = BUILDERS[spec.builder](spec, teacher, seed)
        if spec.head == "teacher":
            copy_teacher_head(student, teacher)
    except ValueError as e:
        raise UserError(str(e)) from None
    teachers_head = spec.head == "teacher" or spec.builder in ("teacher_layers", "albert")
    return student, {**record, "head": "teacher" if teachers_head else "new"}


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
    return keep_layers(teacher, layer_map)


def keep_layers(model: PreTrainedModel, layer_map: list[int]) -> PreTrainedModel:
    """A copy of `model` (same class and config but depth) whose layer i is its layer layer_map[i]
    (0-based, checked by the caller); everything outside the layers is copied as it is."""
    cfg = copy.deepcopy(model.config)
    cfg.num_hidden_layers = len(layer_map)
    out = type(model)(cfg)
    prefix, layers = layer_list(model)
    _, out_layers = layer_list(out)
    outside = {k: v for k, v in model.state_dict().items() if not k.startswith(prefix + ".")}
    missing, unexpected = out.load_state_dict(outside, strict=False)
    if unexpected or any(not k.startswith(prefix + ".") for k in missing):
        raise RuntimeError(f"layer copy mismatch: missing {missing}, unexpected {unexpected}")
    for i, j in enumerate(layer_map):
        out_layers[i].load_state_dict(layers[j].state_dict())
    return out


# the pooler (dense) of each student family with a pooler, by transformers' base_model_prefix
_POOLERS = {"bert": "bert.pooler.dense", "albert": "albert.pooler"}


def _pooler(model: PreTrainedModel, who: str) -> str:
    name = _POOLERS.get(model.base_model_prefix)
    if name is None or f"{name}.weight" not in model.state_dict() or "classifier.weight" not in model.state_dict():
        raise ValueError(f"head: teacher needs a {who} with a pooler and classifier (BERT or ALBERT); "
                         f"{type(model).__name__} has none: use head: new")
    return name


@torch.no_grad()
def copy_teacher_head(student: PreTrainedModel, teacher: PreTrainedModel) -> None:
    """Copy the fine-tuned teacher's pooler (dense) and classifier into `student` (BERT or ALBERT) in place.

    The head reads the [CLS] vector, so it carries over only when the widths match.
    """
    ds, dt = student.config.hidden_size, teacher.config.hidden_size
    if ds != dt:
        raise ValueError(f"head: teacher needs the student's width ({ds}) to equal the teacher's ({dt}): "
                         "use head: new")
    sp, tp = _pooler(student, "student"), _pooler(teacher, "teacher")
    t = teacher.state_dict()
    new = {f"{a}.{p}": t[f"{b}.{p}"] for a, b in ((sp, tp), ("classifier", "classifier")) for p in ("weight", "bias")}
    s = student.state_dict()
    bad = [k for k, v in new.items() if s[k].shape != v.shape]
    if bad:
        raise ValueError(f"head: teacher: the student's {', '.join(bad)} differ in shape from the teacher's "
                         f"(labels: {student.config.num_labels} vs {teacher.config.num_labels}): use head: new")
    student.load_state_dict({**s, **new})


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
    layer_map = checkpoint_layer_map(spec, student.config.num_hidden_layers)
    if layer_map != list(range(student.config.num_hidden_layers)):
        student = keep_layers(student, layer_map)
    return student, {**_shape_record(student, spec.init), "layer_map": layer_map}


def checkpoint_layer_map(spec: StudentSpec, n: int) -> list[int]:
    """The checkpoint layers (0-based) a checkpoint student keeps: `spec.layer_map`, every k-th of
    `spec.num_layers` (default_layer_map), or all `n`."""
    where = f"student checkpoint {spec.init} ({n} layers)"
    if spec.layer_map is None:
        if spec.num_layers is None:
            return list(range(n))
        if not 1 <= spec.num_layers <= n:
            raise ValueError(f"{where}: num_layers {spec.num_layers} must be between 1 and {n}")
        return default_layer_map(n, spec.num_layers)
    layer_map = list(spec.layer_map)
    bad = [i for i in layer_map if not 0 <= i < n]
    if bad or not layer_map:
        raise ValueError(f"{where}: layer_map {layer_map} names layer(s) {bad} outside 0..{n - 1}"
                         if bad else f"{where}: layer_map is empty")
    if spec.num_layers is not None and spec.num_layers != len(layer_map):
        raise ValueError(f"{where}: layer_map {layer_map} has {len(layer_map)} entries but num_layers = "
                         f"{spec.num_layers}")
    return layer_map


def _shape_record(student: PreTrainedModel, init: str) -> dict:
    c = student.config
    return {"arch": "tinybert", "init": init, "num_layers": c.num_hidden_layers, "hidden_size": c.hidden_size,
            "num_heads": c.num_attention_heads,
            # DistilBERT's config calls its feed-forward size hidden_dim
            "intermediate_size": getattr(c, "intermediate_size", getattr(c, "hidden_dim", None))}


BUILDERS = {"teacher_layers": _teacher_layers, "albert": _albert, "checkpoint": _checkpoint, "random": _random}
