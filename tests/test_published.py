"""glueslim.published: the shipped reference file loads and is consistent with itself; a doctored copy fails
with one line naming the file, the reference id and the key; the config's `published:` map is checked; an
entry's display fields."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from glueslim.errors import UserError
from glueslim.published import (
    PCT_TOLERANCE, RECIPES, REFERENCES, load_references, published_problems, reference_row,
)


@pytest.fixture(scope="module")
def shipped() -> dict:
    return load_references()


def write(tmp_path, refs) -> str:
    path = tmp_path / "refs.yaml"
    path.write_text(yaml.safe_dump(refs, sort_keys=False), encoding="utf-8")
    return str(path)


def one_line_error(path: str) -> str:
    with pytest.raises(UserError) as e:
        load_references(path)
    message = str(e.value)
    assert "\n" not in message, message
    assert message.startswith(path + ": "), message
    return message


# ---------------------------------------------------------------- the shipped file

def test_the_shipped_file_sits_beside_the_module_and_loads(shipped):
    assert REFERENCES.name == "published.yaml" and REFERENCES.is_file()
    assert shipped, "no references"
    assert list(shipped) == list(yaml.safe_load(REFERENCES.read_text(encoding="utf-8")))  # the file's order


def test_every_shipped_entry_is_cited_with_its_split(shipped):
    for rid, e in shipped.items():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rid), rid
        assert e["citation"].strip() and e["title"].strip() and e["source"].strip(), rid
        assert re.fullmatch(r"https://arxiv\.org/abs/\d{4}\.\d{5}", e["url"]), (rid, e["url"])
        assert e["split"] in {"dev", "test"}, rid
        assert e["recipe"] in RECIPES, rid
        assert e.get("notes", "").strip(), f"{rid}: say what was checked and what was quoted"


def test_every_percentage_agrees_with_its_scores(shipped):
    """The file against itself: where both scores are given, the percentage is their ratio."""
    both = {rid: e for rid, e in shipped.items() if e["score"] is not None and e["teacher_score"] is not None}
    assert both, "no entry gives both scores"
    for rid, e in both.items():
        assert e["pct_of_teacher"] == pytest.approx(100 * e["score"] / e["teacher_score"], abs=PCT_TOLERANCE), rid


def test_the_papers_the_issue_names_are_there(shipped):
    recipes = {e["recipe"] for e in shipped.values()}
    assert {"teacher", "distilbert", "tinybert", "minilm", "bert-pkd", "mobilebert", "head-pruning", "albert",
            "quantization"} <= recipes


# ---------------------------------------------------------------- a doctored copy

def test_a_copy_loads_like_the_shipped_file(tmp_path, shipped):
    assert load_references(write(tmp_path, shipped)) == shipped


def test_a_percentage_that_disagrees_with_the_scores_is_named(tmp_path, shipped):
    rid = next(r for r, e in shipped.items() if e["score"] is not None and e["teacher_score"] is not None)
    refs = copy.deepcopy(shipped)
    e = refs[rid]
    right = 100 * e["score"] / e["teacher_score"]
    e["pct_of_teacher"] = round(right + 0.5, 1)
    message = one_line_error(write(tmp_path, refs))
    assert f"{rid}.pct_of_teacher = {e['pct_of_teacher']}" in message and f"{right:.2f}" in message

    e["pct_of_teacher"] = round(right + 0.1, 2)  # within the tolerance: fine
    assert load_references(write(tmp_path, refs))[rid]["pct_of_teacher"] == e["pct_of_teacher"]

    e["pct_of_teacher"] = None  # both scores given: the percentage is required
    assert f"{rid}.pct_of_teacher = None" in one_line_error(write(tmp_path, refs))


@pytest.mark.parametrize("change, expected", [
    (lambda e: e.pop("url"), "{rid}.url: missing"),
    (lambda e: e.update(speedup="fast"), "{rid}.speedup = 'fast': expected a number or null"),
    (lambda e: e.update(layers=6.5), "{rid}.layers = 6.5: expected an integer or null"),
    (lambda e: e.update(split="validation"), "{rid}.split = 'validation': expected one of dev, test"),
    (lambda e: e.update(recipe="distilbrt"), "{rid}.recipe = 'distilbrt': expected one of teacher"),
    (lambda e: e.update(tasks=["sst-2"]), "{rid}.tasks[0] = 'sst-2': expected one of cola"),
    (lambda e: e.update(speed=1.6), "{rid}.speed: unknown key"),
    (lambda e: e.update(params_m=-1), "{rid}.params_m = -1: expected a number or null > 0"),
    (lambda e: e.update(speedup=float("nan")), "{rid}.speedup = nan: expected a finite number"),
])
def test_a_bad_key_is_one_line_naming_the_file_id_and_key(tmp_path, shipped, change, expected):
    refs = copy.deepcopy(shipped)
    rid = "distilbert" if "distilbert" in refs else next(iter(refs))
    change(refs[rid])
    assert expected.format(rid=rid) in one_line_error(write(tmp_path, refs))


def test_an_unknown_recipe_gets_a_did_you_mean(tmp_path, shipped):
    refs = copy.deepcopy(shipped)
    rid = next(iter(refs))
    refs[rid]["recipe"] = "tinybrt"
    assert "did you mean tinybert?" in one_line_error(write(tmp_path, refs))


def test_a_bad_id_and_a_bad_file_are_named(tmp_path, shipped):
    refs = {"Distil_BERT": copy.deepcopy(next(iter(shipped.values())))}
    assert "Distil_BERT" in one_line_error(write(tmp_path, refs))

    path = tmp_path / "list.yaml"
    path.write_text("- distilbert\n", encoding="utf-8")
    assert "expected a mapping of reference ids" in one_line_error(str(path))

    path.write_text("distilbert: [\n", encoding="utf-8")
    assert "not valid YAML at line" in one_line_error(str(path))

    assert "cannot be read" in one_line_error(str(tmp_path / "absent.yaml"))


def test_every_problem_gets_its_own_line(tmp_path, shipped):
    refs = copy.deepcopy(shipped)
    first, second = list(refs)[:2]
    refs[first]["split"] = "val"
    refs[second].pop("citation")
    with pytest.raises(UserError) as e:
        load_references(write(tmp_path, refs))
    lines = str(e.value).splitlines()
    assert len(lines) == 2
    assert any(f"{first}.split" in line for line in lines) and any(f"{second}.citation" in line for line in lines)


# ---------------------------------------------------------------- the config's published: map

def test_published_problems_names_unknown_rows_and_ids(shipped):
    rid = next(iter(shipped))
    assert published_problems({"distil": rid}, ["distil", "tiny"], shipped) == []
    assert published_problems(None, ["distil"], shipped) == []

    problems = published_problems({"distl": rid, "tiny": rid + "x"}, ["distil", "tiny"], shipped)
    assert len(problems) == 2
    assert problems[0].startswith("published.distl: 'distl' is not a row") and "did you mean distil?" in problems[0]
    assert problems[1].startswith(f"published.tiny: '{rid}x' is not a reference id in ")
    assert REFERENCES.name in problems[1] and f"did you mean {rid}?" in problems[1]

    assert published_problems({"tiny": 3}, ["tiny"], shipped)[0].startswith("published.tiny: 3 is not a reference")
    assert published_problems(["distil"], ["distil"], shipped)[0].startswith("published = ['distil']: expected a")


def test_published_problems_names_the_file_it_was_given(shipped):
    line = published_problems({"tiny": "nope"}, ["tiny"], shipped, source="elsewhere/refs.yaml")[0]
    assert "elsewhere/refs.yaml" in line


# ---------------------------------------------------------------- display

def test_reference_row_shows_the_entry(shipped):
    for e in shipped.values():
        row = reference_row(e)
        assert set(row) == {"model", "citation", "source", "url", "split", "teacher", "hardware", "score",
                            "pct_of_teacher", "speedup", "params_m"}
        assert {k: row[k] for k in row} == {k: e[k] for k in row}


def test_reference_row_computes_a_missing_percentage():
    entry = {"model": "m", "citation": "c", "url": "https://arxiv.org/abs/0000.00000", "split": "dev",
             "score": 72.0, "teacher_score": 80.0, "pct_of_teacher": None}
    assert reference_row(entry)["pct_of_teacher"] == 90.0  # 100 * 72 / 80
    assert reference_row({**entry, "teacher_score": None})["pct_of_teacher"] is None
