# GLUE server submissions (glueslim.submission): every model's test-set predictions, one file per server
# file, zipped as results/glue_submission/<model>.zip; the leaderboard links each zip and publishes it to
# reports/glue_submission/. Test predictions are never scored: their labels are not public.
from glueslim.submission import server_stems  # noqa: E402

TEST_STEMS = server_stems(TASKS, config["include_diagnostic"])  # stem -> ServerFile (task, split, model task)


rule predict_test:
    input:
        data=lambda w: f"results/data/{TEST_STEMS[w.test_stem].task}",
        model=lambda w: model_dir(w.model, TEST_STEMS[w.test_stem].model_task),
    output:
        "results/predictions_test/{model}/{test_stem}.tsv",
    log:
        log_file("predict_test", "model", "test_stem"),
    benchmark:
        benchmark_file("predict_test", "model", "test_stem")
    wildcard_constraints:
        test_stem=one_of(TEST_STEMS),
    conda:
        CONDA_ENV
    threads: THREADS
    resources:
        **job_resources("infer", gpu=model_gpus),
    params:
        args=lambda w: flags(
            device=config["device"],
            max_seq_length=recipe(TEST_STEMS[w.test_stem].model_task)["max_seq_length"],
            eval_batch_size=recipe(TEST_STEMS[w.test_stem].model_task)["eval_batch_size"],
        ),
    shell:
        logged(
            ON_GPUS,
            "python -m glueslim predict-test --stem {wildcards.test_stem} --data {input.data}"
            " --model-dir {input.model} --out {output} --threads {threads} {params.args}",
        )


rule glue_submission:
    input:
        lambda w: expand("results/predictions_test/{model}/{stem}.tsv", model=w.model, stem=TEST_STEMS),
    output:
        zip=report(
            "results/glue_submission/{model}.zip",
            caption="../report/glue_submission.rst",
            category="GLUE submission",
            labels={"model": "{model}"},
        ),
        summary="results/glue_submission/{model}.json",
    log:
        log_file("glue_submission", "model"),
    benchmark:
        benchmark_file("glue_submission", "model")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **job_resources("light"),
    params:
        tasks=" ".join(TASKS),
        diagnostic=flags(include_diagnostic=config["include_diagnostic"]),
    shell:
        logged(
            "python -m glueslim glue-submission --model {wildcards.model}"
            " --predictions results/predictions_test/{wildcards.model} --tasks {params.tasks} {params.diagnostic}"
            " --out {output.zip} --out-json {output.summary}",
        )
