# The command-line flags of the training rules' commands, and the names the TinyBERT rules derive from the
# config: functions and values only (Snakemake's lint wants rules and functions in separate files).
import json

# ---------------------------------------------------------------- finetune.smk


def finetune_args(task, model, revision, seed=None, **named):
    """Flags of `glueslim finetune` for `model` at `revision` (the teacher: `seed`); `named`: a baseline's
    name and role."""
    return flags(
        **named,
        model=model,
        revision=revision,
        trust_remote_code=trusts_remote_code(config, model),
        seed=config["seed"] if seed is None else seed,
        device=config["device"],
        **recipe(task),
        **TRAIN_PRECISION,
    )


# ---------------------------------------------------------------- distill.smk

STUDENT_BUILDER = {"distilbert": "teacher_layers", "albert": "albert"}  # config arch -> glueslim.students


def student_args(run, task):
    """Flags of `glueslim distill` for a run of the configured student (`distil`, `distil-seed43`) on `task`."""
    s = config["students"][base_of(run)]
    return flags(
        name=run,
        student="checkpoint" if s["init"] else STUDENT_BUILDER[s["arch"]],
        init=s["init"],
        head=s["head"] if s["init"] else None,
        embedding_size=s["embedding_size"] if s["arch"] == "albert" else None,
        num_layers=s["num_layers"],
        layer_map=s["layer_map"],
        prediction=s["prediction"],
        alpha=s["alpha"],
        temperature=s["temperature"],
        intermediate=list(s["intermediate"]) or None,
        joint=s["joint"] and bool(s["intermediate"]),
        stage1_epochs=s["stage1"].get("epochs") if s["intermediate"] and not s["joint"] else None,
        stage1_learning_rate=s["stage1"].get("learning_rate") if s["intermediate"] and not s["joint"] else None,
        augmented=f"results/augmented/{task}" if s["augment"] else None,
        transfer=f"results/transfer/{task}" if s["transfer"] else None,
        seed=seed_of(run),
        device=config["device"],
        **recipe(task, s["train"]),
        **TRAIN_PRECISION,
    )


def student_inputs(run, task):
    """What `distill_student` reads for a run of a student: the data, the teacher, its logits, and the
    augmented rows and the transfer set when the student trains on them."""
    out = dict(
        data=f"results/data/{task}",
        teacher=f"results/models/teacher/{task}",
        teacher_outputs=f"results/teacher_outputs/{task}.safetensors",
    )
    if config["students"][base_of(run)]["augment"]:
        out["augmented"] = f"results/augmented/{task}"
    if config["students"][base_of(run)]["transfer"]:
        out["transfer"] = f"results/transfer/{task}"
    return out


# ---------------------------------------------------------------- tinybert.smk

TB_CFG = config["tinybert"]
TB = TB_CFG["students"]  # {name: settings}
TB_ABL = TB_CFG["ablation"]
TB_ABL_BASE = TB_ABL["base"]
TB_ABL_TASKS = list(TB_ABL["tasks"] or TASKS)
TB_VARIANT_LABEL = {
    "no-general": "without general distillation (random init)",
    "no-augment": "without data augmentation",
    "no-general-no-augment": "without general distillation and augmentation",
    "no-embedding": "without the embedding loss",
    "no-attention": "without the attention loss",
    "no-hidden": "without the hidden-state loss",
    "no-intermediate": "prediction layer only (no stage 1)",
}


def _tb_variant(base, change):
    """`base` with the ingredients named in `change` removed: no-<x>, or several, no-<x>-no-<y>."""
    spec = dict(TB[base], _general=base)
    for removed in change[len("no-") :].split("-no-"):
        if removed == "general":
            spec["init"] = "random"
        elif removed == "augment":
            spec["augment"] = False
        elif removed == "intermediate":
            spec["intermediate"], spec["matches"] = [], None
        else:  # one intermediate loss: embedding, attention or hidden
            spec["intermediate"] = [f for f in spec["intermediate"] if f != removed]
            if spec["matches"]:
                spec["matches"] = [m for m in spec["matches"] if m["feature"] != removed]
    return spec


TB_VARIANTS = {f"{TB_ABL_BASE}-{v}": _tb_variant(TB_ABL_BASE, v) for v in TB_ABL["variants"]} if TB_ABL_BASE else {}
TB_GENERAL = sorted(
    {n for n, s in TB.items() if s["init"] == "general"}
    | {s["_general"] for s in TB_VARIANTS.values() if s["init"] == "general"}
)
if TB_ABL_BASE:
    ABLATIONS.append("results/ablations/tinybert.json")


def _tb_spec(name):
    """A TinyBERT student's settings: a configured one or a seed run of it, or an ablation variant."""
    return TB[base_of(name)] if base_of(name) in TB else TB_VARIANTS[name]


def _tb_init(name):
    """A checkpoint student's starting point: this workflow's general distillation, or the configured one."""
    spec = _tb_spec(name)
    return f"results/general/{spec.get('_general', base_of(name))}" if spec["init"] == "general" else spec["init"]


def _tb_student(spec, init=None):
    """Builder flags: `init` a checkpoint (its shape wins), or None: a random student of the spec's shape."""
    shape = {k: spec[k] for k in ("num_layers", "hidden_size", "num_heads", "intermediate_size")}
    return dict(student="checkpoint", init=init) if init else dict(student="random", **shape)


def _tb_matches(spec):
    return dict(match_layer_map=spec["layer_map"], matches=json.dumps(spec["matches"]) if spec["matches"] else None)


def _tb_inputs(name, task):
    spec = _tb_spec(name)
    out = dict(
        data=f"results/data/{task}",
        teacher=f"results/models/teacher/{task}",
        teacher_outputs=f"results/teacher_outputs/{task}.safetensors",
    )
    if spec["init"] == "general":
        out["general"] = _tb_init(name)
    if spec["augment"]:
        out["augmented"] = f"results/augmented/{task}"
    return out


def _tb_args(name, task):
    spec = _tb_spec(name)
    s1, s2 = spec["stage1"], spec["stage2"]
    return flags(
        name=name,
        **_tb_student(spec, None if spec["init"] == "random" else _tb_init(name)),
        prediction="soft_ce",
        temperature=spec["temperature"],
        intermediate=list(spec["intermediate"]),
        **_tb_matches(spec),
        stage1_epochs=s1.get("epochs"),
        stage1_learning_rate=s1.get("learning_rate"),
        stage2_epochs=s2.get("epochs"),
        stage2_learning_rate=s2.get("learning_rate"),
        augmented=f"results/augmented/{task}" if spec["augment"] else None,
        seed=seed_of(name),
        device=config["device"],
        **recipe(task, spec["train"]),
        **TRAIN_PRECISION,
    )


TB_DISTILL_CMD = logged(
    ON_GPUS_DDP,
    "python -m glueslim distill --task {wildcards.task} --data {input.data}"
    " --teacher-dir {input.teacher} --teacher-outputs {input.teacher_outputs} --out {output}"
    " --checkpoint-dir {params.checkpoints} --threads {threads} {params.args}",
)
