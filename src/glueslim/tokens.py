"""The token cache: tokenization once per tokenizer and text, shared by every job.

`tokenize` returns what `tokenizer(a, b, truncation=True, max_length=max_len)` returns, unpadded. With a
cache folder ($GLUESLIM_TOKEN_CACHE; the workflow sets it to results/tokens) the result is stored under a
key of the tokenizer's fingerprint, max_len and the texts, and every later call with the same ones reads it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from glueslim.io import atomic_file

log = logging.getLogger(__name__)

TOKEN_CACHE_ENV = "GLUESLIM_TOKEN_CACHE"  # the workflow sets it to results/tokens; unset: no cache


def tokenizer_fingerprint(tokenizer) -> str:
    """What decides a tokenizer's output: its class, input names and, for a fast tokenizer, its pipeline as
    JSON (normaliser, pre-tokeniser, vocabulary, post-processor) without the truncation and padding state
    that a call leaves behind; a slow tokenizer's vocabulary and init arguments. A student's copy of the
    teacher's tokenizer has the teacher's fingerprint, so they share cached tokens."""
    cached = getattr(tokenizer, "_glueslim_fingerprint", None)  # serialising the vocabulary takes a while
    if cached is not None:
        return cached
    parts = {"class": type(tokenizer).__name__, "inputs": list(tokenizer.model_input_names)}
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        spec.pop("truncation", None)
        spec.pop("padding", None)
        parts["backend"] = spec
    else:
        parts["vocab"] = sorted(tokenizer.get_vocab().items())
        parts["init"] = {k: v for k, v in sorted(tokenizer.init_kwargs.items()) if isinstance(v, (str, int, bool))}
    fingerprint = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    try:
        tokenizer._glueslim_fingerprint = fingerprint
    except AttributeError:  # pragma: no cover - a tokenizer that refuses new attributes
        pass
    return fingerprint


def tokenize(tokenizer, a: list[str], b: list[str] | None, max_len: int,
             cache_dir: str | os.PathLike | None = None) -> dict[str, list[list[int]]]:
    """tokenizer(a, b, truncation=True, max_length=max_len), unpadded, as {input name: one id list per text}.

    With a cache folder (default: $GLUESLIM_TOKEN_CACHE), the result is stored there under a key of the
    tokenizer's fingerprint, max_len and the texts, and every later call with the same ones, from any job,
    reads it instead (one safetensors file: flat int32 ids and offsets; written atomically, so concurrent
    jobs never see half a file; an unreadable one is tokenized again and replaced)."""
    cache_dir = cache_dir if cache_dir is not None else os.environ.get(TOKEN_CACHE_ENV) or None
    path = None
    if cache_dir:
        h = hashlib.sha256(f"{tokenizer_fingerprint(tokenizer)}\0{max_len}\0{b is not None}\0".encode())
        for i, text in enumerate(a):
            h.update(text.encode() + b"\1" + (b[i].encode() if b is not None else b"") + b"\2")
        path = Path(cache_dir) / f"{h.hexdigest()}.safetensors"
        if path.is_file():
            try:
                out = read_tokens(path, len(a))
                log.info("token cache: read %d tokenized texts from %s", len(a), path)
                return out
            except Exception as e:  # noqa: BLE001 - a damaged cache entry is rebuilt, never trusted
                log.warning("%s: unreadable token cache entry (%s); tokenizing again", path, e)
    out = dict(tokenizer(a, b, truncation=True, max_length=max_len))
    if path is not None:
        write_tokens(path, out)
        log.info("token cache: tokenized %d texts into %s", len(a), path)
    return out


def write_tokens(path: Path, enc: dict[str, list[list[int]]]) -> None:
    """One cache entry: per input name, the flat int32 ids and the int64 offsets of each sequence."""
    tensors = {}
    for name, seqs in enc.items():
        tensors[f"{name}.ids"] = torch.tensor([t for s in seqs for t in s], dtype=torch.int32)
        tensors[f"{name}.offsets"] = torch.tensor([0] + [len(s) for s in seqs], dtype=torch.int64).cumsum(0)
    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp))


def read_tokens(path: Path, n: int) -> dict[str, list[list[int]]]:
    """A cache entry of `n` texts back as id lists; ValueError when it does not hold exactly n sequences."""
    tensors = load_file(str(path))
    out = {}
    for key in tensors:
        if key.endswith(".offsets"):
            name = key[: -len(".offsets")]
            offsets, ids = tensors[key].tolist(), tensors[f"{name}.ids"].tolist()
            if len(offsets) != n + 1 or offsets[-1] != len(ids):
                raise ValueError(f"{name}: {len(offsets) - 1} sequences, expected {n}")
            out[name] = [ids[offsets[i] : offsets[i + 1]] for i in range(n)]
    if not out:
        raise ValueError("no sequences")
    return out
