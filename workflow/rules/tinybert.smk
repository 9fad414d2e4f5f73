# TinyBERT-style students (tinybert.students) and their ablation (tinybert.ablation), through the same
# `glueslim distill` command as every student (builder random or checkpoint, TinyBERT's loss set):
#   tinybert_general  -> results/general/<student>/          general distillation, shared by every task
#   tinybert_augment  -> results/augmented/<task>/           augmented training set, teacher-labelled, made once
#   tinybert_distill  -> results/models/<student>/<task>/    stage 1 intermediate layers, stage 2 prediction layer
#   tinybert_ablation_distill -> results/tinybert_ablation/<variant>/<task>/   one ingredient removed
#   tinybert_ablation -> results/ablations/tinybert.json     rendered by the leaderboard
# The config is validated (schema defaults filled in, config.check_config: ablation base and tasks).
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
    for removed in change[len("no-"):].split("-no-"):
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
TB_GENERAL = sorted({n for n, s in TB.items() if s["init"] == "general"}
                    | {s["_general"] for s in TB_VARIANTS.values() if s["init"] == "general"})
if TB_ABL_BASE:
    ABLATIONS.append("results/ablations/tinybert.json")


def _tb_spec(name):
    return TB[name] if name in TB else TB_VARIANTS[name]


def _tb_init(name):
    """A checkpoint student's starting point: this workflow's general distillation, or the configured one."""
    spec = _tb_spec(name)
    return f"results/general/{spec.get('_general', name)}" if spec["init"] == "general" else spec["init"]


def _tb_student(spec, init=None):
    """Builder flags: `init` a checkpoint (its shape wins), or None: a random student of the spec's shape."""
    shape = {k: spec[k] for k in ("num_layers", "hidden_size", "num_heads", "intermediate_size")}
    return dict(student="checkpoint", init=init) if init else dict(student="random", **shape)


def _tb_matches(spec):
    return dict(match_layer_map=spec["layer_map"], matches=json.dumps(spec["matches"]) if spec["matches"] else None)


def _tb_inputs(name, task):
    spec = _tb_spec(name)
    out = dict(data=f"results/data/{task}", teacher=f"results/models/teacher/{task}",
               teacher_outputs=f"results/teacher_outputs/{task}.safetensors")
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
        stage1_epochs=s1.get("epochs"), stage1_learning_rate=s1.get("learning_rate"),
        stage2_epochs=s2.get("epochs"), stage2_learning_rate=s2.get("learning_rate"),
        augmented=f"results/augmented/{task}" if spec["augment"] else None,
        seed=config["seed"], device=config["device"],
        **recipe(task, spec["train"]), **TRAIN_PRECISION,
    )


TB_DISTILL_CMD = logged(
    ON_GPUS_DDP,
    "python -m glueslim distill --task {wildcards.task} --data {input.data}"
    " --teacher-dir {input.teacher} --teacher-outputs {input.teacher_outputs} --out {output}"
    " --checkpoint-dir {params.checkpoints} --threads {threads} {params.args}",
)


rule tinybert_general:
    input:
        data=expand("results/data/{task}", task=TASKS) if not TB_CFG["general"]["corpus"] else [],
        corpus=[TB_CFG["general"]["corpus"]] if TB_CFG["general"]["corpus"] else [],
    output:
        directory("results/general/{tbgeneral}"),
    wildcard_constraints:
        tbgeneral=one_of(TB_GENERAL),
    params:
        args=lambda w: flags(
            teacher=config["teacher"]["model"],
            revision=config["teacher"]["revision"],
            trust_remote_code=trusts_remote_code(config, config["teacher"]["model"]),
            corpus=TB_CFG["general"]["corpus"],
            max_sentences=TB_CFG["general"]["max_sentences"],
            intermediate=list(TB_CFG["general"]["intermediate"]),
            **_tb_student(TB[w.tbgeneral]),
            **_tb_matches(TB[w.tbgeneral]),
            seed=config["seed"],
            device=config["device"],
            **recipe(None, TB_CFG["general"]["train"]),  # general distillation is not per task
            **TRAIN_PRECISION,
        ),
        data=lambda w, input: " ".join(input.data),
        checkpoints="results/checkpoints/general/{tbgeneral}",
    conda: CONDA_ENV
    log: log_file("tinybert_general", "tbgeneral")
    benchmark: benchmark_file("tinybert_general", "tbgeneral")
    threads: THREADS
    resources: **job_resources("train", gpu=TRAIN_GPU)
    shell:
        logged(
            ON_GPUS_DDP,
            "python -m glueslim general-distill --out {output} --data {params.data}"
            " --checkpoint-dir {params.checkpoints} --threads {threads} {params.args}",
        )


rule tinybert_augment:
    input:
        data="results/data/{task}",
        teacher="results/models/teacher/{task}",
    output:
        directory("results/augmented/{task}"),
    params:
        args=lambda w: flags(
            mlm_model=config["teacher"]["model"],
            **{k: TB_CFG["augment"][k] for k in ("copies", "prob", "candidates", "max_examples")},
            seed=config["seed"],
            device=config["device"],
            max_seq_length=recipe(w.task)["max_seq_length"],
            eval_batch_size=recipe(w.task)["eval_batch_size"],
        ),
    conda: CONDA_ENV
    log: log_file("tinybert_augment", "task")
    benchmark: benchmark_file("tinybert_augment", "task")
    threads: THREADS
    resources: **job_resources("infer", gpu=GPU)
    shell:
        logged(
            ON_GPUS,
            "python -m glueslim augment --task {wildcards.task} --data {input.data}"
            " --teacher-dir {input.teacher} --out {output} --threads {threads} {params.args}",
        )


rule tinybert_distill:
    input:
        unpack(lambda w: _tb_inputs(w.tinybert, w.task)),
    output:
        directory("results/models/{tinybert}/{task}"),
    wildcard_constraints:
        tinybert=one_of(TB),
    params:
        args=lambda w: _tb_args(w.tinybert, w.task),
        checkpoints="results/checkpoints/{tinybert}/{task}",
    conda: CONDA_ENV
    log: log_file("tinybert_distill", "tinybert", "task")
    benchmark: benchmark_file("tinybert_distill", "tinybert", "task")
    threads: THREADS
    resources: **job_resources("train", gpu=TRAIN_GPU)
    shell:
        TB_DISTILL_CMD


rule tinybert_ablation_distill:
    input:
        unpack(lambda w: _tb_inputs(w.tbvariant, w.task)),
    output:
        directory("results/tinybert_ablation/{tbvariant}/{task}"),
    wildcard_constraints:
        tbvariant=one_of(TB_VARIANTS),
    params:
        args=lambda w: _tb_args(w.tbvariant, w.task),
        checkpoints="results/checkpoints/tinybert_ablation/{tbvariant}/{task}",
    conda: CONDA_ENV
    log: log_file("tinybert_ablation_distill", "tbvariant", "task")
    benchmark: benchmark_file("tinybert_ablation_distill", "tbvariant", "task")
    threads: THREADS
    resources: **job_resources("train", gpu=TRAIN_GPU)
    shell:
        TB_DISTILL_CMD


rule tinybert_ablation:
    input:
        teacher=expand("results/models/teacher/{task}", task=TB_ABL_TASKS),
        base=expand("results/models/{base}/{task}", base=[TB_ABL_BASE] if TB_ABL_BASE else [], task=TB_ABL_TASKS),
        variants=expand("results/tinybert_ablation/{v}/{task}", v=list(TB_VARIANTS), task=TB_ABL_TASKS),
    output:
        "results/ablations/tinybert.json",
    params:
        tasks=" ".join(TB_ABL_TASKS),
        variants=" ".join(
            [f"--variant {shlex.quote(f'{TB_ABL_BASE} (all ingredients)')} results/models/{TB_ABL_BASE}"]
            + [f"--variant {shlex.quote(TB_VARIANT_LABEL[v[len(str(TB_ABL_BASE)) + 1:]])} results/tinybert_ablation/{v}"
               for v in TB_VARIANTS]
        ),
        title=shlex.quote(f"TinyBERT ablation ({TB_ABL_BASE})"),
    conda: CONDA_ENV
    log: log_file("tinybert_ablation")
    benchmark: "results/benchmarks/tinybert_ablation/tinybert.tsv"
    threads: 1
    resources: **job_resources("light")
    shell:
        logged(
            "python -m glueslim ablation --tasks {params.tasks} --teacher-root results/models/teacher"
            " {params.variants} --title {params.title} --out {output}",
        )
