# Fine-tuning with the teacher's recipe: the teacher, and the published baselines (rows beside the
# compressed models) by the same command.


def finetune_args(task, model, revision, **named):
    """Flags of `glueslim finetune` for `model` at `revision`; `named`: a baseline's name and role."""
    return flags(
        **named,
        model=model,
        revision=revision,
        trust_remote_code=trusts_remote_code(config, model),
        seed=config["seed"],
        device=config["device"],
        **recipe(task),
        **TRAIN_PRECISION,
    )


rule finetune_teacher:
    input:
        data="results/data/{task}",
    output:
        directory("results/models/teacher/{task}"),
    params:
        args=lambda w: finetune_args(w.task, **config["teacher"]),
        checkpoints="results/checkpoints/teacher/{task}",
    conda: CONDA_ENV
    log: log_file("finetune_teacher", "task")
    benchmark: benchmark_file("finetune_teacher", "task")
    threads: THREADS
    resources: **job_resources("train", gpu=TRAIN_GPU)
    shell:
        logged(
            ON_GPUS_DDP,
            "python -m glueslim finetune --task {wildcards.task} --data {input.data} --out {output}"
            " --checkpoint-dir {params.checkpoints} --threads {threads} {params.args}",
        )


use rule finetune_teacher as finetune_baseline with:
    output:
        directory("results/models/{baseline}/{task}"),
    params:
        args=lambda w: finetune_args(w.task, **config["baselines"][w.baseline], name=w.baseline, role="baseline"),
        checkpoints="results/checkpoints/{baseline}/{task}",
    log: log_file("finetune_baseline", "baseline", "task")
    benchmark: benchmark_file("finetune_baseline", "baseline", "task")
