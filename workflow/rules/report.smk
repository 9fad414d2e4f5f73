rule leaderboard:
    input:
        scores=expand("results/scores/{model}.json", model=MODELS),
        profiles=expand("results/profile/{model}.json", model=MODELS),
        models=expand("results/models/{model}/{task}", model=MODELS, task=TASKS),
        data=expand("results/data/{task}", task=DATA_TASKS),
        ablations=lambda w: ABLATIONS,  # results/ablations/*.json that other rule files register
    output:
        json=report(
            "reports/leaderboard.json",
            caption="../report/leaderboard_json.rst",
            category="Leaderboard",
        ),
        html=report(
            "reports/leaderboard.html",
            caption="../report/leaderboard.rst",
            category="Leaderboard",
        ),
        pareto=report(
            "reports/figures/pareto.svg",
            caption="../report/pareto.rst",
            category="Figures",
        ),
        latency_length=report(
            "reports/figures/latency_vs_length.svg",
            caption="../report/latency_vs_length.rst",
            category="Figures",
        ),
        latency_batch=report(
            "reports/figures/latency_vs_batch.svg",
            caption="../report/latency_vs_batch.rst",
            category="Figures",
        ),
    params:
        models=" ".join(MODELS),
        tasks=" ".join(TASKS),
        config=lambda w: shlex.quote(json.dumps(config, sort_keys=True)),
    conda: CONDA_ENV
    log: log_file("leaderboard")
    benchmark: benchmark_file("leaderboard")
    threads: 1
    resources: **job_resources("light")
    shell:
        "python -m glueslim leaderboard --results results --models {params.models} --teacher teacher"
        " --tasks {params.tasks} --config-json {params.config} --out-json {output.json}"
        " --out-html {output.html} --out-figures reports/figures > {log} 2>&1"
