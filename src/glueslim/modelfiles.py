"""A model folder checked whole, from its files alone (no torch, no transformers: the start-up check uses it).

`model_dir_problem(path, need_tokenizer=...)` says what is wrong with a local model folder, on one line that
names the folder or file and what to do, or None: `config.json` present, valid JSON, an object with a
`model_type`; every other `*.json` valid JSON (tokenizer, index and record files); weights present
(`model.safetensors`, a sharded `*.index.json`, `pytorch_model.bin`, or a deployed form's: torchao int8
`model_int8_torchao.safetensors`, ONNX `model.onnx`) and each safetensors file's header readable and covering
the whole file (safetensors' own check: a truncated or padded file fails it), an ONNX file non-empty and
starting like a serialized ModelProto; with `need_tokenizer`, a vocabulary file (`tokenizer.json`,
`vocab.txt`, `vocab.json` or a sentencepiece `*.model`). `modeling` adds what needs the libraries: the
weights' shapes against the config, a tokenizer that loads but is degenerate.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from glueslim.errors import UserError

CONFIG = "config.json"
SAFETENSORS = "model.safetensors"
PICKLE = "pytorch_model.bin"
TORCHAO_INT8 = "model_int8_torchao.safetensors"  # the int8 forms' weights (glueslim.torch_forms)
ONNX = "model.onnx"  # the onnx forms' graph (glueslim.onnx_forms)
OLD_INT8 = "model_int8.safetensors"  # the removed quantize command's format
INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
VOCAB_FILES = ("tokenizer.json", "vocab.txt", "vocab.json")  # or a sentencepiece *.model
DAMAGED = "the folder is damaged; re-run the job that wrote it or re-download the model"
INCOMPLETE = "the folder is incomplete; re-run the job that wrote it or re-download the model"


def file_problem(path: Path, folder: bool = False) -> str | None:
    """Why `path` is not a readable regular file (a folder with `folder`), None when it is: missing, a link to
    nothing, a directory (a file), unreadable. Any path, not only a model's: data files use it too."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        return f"{path} is a link to {os.readlink(path)}, which does not exist"
    if not path.exists():
        return f"{path}: no such {'folder' if folder else 'file'}"
    if folder:
        return None if path.is_dir() else f"{path} is a file, not a folder"
    if path.is_dir():
        return f"{path} is a directory, not a file"
    if not path.is_file():
        return f"{path} is not a regular file"
    if not os.access(path, os.R_OK):
        return f"{path}: not readable (permission denied); fix its permissions (chmod a+r)"
    return None


def _json_problem(path: Path) -> str | None:
    """Why a .json file of the folder cannot be read (None when it can)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        return f"{path}: not UTF-8 text (byte offset {e.start}): {DAMAGED}"
    except OSError as e:
        return f"{path}: cannot be read ({e.strerror}); check the file and its permissions"
    if not text.strip():
        return f"{path}: empty file: {DAMAGED}"
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        return f"{path}: not valid JSON (line {e.lineno}, column {e.colno}): {DAMAGED}"
    return None


def safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file cannot be read (None when it can): its header is parsed and must cover the file."""
    from safetensors import SafetensorError, safe_open

    problem = file_problem(path)
    if problem:
        return f"{problem}: {INCOMPLETE}"
    try:
        with safe_open(str(path), framework="numpy") as f:
            f.keys()
    except (SafetensorError, OSError) as e:
        size = path.stat().st_size
        return (f"{path}: not a readable safetensors file ({e}; {size} bytes): the file is truncated or damaged; "
                "re-run the job that wrote it or re-download the model")
    return None


def _pickle_problem(path: Path) -> str | None:
    """A PyTorch checkpoint: not empty, and a zip archive when it starts like one (torch.save's format)."""
    problem = file_problem(path)
    if problem:
        return f"{problem}: {INCOMPLETE}"
    with open(path, "rb") as f:
        head = f.read(4)
    if not head or (head.startswith(b"PK") and not zipfile.is_zipfile(path)):
        return f"{path}: {'empty' if not head else 'a damaged zip archive'} ({path.stat().st_size} bytes): {DAMAGED}"
    return None


def _weights_problem(root: Path) -> str | None:
    for index in INDEXES:
        if (root / index).exists():
            weight_map = json.loads((root / index).read_text(encoding="utf-8"))
            weight_map = weight_map.get("weight_map") if isinstance(weight_map, dict) else None
            shards = sorted({str(v) for v in weight_map.values()}) if isinstance(weight_map, dict) else []
            if not shards:
                return f"{root / index}: lists no weight files: {DAMAGED}"
            for shard in shards:
                check = safetensors_problem if shard.endswith(".safetensors") else _pickle_problem
                problem = check(root / shard)
                if problem:
                    return problem
            return None
    present = [root / n for n in (SAFETENSORS, TORCHAO_INT8) if (root / n).exists() or (root / n).is_symlink()]
    if present:
        return next(filter(None, map(safetensors_problem, present)), None)
    if (root / ONNX).exists() or (root / ONNX).is_symlink():
        return onnx_problem(root / ONNX)
    if (root / PICKLE).exists() or (root / PICKLE).is_symlink():
        return _pickle_problem(root / PICKLE)
    if (root / OLD_INT8).exists():
        return (f"{root}: holds only {OLD_INT8}, the int8 format of the removed quantize command: deploy the float "
                "model again (glueslim deploy --form int8-dynamic, or config deploy: forms)")
    return f"{root}: no weights file ({SAFETENSORS}, {PICKLE}, a sharded index, {TORCHAO_INT8} or {ONNX}): {INCOMPLETE}"


def onnx_problem(path: Path) -> str | None:
    """Why an ONNX model file cannot be read (None when it can): it must start like a serialized ModelProto
    (field 1, ir_version, first: the byte 0x08) and hold more than that."""
    problem = file_problem(path)
    if problem:
        return f"{problem}: {INCOMPLETE}"
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) < 16 or head[0] != 0x08:
        return (f"{path}: not a serialized ONNX model ({path.stat().st_size} bytes"
                f"{', empty' if not head else ''}): the file is truncated or damaged; re-run the deploy job")
    return None


def has_tokenizer_files(root: Path) -> bool:
    return any((root / f).is_file() for f in VOCAB_FILES) or any(root.glob("*.model"))


def model_dir_problem(path: str | os.PathLike, *, need_tokenizer: bool = False,
                      need_weights: bool = True) -> str | None:
    """What is wrong with the local model folder `path`, on one line (None when nothing is)."""
    root = Path(path)
    if not root.is_dir():
        return f"{root}: not a folder holding a model"
    cfg = root / CONFIG
    if not cfg.exists() and not cfg.is_symlink():
        return f"{root}: holds no {CONFIG} (not a saved model, or {INCOMPLETE})"
    problem = file_problem(cfg)
    if problem:
        return f"{problem}: {INCOMPLETE}"
    for f in sorted(root.glob("*.json")):  # config.json, tokenizer files, indexes, glueslim.json
        problem = file_problem(f) or _json_problem(f)
        if problem:
            return problem
    config = json.loads(cfg.read_text(encoding="utf-8"))
    if not isinstance(config, dict) or not config.get("model_type"):
        return (f"{cfg}: {'has no model_type' if isinstance(config, dict) else 'is not a JSON object'} "
                f"(it holds {json.dumps(config)[:60]}), so it describes no model: {DAMAGED}")
    if need_weights:
        problem = _weights_problem(root)
        if problem:
            return problem
    if need_tokenizer and not has_tokenizer_files(root):
        return (f"{root}: no tokenizer files ({', '.join(VOCAB_FILES)} or a sentencepiece *.model), so every word "
                "would be [UNK]: save the tokenizer beside the model (tokenizer.save_pretrained) or copy its files "
                "from the model it was trained from")
    return None


def check_model_dir(path: str | os.PathLike, *, need_tokenizer: bool = False, need_weights: bool = True) -> None:
    """Raise UserError with `model_dir_problem`'s line when the folder is not a whole, readable model."""
    problem = model_dir_problem(path, need_tokenizer=need_tokenizer, need_weights=need_weights)
    if problem:
        raise UserError(problem)
