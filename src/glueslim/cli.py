"""`python -m glueslim <command>`: one command per workflow stage; each module owns its arguments.

Every stage module defines `add_arguments(parser)` and `run(args)`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS = {
    "prepare-data": ("glueslim.data", "normalise one GLUE task (hub or local copy) into results/data/<task>/"),
    "finetune": ("glueslim.finetune", "fine-tune a model on one task (the teacher)"),
    "teacher-outputs": ("glueslim.distill", "cache a fine-tuned teacher's logits on a task's training set"),
    "distill": ("glueslim.distill", "DistilBERT-style task distillation of a student"),
    "tinybert-general": ("glueslim.tinybert", "TinyBERT general distillation of a student from the pre-trained teacher"),
    "tinybert-augment": ("glueslim.tinybert", "TinyBERT data augmentation of a task's training set, teacher-labelled"),
    "tinybert-distill": ("glueslim.tinybert", "TinyBERT-style two-stage task distillation (intermediate, prediction)"),
    "tinybert-ablation": ("glueslim.tinybert", "write the TinyBERT ablation table (results/ablations/<name>.json)"),
    "prune": ("glueslim.prune", "remove the least important attention heads of a fine-tuned model"),
    "quantize": ("glueslim.quantize", "int8 dynamic quantization of a fine-tuned model's Linear layers"),
    "predict": ("glueslim.evaluate", "write dev predictions of one model on one task"),
    "score": ("glueslim.evaluate", "compute GLUE metrics of one model from its prediction files"),
    "profile": ("glueslim.profile", "parameters, MACs, size on disk, latency and memory of one model"),
    "leaderboard": ("glueslim.report", "render reports/leaderboard.json and .html"),
}


class UserError(Exception):
    """Bad input: printed as one clear line, without a traceback."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="glueslim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    argv = sys.argv[1:] if argv is None else argv
    # import only the module the command needs (torch is slow to import)
    wanted = argv[0] if argv and argv[0] in COMMANDS else None
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == wanted:
            mod = importlib.import_module(module)
            getattr(mod, "add_arguments_" + name.replace("-", "_"), getattr(mod, "add_arguments", None))(p)
            p.set_defaults(func=getattr(mod, "run_" + name.replace("-", "_"), getattr(mod, "run", None)))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except UserError as e:
        print(f"glueslim {args.command}: error: {e}", file=sys.stderr)
        sys.exit(2)
