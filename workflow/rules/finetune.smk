rule finetune_teacher:
    input:
        data="results/data/{task}",
    output:
        directory("results/models/teacher/{task}"),
    params:
        args=lambda w: flags(
            model=config["teacher"]["model"],
            revision=config["teacher"]["revision"],
            trust_remote_code=trusts_remote_code(config, config["teacher"]["model"]),
            seed=config["seed"],
            device=config["device"],
            **recipe(w.task),
            **TRAIN_PRECISION,
        ),
        checkpoints="results/checkpoints/teacher/{task}",
    conda:
        CONDA_ENV
    log:
        "logs/finetune_teacher/{task}.log",
    benchmark:
        "results/benchmarks/finetune_teacher/{task}.tsv"
    threads: THREADS
    resources:
        gpu=TRAIN_GPU,
        mem_mb=RES["train"]["mem_mb"],
        runtime=RES["train"]["runtime"],
    shell:
        ON_GPUS_DDP + "python -m glueslim finetune --task {wildcards.task} --data {input.data} --out {output}"
        " --checkpoint-dir {params.checkpoints} --threads {threads} {params.args} > {log} 2>&1"
