rule profile:
    input:
        lambda w: model_dir(w.model, PROFILE_TASK),
    output:
        report(
            "results/profile/{model}.json",
            caption="../report/profile.rst",
            category="Profiles",
            labels={"model": "{model}"},
        ),
    log:
        log_file("profile", "model"),
    benchmark:
        benchmark_file("profile", "model")
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **job_resources("infer", gpu=model_gpus),
    params:
        args=flags(
            seq_length=config["profile"]["seq_length"],
            batch_sizes=config["profile"]["batch_sizes"],
            seq_lengths=config["profile"]["seq_lengths"],
            length_batch_size=config["profile"]["length_batch_size"],
            compile_batch_sizes=config["profile"]["compile_batch_sizes"] or None,
            warmup=config["profile"]["warmup"],
            runs=config["profile"]["runs"],
            device=config["device"],
        ),
    shell:
        logged(
            ON_GPUS,
            "python -m glueslim profile --model-dir {input} --name {wildcards.model} --out {output}"
            " --threads {threads} {params.args}",
        )
