"""`glueslim.json`: the record of how a model folder was made, written by `write_record` alone.

Every command that saves a model (checkpoint.save_model for fine-tuning, distillation and pruning; the
deploy command) writes one; report.py reads `method`, `base_model`, `teacher`, `num_layers`, `form` and
`hyperparameters` into the leaderboard, prune and deploy copy their source's. A field is in FIELDS before
anyone writes it; a writer leaves out the fields that do not apply (there are no nulls by default).
Key order is the writer's: the file reads as the command built it.
"""

from __future__ import annotations

import os
from pathlib import Path

from glueslim.io import atomic_write_json, read_json

RECORD_FILE = "glueslim.json"

FIELDS = {
    # who made it (every writer)
    "model": "the model's name in the leaderboard (a general-distillation output: its folder name)",
    "task": "the GLUE task it was trained on (absent for general distillation)",
    "method": "how it was made, e.g. 'fine-tuned teacher', 'DistilBERT-style KD', '... + head pruning 30%', "
              "'... + int8-static'",
    "base_model": "the pretrained encoder it descends from (hub id or folder)",
    "revision": "finetune: the hub revision of base_model",
    "teacher": "the model it was distilled from (null for fine-tuned models)",
    "teacher_dir": "distillation: the fine-tuned teacher's folder",
    # shape (every trained model)
    "num_layers": "encoder layers",
    "layer_map": "teacher layer (checkpoint students: checkpoint layer) that initialised each student layer "
                 "(null: none)",
    "arch": "distillation: the student family ('distilbert', 'albert', 'tinybert')",
    "embedding_size": "ALBERT-style student: factorised embedding size (null for others)",
    "hidden_size": "TinyBERT-style student: hidden size",
    "num_heads": "TinyBERT-style student: attention heads",
    "intermediate_size": "TinyBERT-style student: feed-forward size",
    # TinyBERT-style distillation
    "init": "how the student was initialised: 'random' or a general-distillation folder / hub id",
    "head": "distillation: the student's pooler and classifier at the start: 'teacher' (the fine-tuned "
            "teacher's, copied) or 'new' (the builder's own: fresh for checkpoint and random students)",
    "kd": "distillation: whether the teacher's knowledge was used (false: a no-KD twin, gold labels only)",
    "matches": "the intermediate-layer matches (student layer, teacher layer, feature, loss)",
    "intermediate": "the intermediate features distilled in stage 1 (empty: prediction layer only)",
    "general_distillation": "whether the student started from general distillation",
    "augmented": "whether augmented examples joined the training set",
    "augmented_rows": "how many augmented examples joined it",
    "transfer_rows": "how many transfer-set texts (training texts beyond the cap, labelled by the teacher) joined it",
    "stage1_history": "the per-epoch log of stage 1 (train_log.jsonl holds stage 2's)",
    "sentences": "general distillation: sentences in the corpus",
    "corpus": "general distillation: the corpus file or the prepared task folders",
    # compression of a trained model
    "pruned_from": "prune: the folder of the model that was pruned",
    "heads": "prune: heads before/after, those removed per layer, their importance and how it was measured",
    # deployed forms (glueslim.deploy; a folder without `form` is the fp32 model itself)
    "form": "deploy: the deployed form, a name of glueslim.forms.FORMS ('bf16', 'int8-static', 'onnx', ...)",
    "backend": "deploy: the runtime of the form ('pytorch' or 'onnxruntime')",
    "deployed_from": "deploy: the folder of the float32 model the form was made from",
    "calibration": "deploy, calibrated forms: the activation-scale sample: split ('train'), examples, seed, "
                   "source (the training file), max_seq_length",
    "kernels": "deploy: the dtype of the form's kernels: linear (matrix products of the Linear layers) and "
               "attention (QK^T and PV products)",
    "native": "deploy: whether the device it was deployed for runs the form natively (glueslim.forms.not_native)",
    "quantization": "deploy, torch int8 forms: library, torchao config, layers, weight and activation types",
    "export": "deploy, ONNX forms: what onnx_forms.export_onnx reported (opset, exporter, fusions applied, "
              "quantization, bytes, the graph's largest logit difference from the torch model)",
    # the recipe
    "hyperparameters": "Recipe.hyperparameters() and the command's own settings (alpha, temperature, stages, "
                       "fraction, ...)",
}


def write_record(folder: str | os.PathLike, record: dict) -> None:
    """Write `record` as folder/glueslim.json (atomically; strict JSON). Every field must be in FIELDS."""
    unknown = [k for k in record if k not in FIELDS]
    if unknown:
        raise ValueError(f"{RECORD_FILE}: field(s) {', '.join(unknown)} not documented in glueslim.record.FIELDS")
    atomic_write_json(Path(folder) / RECORD_FILE, record)


def read_record(folder: str | os.PathLike) -> dict:
    """The record of a model folder."""
    return read_json(Path(folder) / RECORD_FILE)
