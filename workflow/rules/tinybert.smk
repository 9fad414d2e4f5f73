# TinyBERT-style students (tinybert.students) and their ablation (tinybert.ablation):
#   tinybert_general  -> results/general/<student>/          general distillation, shared by every task
#   tinybert_augment  -> results/augmented/<task>/           augmented training set, teacher-labelled, made once
#   tinybert_distill  -> results/models/<student>/<task>/    stage 1 intermediate layers, stage 2 prediction layer
#   tinybert_ablation_distill -> results/tinybert_ablation/<variant>/<task>/   one ingredient removed
#   tinybert_ablation -> results/ablations/tinybert.json     rendered by the leaderboard
TB_CFG = config.get("tinybert", {})
TB = {s["name"]: s for s in TB_CFG.get("students", [])}
TB_ABL = TB_CFG.get("ablation", {})
TB_ABL_BASE = TB_ABL.get("base")
if TB_ABL_BASE and TB_ABL_BASE not in TB:
    raise ValueError(f"config tinybert.ablation.base: {TB_ABL_BASE!r} is not a tinybert.students name "
                     f"(have: {', '.join(TB) or 'none'})")
TB_ABL_TASKS = list(TB_ABL.get("tasks") or TASKS)
if TB_ABL_BASE and not set(TB_ABL_TASKS) <= set(TASKS):
    raise ValueError(f"config tinybert.ablation.tasks: {sorted(set(TB_ABL_TASKS) - set(TASKS))} are not configured tasks")
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
            spec["intermediate"] = [f for f in spec.get("intermediate") or [] if f != removed]
            if spec.get("matches"):
                spec["matches"] = [m for m in spec["matches"] if m["feature"] != removed]
    return spec


TB_VARIANTS = {f"{TB_ABL_BASE}-{v}": _tb_variant(TB_ABL_BASE, v) for v in TB_ABL.get("variants", [])} \
    if TB_ABL_BASE else {}
TB_GENERAL = sorted({n for n, s in TB.items() if s.get("init", "general") == "general"}
                    | {s["_general"] for s in TB_VARIANTS.values() if s.get("init", "general") == "general"})
if TB_ABL_BASE:
    ABLATIONS.append("results/ablations/tinybert.json")


def _tb_spec(name):
    return TB[name] if name in TB else TB_VARIANTS[name]


def _tb_shape(spec):
    return dict(num_layers=spec.get("num_layers", 4), hidden_size=spec.get("hidden_size", 312),
                num_heads=spec.get("num_heads", 12), intermediate_size=spec.get("intermediate_size", 1200),
                layer_map=spec.get("layer_map"),
                matches=json.dumps(spec["matches"]) if spec.get("matches") else None)


def _tb_init(name):
    spec = _tb_spec(name)
    init = spec.get("init", "general")
    return f"results/general/{spec.get('_general', name)}" if init == "general" else init


def _tb_inputs(name, task):
    spec = _tb_spec(name)
    out = dict(data=f"results/data/{task}", teacher=f"results/models/teacher/{task}",
               teacher_outputs=f"results/teacher_outputs/{task}.safetensors")
    if spec.get("init", "general") == "general":
        out["general"] = _tb_init(name)
    if spec.get("augment", True):
        out["augmented"] = f"results/augmented/{task}"
    return out


def _tb_args(name, task):
    spec = _tb_spec(name)
    s1, s2 = spec.get("stage1") or {}, spec.get("stage2") or {}
    return flags(
        name=name, init=_tb_init(name), **_tb_shape(spec),
        intermediate=list(spec.get("intermediate", ["embedding", "attention", "hidden"])),
        temperature=spec.get("temperature", 1.0),
        stage1_epochs=s1.get("epochs"), stage1_learning_rate=s1.get("learning_rate"),
        stage2_epochs=s2.get("epochs"), stage2_learning_rate=s2.get("learning_rate"),
        augmented=f"results/augmented/{task}" if spec.get("augment", True) else None,
        seed=config["seed"], device=config["device"],
        **recipe(task, spec.get("train") or {}), **TRAIN_PRECISION,
    )


TB_DISTILL_CMD = (
    ON_GPUS_DDP + "python -m glueslim tinybert-distill --task {wildcards.task} --data {input.data}"
    " --teacher-dir {input.teacher} --teacher-outputs {input.teacher_outputs} --out {output}"
    " --checkpoint-dir {params.checkpoints} --threads {threads} {params.args} > {log} 2>&1"
)


rule tinybert_general:
    input:
        data=expand("results/data/{task}", task=TASKS) if not TB_CFG.get("general", {}).get("corpus") else [],
        corpus=[TB_CFG["general"]["corpus"]] if TB_CFG.get("general", {}).get("corpus") else [],
    output:
        directory("results/general/{tbgeneral}"),
    wildcard_constraints:
        tbgeneral=one_of(TB_GENERAL),
    params:
        args=lambda w: flags(
            teacher=config["teacher"]["model"],
            revision=config["teacher"]["revision"],
            trust_remote_code=trusts_remote_code(config, config["teacher"]["model"]),
            corpus=TB_CFG.get("general", {}).get("corpus"),
            max_sentences=TB_CFG.get("general", {}).get("max_sentences"),
            intermediate=list(TB_CFG.get("general", {}).get("intermediate", ["embedding", "attention", "hidden"])),
            **_tb_shape(TB[w.tbgeneral]),
            seed=config["seed"],
            device=config["device"],
            **recipe(None, TB_CFG.get("general", {}).get("train")),  # general distillation is not per task
            **TRAIN_PRECISION,
        ),
        data=lambda w, input: " ".join(input.data),
        checkpoints="results/checkpoints/general/{tbgeneral}",
    conda:
        CONDA_ENV
    log:
        "logs/tinybert_general/{tbgeneral}.log",
    benchmark:
        "results/benchmarks/tinybert_general/{tbgeneral}.tsv"
    threads: THREADS
    resources:
        gpu=TRAIN_GPU,
        mem_mb=RES["train"]["mem_mb"],
        runtime=RES["train"]["runtime"],
    shell:
        ON_GPUS_DDP + "python -m glueslim tinybert-general --out {output} --data {params.data}"
        " --checkpoint-dir {params.checkpoints} --threads {threads} {params.args} > {log} 2>&1"


rule tinybert_augment:
    input:
        data="results/data/{task}",
        teacher="results/models/teacher/{task}",
    output:
        directory("results/augmented/{task}"),
    params:
        args=lambda w: flags(
            mlm_model=config["teacher"]["model"],
            copies=TB_CFG.get("augment", {}).get("copies", 20),
            prob=TB_CFG.get("augment", {}).get("prob", 0.4),
            candidates=TB_CFG.get("augment", {}).get("candidates", 15),
            max_examples=TB_CFG.get("augment", {}).get("max_examples"),
            seed=config["seed"],
            device=config["device"],
            max_seq_length=recipe(w.task)["max_seq_length"],
            eval_batch_size=recipe(w.task)["eval_batch_size"],
        ),
    conda:
        CONDA_ENV
    log:
        "logs/tinybert_augment/{task}.log",
    benchmark:
        "results/benchmarks/tinybert_augment/{task}.tsv"
    threads: THREADS
    resources:
        gpu=GPU,
        mem_mb=RES["infer"]["mem_mb"],
        runtime=RES["infer"]["runtime"],
    shell:
        ON_GPUS + "python -m glueslim tinybert-augment --task {wildcards.task} --data {input.data}"
        " --teacher-dir {input.teacher} --out {output} --threads {threads} {params.args} > {log} 2>&1"


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
    conda:
        CONDA_ENV
    log:
        "logs/tinybert_distill/{tinybert}/{task}.log",
    benchmark:
        "results/benchmarks/tinybert_distill/{tinybert}_{task}.tsv"
    threads: THREADS
    resources:
        gpu=TRAIN_GPU,
        mem_mb=RES["train"]["mem_mb"],
        runtime=RES["train"]["runtime"],
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
    conda:
        CONDA_ENV
    log:
        "logs/tinybert_ablation_distill/{tbvariant}/{task}.log",
    benchmark:
        "results/benchmarks/tinybert_ablation_distill/{tbvariant}_{task}.tsv"
    threads: THREADS
    resources:
        gpu=TRAIN_GPU,
        mem_mb=RES["train"]["mem_mb"],
        runtime=RES["train"]["runtime"],
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
    conda:
        CONDA_ENV
    log:
        "logs/tinybert_ablation.log",
    benchmark:
        "results/benchmarks/tinybert_ablation/tinybert.tsv"
    threads: 1
    resources:
        mem_mb=RES["light"]["mem_mb"],
        runtime=RES["light"]["runtime"],
    shell:
        "python -m glueslim tinybert-ablation --tasks {params.tasks} --teacher-root results/models/teacher"
        " {params.variants} --title {params.title} --out {output} > {log} 2>&1"
