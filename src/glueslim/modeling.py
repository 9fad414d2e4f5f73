"""Loading models safely: tokenizers, classifiers, and the model folders this workflow writes."""

from __future__ import annotations

import json
import os
import pickle

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from glueslim import int8
from glueslim.errors import UserError
from glueslim.heads import apply_recorded_pruning
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
        raise UserError(f"{ref}: refused to load its PyTorch pickle checkpoint, which holds Python objects "
                        f"besides tensors and could run code ({str(e).splitlines()[-1][:200]}); use a "
                        "checkpoint with safetensors weights") from e


def load_for_inference(model_dir: str, device: torch.device | str = "cpu") -> PreTrainedModel:
    """A model folder written by this workflow, ready for predict and profile (eval mode, on `device`).

    The one place that knows the formats the stages write: plain safetensors, a head-pruned model
    (`config.pruned_heads`), an int8 model (`model_int8.safetensors`, CPU only). Predict, profile and
    every compression stage load through it.
    """
    model_dir = str(model_dir)
    quantized = os.path.exists(os.path.join(model_dir, int8.WEIGHTS))
    if not quantized and not getattr(AutoConfig.from_pretrained(model_dir), "pruned_heads", None):
        return load_classifier(model_dir).to(device).eval()
    model = architecture(model_dir)
    if quantized:
        return int8.load_int8(model_dir, model)  # dynamic int8 kernels run on the CPU only
    model.load_state_dict(_read_safetensors(model_dir), strict=True)
    return model.to(device).eval()


def architecture(model_dir: str) -> PreTrainedModel:
    """The saved model's float architecture (pruned heads re-applied) with untrained weights."""
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


def pick_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for, but torch sees no CUDA device")
    return torch.device(choice)
