"""GLUE server submissions: test-set predictions (`predict-test`) and one zip per model (`glue-submission`).

The GLUE server (gluebenchmark.com) takes a zip of one TSV per task, named as below, each with the header
`index<TAB>prediction` and one row per test example (`index` is the test file's own index column, which
is the `idx` of results/data/<task>/<split>.jsonl). Predictions are label names for MNLI (matched and
mismatched), AX, QNLI and RTE (entailment / neutral / contradiction, entailment / not_entailment), 0 or 1
for CoLA, SST-2, MRPC, QQP and WNLI (1: acceptable, positive, equivalent, duplicate, entailment), and for
STS-B a similarity score clipped to [0, 5] (three decimals). AX, the diagnostic set, is predicted by the
MNLI model.

`predict-test` runs evaluate.py's `predict` on a test split and writes
results/predictions_test/<model>/<stem>.tsv with the dev files' columns (idx, label, prediction) and an
empty label: the test labels are not public, and nothing here scores a test prediction. A test split
that the data does not hold (a local GLUE copy without that test file) gives a file with the header only.
`glue-submission` turns a model's test files into results/glue_submission/<model>.zip (the server's files
only; its zip comment says what is missing) and <model>.json beside it: the files, their rows, and every
server file left out with the reason, which the leaderboard shows with a link to the zip.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

from glueslim.errors import UserError
from glueslim.io import atomic_file, atomic_write_json, atomic_write_text, read_json
from glueslim.predictions import COLUMNS, prediction_lines
from glueslim.tasks import OFFICIAL_ROWS, get_task

log = logging.getLogger(__name__)

SERVER_COLUMNS = ("index", "prediction")
NAMED = {"mnli", "qnli", "rte", "ax"}  # the server wants label names for these; ids 0/1 for the others


@dataclass(frozen=True)
class ServerFile:
    name: str  # the file name the server expects in the zip
    stem: str  # results/predictions_test/<model>/<stem>.tsv
    task: str  # the data: results/data/<task>/<split>.jsonl
    split: str
    model_task: str  # the fine-tuned model that predicts it: results/models/<model>/<model_task>


SERVER_FILES = (
    ServerFile("CoLA.tsv", "cola", "cola", "test", "cola"),
    ServerFile("SST-2.tsv", "sst2", "sst2", "test", "sst2"),
    ServerFile("MRPC.tsv", "mrpc", "mrpc", "test", "mrpc"),
    ServerFile("STS-B.tsv", "stsb", "stsb", "test", "stsb"),
    ServerFile("QQP.tsv", "qqp", "qqp", "test", "qqp"),
    ServerFile("MNLI-m.tsv", "mnli_matched", "mnli", "test_matched", "mnli"),
    ServerFile("MNLI-mm.tsv", "mnli_mismatched", "mnli", "test_mismatched", "mnli"),
    ServerFile("QNLI.tsv", "qnli", "qnli", "test", "qnli"),
    ServerFile("RTE.tsv", "rte", "rte", "test", "rte"),
    ServerFile("WNLI.tsv", "wnli", "wnli", "test", "wnli"),
    ServerFile("AX.tsv", "ax", "ax", "test", "mnli"),
)
BY_STEM = {f.stem: f for f in SERVER_FILES}


def server_stems(tasks: list[str], include_diagnostic: bool) -> dict[str, ServerFile]:
    """The server files a run with these tasks predicts, by stem (AX: with mnli and include_diagnostic)."""
    return {f.stem: f for f in SERVER_FILES
            if f.model_task in tasks and (f.task != "ax" or include_diagnostic)}


def left_out(f: ServerFile, tasks: list[str], include_diagnostic: bool) -> str:
    """Why a run with these settings does not predict server file `f`."""
    if f.task == "ax" and "mnli" not in tasks:
        return "AX is predicted by the MNLI model: add mnli to `tasks`"
    if f.task == "ax":
        return "include_diagnostic is off: set it to true"
    return f"task {f.model_task} is not in `tasks`: add it"


def server_value(task: str, value: str, where: str) -> str:
    """One prediction of a test file (a label id, or the STS-B score) as the server wants it."""
    t = get_task(task)
    try:
        if t.is_regression:
            x = float(value)
            if not math.isfinite(x):
                raise ValueError
            return f"{min(5.0, max(0.0, x)):.3f}"
        i = int(value)
        if not 0 <= i < t.num_labels:
            raise ValueError
    except ValueError:
        want = "a finite number" if t.is_regression else f"a label id 0..{t.num_labels - 1}"
        raise UserError(f"{where}: prediction {value!r} is not {want}; re-run predict-test (delete the file, "
                        "then run snakemake again)") from None
    return t.label_names[i] if task in NAMED else str(i)


def read_test_predictions(path: Path, f: ServerFile) -> list[tuple[int, str]]:
    """(index, server prediction) of every row of a test prediction file, in file order, checked."""
    out, seen = [], set()
    for lineno, row in prediction_lines(path, "predict-test"):
        where = f"{path}:{lineno}"
        if len(row) != len(COLUMNS):
            raise UserError(f"{where}: {len(row)} columns, expected {len(COLUMNS)}; re-run predict-test")
        if row[1] != "":  # a dev file has labels: it must never reach the server as a test file
            raise UserError(f"{where}: has the label {row[1]!r}, but test labels are not public: this is not "
                            f"a test prediction file (the {f.split} split); re-run predict-test")
        if not row[0].isdigit() or int(row[0]) in seen:
            raise UserError(f"{where}: idx {row[0]!r} is not a new non-negative integer; re-run predict-test")
        seen.add(int(row[0]))
        out.append((int(row[0]), server_value(f.task, row[2], where)))
    return sorted(out)


def server_tsv(rows: list[tuple[int, str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(SERVER_COLUMNS)
    w.writerows(rows)
    return buf.getvalue()


def readme(model: str, files: list[dict], missing: list[dict], warnings: list[str]) -> str:
    lines = [f"GLUE server submission of {model}: test-set predictions, upload at https://gluebenchmark.com/submit."]
    lines.append("Files: " + (", ".join(f"{f['file']} ({f['rows']} rows)" for f in files) or "none") + ".")
    if missing:
        lines.append("Missing for a complete submission: " + "; ".join(f"{m['file']} ({m['reason']})" for m in missing)
                     + ".")
    else:
        lines.append("Complete: every file the server expects is here.")
    lines += [f"Warning: {w}" for w in warnings]
    return "\n".join(lines) + "\n"


def build_submission(model: str, pred_dir: str | Path, tasks: list[str], include_diagnostic: bool,
                     out_zip: str | Path, out_json: str | Path) -> dict:
    """Write the zip and its summary (returned); every server file is either in the zip or in `missing`."""
    pred_dir = Path(pred_dir)
    wanted = server_stems(tasks, include_diagnostic)
    files, missing, warnings, contents = [], [], [], {}
    for f in SERVER_FILES:
        if f.stem not in wanted:
            missing.append({"file": f.name, "task": f.task, "reason": left_out(f, tasks, include_diagnostic)})
            continue
        rows = read_test_predictions(pred_dir / f"{f.stem}.tsv", f)
        if not rows:
            missing.append({"file": f.name, "task": f.task, "reason": f"results/data/{f.task} has no {f.split} "
                            f"split (the local GLUE copy lacks {get_task(f.task).split_files[f.split]})"})
            continue
        official = OFFICIAL_ROWS.get((f.task, f.split))
        if official is not None and len(rows) != official:
            warnings.append(f"{f.name} has {len(rows)} rows, the server expects {official}: it will reject it")
        contents[f.name] = server_tsv(rows)
        files.append({"file": f.name, "task": f.task, "split": f.split, "rows": len(rows), "official_rows": official})
    summary = {"model": model, "zip": Path(out_zip).name, "complete": not missing and not warnings,
               "files": files, "missing": missing, "warnings": warnings}
    with atomic_file(out_zip) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in contents.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), text)  # same bytes every run
        z.comment = readme(model, files, missing, warnings).encode("utf-8")[:65535]
    atomic_write_json(out_json, summary)
    return summary


def load_summaries(sub_dir: str | Path, models: list[str]) -> list[dict]:
    """The leaderboard's view: each model's submission summary (<model>.json) that exists in `sub_dir`."""
    out = []
    for m in models:
        path = Path(sub_dir) / f"{m}.json"
        if path.is_file():
            s = read_json(path)
            out.append({"model": m, "zip": f"glue_submission/{s['zip']}", "complete": s["complete"],
                        "files": [f["file"] for f in s["files"]], "missing": s["missing"],
                        "warnings": s["warnings"]})
    return out


def add_arguments_predict_test(p: argparse.ArgumentParser) -> None:
    from glueslim.recipe import add_inference_arguments

    p.add_argument("--stem", required=True, choices=list(BY_STEM), help="which server file: its task and split")
    p.add_argument("--data", required=True, help="results/data/<task> (results/data/ax for AX)")
    p.add_argument("--model-dir", required=True, help="the model fine-tuned on the task (on mnli for AX)")
    p.add_argument("--out", required=True)
    add_inference_arguments(p)


def run_predict_test(args: argparse.Namespace) -> None:
    f = BY_STEM[args.stem]
    if not (Path(args.data) / f"{f.split}.jsonl").is_file():
        log.warning("%s has no %s split: %s is written with no rows and the submission lists %s as missing",
                    args.data, f.split, args.out, f.name)
        atomic_write_text(args.out, "\t".join(COLUMNS) + "\n")
        return
    from glueslim.evaluate import run_predict

    args.task, args.split = f.task, f.split
    run_predict(args)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True)
    p.add_argument("--predictions", required=True, help="results/predictions_test/<model>")
    p.add_argument("--tasks", nargs="+", required=True, help="the configured tasks")
    p.add_argument("--include-diagnostic", action="store_true", help="AX (from the MNLI model) is predicted")
    p.add_argument("--out", required=True, help="the zip: results/glue_submission/<model>.zip")
    p.add_argument("--out-json", required=True, help="its summary: what is in it, what is missing and why")


def run(args: argparse.Namespace) -> None:
    s = build_submission(args.model, args.predictions, args.tasks, args.include_diagnostic, args.out, args.out_json)
    log.info("wrote %s: %s", args.out, ", ".join(f["file"] for f in s["files"]) or "no files")
    if s["missing"]:
        log.info("missing for a complete submission: %s", ", ".join(m["file"] for m in s["missing"]))
    for w in s["warnings"]:
        log.warning("%s", w)
