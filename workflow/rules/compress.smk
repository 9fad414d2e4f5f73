# Compression beside distillation: attention-head pruning and deployed forms (bf16/fp16, int8, ONNX Runtime;
# glueslim.forms), each scored and timed in its own form (the published baselines
# are fine-tuned in finetune.smk). Every result is a model folder results/models/<name>/<task>, evaluated
# and profiled like any other.


rule prune_heads:
    input:
        data="results/data/{task}",
        model=lambda w: model_dir(PRUNED[w.pruned]["source"], w.task),
    output:
        directory("results/models/{pruned}/{task}"),
    log:
        log_file("prune_heads", "pruned", "task"),
    benchmark:
        benchmark_file("prune_heads", "pruned", "task")
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **job_resources("train", gpu=GPU),
    params:
        args=lambda w: flags(
            name=w.pruned,
            fraction=PRUNED[w.pruned]["fraction"],
            importance_examples=config["pruning"]["importance_examples"],
            recovery_epochs=config["pruning"]["recovery_epochs"],
            seed=config["seed"],
            device=config["device"],
            **recipe(w.task),
            **TRAIN_PRECISION,
        ),
        checkpoints="results/checkpoints/{pruned}/{task}",
    shell:
        logged(
            ON_GPUS,
            "python -m glueslim prune --task {wildcards.task} --data {input.data} --model-dir {input.model}"
            " --out {output} --checkpoint-dir {params.checkpoints} --threads {threads} {params.args}",
        )


rule deploy:
    input:
        data="results/data/{task}",
        model=lambda w: model_dir(DEPLOYED[w.deployed]["source"], w.task),
    output:
        directory("results/models/{deployed}/{task}"),
    log:
        log_file("deploy", "deployed", "task"),
    benchmark:
        benchmark_file("deploy", "deployed", "task")
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **job_resources("infer"),
    params:
        form=lambda w: DEPLOYED[w.deployed]["form"],
        args=lambda w: flags(
            calibration_examples=config["deploy"]["calibration_examples"],
            seed=config["seed"],
            max_seq_length=recipe(w.task)["max_seq_length"],
            allow_emulated=config["deploy"]["emulated"],
        ),
    shell:
        logged(
            "python -m glueslim deploy --form {params.form} --task {wildcards.task} --data {input.data}"
            " --model-dir {input.model} --name {wildcards.deployed} --out {output} --threads {threads} {params.args}",
        )
