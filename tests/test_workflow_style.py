"""What a workflow-catalog reviewer checks: rules formatted with snakefmt, and `snakemake --lint` clean."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, SHARED, needs_shared


def test_rules_are_formatted_with_snakefmt():
    snakefmt = shutil.which("snakefmt") or os.path.join(os.path.dirname(sys.executable), "snakefmt")
    if not os.path.exists(snakefmt):
        pytest.skip("snakefmt is not installed (pip install -e '.[test]')")
    res = subprocess.run([snakefmt, "--check", "Snakefile", "workflow/"], cwd=ROOT, capture_output=True,
                         text=True)  # line length from pyproject.toml's [tool.snakefmt]
    assert res.returncode == 0, res.stdout + res.stderr + "\nrun: snakefmt Snakefile workflow/"


@needs_shared
def test_snakemake_lint_is_clean(tmp_path):
    (tmp_path / "run").mkdir()
    os.symlink(SHARED, tmp_path / "shared")  # the quick preset's ../shared
    res = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "-s", str(ROOT / "Snakefile"),
                          "--configfile", str(ROOT / "presets" / "quick.yaml")], cwd=tmp_path / "run",
                         capture_output=True, text=True)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "Congratulations, your workflow is in a good condition!" in out, out
