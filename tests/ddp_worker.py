"""One process of a multi-process training run, for tests/test_scaleout.py (started by glueslim.gpus
--distributed, i.e. torch.distributed.run; on CPU accelerate runs it over gloo).

    DIE_AT=CALLS python -m ddp_worker MODEL_DIR OUT --checkpoint-dir DIR [training flags]

DIE_AT: rank 0 exits in that call of the loss (a kill in mid-epoch).
"""

import argparse
import logging
import os
import sys

import torch

from glueslim.batching import encode
from glueslim.checkpoint import save_model
from glueslim.modeling import load_classifier, load_tokenizer
from glueslim.recipe import Recipe, add_recipe_arguments
from glueslim.tasks import get_task
from glueslim.train import train


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("out")
    add_recipe_arguments(p)
    args = p.parse_args()
    recipe = Recipe.from_args(args)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    task = get_task("sst2")
    tok = load_tokenizer(args.model)
    words = ["good", "bad", "fine", "awful", "great", "poor"]
    rows = [{"idx": i, "text_a": f"{words[i % 6]} film number {i}", "text_b": None, "label": int(i % 2 == 0)}
            for i in range(48)]
    feats = encode(tok, rows, 32)
    torch.manual_seed(0)
    model = load_classifier(args.model, task)
    calls, die_at = {"n": 0}, int(os.environ.get("DIE_AT", 0))

    def loss_fn(logits, batch):
        calls["n"] += 1
        if calls["n"] == die_at and int(os.environ.get("RANK", 0)) == 0:
            sys.exit(3)  # killed mid-epoch
        return torch.nn.functional.cross_entropy(logits, batch["labels"])

    history = train(model, tok, task, feats, feats[:20], recipe, loss_fn=loss_fn)
    save_model(model, tok, args.out, {"model": "ddp-test"}, history, recipe.checkpoint_dir)


if __name__ == "__main__":
    main()
