"""The Recipe: flags whose defaults are the config schema's, declared once, and what glueslim.json records."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest

from conftest import ROOT
from glueslim.config import schema_default
from glueslim.evaluate import add_arguments_predict
from glueslim.recipe import Recipe, add_inference_arguments, add_recipe_arguments

FINETUNE_KEYS = ["learning_rate", "epochs", "batch_size", "eval_batch_size", "max_seq_length", "warmup_ratio",
                 "weight_decay", "grad_clip", "gradient_accumulation_steps"]


def _parse(add, *argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add(p)
    return p.parse_args(list(argv))


def test_recipe_flags_default_to_the_schema():
    recipe = Recipe.from_args(_parse(add_recipe_arguments, "--checkpoint-dir", "c"))
    for key in FINETUNE_KEYS:
        assert getattr(recipe, key) == schema_default("finetune", key), key
    assert recipe.seed == schema_default("seed") and recipe.device == schema_default("device")
    assert recipe.precision == schema_default("precision") and recipe.tf32 is schema_default("gpu", "tf32")
    assert recipe.threads is None and recipe.checkpoint_dir == "c"
    assert _parse(add_recipe_arguments, "--checkpoint-dir", "c", "--no-tf32").tf32 is False


def test_inference_commands_share_the_recipe_defaults():
    args = _parse(add_arguments_predict, "--task", "sst2", "--stem", "sst2", "--data", "d", "--model-dir", "m",
                  "--out", "o")
    assert args.max_seq_length == schema_default("finetune", "max_seq_length")
    assert args.eval_batch_size == schema_default("finetune", "eval_batch_size")
    assert args.device == schema_default("device") and args.threads is None


def test_schema_default_reads_the_schema_and_knows_what_has_none():
    assert schema_default("finetune", "max_seq_length") == 128
    with pytest.raises(KeyError, match="finetune.per_task.nope"):
        schema_default("finetune", "per_task", "nope")


def test_each_shared_flag_is_declared_once():
    """--max-seq-length & co. live in add_inference_arguments / add_recipe_arguments only."""
    src = "\n".join(p.read_text() for p in (ROOT / "src" / "glueslim").rglob("*.py"))
    for flag in ("--max-seq-length", "--eval-batch-size", "--learning-rate", "--epochs", "--batch-size",
                 "--precision", "--tf32", "--checkpoint-dir"):
        assert len(re.findall(rf"""["']{flag}["']""", src)) == 1, flag
    assert add_inference_arguments.__module__ == "glueslim.recipe"


def test_recipe_is_frozen_and_stages_derive_their_own():
    recipe = Recipe.from_args(_parse(add_recipe_arguments, "--checkpoint-dir", "c", "--epochs", "3"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.epochs = 1
    stage = dataclasses.replace(recipe, epochs=1, checkpoint_dir="c/stage1")
    assert (stage.epochs, recipe.epochs, stage.learning_rate) == (1, 3, recipe.learning_rate)


def test_hyperparameters_are_what_glueslim_json_records():
    args = ["--checkpoint-dir", "c", "--learning-rate", "1e-4", "--epochs", "2", "--batch-size", "16",
            "--max-seq-length", "64", "--seed", "7"]
    recipe = Recipe.from_args(_parse(add_recipe_arguments, *args))
    assert recipe.hyperparameters() == {
        "learning_rate": 1e-4, "epochs": 2, "batch_size": 16, "max_seq_length": 64, "warmup_ratio": 0.1,
        "weight_decay": 0.01, "grad_clip": 1.0, "seed": 7}
    accumulated = dataclasses.replace(recipe, batch_size=8, gradient_accumulation_steps=2)
    assert accumulated.hyperparameters()["gradient_accumulation_steps"] == 2
    assert accumulated.effective_batch_size == recipe.effective_batch_size == 16
