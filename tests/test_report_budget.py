"""Tests of glueslim.report.budget: the "best per latency budget" tables (pure functions of the rows), and the
tables in the built document and the page."""

from __future__ import annotations

import re

import pytest

from glueslim.report.budget import best_per_budget, budget_batches, budget_tables
from glueslim.report.render import render_html
from report_fixtures import STUDENT, TEACHER, add_form, build, results, row_of  # noqa: F401


def _row(model: str, glue: float | None, lat: dict[int, float], form: str = "fp32", emulated: bool = False) -> dict:
    return {"model": model, "form": form, "backend": "pytorch", "glue_score": glue, "emulated": emulated,
            "pct_of_teacher": None if glue is None else glue / 0.88 * 100,
            "latency_ms": {f"batch_{b}": {"median": ms, "batch_size": b, "seq_length": 128} for b, ms in lat.items()}}


ROWS = [
    _row("teacher", 0.88, {1: 10.0, 8: 70.0, 32: 200.0}),
    _row("teacher-bf16", 0.88, {1: 4.0, 8: 30.0, 32: 40.0}, "bf16"),  # ties the teacher's score, faster
    _row("teacher-int8", 0.87, {1: 3.0, 8: 20.0, 32: 38.0}, "int8-static"),
    _row("distil", 0.80, {1: 2.0, 8: 14.0, 32: 19.0}),
    _row("distil-int8", 0.80, {1: 2.0, 8: 9.0, 32: 20.0}, "int8-static"),  # ties distil at batch 1 on both
    _row("tiny", 0.70, {1: 0.9, 8: 6.0}),  # not profiled at batch 32
    _row("broken", None, {1: 0.5, 8: 1.0, 32: 2.0}),  # no GLUE score: never chosen
]


def _best(table: dict) -> list[str | None]:
    return [b["model"] for b in table["budgets"]]


def test_budgets_are_fractions_of_the_teacher_fp32_latency():
    t = best_per_budget(ROWS, "teacher", "batch_1")
    assert t["teacher_latency_ms"] == 10.0 and t["batch_size"] == 1 and t["seq_length"] == 128
    assert [b["budget_ms"] for b in t["budgets"]] == pytest.approx([10.0, 5.0, 10 / 3, 2.0, 1.0])
    assert [b["label"] for b in t["budgets"]] == ["×1", "×1/2", "×1/3", "×1/5", "×1/10"]
    # ×1 and ×1/2: the bf16 teacher ties the fp32 teacher's score and is faster; ×1/3 (3.33 ms): int8 (3.0 ms);
    # ×1/5 (2 ms): distil and distil-int8 tie on score and latency: the earlier row; ×1/10 (1 ms): tiny is 0.9 ms
    assert _best(t) == ["teacher-bf16", "teacher-bf16", "teacher-int8", "distil", "tiny"]
    b = t["budgets"][2]
    assert (b["form"], b["score"], b["latency_ms"], b["emulated"]) == ("int8-static", 0.87, 3.0, False)
    assert b["pct_of_teacher"] == pytest.approx(0.87 / 0.88 * 100)
    assert t["unscored"] == ["broken"] and t["not_timed"] == []


def test_none_meets_a_budget_and_rows_lacking_the_batch_are_listed():
    t = best_per_budget(ROWS, "teacher", "batch_32")
    # ×1/5 = 40 ms: bf16 (40 ms) meets it exactly; ×1/10 = 20 ms: distil (19 ms) and distil-int8 (20 ms) tie on
    # score: the faster; tiny has no batch 32 and is never chosen
    assert _best(t) == ["teacher-bf16"] * 4 + ["distil"]
    assert t["not_timed"] == ["tiny"]
    slow = [_row("teacher", 0.88, {1: 10.0}), _row("distil", 0.80, {1: 1.5})]
    assert _best(best_per_budget(slow, "teacher", "batch_1")) == ["teacher", "distil", "distil", "distil", None]
    entry = best_per_budget(slow, "teacher", "batch_1")["budgets"][-1]
    assert entry == {"fraction": 0.1, "label": "×1/10", "budget_ms": pytest.approx(1.0), "model": None, "form": None,
                     "backend": None, "score": None, "latency_ms": None, "pct_of_teacher": None, "emulated": None}


def test_a_teacher_without_that_batch_gives_no_budgets():
    rows = [_row("teacher", 0.88, {8: 70.0}), _row("distil", 0.80, {1: 2.0, 8: 14.0})]
    t = best_per_budget(rows, "teacher", "batch_1")
    assert t["teacher_latency_ms"] is None and t["budgets"] == [] and t["not_timed"] == ["teacher"]


def test_the_two_batches_are_1_and_the_largest_every_row_was_profiled_at():
    assert budget_batches(ROWS) == [("batch_1", "batch 1"),
                                    ("batch_8", "batch 8: the largest batch size every row was profiled at")]
    assert budget_batches([r for r in ROWS if r["model"] != "tiny"])[1][0] == "batch_32"
    assert budget_batches([_row("teacher", 0.88, {1: 10.0})]) == [("batch_1", "batch 1")]
    assert budget_batches([]) == []
    tables = budget_tables(ROWS, "teacher")
    assert [t["latency_key"] for t in tables] == ["batch_1", "batch_8"]
    assert tables[1]["basis"].startswith("batch 8: the largest")


def test_emulated_rows_can_be_chosen_and_say_so():
    rows = [_row("teacher", 0.88, {1: 10.0}), _row("teacher-bf16", 0.88, {1: 9.0}, "bf16", emulated=True)]
    t = best_per_budget(rows, "teacher", "batch_1")
    assert t["budgets"][0]["model"] == "teacher-bf16" and t["budgets"][0]["emulated"] is True


def test_the_budget_tables_in_the_document_and_the_page(results):
    bf16 = add_form(results, TEACHER, "bf16", lat={1: 6.0, 32: 100.0})
    doc = build(results, models=(TEACHER, STUDENT, bf16))
    tables = doc["best_per_budget"]
    assert [t["latency_key"] for t in tables] == ["batch_1", "batch_32"]
    # batch 1: teacher 10 ms; bf16 6 ms at the teacher's score; the student 4 ms (GLUE 0.815)
    assert _best(tables[0]) == [bf16, STUDENT, None, None, None]
    assert _best(tables[1]) == [bf16, bf16, None, None, None]  # teacher 200 ms, bf16 100 ms, student 80 ms
    assert tables[0]["budgets"][1]["pct_of_teacher"] == pytest.approx(row_of(doc, STUDENT)["pct_of_teacher"])
    html = render_html(doc)
    section = html[html.index('<h2 id="budget">'):html.index('<h2 id="heatmap">')]
    assert "At batch 1 × 128 tokens" in section
    assert "At batch 32: the largest batch size every row was profiled at × 128 tokens" in section
    assert section.count("none meets it") == 3 + 3
    first = re.search(r'id="budget-table-1">.*?</table>', section, re.S).group(0)
    assert "<td>5.00</td>" in first and "<td>100.0</td>" in first and "81.5" in first  # budget ms, % of teacher, GLUE
