# Compression beside distillation: published baselines, attention-head pruning, int8 quantization.
# Every result is a model folder results/models/<name>/<task>, evaluated and profiled like any other.


rule finetune_baseline:
    input:
        data="results/data/{task}",
    output:
        directory("results/models/{baseline}/{task}"),
    params:
        args=lambda w: flags(
            name=w.baseline,
            role="baseline",
            model=config["baselines"][w.baseline]["model"],
            revision=config["baselines"][w.baseline]["revision"],
            trust_remote_code=trusts_remote_code(config, config["baselines"][w.baseline]["model"]),
            seed=config["seed"],
            device=config["device"],
            **recipe(w.task),
            **TRAIN_PRECISION,
        ),
        checkpoints="results/checkpoints/{baseline}/{task}",
    conda:
        CONDA_ENV
    log:
        "logs/finetune_baseline/{baseline}/{task}.log",
    benchmark:
        "results/benchmarks/finetune_baseline/{baseline}_{task}.tsv"
    threads: THREADS
    resources:
        gpu=TRAIN_GPU,
        mem_mb=RES["train"]["mem_mb"],
        runtime=RES["train"]["runtime"],
    shell:
        ON_GPUS_DDP + "python -m glueslim finetune --task {wildcards.task} --data {input.data} --out {output}"
        " --checkpoint-dir {params.checkpoints} --threads {threads} {params.args} > {log} 2>&1"


rule prune_heads:
    input:
        data="results/data/{task}",
        model=lambda w: model_dir(PRUNED[w.pruned]["source"], w.task),
    output:
        directory("results/models/{pruned}/{task}"),
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
    conda:
        CONDA_ENV
    log:
        "logs/prune_heads/{pruned}/{task}.log",
    benchmark:
        "results/benchmarks/prune_heads/{pruned}_{task}.tsv"
    threads: THREADS
    resources:
        gpu=GPU,
        mem_mb=RES["train"]["mem_mb"],
        runtime=RES["train"]["runtime"],
    shell:
        ON_GPUS + "python -m glueslim prune --task {wildcards.task} --data {input.data} --model-dir {input.model}"
        " --out {output} --checkpoint-dir {params.checkpoints} --threads {threads} {params.args} > {log} 2>&1"


rule quantize_int8:
    input:
        model=lambda w: model_dir(INT8[w.quantized]["source"], w.task),
    output:
        directory("results/models/{quantized}/{task}"),
    conda:
        CONDA_ENV
    log:
        "logs/quantize_int8/{quantized}/{task}.log",
    benchmark:
        "results/benchmarks/quantize_int8/{quantized}_{task}.tsv"
    threads: 1
    resources:
        mem_mb=RES["infer"]["mem_mb"],
        runtime=RES["light"]["runtime"],
    shell:
        "python -m glueslim quantize --model-dir {input.model} --name {wildcards.quantized} --out {output}"
        " > {log} 2>&1"
