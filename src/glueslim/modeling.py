"""Loading models safely, and building a DistilBERT-style student from a teacher."""

from __future__ import annotations

import copy
import json
import os
import pickle

import torch
from torch import nn
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from glueslim.tasks import Task


def _is_local(ref: str) -> bool:
    return os.path.isdir(ref)


def load_tokenizer(ref: str, revision: str | None = None, trust_remote_code: bool = False):
    return AutoTokenizer.from_pretrained(ref, revision=revision, trust_remote_code=trust_remote_code)


def load_classifier(
    ref: str, task: Task | None = None, revision: str | None = None, trust_remote_code: bool = False
) -> PreTrainedModel:
    """A sequence classifier from a hub id or a local folder; a new head is sized for `task`.

    Weights come from safetensors files where the checkpoint has them; transformers reads any
    PyTorch pickle with `weights_only=True`. Remote code runs only when the config names the model
    in `trust_remote_code`.
    """
    kwargs: dict = {"revision": revision, "trust_remote_code": trust_remote_code, "weights_only": True}
    if task is not None:  # a fresh head for the task, whatever head the checkpoint had
        kwargs["num_labels"] = task.num_labels
        kwargs["ignore_mismatched_sizes"] = True
        if task.is_regression:
            kwargs["problem_type"] = "regression"
        else:
            kwargs["id2label"] = dict(enumerate(task.label_names))
            kwargs["label2id"] = {n: i for i, n in enumerate(task.label_names)}
    if _is_local(ref) and any(f.endswith(".safetensors") for f in os.listdir(ref)):
        kwargs["use_safetensors"] = True
    try:
        return AutoModelForSequenceClassification.from_pretrained(ref, **kwargs)
    except pickle.UnpicklingError as e:  # weights_only refused a pickle that holds more than tensors
        from glueslim.errors import UserError

        raise UserError(f"{ref}: refused to load its PyTorch pickle checkpoint, which holds Python objects "
                        f"besides tensors and could run code ({str(e).splitlines()[-1][:200]}); use a "
                        "checkpoint with safetensors weights") from e


def load_for_inference(model_dir: str, device: torch.device | str = "cpu") -> PreTrainedModel:
    """A model folder written by this workflow, ready for predict and profile (eval mode, on `device`).

    The one place that knows the formats the stages write: plain safetensors, a head-pruned model
    (`config.pruned_heads`), an int8 model (`model_int8.safetensors`, CPU only). Predict, profile and
    every compression stage load through it.
    """
    from glueslim import quantize

    model_dir = str(model_dir)
    int8 = os.path.exists(os.path.join(model_dir, quantize.WEIGHTS))
    if not int8 and not getattr(AutoConfig.from_pretrained(model_dir), "pruned_heads", None):
        return load_classifier(model_dir).to(device).eval()
    model = architecture(model_dir)
    if int8:
        return quantize.load_int8(model_dir, model)  # dynamic int8 kernels run on the CPU only
    model.load_state_dict(_read_safetensors(model_dir), strict=True)
    return model.to(device).eval()


def architecture(model_dir: str) -> PreTrainedModel:
    """The saved model's float architecture (pruned heads re-applied) with untrained weights."""
    from glueslim.prune import apply_recorded_pruning

    model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(model_dir))
    apply_recorded_pruning(model)
    return model


def _read_safetensors(model_dir: str) -> dict[str, torch.Tensor]:
    index = os.path.join(model_dir, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(os.path.join(model_dir, f)))
    return state


def layer_list(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The model's stack of transformer layers (BERT: bert.encoder.layer) and its qualified name."""
    n = model.config.num_hidden_layers
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n and name.endswith("layer"):
            return name, module
    raise ValueError(f"cannot find the {n} transformer layers in {type(model).__name__}")


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
def make_albert_student(teacher: PreTrainedModel, embedding_size: int = 128, num_layers: int | None = None,
                        init_layer: int | None = None) -> PreTrainedModel:
    """An ALBERT-style student of a BERT teacher: factorised embeddings and one layer shared by all depths.

    Embeddings: a truncated SVD of the teacher's word embeddings W ~ U_k S_k V_k^T gives the V x E table
    (U_k S_k) and the E -> H projection (V_k); position and token-type embeddings are projected onto
    the same basis. The shared layer starts as teacher layer `init_layer` (default: the middle one);
    pooler and classifier are copied.
    """
    from transformers import AlbertConfig, AlbertForSequenceClassification

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


def pick_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for, but torch sees no CUDA device")
    return torch.device(choice)
