"""`glueslim quantize`: int8 dynamic quantization of every Linear layer of a saved float model.

The format (torch's eager-mode dynamic int8, saved without pickle in `model_int8.safetensors`) is
`glueslim.int8`'s; the new folder also holds the config, tokenizer, the float model's training log and a
`glueslim.json` that names the scheme.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from glueslim.int8 import SCHEME, quantize, save_int8
from glueslim.io import atomic_dir
from glueslim.modeling import load_for_inference, load_tokenizer
from glueslim.record import read_record, write_record


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-dir", required=True, help="the float model to quantize")
    p.add_argument("--name", required=True)
    p.add_argument("--out", required=True)


def run(args: argparse.Namespace) -> None:
    model = load_for_inference(args.model_dir)
    tokenizer = load_tokenizer(args.model_dir)
    _, tensors = quantize(model)
    source = read_record(args.model_dir)
    with atomic_dir(args.out) as tmp:
        save_int8(tmp, tensors)
        model.config.to_json_file(tmp / "config.json")
        tokenizer.save_pretrained(tmp)
        log = Path(args.model_dir) / "train_log.jsonl"
        if log.exists():  # the curves are the float model's
            shutil.copy(log, tmp / "train_log.jsonl")
        write_record(tmp, {
            **source, "model": args.name, "method": f"{source['method']} + int8",
            "quantized": SCHEME, "quantized_from": args.model_dir,
            "quantization": {"scheme": SCHEME, "layers": "every nn.Linear", "weights": "int8 per-tensor",
                             "activations": "int8, dynamic", "engine": torch.backends.quantized.engine},
        })
    print(json.dumps({"model": args.name, "int8_linears": sum(k.endswith(".int8") for k in tensors)}))
