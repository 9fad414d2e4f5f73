# Shared settings and helpers; everything here derives from the validated config.
import json
import os
import posixpath
import re
import shlex
import shutil
import sys

SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)  # the rules' commands import the package from here too (PYTHONPATH below)
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p))

from glueslim.config import deployed_models, pruned_models, trusts_remote_code  # noqa: E402
from glueslim.runs import published_map, runs_by_row, seed_list, seed_runs, twins  # noqa: E402
from glueslim.forms import FORMS, cpu_flags, not_native  # noqa: E402
from glueslim.data import resolve_glue_dir  # noqa: E402
from glueslim.tasks import get_task  # noqa: E402

if config["hf"]["cache"]:
    os.environ.update(HF_HUB_CACHE=os.path.abspath(config["hf"]["cache"]))
if config["hf"]["offline"]:
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")

TASKS = list(config["tasks"])
STUDENTS = list(config["students"])
TEACHER = "teacher"
BASELINES = list(config["baselines"])
PRUNED = pruned_models(config)  # <source>-pruned<percent>
TINYBERT = list(config["tinybert"]["students"])  # rules: tinybert.smk
# ablation tables (results/ablations/<name>.json, format in the README): a rule file that writes one
# appends its path here, so the leaderboard waits for it and shows it
ABLATIONS = []

# prediction files: one per evaluated dev split (MNLI: matched and mismatched)
STEM_TASK = {stem: t for t in TASKS for _, stem in get_task(t).eval_splits}
PROFILE_TASK = config["profile"]["task"] or TASKS[0]  # config.check_config: one of the tasks
DATA_TASKS = TASKS + (["ax"] if config["include_diagnostic"] else [])

GLUE_DIR = resolve_glue_dir(config["data"]["glue_dir"])  # its files: checked at start-up (Snakefile)

if config["device"] == "cpu":
    GPU = 0
elif config["device"] == "cuda":
    GPU = 1
else:
    GPU = 1 if shutil.which("nvidia-smi") else 0


def _deployed_rows():
    """The deployed forms this device runs natively (all of them with deploy.emulated), by row name, and
    the others with the reason, for the leaderboard's notes. Decided here, before any job, from this
    host's CPU flags or its GPU; the profile job checks its own device again and records what it finds."""
    kept, skipped, device = {}, [], "cuda" if GPU else "cpu"
    for row, d in deployed_models(config).items():
        reason = not_native(d["form"], device, cpu_flags())
        if reason and not config["deploy"]["emulated"]:
            skipped.append({"model": d["source"], "form": d["form"], "row": row, "reason": reason})
        else:
            kept[row] = d
    return kept, skipped


DEPLOYED, SKIPPED_FORMS = _deployed_rows()  # <source>-<form>: rule deploy (compress.smk)
TRAINED = [TEACHER] + STUDENTS + TINYBERT + BASELINES + list(PRUNED)  # float models, each with its own fp32 row
MODELS = TRAINED + list(DEPLOYED)  # the leaderboard's rows
# seeds: every student, TinyBERT student and baseline once more per seed after the first, as runs
# <model>-seed<S> (glueslim.runs): trained, predicted and scored, not profiled, deployed or submitted
SEED_RUNS = seed_runs(config)  # {run: (model, seed)}
RUNS = MODELS + list(SEED_RUNS)  # everything scored
TWINS = twins(config)  # {<student>-nokd: <student>}


FIRST_SEED = seed_list(config)[0]


def seed_of(name):
    """The seed of a run (a row's own name: the first seed)."""
    return SEED_RUNS.get(name, (name, FIRST_SEED))[1]


def base_of(name):
    """The configured model behind a run: distil-seed43 -> distil."""
    return SEED_RUNS.get(name, (name, FIRST_SEED))[0]


def runs_of(models):
    """`models` and their seed runs."""
    return [r for r in RUNS if base_of(r) in models]


TRAIN_GPU = config["gpu"]["train_gpus"] if GPU else 0  # GPUs per training job: > 1 trains data-parallel
# Every GPU rule runs its command through glueslim.gpus, a lock-file slot pool that gives the job
# {resources.gpu} distinct free GPUs (CUDA_VISIBLE_DEVICES), so concurrent jobs on one box never share
# one; 0 runs the command as it is. --distributed (training): several GPUs -> one process per GPU.
ON_GPUS = "python -m glueslim.gpus --gpus {resources.gpu} -- "
ON_GPUS_DDP = "python -m glueslim.gpus --gpus {resources.gpu} --distributed -- "
TRAIN_PRECISION = dict(precision=config["precision"], no_tf32=not config["gpu"]["tf32"])  # training flags
THREADS = config["threads"]


def one_of(names):
    """A wildcard regex that matches exactly one of `names` (never a slash, '..' or anything else)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


# Every wildcard is one of the configured names (the schema allows task ids and [A-Za-z][A-Za-z0-9_-]*
# student names), so no target can make a rule write outside results/ (tests/test_reliability.py).
wildcard_constraints:
    task=one_of(DATA_TASKS),
    student=one_of(runs_of(STUDENTS)),
    model=one_of(RUNS),
    baseline=one_of(runs_of(BASELINES)),
    pruned=one_of(PRUNED),
    deployed=one_of(DEPLOYED),
    stem=one_of(STEM_TASK),


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


RECIPE_KEYS = (
    "learning_rate",
    "epochs",
    "batch_size",
    "eval_batch_size",
    "max_seq_length",
    "warmup_ratio",
    "weight_decay",
    "grad_clip",
    "gradient_accumulation_steps",
)


def recipe(task, override=None):
    """The training recipe for a task: finetune defaults < finetune.per_task < student overrides."""
    ft = config["finetune"]
    r = {k: ft[k] for k in RECIPE_KEYS}
    r.update(ft["per_task"].get(task, {}))
    if override:
        r.update({k: v for k, v in override.items() if k in RECIPE_KEYS})
        r.update(override.get("per_task", {}).get(task, {}))
    if r["gradient_accumulation_steps"] == 1:  # the default: no flag, so commands (and params) stay as before
        r["gradient_accumulation_steps"] = None
    return r


def train_cap(task):
    cap = config["data"]["max_train_examples"]
    return cap.get(task) if isinstance(cap, dict) else cap


def transfer_cap(task):
    cap = config["data"]["max_transfer_examples"]
    return cap.get(task) if isinstance(cap, dict) else cap


def model_dir(model, task):
    return f"results/models/{model}/{task}"


# ---------------------------------------------------------------- what every rule declares
# A rule's job settings in five lines, and its command in logged(...):
#     conda: CONDA_ENV
#     log: log_file("<rule>", "<wildcard>", ...)
#     benchmark: benchmark_file("<rule>", "<wildcard>", ...)
#     threads: THREADS              (1 for a light job)
#     resources: **job_resources("train" | "infer" | "light", gpu=...)

CONDA_ENV = "../../envs/glueslim.yaml"  # used with --sdm conda


def logged(*parts):
    """A rule's shell command (`parts` joined, e.g. ON_GPUS and the command) with its output in {log}; when
    it fails, the log's last 3 lines go to stderr too, so a plain `snakemake --cores N` shows the error line
    (e.g. "glueslim prepare-data: error: .../train.tsv:67351: 1 columns, expected 2") without opening the
    log (the profiles' show-failed-logs prints whole logs)."""
    return "".join(parts) + " > {log} 2>&1 || {{ rc=$?; tail -n 3 {log} >&2; exit $rc; }}"


def log_file(rule, *wildcards):
    """logs/<rule>/{w1}/.../{wn}.log: a job's log (logs/<rule>.log for a rule without wildcards)."""
    return posixpath.join("logs", rule, *(f"{{{w}}}" for w in wildcards)) + ".log"


def benchmark_file(rule, *wildcards):
    """results/benchmarks/<rule>/{w1}_..._{wn}.tsv: a job's time and memory (<rule>.tsv without wildcards)."""
    return f"results/benchmarks/{rule}/{'_'.join(f'{{{w}}}' for w in wildcards) or rule}.tsv"


def job_resources(kind, gpu=None, **override):
    """A rule's resources: mem_mb and runtime from config `resources.<kind>` (train, infer or light) unless
    overridden, `gpu` GPUs (a number or a function of the wildcards; None: a CPU rule), and for a job that
    gets a GPU, the partition `slurm.gpu_partition` (the SLURM executor's -p; null: none asked for)."""
    res = {**config["resources"][kind], **override}
    if gpu is not None:
        res["gpu"] = gpu
        partition = config["slurm"]["gpu_partition"]
        if partition:
            gpus = gpu if callable(gpu) else lambda w: gpu
            res["slurm_partition"] = lambda w: partition if gpus(w) > 0 else None  # None: not set
    return res


def model_gpus(w):
    """GPUs of a job that runs {model}: none for a form whose kernels run on the CPU (torch int8, ONNX Runtime)."""
    form = FORMS[DEPLOYED[w.model]["form"]] if w.model in DEPLOYED else None
    return 0 if form and (form.weights == "int8" or form.backend == "onnxruntime") else GPU
