# Renders to results/leaderboard/ (its declared outputs, which Snakemake removes before a re-run and after a
# failure) and, once every file is written, publishes copies to reports/ (`--publish`): reports/ is no
# output of any rule, so a failed re-run keeps the last good report there.
rule leaderboard:
    input:
        scores=expand("results/scores/{model}.json", model=RUNS),  # every seed's run
        profiles=expand("results/profile/{model}.json", model=MODELS),
        models=expand("results/models/{model}/{task}", model=RUNS, task=TASKS),
        data=expand("results/data/{task}", task=DATA_TASKS),
        ablations=lambda w: ABLATIONS,  # results/ablations/*.json that other rule files register
        submissions=expand(
            "results/glue_submission/{model}.{ext}",
            model=TRAINED if config["glue_submission"] else [],
            ext=("zip", "json"),
        ),
    output:
        json=report(
            "results/leaderboard/leaderboard.json",
            caption="../report/leaderboard_json.rst",
            category="Leaderboard",
        ),
        html=report(
            "results/leaderboard/leaderboard.html",
            caption="../report/leaderboard.rst",
            category="Leaderboard",
        ),
        pareto=report(
            "results/leaderboard/figures/pareto.svg",
            caption="../report/pareto.rst",
            category="Figures",
        ),
        latency_length=report(
            "results/leaderboard/figures/latency_vs_length.svg",
            caption="../report/latency_vs_length.rst",
            category="Figures",
        ),
        latency_batch=report(
            "results/leaderboard/figures/latency_vs_batch.svg",
            caption="../report/latency_vs_batch.rst",
            category="Figures",
        ),
        relative=report(
            "results/leaderboard/figures/relative.svg",
            caption="../report/relative.rst",
            category="Figures",
        ),
    log:
        log_file("leaderboard"),
    benchmark:
        benchmark_file("leaderboard")
    conda:
        CONDA_ENV
    threads: 1
    resources:
        **job_resources("light"),
    params:
        models=" ".join(MODELS),
        tasks=" ".join(TASKS),
        config=lambda w: shlex.quote(json.dumps(config, sort_keys=True)),
        skipped=shlex.quote(json.dumps(SKIPPED_FORMS)),  # forms this device has no native kernels for
        submissions="--submissions results/glue_submission" if config["glue_submission"] else "",
        runs=lambda w: flags(
            seed_runs=json.dumps(runs_by_row(config)) if SEED_RUNS else None,  # rows shown as mean and sd
            twins=json.dumps(TWINS) if TWINS else None,
            published=json.dumps(published_map(config)) if config["published"] else None,
            ablation=(
                json.dumps({"title": "What each ingredient adds", **config["ablation"]})
                if config["ablation"]
                else None
            ),
        ),
    shell:
        logged(
            "python -m glueslim leaderboard --results results --models {params.models} --teacher teacher"
            " --tasks {params.tasks} --config-json {params.config} --out-json {output.json}"
            " --out-html {output.html} --out-figures results/leaderboard/figures {params.submissions}"
            " --skipped-forms {params.skipped} {params.runs} --publish reports",
        )
