"""Shared fixtures: a tiny random BERT (no download) and paths to ../shared."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GLUESLIM_SHARED", ROOT.parent / "shared"))
SHARED_GLUE = SHARED / "data" / "glue"
SHARED_HF = SHARED / "hf-cache" / "hub"
SHARED_VOCAB = SHARED / "models" / "paraphrase-MiniLM-L3-v2" / "vocab.txt"

needs_shared = pytest.mark.skipif(not SHARED_GLUE.is_dir(), reason="../shared (offline GLUE copy) not found")


def make_tiny_bert(path: Path, layers: int = 4, hidden: int = 32, vocab: Path | None = None) -> Path:
    """Save a randomly initialised tiny BERT with a real WordPiece tokenizer to `path`."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    if vocab is None or not Path(vocab).exists():
        words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [chr(c) for c in range(97, 123)]
        vocab = path / "vocab.txt"
        vocab.write_text("\n".join(words) + "\n")
    tok = BertTokenizer(str(vocab), do_lower_case=True)  # first argument: the vocab file (v4 and v5)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=4, intermediate_size=2 * hidden, max_position_embeddings=512)
    BertForSequenceClassification(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def tiny_classifier(layers: int = 2, heads: int = 4, hidden: int = 32, seed: int = 0, init: float = 0.02,
                    vocab: int = 50):
    """A tiny random BertForSequenceClassification (64 positions, 2 labels) in eval mode, in memory."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=64, max_position_embeddings=64, num_labels=2, initializer_range=init)
    return BertForSequenceClassification(cfg).eval()


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), vocab=SHARED_VOCAB)


def make_recipe(checkpoint_dir: Path, **overrides):
    """The recipe a training command parses from `--checkpoint-dir DIR --device cpu --threads 1` (the schema's
    defaults otherwise), with the small test run's settings and `overrides` on top."""
    import argparse
    from dataclasses import replace

    from glueslim.recipe import Recipe, add_recipe_arguments

    p = argparse.ArgumentParser()
    add_recipe_arguments(p)
    args = p.parse_args(["--checkpoint-dir", str(checkpoint_dir), "--device", "cpu", "--threads", "1"])
    small = dict(epochs=2, batch_size=8, learning_rate=1e-3, max_seq_length=32, eval_batch_size=16)
    return replace(Recipe.from_args(args), **{**small, **overrides})


def run_snakemake(workdir: Path, config: dict, *extra: str, cores: int = 2,
                  timeout: int = 1500) -> subprocess.CompletedProcess:
    """Run the workflow on `config` in `workdir` (this venv's snakemake; $GLUE_DIR unset)."""
    cfg = workdir / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    env.pop("GLUE_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(cfg), "--cores", str(cores), *extra],
        capture_output=True, text=True, env=env, timeout=timeout,
    )


def stub_config(tmp_path: Path, teacher: Path, glue_tasks: tuple[str, ...] = ("SST-2", "STS-B")) -> dict:
    """The tiny test config (.test/config.yaml) on a stub GLUE copy (train and dev files holding "x": enough
    for start-up checks and dry runs) with `teacher` as teacher and baselines."""
    glue = tmp_path / "glue"
    for d in glue_tasks:
        (glue / d).mkdir(parents=True)
        for f in ("train.tsv", "dev.tsv"):
            (glue / d / f).write_text("x\n")
    cfg = yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())
    cfg["data"]["glue_dir"] = str(glue)
    cfg["teacher"]["model"] = str(teacher)
    for b in cfg["baselines"]:
        b["model"] = str(teacher)
    for s in cfg["students"]:  # a student that starts from a checkpoint starts from the teacher's
        if s.get("init") == "FILLED_IN_BY_THE_TEST":
            s["init"] = str(teacher)
    return cfg
