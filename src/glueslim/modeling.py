"""Loading models safely, and building a DistilBERT-style student from a teacher."""

from __future__ import annotations

import copy
import os

import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

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
    kwargs: dict = {"revision": revision, "trust_remote_code": trust_remote_code}
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
    return AutoModelForSequenceClassification.from_pretrained(ref, **kwargs)


def load_for_inference(model_dir: str, device: torch.device | str = "cpu") -> PreTrainedModel:
    """A model folder written by this workflow, ready for predict and profile (eval mode, on `device`).

    The one place that knows the formats a stage may write (plain safetensors today); predict and
    profile both load through it, so a new format is added here once.
    """
    return load_classifier(model_dir).to(device).eval()


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


def pick_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for, but torch sees no CUDA device")
    return torch.device(choice)
