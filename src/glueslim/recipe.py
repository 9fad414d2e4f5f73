"""The training recipe: one frozen `Recipe` per run, built from the command line once.

Every flag's default is the config schema's (workflow/schemas/config.schema.yaml: the `finetune` section,
the top-level `seed`, `device` and `precision`, and `gpu.tf32`), so a command run by hand trains as the
workflow does with the shipped defaults. A stage that trains differently (pruning's recovery epochs, a
TinyBERT stage) derives its own with `dataclasses.replace(recipe, epochs=...)`.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, fields

import numpy as np
import torch

from glueslim.config import schema_default

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")  # precision.choose_precision turns them into accelerate's


@dataclass(frozen=True)
class Recipe:
    learning_rate: float
    epochs: int
    batch_size: int  # examples per micro-batch
    eval_batch_size: int
    max_seq_length: int
    warmup_ratio: float
    weight_decay: float
    grad_clip: float  # 0: no clipping
    gradient_accumulation_steps: int  # micro-batches per optimizer step
    seed: int
    threads: int | None  # torch intra-op threads of the job (None: torch's choice)
    device: str  # auto, cpu or cuda
    precision: str  # PRECISIONS
    tf32: bool
    checkpoint_dir: str

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Recipe:
        """The recipe part of a command's parsed arguments (those of add_recipe_arguments)."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})

    @property
    def accumulation(self) -> int:
        return max(1, int(self.gradient_accumulation_steps or 1))

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size * self.accumulation

    def hyperparameters(self) -> dict:
        """What glueslim.json records of the recipe (gradient_accumulation_steps only when above 1)."""
        keys = ["learning_rate", "epochs", "batch_size", "max_seq_length", "warmup_ratio", "weight_decay",
                "grad_clip", "seed"]
        out = {k: getattr(self, k) for k in keys}
        if self.accumulation > 1:
            out["gradient_accumulation_steps"] = self.accumulation
        return out


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's RNGs: done first by every training command, before the model is
    built (a new classification head's initial weights come from torch's RNG)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _finetune(key: str):
    return schema_default("finetune", key)


def add_inference_arguments(p) -> None:
    """What every command that runs a model needs: sequence length, evaluation batch, threads, device
    (`p`: a parser or an argument group). Inference commands import this module, not the training loop."""
    p.add_argument("--max-seq-length", type=int, default=_finetune("max_seq_length"))
    p.add_argument("--eval-batch-size", type=int, default=_finetune("eval_batch_size"))
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (the rule's threads)")
    p.add_argument("--device", default=schema_default("device"), choices=DEVICES)


def add_labelling_precision(p) -> None:
    """--inference-precision of the commands where the teacher labels data (teacher outputs, augmentation)."""
    p.add_argument("--inference-precision", choices=["fp32", "bf16", "fp16"],
                   default=schema_default("inference_precision"),
                   help="run the teacher under autocast in this dtype (faster on hardware with bf16/fp16 kernels; "
                        "fp32, the default, keeps exact fp32 results)")


def add_recipe_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of every Recipe field; defaults from the config schema."""
    g = p.add_argument_group("training recipe")
    g.add_argument("--learning-rate", type=float, default=_finetune("learning_rate"))
    g.add_argument("--epochs", type=int, default=_finetune("epochs"))
    g.add_argument("--batch-size", type=int, default=_finetune("batch_size"))
    g.add_argument("--warmup-ratio", type=float, default=_finetune("warmup_ratio"))
    g.add_argument("--weight-decay", type=float, default=_finetune("weight_decay"))
    g.add_argument("--grad-clip", type=float, default=_finetune("grad_clip"))
    g.add_argument("--gradient-accumulation-steps", type=int, default=_finetune("gradient_accumulation_steps"),
                   help="micro-batches of --batch-size per optimizer step (the effective batch is their product)")
    g.add_argument("--seed", type=int, default=schema_default("seed"))
    add_inference_arguments(g)
    g.add_argument("--precision", default=schema_default("precision"), choices=PRECISIONS,
                   help="mixed precision: auto = bf16 where the hardware has it natively (GPUs of compute "
                        "capability 8.0+, CPUs with AVX512-BF16 or AMX), else fp16 with loss scaling on a GPU and "
                        "fp32 on a CPU; weights stay fp32")
    g.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=schema_default("gpu", "tf32"),
                   help="TF32 tensor cores for fp32 matmuls on CUDA")
    g.add_argument("--checkpoint-dir", required=True, help="per-epoch checkpoints; a re-run resumes from here")
