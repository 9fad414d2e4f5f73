"""The `leaderboard` command: its arguments, and `run`, which builds the document, renders the page and
writes both (and the standalone figures) atomically."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

from glueslim import io as gio
from glueslim.errors import UserError
from glueslim.report.build import build_leaderboard
from glueslim.report.deployed import check_skipped_forms
from glueslim.submission import load_summaries
from glueslim.report.render import FIGURES, build_charts, figures, render_html

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", type=Path, default=Path("results"), help="results folder (default: results)")
    p.add_argument("--models", nargs="+", required=True, help="model names, as under results/scores/")
    p.add_argument("--teacher", required=True, help="the teacher model (must be one of --models)")
    p.add_argument("--tasks", nargs="+", required=True, help="GLUE tasks to report (e.g. cola sst2 ...)")
    cfg = p.add_mutually_exclusive_group()
    cfg.add_argument("--config-json", default=None, help="the run config as a JSON string (for provenance)")
    cfg.add_argument("--config-file", type=Path, default=None, help="the run config as a JSON file instead")
    p.add_argument("--out-json", type=Path, default=Path("reports/leaderboard.json"))
    p.add_argument("--out-html", type=Path, default=Path("reports/leaderboard.html"))
    p.add_argument("--out-figures", type=Path, default=None,
                   help=f"also write the main charts as standalone SVG files here ({', '.join(FIGURES)})")
    p.add_argument("--publish", type=Path, default=None,
                   help="once every file is written, copy them here too (DIR/leaderboard.json, DIR/leaderboard.html, "
                        "DIR/figures/*.svg): all staged first, then each renamed into place; a failed render leaves "
                        "DIR as it was (the workflow renders to results/leaderboard/ and publishes to reports/)")
    p.add_argument("--skipped-forms", default=None, metavar="JSON",
                   help='deployed forms the workflow did not run, as a JSON list of {"model", "form", "row", "reason"} '
                        "objects (e.g. bf16 on a CPU without AVX512-BF16/AMX): each is a note in the report")
    p.add_argument("--seed-runs", default=None, metavar="JSON",
                   help='rows trained once per seed, {"<row>": {"seeds": [42, 43], '
                        '"runs": ["<row>", "<row>-seed43"]}}: '
                        "each run's results/scores/<run>.json is read; the row shows the mean and sd over its runs")
    p.add_argument("--twins", default=None, metavar="JSON",
                   help='no-KD twins, {"<row>-nokd": "<row>"}: the "KD vs no-KD twin" table, judged against '
                        "the seed spread")
    p.add_argument("--published", default=None, metavar="JSON",
                   help='rows that follow a published recipe, {"<row>": "<reference id>"}: the published %% of teacher '
                        "and speed-up beside ours, the published figures table and chart")
    p.add_argument("--references", type=Path, default=None,
                   help="the reference file of published figures (default: glueslim's published.yaml)")
    p.add_argument("--ablation", default=None, metavar="JSON",
                   help='an ingredient table, {"title": "...", "rows": [{"label": "...", "model": "<row>"}, ...]}: '
                        "each row's GLUE mean ± sd, the difference to the row above and whether it is within noise")
    p.add_argument("--submissions", type=Path, default=None,
                   help="GLUE server zips (DIR/<model>.zip, .json; glueslim.submission): the page links each and "
                        "lists the files a complete submission lacks; --publish copies them to glue_submission/")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _load_config(args: argparse.Namespace) -> Any:
    if args.config_file is not None:
        if not args.config_file.is_file():
            raise UserError(f"--config-file {args.config_file} does not exist")
        text, where = args.config_file.read_text(encoding="utf-8"), str(args.config_file)
    else:
        text, where = (args.config_json if args.config_json is not None else "{}"), "--config-json"
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as e:
        raise UserError(f"{where} is not valid JSON: {e}") from None


def _json_flag(text: str | None, flag: str) -> Any:
    """A flag's JSON value (None when the flag is not given)."""
    if text is None:
        return None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as e:
        raise UserError(f"{flag} is not valid JSON: {e}") from None


def _load_skipped(text: str | None) -> list[dict]:
    return [] if text is None else check_skipped_forms(_json_flag(text, "--skipped-forms"))


def _load_references(args: argparse.Namespace) -> dict | None:
    """The reference file's entries, when --published or --references is given."""
    if args.published is None and args.references is None:
        return None
    from glueslim import published  # only then: it reads and validates the YAML file

    path = args.references if args.references is not None else published.REFERENCES
    if not Path(path).is_file():
        raise UserError(f"--references {path} does not exist")
    return published.load_references(path)


def publish(files: Mapping[str, Path], dest: Path) -> None:
    """Copy each file to dest/<its relative name>: every copy is staged as a hidden temp file beside its target
    first, and only when all are staged is each renamed into place; a failure while staging changes nothing."""
    mode = 0o666 & ~_umask()
    staged: list[tuple[Path, Path]] = []
    try:
        for rel, src in files.items():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            staged.append((Path(tmp), target))
            shutil.copyfile(src, tmp)
            os.chmod(tmp, mode)
    except BaseException as e:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise UserError(f"cannot publish to {dest}: {e}; it was left as it was") from None
        raise
    for tmp, target in staged:
        os.replace(tmp, target)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def run(args: argparse.Namespace) -> None:
    config = _load_config(args)
    doc = build_leaderboard(args.results, args.models, args.teacher, args.tasks, config,
                            skipped_forms=_load_skipped(args.skipped_forms),
                            seed_runs=_json_flag(args.seed_runs, "--seed-runs"),
                            twins=_json_flag(args.twins, "--twins"),
                            published=_json_flag(args.published, "--published"), references=_load_references(args),
                            ablation=_json_flag(args.ablation, "--ablation"))
    if args.submissions is not None:
        doc["glue_submission"] = load_summaries(args.submissions, args.models)
    charts = build_charts(doc)
    html = render_html(doc, charts)
    svgs = figures(doc, charts) if args.out_figures is not None else {}
    for w in doc["warnings"]:
        log.warning("%s", w)
    written = {"leaderboard.json": args.out_json, "leaderboard.html": args.out_html}
    gio.atomic_write_json(args.out_json, doc)
    gio.atomic_write_text(args.out_html, html)
    if args.out_figures is not None:
        for name, svg in svgs.items():
            gio.atomic_write_text(args.out_figures / name, svg)
            written[f"figures/{name}"] = args.out_figures / name
    for sub in doc.get("glue_submission", []):
        written[sub["zip"]] = args.submissions / Path(sub["zip"]).name  # glue_submission/<model>.zip
    log.info("wrote %s and %s (%d models, %d tasks)", args.out_json, args.out_html, len(doc["rows"]), len(doc["tasks"]))
    if args.publish is not None:
        publish(written, args.publish)
        log.info("published %s to %s", ", ".join(written), args.publish)
