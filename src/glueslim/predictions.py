"""Prediction files (`idx`, `label`, `prediction`, tab-separated): their columns and their checked reading,
shared by the dev scorer (evaluate.py) and the GLUE-server zips (submission.py); no torch here."""

from __future__ import annotations

import csv
from pathlib import Path

from glueslim.errors import UserError

COLUMNS = ("idx", "label", "prediction")


def rerun(command: str = "predict") -> str:
    return f"re-run {command} (delete the file, then run snakemake again)"


RERUN = rerun()


def prediction_lines(path: Path, command: str = "predict") -> list[tuple[int, list[str]]]:
    """(line number, fields) of every data row of a prediction file written by `command` (predict, or
    predict-test), its header checked; the messages say to (re-)run that command."""
    if not path.is_file():
        what = "is not a file" if path.exists() else "missing prediction file"
        raise UserError(f"{path}: {what}; run {command} first")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(reader, None)
            rows = [(reader.line_num, row) for row in reader]
    except (UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{path}: not a prediction file ({e}); {rerun(command)}") from None
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror}); check its permissions") from None
    if header is None or tuple(header) != COLUMNS:
        raise UserError(f"{path}:1: expected the header {' '.join(COLUMNS)} (tab-separated), found "
                        f"{' '.join(header or ['nothing'])!r}; {rerun(command)}")
    return rows
