"""Tests of the published figures on the leaderboard (glueslim.report.published_view, relative_chart): a row's
published % of teacher and speed-up beside ours, the "Published figures" table, the hollow reference markers of
the "% of teacher against speed-up" chart, escaping, and that published numbers never enter our scores."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from glueslim.errors import UserError
from glueslim.published import load_references
from glueslim.report.published_view import safe_url, summary
from glueslim.report.render import figures, render_html
from report_fixtures import EVIL, STUDENT, TASKS, TEACHER, build, results, row_of


def entry(**over) -> dict:
    base = {"model": "DistilBERT", "recipe": "distilbert", "citation": "Sanh et al. 2019",
            "title": "DistilBERT, a distilled version of BERT", "url": "https://arxiv.org/abs/1910.01108",
            "source": "Table 1", "teacher": "BERT-base", "split": "dev", "tasks": None, "score": 77.0,
            "teacher_score": 79.5, "pct_of_teacher": 96.9, "speedup": 1.6, "hardware": "CPU",
            "params_m": 66, "layers": 6, "hidden": 768}
    return {**base, **over}


REFS = {
    "distilbert": entry(),
    "tinybert-4": entry(model=f"TinyBERT-4 {EVIL}", recipe="tinybert", citation=f"Jiao et al. {EVIL}",
                        title=EVIL, url="https://arxiv.org/abs/1909.10351", split="test", score=None,
                        teacher_score=None, pct_of_teacher=96.8, speedup=9.4, hardware=EVIL, params_m=14.5,
                        layers=4, hidden=312, notes=EVIL),
    "no-speed": entry(model="Q-BERT", recipe="quantization", score=None, teacher_score=None, pct_of_teacher=99.3,
                      speedup=None),
}


@pytest.fixture
def refs_file(tmp_path: Path) -> Path:
    path = tmp_path / "published.yaml"
    path.write_text(yaml.safe_dump(REFS, sort_keys=False), encoding="utf-8")
    return path


def test_summary_text_and_links():
    assert summary(entry()) == "96.9% · 1.6x (dev)"
    assert summary(entry(pct_of_teacher=None, score=77.0, teacher_score=80.0, split="test")) == "96.2% · 1.6x (test)"
    assert summary(entry(pct_of_teacher=None, score=None, speedup=None)) == "— · — (dev)"
    assert safe_url("https://arxiv.org/abs/1") == "https://arxiv.org/abs/1"
    assert safe_url("javascript:alert(1)") is None and safe_url(None) is None


def test_published_fields_beside_our_rows_never_in_our_scores(results, refs_file):
    refs = load_references(refs_file)
    plain = build(results)
    doc = build(results, published={STUDENT: "tinybert-4"}, references=refs)
    s = row_of(doc, STUDENT)
    assert s["published"]["id"] == "tinybert-4" and s["published"]["summary"] == "96.8% · 9.4x (test)"
    assert s["published"]["pct_of_teacher"] == 96.8 and s["published"]["speedup"] == 9.4
    assert row_of(doc, TEACHER)["published"] is None
    # ours are untouched: scores, % of teacher, speed-up, ranking, frontier, budgets
    for key in ("task_scores", "glue_score", "pct_of_teacher", "speedup", "pareto_optimal"):
        assert s[key] == row_of(plain, STUDENT)[key]
    assert [r["model"] for r in doc["rows"]] == [r["model"] for r in plain["rows"]]
    assert doc["pareto"] == plain["pareto"] and doc["best_per_budget"] == plain["best_per_budget"]
    # the table: every reference of the file, in its order, with the rows linked to it
    assert [e["id"] for e in doc["published"]] == list(REFS)
    assert [e["rows"] for e in doc["published"]] == [[], [STUDENT], []]
    assert plain["published"] is None
    json.dumps(doc, allow_nan=False)


def test_published_in_the_page_and_the_chart_escaped(results, refs_file):
    doc = build(results, published={STUDENT: "tinybert-4", TEACHER: "distilbert"},
                references=load_references(refs_file))
    html = render_html(doc)
    assert EVIL not in html and "<script>alert" not in html.split('id="leaderboard-data">')[0]
    assert "Jiao et al. &lt;script&gt;alert(1)&lt;/script&gt;" in html
    summary_table = re.search(r'id="summary-table">.*?</table>', html, re.S).group(0)
    assert "96.8% · 9.4x (test)" in summary_table and "published," in summary_table
    assert '<a href="https://arxiv.org/abs/1909.10351"' in summary_table
    table = re.search(r'<table class="sortable" id="published-table">.*?</table>', html, re.S).group(0)
    assert table.count("<tr data-ref=") == 3 and '<a href="https://arxiv.org/abs/1910.01108"' in table
    assert "9.4×" in table and ">96.8<" in table and ">14.5<" in table
    svg = figures(doc)["relative.svg"]
    # references with both figures are hollow markers; the one without a speed-up is left out
    assert svg.count('class="reference"') == 2 and 'data-ref="no-speed"' not in svg
    assert re.search(r'class="reference" data-ref="distilbert" fill="none"', svg)
    assert "published (hollow; cited)" in svg and EVIL not in svg and "&lt;script&gt;" in svg
    assert svg.count('class="point"') == 2  # our rows, filled


def test_a_link_is_only_ever_http(results):
    refs = {"odd": entry(url="javascript:alert(1)")}  # the loader's schema refuses it; the page never links it
    html = render_html(build(results, published={STUDENT: "odd"}, references=refs))
    assert "javascript:" not in html.split('id="leaderboard-data">')[0]


def test_bad_published_maps_are_user_errors(results, refs_file):
    refs = load_references(refs_file)
    with pytest.raises(UserError, match=r"--published.distil3: 'distlbert' is not a reference id.*distilbert"):
        build(results, published={STUDENT: "distlbert"}, references=refs)
    with pytest.raises(UserError, match="--published: row 'ghost' is not in --models"):
        build(results, published={"ghost": "distilbert"}, references=refs)


def test_cli_published_and_references(results, refs_file, tmp_path):
    out = tmp_path / "out"
    base = [sys.executable, "-m", "glueslim", "leaderboard", "--results", str(results), "--models", TEACHER, STUDENT,
            "--teacher", TEACHER, "--tasks", *TASKS, "--out-json", str(out / "leaderboard.json"),
            "--out-html", str(out / "leaderboard.html")]
    proc = subprocess.run([*base, "--published", json.dumps({STUDENT: "tinybert-4"}), "--references", str(refs_file)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "leaderboard.json").read_text())
    assert row_of(doc, STUDENT)["published"]["citation"] == f"Jiao et al. {EVIL}"
    # the shipped reference file is the default
    proc = subprocess.run([*base, "--published", "{}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "leaderboard.json").read_text())["published"]
    for args, msg in (([*base, "--published", "[1"], "--published is not valid JSON"),
                      ([*base, "--references", str(tmp_path / "none.yaml")], "none.yaml does not exist")):
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and msg in proc.stderr and "Traceback" not in proc.stderr
