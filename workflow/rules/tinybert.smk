# TinyBERT-style students (tinybert.students) and their ablation (tinybert.ablation), through the same
# `glueslim distill` command as every student (builder random or checkpoint, TinyBERT's loss set):
#   tinybert_general  -> results/general/<student>/          general distillation, shared by every task
#   tinybert_augment  -> results/augmented/<task>/           augmented training set, teacher-labelled, made once
#   tinybert_distill  -> results/models/<student>/<task>/    stage 1 intermediate layers, stage 2 prediction layer
#   tinybert_ablation_distill -> results/tinybert_ablation/<variant>/<task>/   one ingredient removed
#   tinybert_ablation -> results/ablations/tinybert.json     rendered by the leaderboard
# The config is validated (schema defaults filled in, config.check_config: ablation base and tasks).


rule tinybert_general:
    input:
        data=expand("results/data/{task}", task=TASKS) if not TB_CFG["general"]["corpus"] else [],
        corpus=[TB_CFG["general"]["corpus"]] if TB_CFG["general"]["corpus"] else [],
    output:
        directory("results/general/{tbgeneral}"),
    log:
        log_file("tinybert_general", "tbgeneral"),
    benchmark:
        benchmark_file("tinybert_general", "tbgeneral")
    wildcard_constraints:
        tbgeneral=one_of(TB_GENERAL),
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **job_resources("train", gpu=TRAIN_GPU),
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
    log:
        log_file("tinybert_augment", "task"),
    benchmark:
        benchmark_file("tinybert_augment", "task")
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **job_resources("infer", gpu=GPU),
    params:
        args=lambda w: flags(
            mlm_model=config["teacher"]["model"],
            **{k: TB_CFG["augment"][k] for k in ("copies", "prob", "candidates", "max_examples")},
            seed=config["seed"],
            device=config["device"],
            max_seq_length=recipe(w.task)["max_seq_length"],
            eval_batch_size=recipe(w.task)["eval_batch_size"],
            inference_precision=None if config["inference_precision"] == "fp32" else config["inference_precision"],
        ),
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
    log:
        log_file("tinybert_distill", "tinybert", "task"),
    benchmark:
        benchmark_file("tinybert_distill", "tinybert", "task")
    wildcard_constraints:
        tinybert=one_of(runs_of(list(TB))),
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **job_resources("train", gpu=TRAIN_GPU),
    params:
        args=lambda w: _tb_args(w.tinybert, w.task),
        checkpoints="results/checkpoints/{tinybert}/{task}",
    shell:
        TB_DISTILL_CMD


use rule tinybert_distill as tinybert_ablation_distill with:
    input:
        unpack(lambda w: _tb_inputs(w.tbvariant, w.task)),
    output:
        directory("results/tinybert_ablation/{tbvariant}/{task}"),
    log:
        log_file("tinybert_ablation_distill", "tbvariant", "task"),
    benchmark:
        benchmark_file("tinybert_ablation_distill", "tbvariant", "task")
    wildcard_constraints:
        tbvariant=one_of(TB_VARIANTS),
    params:
        args=lambda w: _tb_args(w.tbvariant, w.task),
        checkpoints="results/checkpoints/tinybert_ablation/{tbvariant}/{task}",


rule tinybert_ablation:
    input:
        teacher=expand("results/models/teacher/{task}", task=TB_ABL_TASKS),
        base=expand("results/models/{base}/{task}", base=[TB_ABL_BASE] if TB_ABL_BASE else [], task=TB_ABL_TASKS),
        variants=expand("results/tinybert_ablation/{v}/{task}", v=list(TB_VARIANTS), task=TB_ABL_TASKS),
    output:
        "results/ablations/tinybert.json",
    log:
        log_file("tinybert_ablation"),
    benchmark:
        "results/benchmarks/tinybert_ablation/tinybert.tsv"
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **job_resources("light"),
    params:
        tasks=" ".join(TB_ABL_TASKS),
        variants=" ".join(
            [f"--variant {shlex.quote(f'{TB_ABL_BASE} (all ingredients)')} results/models/{TB_ABL_BASE}"]
            + [
                f"--variant {shlex.quote(TB_VARIANT_LABEL[v[len(str(TB_ABL_BASE)) + 1:]])} results/tinybert_ablation/{v}"
                for v in TB_VARIANTS
            ]
        ),
        title=shlex.quote(f"TinyBERT ablation ({TB_ABL_BASE})"),
    shell:
        logged(
            "python -m glueslim ablation --tasks {params.tasks} --teacher-root results/models/teacher"
            " {params.variants} --title {params.title} --out {output}",
        )
