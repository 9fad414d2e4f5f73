rule profile:
    input:
        lambda w: model_dir(w.model, PROFILE_TASK),
    output:
        "results/profile/{model}.json",
    params:
        args=flags(
            seq_length=config["profile"]["seq_length"],
            batch_sizes=config["profile"]["batch_sizes"],
            warmup=config["profile"]["warmup"],
            runs=config["profile"]["runs"],
            device=config["device"],
        ),
    conda:
        CONDA_ENV
    log:
        "logs/profile/{model}.log",
    benchmark:
        "results/benchmarks/profile/{model}.tsv"
    threads: THREADS
    resources:
        gpu=GPU,
        mem_mb=RES["infer"]["mem_mb"],
        runtime=RES["infer"]["runtime"],
    shell:
        "python -m glueslim profile --model-dir {input} --name {wildcards.model} --out {output}"
        " --threads {threads} {params.args} > {log} 2>&1"
