"""The README's benchmark tables are the committed result files' tables (benchmarks/readme_tables.py)."""

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import readme_tables  # noqa: E402


def test_the_readme_tables_are_regenerated_from_the_committed_results():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_tables.BLOCK.search(readme), "README.md has no generated benchmark block"
    assert readme_tables.regenerate(readme) == readme, "run python benchmarks/readme_tables.py"


def test_a_block_is_replaced_by_its_excerpt(tmp_path):
    (tmp_path / "r.md").write_text("# x\nintro\n| a |\n|---|\n| 1 |\nafter\n")
    readme = '<!-- bench: r.md, from "| a" to "after" -->\nstale\n<!-- /bench -->\n'
    assert readme_tables.regenerate(readme, tmp_path) == (
        '<!-- bench: r.md, from "| a" to "after" -->\n| a |\n|---|\n| 1 |\n<!-- /bench -->\n')
