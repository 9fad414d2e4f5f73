"""Tests of the leaderboard's seeds (glueslim.report.seeds, comparisons): a row's mean and sample sd over its
runs' score files, the noise rule and its "≈" marker, the KD-vs-twin verdicts, the seed-aware ablation table,
and the --seed-runs / --twins / --ablation flags."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys

import pytest

from glueslim.errors import UserError
from glueslim.report.comparisons import VERDICTS, verdict
from glueslim.report.render import figures, render_html
from glueslim.report.seeds import mean_sd, within_noise
from report_fixtures import (EVIL, METRICS, STUDENT, TASKS, TEACHER, add_model, build, results, row_of,
                             write_scores)

# three runs of the student: (sst2 accuracy, mrpc f1, mrpc accuracy); the first is the fixture's own
STUDENT_RUNS = {STUDENT: (0.85, 0.80, 0.76), f"{STUDENT}-seed43": (0.83, 0.79, 0.75),
                f"{STUDENT}-seed44": (0.88, 0.82, 0.70)}
TEACHER_GLUE = statistics.mean([0.90, statistics.mean([0.88, 0.84])])


def metrics_of(sst2: float, f1: float, acc: float) -> dict:
    return {"sst2": {"accuracy": sst2}, "mrpc": {"f1": f1, "accuracy": acc}}


def glue_of(sst2: float, f1: float, acc: float) -> float:
    return statistics.mean([sst2, statistics.mean([f1, acc])])


def seed(results, row: str, runs: dict) -> dict:
    """Write every run's score file (the first is the row's own) and return the --seed-runs entry."""
    for run, m in runs.items():
        write_scores(results, run, metrics_of(*m))
    return {row: {"seeds": [42 + i for i in range(len(runs))], "runs": list(runs)}}


def summary_rows(html: str) -> dict[str, str]:
    """{model: its summary-table <tr>}."""
    table = re.search(r'<table class="sortable" id="summary-table">.*?</table>', html, re.S).group(0)
    rows = re.findall(r"<tr[^>]*>.*?</tr>", table.split("<tbody>")[1], re.S)
    return {re.search(r"<strong>([^<]+)</strong>", r).group(1): r for r in rows}


# --------------------------------------------------------------------------------------------
# the rule
# --------------------------------------------------------------------------------------------

def test_within_noise_rule():
    assert within_noise(0.80, 0.01, 0.78, 0.01) is True  # |0.02| <= 0.02
    assert within_noise(0.80, 0.01, 0.77, 0.01) is False
    assert within_noise(0.80, None, 0.79, 0.02) is True  # a missing sd counts 0
    assert within_noise(0.80, 0.005, 0.79, None) is False
    assert within_noise(0.80, None, 0.80, None) is None  # both missing: unknown
    assert within_noise(None, 0.01, 0.80, 0.01) is None
    assert within_noise(0.70, 0.05, 0.80, 0.05) is True  # symmetric
    assert mean_sd([0.5, 0.7, 0.9]) == (pytest.approx(0.7), pytest.approx(statistics.stdev([0.5, 0.7, 0.9])))
    assert mean_sd([0.5]) == (0.5, None) and mean_sd([0.5, None]) == (None, None)


def test_twin_verdicts():
    assert verdict(0.80, 0.01, 0.75, 0.01) == ("kd_better", VERDICTS["kd_better"])
    assert VERDICTS["kd_better"] == "KD beats its twin by more than the seeds' spread"
    assert verdict(0.80, 0.02, 0.79, 0.01) == ("within_noise", "within noise")
    assert verdict(0.70, 0.01, 0.75, 0.01) == ("twin_better", "twin better")
    assert verdict(0.80, None, 0.75, None)[0] == "unknown"  # one run each: no spread to judge by
    assert verdict(None, 0.01, 0.75, 0.01)[0] == "unknown"


# --------------------------------------------------------------------------------------------
# aggregation
# --------------------------------------------------------------------------------------------

def test_seeded_row_is_the_mean_and_sample_sd_of_its_runs(results):
    seed_runs = seed(results, STUDENT, STUDENT_RUNS)
    doc = build(results, seed_runs=seed_runs)
    s, t = row_of(doc, STUDENT), row_of(doc, TEACHER)
    runs = list(STUDENT_RUNS.values())
    sst2 = [r[0] for r in runs]
    mrpc = [statistics.mean(r[1:]) for r in runs]
    glues = [glue_of(*r) for r in runs]
    assert s["task_scores"] == pytest.approx({"sst2": statistics.mean(sst2), "mrpc": statistics.mean(mrpc)})
    assert s["task_metrics"]["mrpc"] == pytest.approx({"f1": statistics.mean(r[1] for r in runs),
                                                      "accuracy": statistics.mean(r[2] for r in runs)})
    assert s["glue_score"] == pytest.approx(statistics.mean(glues))
    assert s["glue_score_without_wnli"] == pytest.approx(statistics.mean(glues))
    assert s["pct_of_teacher"] == pytest.approx(statistics.mean(glues) / TEACHER_GLUE * 100)
    rec = s["seeds"]
    assert rec["runs"] == list(STUDENT_RUNS) and rec["seeds"] == [42, 43, 44] and rec["n_runs"] == 3
    assert rec["glue_scores"] == pytest.approx(glues)
    assert rec["sd"] == pytest.approx(statistics.stdev(glues))  # ddof=1
    assert rec["sd_without_wnli"] == pytest.approx(statistics.stdev(glues))
    assert rec["task_sd"] == pytest.approx({"sst2": statistics.stdev(sst2), "mrpc": statistics.stdev(mrpc)})
    assert rec["pct_of_teacher_sd"] == pytest.approx(statistics.stdev(glues) / TEACHER_GLUE * 100)
    # the teacher ran once: its record has one run and no sd
    assert t["seeds"]["runs"] == [TEACHER] and t["seeds"]["sd"] is None and t["seeds"]["n_runs"] == 1
    json.dumps(doc, allow_nan=False)


def test_everything_downstream_uses_the_means(results):
    seed_runs = seed(results, STUDENT, STUDENT_RUNS)
    doc = build(results, seed_runs=seed_runs)
    mean = statistics.mean(glue_of(*r) for r in STUDENT_RUNS.values())
    sd = statistics.stdev(glue_of(*r) for r in STUDENT_RUNS.values())
    best = {e["model"]: e["score"] for b in doc["best_per_budget"] for e in b["budgets"] if e["model"]}
    assert best[STUDENT] == pytest.approx(mean)
    html = render_html(doc)
    pareto = re.search(r'aria-label="GLUE score against latency.*?</svg>', html, re.S).group(0)
    assert pareto.count('class="errbar"') == 1 and f'data-model="{STUDENT}"' in pareto
    assert f"GLUE {mean * 100:.1f} ± {sd * 100:.1f} (mean ± sd over 3 seeds)" in pareto
    # the summary table shows mean ± sd, the heat map the per-task sd
    cell = summary_rows(html)[STUDENT]
    assert f"{mean * 100:.1f} <span class=\"pm\">± {sd * 100:.1f}</span>" in cell and "3 seeds" in cell
    heat = re.search(r'id="heatmap-table">.*?</table>', html, re.S).group(0)
    sst2_sd = statistics.stdev(r[0] for r in STUDENT_RUNS.values())
    assert f'over the row\'s seeds">± {sst2_sd * 100:.1f}</span>' in heat
    assert "The teacher is trained once" in html
    rel = figures(doc)["relative.svg"]
    assert rel.count('class="errbar"') == 1 and 'class="reference"' not in rel  # no references given


def test_a_row_without_seeds_is_unchanged(results):
    plain = build(results)
    seeded = build(results, seed_runs={STUDENT: {"seeds": [42], "runs": [STUDENT]}})
    for key in ("task_scores", "glue_score", "pct_of_teacher"):
        assert row_of(seeded, STUDENT)[key] == row_of(plain, STUDENT)[key]
    assert row_of(plain, STUDENT)["seeds"]["sd"] is None
    assert "seeds-note" not in render_html(plain)


@pytest.mark.parametrize("spread", [0.0, 0.02, 0.05, 0.075, 0.085, 0.12])
def test_noise_marker_exactly_when_the_rule_says(results, spread):
    # the student's runs spread around 0.80 by ±spread; the teacher (0.88, one run) is ranked directly above it
    runs = {STUDENT: (0.80 - spread, 0.80 - spread, 0.80 - spread), f"{STUDENT}-seed43": (0.80, 0.80, 0.80),
            f"{STUDENT}-seed44": (0.80 + spread, 0.80 + spread, 0.80 + spread)}
    doc = build(results, seed_runs=seed(results, STUDENT, runs))
    glues = [glue_of(*r) for r in runs.values()]
    sd = statistics.stdev(glues)
    expected = abs(TEACHER_GLUE - statistics.mean(glues)) <= sd  # the teacher's sd is missing: counts 0
    assert [r["model"] for r in doc["rows"]] == [TEACHER, STUDENT]
    assert row_of(doc, STUDENT)["noise"]["within_noise"] is expected
    assert row_of(doc, TEACHER)["noise"] is None
    rows = summary_rows(render_html(doc))
    assert ('class="noise"' in rows[STUDENT]) is expected
    assert 'class="noise"' not in rows[TEACHER]


def test_no_marker_between_two_rows_of_one_run(results):
    doc = build(results)
    assert row_of(doc, STUDENT)["noise"]["within_noise"] is None
    assert 'class="noise"' not in summary_rows(render_html(doc))[STUDENT]


def test_bad_seed_runs_are_user_errors(results):
    write_scores(results, f"{STUDENT}-seed43", METRICS[STUDENT])
    with pytest.raises(UserError, match=rf"--seed-runs: run '{STUDENT}-seed44' of row '{STUDENT}'.*missing input"):
        build(results, seed_runs={STUDENT: {"seeds": [42, 43, 44],
                                            "runs": [STUDENT, f"{STUDENT}-seed43", f"{STUDENT}-seed44"]}})
    with pytest.raises(UserError, match="row 'ghost' is not in --models"):
        build(results, seed_runs={"ghost": {"seeds": [42], "runs": ["ghost"]}})
    with pytest.raises(UserError, match="must start with the row itself"):
        build(results, seed_runs={STUDENT: {"seeds": [43, 42], "runs": [f"{STUDENT}-seed43", STUDENT]}})
    with pytest.raises(UserError, match="list of 2 integers"):
        build(results, seed_runs={STUDENT: {"seeds": [42], "runs": [STUDENT, f"{STUDENT}-seed43"]}})
    with pytest.raises(UserError, match="also a row of --models"):
        build(results, seed_runs={STUDENT: {"seeds": [42, 43], "runs": [STUDENT, TEACHER]}})
    with pytest.raises(UserError, match="expected a JSON object"):
        build(results, seed_runs=[STUDENT])


# --------------------------------------------------------------------------------------------
# KD vs no-KD twin, the ingredient table
# --------------------------------------------------------------------------------------------

TWIN = f"{STUDENT}-nokd"


@pytest.mark.parametrize("twin_level, expected", [(0.70, "kd_better"), (0.815, "within_noise"), (0.92, "twin_better")])
def test_twin_table(results, twin_level, expected):
    add_model(results, TWIN)
    twin_runs = {TWIN: (twin_level - 0.01,) * 3, f"{TWIN}-seed43": (twin_level,) * 3,
                 f"{TWIN}-seed44": (twin_level + 0.01,) * 3}
    seed_runs = {**seed(results, STUDENT, STUDENT_RUNS), **seed(results, TWIN, twin_runs)}
    doc = build(results, models=(TEACHER, STUDENT, TWIN), seed_runs=seed_runs, twins={TWIN: STUDENT})
    kd = [glue_of(*r) for r in STUDENT_RUNS.values()]
    tw = [glue_of(*r) for r in twin_runs.values()]
    (pair,) = doc["twins"]
    assert (pair["kd"], pair["twin"]) == (STUDENT, TWIN)
    assert pair["kd_glue"] == pytest.approx(statistics.mean(kd))
    assert pair["twin_glue"] == pytest.approx(statistics.mean(tw))
    assert pair["delta"] == pytest.approx(statistics.mean(kd) - statistics.mean(tw))
    assert pair["spread"] == pytest.approx(statistics.stdev(kd) + statistics.stdev(tw))
    assert pair["verdict"] == expected and pair["verdict_text"] == VERDICTS[expected]
    html = render_html(doc)
    table = re.search(r'<table id="twins-table">.*?</table>', html, re.S).group(0)
    assert f'data-verdict="{expected}"' in table and VERDICTS[expected].replace("'", "&#39;") in table


def test_bad_twins_are_user_errors(results):
    with pytest.raises(UserError, match="--twins: twin 'ghost'"):
        build(results, twins={"ghost": STUDENT})
    with pytest.raises(UserError, match="paired with itself"):
        build(results, twins={STUDENT: STUDENT})
    assert build(results)["twins"] == []


def test_seed_ablation_table(results):
    add_model(results, TWIN)
    twin_runs = {TWIN: (0.70, 0.70, 0.70), f"{TWIN}-seed43": (0.80, 0.80, 0.80)}
    seed_runs = {**seed(results, STUDENT, STUDENT_RUNS), **seed(results, TWIN, twin_runs)}
    spec = {"title": f"What KD adds {EVIL}", "rows": [{"label": "gold labels only", "model": TWIN},
                                                      {"label": "+ prediction KD", "model": STUDENT},
                                                      {"label": "teacher", "model": TEACHER}]}
    doc = build(results, models=(TEACHER, STUDENT, TWIN), seed_runs=seed_runs, ablation=spec)
    tab = doc["seed_ablation"]
    kd = [glue_of(*r) for r in STUDENT_RUNS.values()]
    tw = [glue_of(*r) for r in twin_runs.values()]
    assert [r["label"] for r in tab["rows"]] == ["gold labels only", "+ prediction KD", "teacher"]
    first, second, third = tab["rows"]
    assert first["delta"] is None and first["within_noise"] is None and first["n_runs"] == 2
    assert first["sd"] == pytest.approx(statistics.stdev(tw))
    assert second["delta"] == pytest.approx(statistics.mean(kd) - statistics.mean(tw))
    assert second["within_noise"] is (abs(statistics.mean(kd) - statistics.mean(tw))
                                      <= statistics.stdev(kd) + statistics.stdev(tw))
    assert second["pct_of_teacher"] == pytest.approx(statistics.mean(kd) / TEACHER_GLUE * 100)
    assert third["delta"] == pytest.approx(TEACHER_GLUE - statistics.mean(kd))
    assert third["within_noise"] is (abs(TEACHER_GLUE - statistics.mean(kd)) <= statistics.stdev(kd))
    html = render_html(doc)
    assert 'id="seed-ablation-table"' in html and EVIL not in html and "What KD adds &lt;script&gt;" in html
    with pytest.raises(UserError, match=r"--ablation: rows\[0\] \('x'\): model 'ghost' is not in --models"):
        build(results, ablation={"title": "t", "rows": [{"label": "x", "model": "ghost"}]})
    with pytest.raises(UserError, match='"title" must be a non-empty string'):
        build(results, ablation={"title": "", "rows": [{"label": "x", "model": STUDENT}]})


def test_cli_flags(results, tmp_path):
    seed_runs = seed(results, STUDENT, STUDENT_RUNS)
    out = tmp_path / "out"
    base = [sys.executable, "-m", "glueslim", "leaderboard", "--results", str(results), "--models", TEACHER, STUDENT,
            "--teacher", TEACHER, "--tasks", *TASKS, "--out-json", str(out / "leaderboard.json"),
            "--out-html", str(out / "leaderboard.html"), "--out-figures", str(out / "figures")]
    abl = {"title": "ingredients", "rows": [{"label": "KD", "model": STUDENT}]}
    proc = subprocess.run([*base, "--seed-runs", json.dumps(seed_runs), "--ablation", json.dumps(abl)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "leaderboard.json").read_text())
    assert doc["rows"][1]["seeds"]["n_runs"] == 3 and doc["seed_ablation"]["title"] == "ingredients"
    assert (out / "figures" / "relative.svg").read_text().startswith("<svg xmlns=")
    for flag in ("--seed-runs", "--twins", "--ablation"):
        proc = subprocess.run([*base, flag, "{not json"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and f"{flag} is not valid JSON" in proc.stderr and "Traceback" not in proc.stderr
    (results / "scores" / f"{STUDENT}-seed44.json").unlink()
    proc = subprocess.run([*base, "--seed-runs", json.dumps(seed_runs)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and f"{STUDENT}-seed44.json" in proc.stderr and "Traceback" not in proc.stderr
