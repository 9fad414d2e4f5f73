rule prepare_data:
    output:
        directory("results/data/{task}"),
    log:
        log_file("prepare_data", "task"),
    benchmark:
        benchmark_file("prepare_data", "task")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **job_resources("light"),
    params:
        args=lambda w: flags(
            glue_dir=GLUE_DIR,
            hub_revision=config["data"]["hub_revision"],
            max_train=train_cap(w.task),
            seed=config["seed"],
            no_check_row_counts=not config["data"]["check_row_counts"],
        ),
    shell:
        logged(
            "python -m glueslim prepare-data --task {wildcards.task} --out {output} {params.args}",
        )
