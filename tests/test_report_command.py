"""Tests of glueslim.report.command: the `leaderboard` command: files written, errors as exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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


def test_publish_copies_every_file_only_after_a_whole_render(results, tmp_path):
    out, pub = tmp_path / "render", tmp_path / "reports"
    cmd = [sys.executable, "-m", "glueslim", "leaderboard", "--results", str(results), "--models", TEACHER, STUDENT,
           "--teacher", TEACHER, "--tasks", *TASKS, "--out-json", str(out / "leaderboard.json"),
           "--out-html", str(out / "leaderboard.html"), "--out-figures", str(out / "figures"), "--publish", str(pub)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    files = sorted(str(p.relative_to(pub)) for p in pub.rglob("*") if p.is_file())
    assert files == ["figures/latency_vs_batch.svg", "figures/latency_vs_length.svg", "figures/pareto.svg",
                     "figures/relative.svg",
                     "leaderboard.html", "leaderboard.json"]  # no --submissions: no zips
    assert all((pub / f).read_bytes() == (out / f).read_bytes() for f in files)
    good = {f: (pub / f).read_bytes() for f in files}
    # a negative latency: the render fails in one line and reports/ keeps the last good files, nothing beside them
    path = results / "profile" / f"{STUDENT}.json"
    prof = json.loads(path.read_text())
    prof["latency"][0]["median_ms"] = -4.0
    path.write_text(json.dumps(prof))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith("latency[0].median_ms = -4.0: expected a finite number > 0; "
                                                         "re-run profile (delete the file, then run snakemake again)")
    assert {str(p.relative_to(pub)): p.read_bytes() for p in pub.rglob("*") if p.is_file()} == good


def test_publish_stages_every_file_before_replacing_any(tmp_path, monkeypatch):
    from glueslim.errors import UserError
    from glueslim.report import command

    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.json", "b.html"):
        (src / name).write_text(f"new {name}")
    dest = tmp_path / "reports"
    dest.mkdir()
    (dest / "a.json").write_text("old a")
    real = command.shutil.copyfile

    def fail_second(a, b):
        if str(a).endswith("b.html"):
            raise OSError(28, "No space left on device")
        return real(a, b)

    monkeypatch.setattr(command.shutil, "copyfile", fail_second)
    with pytest.raises(UserError, match=r"cannot publish to .*reports: .*No space left on device; it was left as it was"):
        command.publish({"a.json": src / "a.json", "b.html": src / "b.html"}, dest)
    assert [p.name for p in dest.iterdir()] == ["a.json"] and (dest / "a.json").read_text() == "old a"
    monkeypatch.setattr(command.shutil, "copyfile", real)
    command.publish({"a.json": src / "a.json", "b.html": src / "b.html"}, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["a.json", "b.html"] and (dest / "a.json").read_text() == "new a.json"
