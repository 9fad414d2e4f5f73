"""benchmarks/frontier_table.py: the frontier's result file, from a leaderboard.json, and its targets."""

import json
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import frontier_table  # noqa: E402


def row(model, glue, pct, speed, sd=None, teacher=False, published=None):
    return {"model": model, "method": "m", "is_teacher": teacher, "num_layers": 3, "parameters": 17.4e6,
            "latency_ms": {"batch_1": {"median": 10.0 / speed}}, "speedup": {"batch_1": speed, "batch_32": speed},
            "glue_score": glue, "pct_of_teacher": pct, "task_scores": {"cola": glue},
            "seeds": {"sd": sd, "n_runs": 3 if sd is not None else 1, "pct_of_teacher_sd": sd and 100 * sd / 0.6,
                      "task_sd": {"cola": sd}},
            "published": published}


def leaderboard(rows, twins=()):
    return {"tasks": ["cola"], "split": "dev", "rows": rows, "twins": list(twins), "seed_ablation": None,
            "provenance": {"device": {"name": "a CPU", "threads": 2, "cpu_flags": ["avx512_vnni"]}}, "generated_at": "2026-12-03T00:00:00Z"}


def test_targets_are_met_only_by_a_row_that_reaches_both_figures():
    doc = leaderboard([row("teacher", 0.64, 100.0, 1.0, teacher=True), row("a", 0.625, 97.7, 3.2, 0.004),
                       row("b", 0.62, 96.9, 9.0, 0.01)])
    lines = frontier_table._targets(frontier_table.extract(doc, 60.0, 10))
    assert "≥ 97% of the teacher at ≥ 3x (batch 1): **met** by a (97.7% at 3.20x)" in lines[0]
    assert "≥ 93% of the teacher at ≥ 8x (batch 1): **met** by b" in lines[1]
    assert "teacher GLUE (dev) ≥ 63.4: 64.0, **met**" in lines[-1]
    doc = leaderboard([row("teacher", 0.62, 100.0, 1.0, teacher=True), row("a", 0.58, 93.5, 3.5, 0.004)])
    lines = frontier_table._targets(frontier_table.extract(doc, None, None))
    assert "**not met**; the best at ≥ 3x is a, 93.5% ± 0.7 at 3.50x" in lines[0]
    assert "no student reaches 8x (the fastest: a at 3.50x)" in lines[1]
    assert "62.0, **not met**" in lines[-1]


def test_the_markdown_shows_means_with_their_spread_and_the_published_figures_apart():
    pub = {"id": "distilbert", "citation": "Sanh et al. 2019", "pct_of_teacher": 96.9, "speedup": 1.63,
           "split": "dev", "hardware": "CPU"}
    twins = [{"kd": "a", "twin": "a-nokd", "delta": 0.02, "spread": 0.01, "verdict_text": "KD beats its twin"}]
    doc = leaderboard([row("teacher", 0.64, 100.0, 1.0, teacher=True), row("a", 0.6, 93.8, 2.0, 0.005, published=pub)],
                      twins)
    md = frontier_table.render(frontier_table.extract(doc, 3600.0, 100))
    assert "| a | m | 3 | 17.4M | 5.0 | 2.00x / 2.00x | 60.0 ± 0.5 | 3 | 93.8% ± 0.8 | 96.9% · 1.63x (Sanh et al. 2019, dev) |" in md
    assert "Wall time: 60.0 min for 100 jobs" in md and "Machine: a CPU, 2 threads (flags: avx512_vnni)." in md
    assert "a against its twin a-nokd: Δ 2.0 points, seeds' spread 1.0: **KD beats its twin**." in md
    assert "100 jobs (`snakemake --cores 2`)." in md  # an extract without the command line: the plain one
    cmd = "snakemake --cores 2 --set-threads distill_student=1"
    assert f"100 jobs (`{cmd}`)." in frontier_table.render(frontier_table.extract(doc, 3600.0, 100, cmd))


def test_committed_frontier_results_render_to_their_markdown():
    for extract in sorted((ROOT / "benchmarks" / "results").glob("*-frontier.json")):
        ex = json.loads(extract.read_text(encoding="utf-8"))
        assert frontier_table.render(ex) == extract.with_suffix(".md").read_text(encoding="utf-8"), extract
