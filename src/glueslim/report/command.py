"""The `leaderboard` command: its arguments, and `run`, which builds the document, renders the page and
writes both (and the standalone figures) atomically."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from glueslim import io as gio
from glueslim.errors import UserError
from glueslim.report.build import build_leaderboard
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


def run(args: argparse.Namespace) -> None:
    config = _load_config(args)
    doc = build_leaderboard(args.results, args.models, args.teacher, args.tasks, config)
    charts = build_charts(doc)
    html = render_html(doc, charts)
    for w in doc["warnings"]:
        log.warning("%s", w)
    gio.atomic_write_json(args.out_json, doc)
    gio.atomic_write_text(args.out_html, html)
    if args.out_figures is not None:
        for name, svg in figures(doc, charts).items():
            gio.atomic_write_text(args.out_figures / name, svg)
    log.info("wrote %s and %s (%d models, %d tasks)", args.out_json, args.out_html, len(doc["rows"]), len(doc["tasks"]))
