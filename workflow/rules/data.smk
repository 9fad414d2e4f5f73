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


# The same task without the training cap: the source of the transfer set (distill.smk's transfer_set)
use rule prepare_data as prepare_uncapped_data with:
    output:
        directory("results/data-uncapped/{task}"),
    log:
        log_file("prepare_uncapped_data", "task"),
    benchmark:
        benchmark_file("prepare_uncapped_data", "task")
    params:
        args=lambda w: flags(
            glue_dir=GLUE_DIR,
            hub_revision=config["data"]["hub_revision"],
            seed=config["seed"],
            no_check_row_counts=not config["data"]["check_row_counts"],
        ),
