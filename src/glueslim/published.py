"""The published figures glueslim shows beside its own rows (published.yaml, cited; never mixed into our
scores): loading and checking the reference file, checking a config's `published: {<row>: <id>}` map, and an
entry's display fields. Torch-free and quick to import.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from glueslim.errors import UserError
from glueslim.schema import schema_problems
from glueslim.tasks import TASKS

REFERENCES = Path(__file__).with_name("published.yaml")
RECIPES = ("teacher", "distilbert", "tinybert", "minilm", "bert-pkd", "mobilebert", "head-pruning", "albert",
           "quantization")
PCT_TOLERANCE = 0.15  # points: pct_of_teacher against 100 * score / teacher_score

_TEXT = {"type": "string", "minLength": 1}
_NUMBER = {"type": ["number", "null"]}
_POSITIVE = {"type": ["number", "null"], "exclusiveMinimum": 0}
_COUNT = {"type": ["integer", "null"], "minimum": 1}
ENTRY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["model", "recipe", "citation", "title", "url", "source", "teacher", "split", "tasks", "score",
                 "teacher_score", "pct_of_teacher", "speedup", "hardware", "params_m", "layers", "hidden"],
    "properties": {
        "model": {**_TEXT, "description": "display name"},
        "recipe": {"enum": list(RECIPES)},
        "citation": {**_TEXT, "description": 'short citation, e.g. "Sanh et al. 2019"'},
        "title": _TEXT,
        "url": {"type": "string", "pattern": "^https?://", "description": "the paper's arXiv abstract page"},
        "source": {**_TEXT, "description": 'where in the paper, e.g. "Table 1"'},
        "teacher": _TEXT,
        "split": {"enum": ["dev", "test"]},
        "tasks": {"type": ["array", "null"], "items": {"enum": [t for t in TASKS if TASKS[t].labelled]},
                  "minItems": 1, "uniqueItems": True},
        "score": {**_NUMBER, "minimum": 0, "maximum": 100, "description": "the published GLUE average (x100)"},
        "teacher_score": {**_NUMBER, "minimum": 0, "maximum": 100},
        "pct_of_teacher": {**_POSITIVE, "description": "100 * score / teacher_score"},
        "speedup": {**_POSITIVE, "description": "x faster than the teacher"},
        "hardware": {"type": ["string", "null"]},
        "params_m": {**_POSITIVE, "description": "parameters, millions"},
        "layers": _COUNT,
        "hidden": _COUNT,
        "notes": {"type": "string"},
    },
}
SCHEMA = {
    "type": "object",
    "minProperties": 1,
    "propertyNames": {"pattern": "^[a-z0-9]+(-[a-z0-9]+)*$", "description": "a kebab-case reference id"},
    "additionalProperties": ENTRY,
}


def _shown(path: str | os.PathLike) -> str:
    """The path as messages show it: relative to the working directory when it is under it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def _pct_problems(refs: Mapping[str, Mapping]) -> list[str]:
    """pct_of_teacher against 100 * score / teacher_score, for every entry that gives both scores."""
    out = []
    for rid, e in refs.items():
        score, teacher, pct = e["score"], e["teacher_score"], e["pct_of_teacher"]
        if score is None or teacher is None or teacher == 0:
            continue
        want = 100.0 * score / teacher
        if pct is None or abs(pct - want) > PCT_TOLERANCE:
            out.append(f"{rid}.pct_of_teacher = {pct}: expected 100 * score / teacher_score = 100 * {score} / "
                       f"{teacher} = {want:.2f} (within {PCT_TOLERANCE}); write {want:.1f}, or fix the scores")
    return out


def load_references(path: str | os.PathLike = REFERENCES) -> dict[str, dict]:
    """Reference id -> entry, in the file's order, checked against SCHEMA and for pct_of_teacher agreeing
    with the scores. A bad file is a UserError: one line per problem, each naming the file, id and key."""
    where = _shown(path)
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{where}: cannot be read ({e.__class__.__name__}: {e})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{where}: not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(doc, dict):
        raise UserError(f"{where}: holds {type(doc).__name__}, expected a mapping of reference ids to entries "
                        "(distilbert: {model: ..., citation: ...})")
    problems = schema_problems(doc, SCHEMA) or _pct_problems(doc)
    if problems:
        raise UserError("\n".join(f"{where}: {p}" for p in problems))
    return doc


def published_problems(mapping: Any, rows: Sequence[str], refs: Mapping[str, Mapping], *,
                       source: str | os.PathLike = REFERENCES) -> list[str]:
    """The config's `published: {<row>: <reference id>}` map checked: one line per row that is not one of
    `rows` and per id that is not in `refs` (loaded from `source`)."""
    if mapping is None:
        return []
    if not isinstance(mapping, dict):
        return [f"published = {mapping!r}: expected a mapping {{<row>: <reference id>}} (e.g. distil: distilbert)"]
    out = []
    for row, rid in mapping.items():
        if row not in rows:
            out.append(f"published.{row}: {row!r} is not a row of this configuration; expected one of "
                       f"{', '.join(rows) or '(no rows)'}{_did_you_mean(row, rows)}")
        if not isinstance(rid, str) or rid not in refs:
            out.append(f"published.{row}: {rid!r} is not a reference id in {_shown(source)}; expected one of "
                       f"{', '.join(refs) or '(none)'}{_did_you_mean(rid, refs)}")
    return out


def _did_you_mean(word: Any, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6) if isinstance(word, str) else []
    return f"; did you mean {close[0]}?" if close else ""


def reference_row(entry: Mapping) -> dict:
    """An entry's display fields: model, citation, source, url, split, teacher, hardware, score,
    pct_of_teacher (computed from the scores where the entry gives none), speedup, params_m."""
    pct, score, teacher = entry.get("pct_of_teacher"), entry.get("score"), entry.get("teacher_score")
    if pct is None and score is not None and teacher:
        pct = round(100.0 * score / teacher, 1)
    return {"model": entry.get("model"), "citation": entry.get("citation"), "source": entry.get("source"),
            "url": entry.get("url"), "split": entry.get("split"), "teacher": entry.get("teacher"),
            "hardware": entry.get("hardware"), "score": score, "pct_of_teacher": pct,
            "speedup": entry.get("speedup"), "params_m": entry.get("params_m")}
