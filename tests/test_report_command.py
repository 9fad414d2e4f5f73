"""Tests of glueslim.report.command: the `leaderboard` command: files written, errors as exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

from report_fixtures import CONFIG, STUDENT, TASKS, TEACHER, results


def test_cli_writes_json_and_html(results, tmp_path):
    out_json, out_html = tmp_path / "rep" / "leaderboard.json", tmp_path / "rep" / "leaderboard.html"
    cmd = [sys.executable, "-m", "glueslim", "leaderboard", "--results", str(results),
           "--models", TEACHER, STUDENT, "--teacher", TEACHER, "--tasks", *TASKS,
           "--config-json", json.dumps(CONFIG), "--out-json", str(out_json), "--out-html", str(out_html)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out_json.read_text())
    assert doc["provenance"]["config"] == CONFIG
    assert out_html.read_text().startswith("<!DOCTYPE html>")
    (results / "profile" / f"{STUDENT}.json").unlink()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "profile" in proc.stderr and "Traceback" not in proc.stderr
