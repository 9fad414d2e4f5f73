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
    "transfer-set": ("glueslim.teacher_outputs", "add_arguments_transfer", "run_transfer",
                     "label a capped task's other training texts with the teacher (a transfer set for KD)"),
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
    "deploy": ("glueslim.deploy", "add_arguments", "run",
               "write a trained model in a deployed form (bf16, fp16, int8-dynamic, int8-static, onnx, onnx-int8)"),
    "predict": ("glueslim.evaluate", "add_arguments_predict", "run_predict",
                "write dev predictions of one model on one task"),
    "score": ("glueslim.evaluate", "add_arguments_score", "run_score",
              "compute GLUE metrics of one model from its prediction files"),
    "predict-test": ("glueslim.submission", "add_arguments_predict_test", "run_predict_test",
                     "write test-set predictions of one model for one GLUE server file (never scored)"),
    "glue-submission": ("glueslim.submission", "add_arguments", "run",
                        "zip one model's test predictions in the GLUE server's format"),
    "profile": ("glueslim.profile", "add_arguments", "run",
                "parameters, MACs, size on disk, latency and memory of one model"),
    "leaderboard": ("glueslim.report.command", "add_arguments", "run",
                    "render reports/leaderboard.json and .html"),
}



def os_error_line(e: OSError) -> str:
    """An OSError (a file that cannot be opened, read or written) as one line naming the file and the reason."""
    where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
    reason = e.strerror or str(e) or type(e).__name__
    advice = {PermissionError: "check its permissions (and those of its folder)",
              FileNotFoundError: "check the path; run the job that writes it first",
              IsADirectoryError: "a folder is in the way: remove it or choose another path",
              NotADirectoryError: "a file is in the way of a folder: remove it or choose another path"}
    fix = next((v for k, v in advice.items() if isinstance(e, k)), "check the file and the disk")
    return f"{where}: {reason}; {fix}" if where else f"{reason} ({type(e).__name__}); {fix}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="glueslim", description=__doc__)
    parser.add_argument("--verbose", action="store_true",
                        help="show the traceback of an error (bad input is otherwise reported on one line)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    argv = sys.argv[1:] if argv is None else argv
    # transformers imports torchao when it is installed; its CUDA-only extensions fail to load on a CPU build
    # (a warning per job), and torch warns about torchao's enums: neither concerns the jobs
    for noisy in ("torchao", "torch.utils._pytree"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # import only the module the command needs (torch is slow to import)
    wanted = next((a for a in argv if not a.startswith("-")), None)
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
    except (UserError, OSError) as e:
        if args.verbose:
            raise
        line = str(e) if isinstance(e, UserError) else os_error_line(e)
        print(f"glueslim {args.command}: error: {line}", file=sys.stderr)
        sys.exit(2)
