# Compression beside distillation: attention-head pruning and int8 quantization (the published baselines
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


rule quantize_int8:
    input:
        model=lambda w: model_dir(INT8[w.quantized]["source"], w.task),
    output:
        directory("results/models/{quantized}/{task}"),
    log:
        log_file("quantize_int8", "quantized", "task"),
    benchmark:
        benchmark_file("quantize_int8", "quantized", "task")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **job_resources("infer", runtime=config["resources"]["light"]["runtime"]),
    shell:
        logged(
            "python -m glueslim quantize --model-dir {input.model} --name {wildcards.quantized} --out {output}",
        )
