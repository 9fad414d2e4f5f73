# Shared settings and helpers; everything here derives from the validated config.
import json
import os
import shlex
import shutil
import sys

SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)  # the rules' commands import the package from here too (PYTHONPATH below)
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p))

from glueslim.data import check_local_copy, resolve_glue_dir  # noqa: E402
from glueslim.tasks import get_task  # noqa: E402

if config["hf"]["cache"]:
    os.environ.update(HF_HUB_CACHE=os.path.abspath(config["hf"]["cache"]))
if config["hf"]["offline"]:
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")

TASKS = list(config["tasks"])
STUDENTS = list(config["students"])
TEACHER = "teacher"
MODELS = [TEACHER] + STUDENTS
# prediction files: one per evaluated dev split (MNLI: matched and mismatched)
STEM_TASK = {stem: t for t in TASKS for _, stem in get_task(t).eval_splits}
PROFILE_TASK = config["profile"]["task"] or TASKS[0]
if PROFILE_TASK not in TASKS:
    raise ValueError(f"config profile.task: {PROFILE_TASK!r} is not one of the configured tasks {TASKS}")
DATA_TASKS = TASKS + (["ax"] if config["include_diagnostic"] else [])

GLUE_DIR = resolve_glue_dir(config["data"]["glue_dir"])
if GLUE_DIR:  # fail before any job runs if a configured task's file is missing
    check_local_copy(GLUE_DIR, TASKS)

if config["device"] == "cpu":
    GPU = 0
elif config["device"] == "cuda":
    GPU = 1
else:
    GPU = 1 if shutil.which("nvidia-smi") else 0
THREADS = config["threads"]
RES = config["resources"]


wildcard_constraints:
    task="|".join(DATA_TASKS),
    student="|".join(STUDENTS) or "(?!)",
    model="|".join(MODELS),
    stem="|".join(STEM_TASK),


def flags(**kwargs):
    """Command-line flags from keyword arguments: None is left out, True is a bare flag, lists repeat."""
    out = []
    for key, value in kwargs.items():
        opt = f"--{key.replace('_', '-')}"
        if value is None or value is False:
            continue
        if value is True:
            out.append(opt)
        elif isinstance(value, (list, tuple)):
            out.append(" ".join([opt, *(shlex.quote(str(v)) for v in value)]))
        else:
            out.append(f"{opt} {shlex.quote(str(value))}")
    return " ".join(out)


RECIPE_KEYS = ("learning_rate", "epochs", "batch_size", "eval_batch_size", "max_seq_length",
               "warmup_ratio", "weight_decay", "grad_clip")


def recipe(task, override=None):
    """The training recipe for a task: finetune defaults < finetune.per_task < student overrides."""
    ft = config["finetune"]
    r = {k: ft[k] for k in RECIPE_KEYS}
    r.update(ft["per_task"].get(task, {}))
    if override:
        r.update({k: v for k, v in override.items() if k in RECIPE_KEYS})
        r.update(override.get("per_task", {}).get(task, {}))
    return r


def train_cap(task):
    cap = config["data"]["max_train_examples"]
    return cap.get(task) if isinstance(cap, dict) else cap


CONDA_ENV = "../../envs/glueslim.yaml"  # used with --sdm conda


def model_dir(model, task):
    return f"results/models/{model}/{task}"
