"""Loading models safely: tokenizers, classifiers, and the model folders this workflow writes.

Every local folder is checked whole before a library reads it (glueslim.modelfiles: config, weights headers,
tokenizer files), then what needs the libraries: a model_type this transformers knows, the loaded tensors
against the config (`_check_fit`), a tokenizer that is not degenerate. Each problem is one UserError line
that names the folder or file and what to do."""

from __future__ import annotations

import json
import os
import pickle

import torch
from safetensors.torch import load_file
from transformers import CONFIG_MAPPING, AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel
from transformers import __version__ as transformers_version

from glueslim.errors import UserError
from glueslim.heads import apply_recorded_pruning
from glueslim.modelfiles import DAMAGED, check_model_dir
from glueslim.tasks import Task

MIN_VOCAB = 100  # a tokenizer with fewer tokens lost its vocabulary (a folder without tokenizer files has 5)
SAMPLE = "The film was good, and the actors were great."
_LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError, AttributeError)  # what a damaged folder raises inside


def _is_local(ref: str) -> bool:
    return os.path.isdir(ref)


def check_local_model(ref: str, need_tokenizer: bool = False, need_weights: bool = True,
                      trust_remote_code: bool = False) -> None:
    """modelfiles.check_model_dir, and a model_type this transformers knows (unless remote code defines it)."""
    check_model_dir(ref, need_tokenizer=need_tokenizer, need_weights=need_weights)
    with open(os.path.join(ref, "config.json"), encoding="utf-8") as f:
        kind = json.load(f)["model_type"]
    if kind not in CONFIG_MAPPING and not trust_remote_code:
        raise UserError(f"{ref}/config.json: model_type {kind!r} is not a model transformers {transformers_version} "
                        "knows: a damaged config.json, or a model that needs a newer transformers")


def _short(e: Exception) -> str:
    lines = [line for line in str(e).splitlines() if line.strip()]
    return f"{type(e).__name__}: {lines[0][:200] if lines else ''}"


def load_tokenizer(ref: str, revision: str | None = None, trust_remote_code: bool = False):
    """The tokenizer of a model (hub id or local folder, checked whole first), with `model_max_length` no
    longer than the model's positions; a degenerate one (a lost vocabulary) is an error naming the model."""
    if _is_local(ref):
        check_local_model(ref, need_tokenizer=True, need_weights=False, trust_remote_code=trust_remote_code)
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref, revision=revision, trust_remote_code=trust_remote_code)
    except _LOAD_ERRORS as e:
        if not _is_local(ref):
            raise
        raise UserError(f"{ref}: its tokenizer files do not load ({_short(e)}): {DAMAGED}") from e
    unk = tokenizer.unk_token_id
    ids = tokenizer(SAMPLE, add_special_tokens=False)["input_ids"]
    if len(tokenizer) < MIN_VOCAB or (unk is not None and ids and all(i == unk for i in ids)):
        raise UserError(f"{ref}: its tokenizer is degenerate (a vocabulary of {len(tokenizer)} tokens; {SAMPLE!r} "
                        f"reads as {len(ids)} tokens, {sum(i == unk for i in ids)} of them {tokenizer.unk_token}): "
                        "put the tokenizer files of the model it was trained from in the folder")
    positions = _positions(ref, revision, trust_remote_code)
    if positions and tokenizer.model_max_length > positions:
        tokenizer.model_max_length = positions  # encode() checks max_seq_length against it
    return tokenizer


def _positions(ref: str, revision: str | None, trust_remote_code: bool) -> int | None:
    """How many tokens the model reads (max_position_embeddings; RoBERTa-style models keep pad_token_id + 1
    of them for padding), or None when its config says nothing."""
    try:
        cfg = AutoConfig.from_pretrained(ref, revision=revision, trust_remote_code=trust_remote_code)
    except _LOAD_ERRORS:
        return None
    n = getattr(cfg, "max_position_embeddings", None)
    if not isinstance(n, int):
        return None
    if cfg.model_type in ("roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text"):
        n -= (cfg.pad_token_id or 0) + 1
    return n


def load_classifier(
    ref: str, task: Task | None = None, revision: str | None = None, trust_remote_code: bool = False
) -> PreTrainedModel:
    """A sequence classifier from a hub id or a local folder; a new head is sized for `task`.

    Weights come from safetensors files where the checkpoint has them; transformers reads any
    PyTorch pickle with `weights_only=True`. Remote code runs only when the config names the model
    in `trust_remote_code`.
    """
    local = _is_local(ref)
    if local:
        check_local_model(ref, trust_remote_code=trust_remote_code)
    kwargs: dict = {"revision": revision, "trust_remote_code": trust_remote_code, "weights_only": True,
                    "ignore_mismatched_sizes": True, "output_loading_info": True}  # mismatches: _check_fit
    if task is not None:  # a fresh head for the task, whatever head the checkpoint had
        kwargs["num_labels"] = task.num_labels
        if task.is_regression:
            kwargs["problem_type"] = "regression"
        else:
            kwargs["id2label"] = dict(enumerate(task.label_names))
            kwargs["label2id"] = {n: i for i, n in enumerate(task.label_names)}
    if local and any(f.endswith(".safetensors") for f in os.listdir(ref)):
        kwargs["use_safetensors"] = True
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(ref, **kwargs)
    except pickle.UnpicklingError as e:  # weights_only refused a pickle that holds more than tensors
        raise UserError(f"{ref}: refused to load its PyTorch pickle checkpoint, which holds Python objects "
                        f"besides tensors and could run code ({str(e).splitlines()[-1][:200]}); use a "
                        "checkpoint with safetensors weights") from e
    except _LOAD_ERRORS as e:
        if not local:
            raise
        raise UserError(f"{ref}: the model does not load ({_short(e)}): {DAMAGED}") from e
    _check_fit(ref, model, info, new_head=task is not None)
    return model


def _check_fit(ref: str, model: PreTrainedModel, info: dict, new_head: bool) -> None:
    """The checkpoint's tensors fill the model its config describes: no tensor of another shape (the head's
    only for a new task), none of the body missing (the head may be missing for a new task, or from a
    pre-trained model: a folder without glueslim.json)."""
    prefix = model.base_model_prefix + "."
    in_head = lambda k: not k.startswith(prefix)  # noqa: E731
    head_may_lack = new_head or not (_is_local(ref) and os.path.exists(os.path.join(ref, "glueslim.json")))
    bad = [(k, tuple(a), tuple(b)) for k, a, b in info.get("mismatched_keys", ()) if not (new_head and in_head(k))]
    if bad:
        k, a, b = sorted(bad)[0]
        raise UserError(f"{ref}: its weights do not fit its config.json: {len(bad)} tensor(s) of another shape "
                        f"(e.g. {k}: {list(a)} in the weights file, {list(b)} by config.json); the folder is "
                        "damaged or mixes two models; re-run the job that wrote it or re-download the model")
    missing = sorted(k for k in info.get("missing_keys", ())
                     if not (head_may_lack and (in_head(k) or ".pooler." in k)))
    if missing:
        raise UserError(f"{ref}: its weights file lacks {len(missing)} tensor(s) the model needs (e.g. "
                        f"{', '.join(missing[:3])}), so they would start at random: the weights belong to "
                        "another model or the folder is damaged; re-run the job that wrote it or re-download it")


def load_for_inference(model_dir: str, device: torch.device | str = "cpu") -> PreTrainedModel:
    """A float32 model folder written by this workflow, ready for predict and profile (eval mode, on `device`).

    Plain safetensors, or a head-pruned model (`config.pruned_heads`, re-applied before loading). The deployed
    forms (bf16, int8, ONNX) are loaded by glueslim.forms.load_model, which comes here for fp32 folders.
    """
    model_dir = str(model_dir)
    check_local_model(model_dir)
    try:
        pruned = getattr(AutoConfig.from_pretrained(model_dir), "pruned_heads", None)
    except _LOAD_ERRORS as e:
        raise UserError(f"{model_dir}/config.json: not a model configuration ({_short(e)}): {DAMAGED}") from e
    if not pruned:
        return load_classifier(model_dir).to(device).eval()
    model = architecture(model_dir)
    load_weights(model, read_safetensors(model_dir), model_dir)
    return model.to(device).eval()


def load_weights(model, state: dict, model_dir: str, assign: bool = False) -> None:
    """model.load_state_dict(state, strict=True); a state that does not fit is a UserError naming the folder."""
    try:
        model.load_state_dict(state, strict=True, assign=assign)
    except (RuntimeError, ValueError, KeyError) as e:
        raise UserError(f"{model_dir}: its weights do not fit its config.json ({_short(e)}); the folder is damaged "
                        "or mixes two models; re-run the job that wrote it") from e


def architecture(model_dir: str) -> PreTrainedModel:
    """The saved model's float architecture (pruned heads re-applied) with untrained weights."""
    model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(model_dir))
    apply_recorded_pruning(model)
    return model


def read_safetensors(model_dir: str) -> dict[str, torch.Tensor]:
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
