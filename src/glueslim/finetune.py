"""Stage 2: fine-tune a pretrained encoder (the teacher) on one GLUE task."""

from __future__ import annotations

import argparse

from glueslim.batching import encode
from glueslim.checkpoint import save_model
from glueslim.data import load_split
from glueslim.modeling import load_classifier, load_tokenizer
from glueslim.recipe import Recipe, add_recipe_arguments, seed_everything
from glueslim.tasks import get_task
from glueslim.train import train


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True)
    p.add_argument("--data", required=True, help="results/data/<task> written by prepare-data")
    p.add_argument("--model", required=True, help="hub id or local folder of the pretrained encoder")
    p.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    p.add_argument("--trust-remote-code", action="store_true", help="run the model repo's own code (off by default)")
    p.add_argument("--name", default="teacher", help="the model's name in the leaderboard")
    p.add_argument("--role", choices=["teacher", "baseline"], default="teacher",
                   help="baseline: a published compact model, fine-tuned with the teacher's recipe")
    p.add_argument("--out", required=True)
    add_recipe_arguments(p)


def run(args: argparse.Namespace) -> None:
    recipe = Recipe.from_args(args)
    task = get_task(args.task)
    seed_everything(recipe.seed)
    tokenizer = load_tokenizer(args.model, args.revision, args.trust_remote_code)
    model = load_classifier(args.model, task, args.revision, args.trust_remote_code)
    train_feats = encode(tokenizer, load_split(args.data, "train"), recipe.max_seq_length)
    dev_feats = encode(tokenizer, load_split(args.data, task.eval_splits[0][0]), recipe.max_seq_length)
    command = {"task": args.task, "data": args.data, "model": args.model, "revision": args.revision,
               "trust_remote_code": args.trust_remote_code, "name": args.name, "role": args.role}
    history = train(model, tokenizer, task, train_feats, dev_feats, recipe, run_extra=command)
    record = {
        "model": args.name, "task": task.name, "method": f"fine-tuned {args.role}", "base_model": args.model,
        "revision": args.revision, "teacher": None, "num_layers": model.config.num_hidden_layers,
        "layer_map": None, "hyperparameters": recipe.hyperparameters(),
    }
    save_model(model, tokenizer, args.out, record, history, recipe.checkpoint_dir)
