"""Published figures beside our rows (--published, --references; the reference file is glueslim.published's):
the row -> reference map checked against --models and the references, each linked row's published "% of teacher"
and speed-up, and the "Published figures" table. Cited and shown only: never mixed into our scores, ranking or
Pareto frontier. Pure functions of the loaded references.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from glueslim.errors import UserError
from glueslim.published import reference_row
from glueslim.report.values import num

# the entry keys shown (glueslim.published's schema)
FIELDS = ("model", "recipe", "citation", "title", "url", "source", "teacher", "split", "tasks", "score",
          "teacher_score", "pct_of_teacher", "speedup", "hardware", "params_m", "layers", "hidden", "notes")


def check_published(value: Any, models: Sequence[str], refs: Mapping[str, Mapping] | None) -> dict[str, str]:
    """The --published map {row: reference id}: every row in --models, every id a reference."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError('--published: expected a JSON object {"<row>": "<reference id>"}, '
                        f"got {type(value).__name__}")
    refs = refs or {}
    for row, rid in value.items():
        if row not in models:
            raise UserError(f"--published: row {row!r} is not in --models ({', '.join(models)})")
        if not isinstance(rid, str) or rid not in refs:
            raise UserError(f"--published.{row}: {rid!r} is not a reference id of the reference file; expected one "
                            f"of {', '.join(sorted(refs)) or '(none: the file has no references)'}")
    return dict(value)


def _pct(entry: Mapping) -> float | None:
    return num(reference_row(entry)["pct_of_teacher"])  # the entry's, else from its two scores


def summary(entry: Mapping) -> str:
    """'97.0% · 1.6x (test)': the published % of teacher and speed-up, and the split they are on."""
    pct, sp = _pct(entry), num(entry.get("speedup"))
    pct_text = f"{pct:.1f}%" if pct is not None else "—"
    sp_text = f"{sp:g}x" if sp is not None else "—"
    return f"{pct_text} · {sp_text} ({entry.get('split') or '?'})"


def safe_url(url: Any) -> str | None:
    """The URL, when it is an http(s) link (anything else is shown as text, never linked)."""
    return url if isinstance(url, str) and url.lower().startswith(("https://", "http://")) else None


def reference_fields(rid: str, entry: Mapping) -> dict:
    """One reference as leaderboard.json shows it: its id, the entry's keys, its % of teacher and summary text."""
    return {"id": rid, **{k: entry.get(k) for k in FIELDS}, "pct_of_teacher": _pct(entry),
            "link": safe_url(entry.get("url")), "summary": summary(entry)}


def attach(rows: list[dict], mapping: Mapping[str, str], refs: Mapping[str, Mapping] | None) -> None:
    """In place: each row's "published" (its reference's fields, or None)."""
    for r in rows:
        rid = mapping.get(r["model"])
        r["published"] = reference_fields(rid, refs[rid]) if rid is not None and refs else None


def table(refs: Mapping[str, Mapping] | None, mapping: Mapping[str, str]) -> list[dict]:
    """The "Published figures" table: every reference of the file, in its order, with our rows linked to it."""
    return [{**reference_fields(rid, e), "rows": [row for row, i in mapping.items() if i == rid]}
            for rid, e in (refs or {}).items()]
