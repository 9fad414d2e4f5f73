"""`python -m glueslim <command>`: one command per workflow stage; each module owns its arguments.

COMMANDS names, for every command, the module and the two functions that define it: `add_arguments_*`
(its argparse flags) and `run_*` (the command). Only the chosen command's module is imported.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from glueslim.errors import UserError

COMMANDS = {  # command: (module, add-arguments function, run function, help)
    "prepare-data": ("glueslim.data", "add_arguments", "run",
                     "normalise one GLUE task (hub or local copy) into results/data/<task>/"),
    "finetune": ("glueslim.finetune", "add_arguments", "run", "fine-tune a model on one task (the teacher)"),
    "teacher-outputs": ("glueslim.teacher_outputs", "add_arguments", "run",
                        "cache a fine-tuned teacher's logits on a task's training set"),
    "general-distill": ("glueslim.distill", "add_arguments_general", "run_general",
                        "general distillation of a student from the pre-trained teacher (intermediate layers)"),
    "augment": ("glueslim.augment", "add_arguments", "run",
                "TinyBERT data augmentation of a task's training set, teacher-labelled"),
    "distill": ("glueslim.distill", "add_arguments_distill", "run_distill",
                "task distillation of a student: any builder, any loss set, one or two stages"),
    "ablation": ("glueslim.ablation", "add_arguments", "run",
                 "write a distillation ablation table (results/ablations/<name>.json)"),
    "prune": ("glueslim.prune", "add_arguments", "run",
              "remove the least important attention heads of a fine-tuned model"),
    "quantize": ("glueslim.quantize", "add_arguments", "run",
                 "int8 dynamic quantization of a fine-tuned model's Linear layers"),
    "predict": ("glueslim.evaluate", "add_arguments_predict", "run_predict",
                "write dev predictions of one model on one task"),
    "score": ("glueslim.evaluate", "add_arguments_score", "run_score",
              "compute GLUE metrics of one model from its prediction files"),
    "profile": ("glueslim.profile", "add_arguments", "run",
                "parameters, MACs, size on disk, latency and memory of one model"),
    "leaderboard": ("glueslim.report.command", "add_arguments", "run",
                    "render reports/leaderboard.json and .html"),
}



def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="glueslim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    argv = sys.argv[1:] if argv is None else argv
    # import only the module the command needs (torch is slow to import)
    wanted = argv[0] if argv and argv[0] in COMMANDS else None
    for name, (module, add_arguments, run, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == wanted:
            mod = importlib.import_module(module)
            getattr(mod, add_arguments)(p)
            p.set_defaults(func=getattr(mod, run))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except UserError as e:
        print(f"glueslim {args.command}: error: {e}", file=sys.stderr)
        sys.exit(2)
