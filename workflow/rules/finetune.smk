# Fine-tuning with the teacher's recipe: the teacher, and the published baselines (rows beside the
# compressed models) by the same command.


rule finetune_teacher:
    input:
        data="results/data/{task}",
    output:
        directory("results/models/teacher/{task}"),
    log:
        log_file("finetune_teacher", "task"),
    benchmark:
        benchmark_file("finetune_teacher", "task")
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **job_resources("train", gpu=TRAIN_GPU),
    params:
        args=lambda w: finetune_args(w.task, **config["teacher"]),
        checkpoints="results/checkpoints/teacher/{task}",
    shell:
        logged(
            ON_GPUS_DDP,
            "python -m glueslim finetune --task {wildcards.task} --data {input.data} --out {output}"
            " --checkpoint-dir {params.checkpoints} --threads {threads} {params.args}",
        )


use rule finetune_teacher as finetune_baseline with:
    output:
        directory("results/models/{baseline}/{task}"),
    log:
        log_file("finetune_baseline", "baseline", "task"),
    benchmark:
        benchmark_file("finetune_baseline", "baseline", "task")
    params:
        args=lambda w: finetune_args(
            w.task,
            **config["baselines"][base_of(w.baseline)],
            seed=seed_of(w.baseline),
            name=w.baseline,
            role="baseline",
        ),
        checkpoints="results/checkpoints/{baseline}/{task}",
