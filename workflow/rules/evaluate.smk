rule predict:
    input:
        data=lambda w: f"results/data/{STEM_TASK[w.stem]}",
        model=lambda w: model_dir(w.model, STEM_TASK[w.stem]),
    output:
        "results/predictions/{model}/{stem}.tsv",
    log:
        log_file("predict", "model", "stem"),
    benchmark:
        benchmark_file("predict", "model", "stem")
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **job_resources("infer", gpu=model_gpus),
    params:
        task=lambda w: STEM_TASK[w.stem],
        args=lambda w: flags(
            device=config["device"],
            max_seq_length=recipe(STEM_TASK[w.stem])["max_seq_length"],
            eval_batch_size=recipe(STEM_TASK[w.stem])["eval_batch_size"],
        ),
    shell:
        logged(
            ON_GPUS,
            "python -m glueslim predict --task {params.task} --stem {wildcards.stem} --data {input.data}"
            " --model-dir {input.model} --out {output} --threads {threads} {params.args}",
        )


rule score:
    input:
        predictions=lambda w: expand("results/predictions/{model}/{stem}.tsv", model=w.model, stem=STEM_TASK),
        data=expand("results/data/{task}", task=TASKS),  # every prediction is checked against the prepared dev split
    output:
        "results/scores/{model}.json",
    log:
        log_file("score", "model"),
    benchmark:
        benchmark_file("score", "model")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **job_resources("light"),
    params:
        tasks=" ".join(TASKS),
    shell:
        logged(
            "python -m glueslim score --model {wildcards.model} --predictions results/predictions/{wildcards.model}"
            " --tasks {params.tasks} --data results/data --out {output}",
        )
