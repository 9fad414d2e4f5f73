"""Regenerate the README's benchmark tables from the committed result files (never typed by hand).

    python benchmarks/readme_tables.py          # rewrite the blocks in README.md
    python benchmarks/readme_tables.py --check  # exit 1 when a block differs from its result file

A block in README.md reads
    <!-- bench: benchmarks/results/<file>.md, from "<first line>" to "<line after the last>" -->
    ...generated lines...
    <!-- /bench -->
and holds the result file's lines from the one starting with <first line> up to (not including) the one
starting with <line after the last>.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r'(<!-- bench: (?P<file>\S+), from "(?P<start>[^"]+)" to "(?P<stop>[^"]+)" -->\n)(?P<body>.*?)'
                   r"(<!-- /bench -->)", re.S)


def excerpt(path: Path, start: str, stop: str) -> str:
    """The lines of `path` from the first that starts with `start` up to the next that starts with `stop`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith(start)), None)
    if first is None:
        raise SystemExit(f"{path}: no line starts with {start!r}")
    last = next((i for i in range(first + 1, len(lines)) if lines[i].startswith(stop)), None)
    if last is None:
        raise SystemExit(f"{path}: no line after {start!r} starts with {stop!r}")
    return "\n".join(lines[first:last]).strip() + "\n"


def regenerate(readme: str, root: Path = ROOT) -> str:
    return BLOCK.sub(lambda m: m.group(1) + excerpt(root / m["file"], m["start"], m["stop"]) + m.group(6), readme)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only check that README.md is up to date")
    p.add_argument("--readme", default=str(ROOT / "README.md"))
    args = p.parse_args(argv)
    path = Path(args.readme)
    old = path.read_text(encoding="utf-8")
    new = regenerate(old)
    if args.check:
        if new != old:
            sys.exit(f"{path}: a benchmark table differs from its result file; run python benchmarks/readme_tables.py")
        return
    path.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    main()
