"""`prepare-data`: normalise one GLUE task into `DIR/<split>.jsonl` + `DIR/manifest.json`.

Source: a local copy in the original GLUE layout (`<glue_dir>/<Task.glue_dir>/<file>`, as written by
nyu-mll's download_glue_data.py) when `--glue-dir` is given, else the Hugging Face hub dataset
`nyu-mll/glue`. Both give the same record, one JSON object a line:

    {"idx": int, "text_a": str, "text_b": str | null, "label": int | float | null}

idx is the 0-based position of the data row in the source file (header excluded); for the hub it is the
dataset's own `idx` column, which is the same number. Labels are ints in `Task.label_names` order (the
nyu-mll/glue conventions), the STS-B label is the float score in [0, 5], and test rows have label null.

Deliberate policy for the known quirks of the original files:
- Quoting: GLUE TSVs hold unbalanced `"` characters (MRPC, QNLI, RTE, STS-B, WNLI). They are read with
  `csv.QUOTE_NONE`: one line is one row and quotes are plain text. With default csv quoting, rows are
  silently merged (the real MRPC dev.tsv reads as 389 rows instead of 408).
- Headers: CoLA train/dev have none (columns: source, label, original_label, sentence); every other file
  has one, and columns are located by header name, never by position (MNLI train has 12 columns, dev 16).
- Byte-order marks: files are decoded as "utf-8-sig", which drops the BOM that starts the MRPC train/dev
  header. A BOM inside a line (QNLI dev line 62) is text and is kept.
- Text is kept verbatim, exactly as the hub keeps it: no stripping (SST-2 sentences end with a space),
  no Unicode or control-character clean-up (CoLA train has backspaces, STS-B train a \\x12, RTE
  mojibake like "Iraq\\u00e2\\x80\\x99s"). Tokenizers deal with these; rewriting them would make the two
  sources disagree.
- Nothing is dropped, merged or repaired. Any of these stops the run with a UserError naming file and
  line: a row whose column count differs from the header's (a blank line included), empty or
  whitespace-only text, a label outside the task's set, a non-numeric or out-of-range STS-B score, an
  `index` column that disagrees with the row position, a file with no data rows, a NUL byte, bytes that
  are not UTF-8, a line past csv's field-size limit (all three signs of a damaged copy). A last line cut
  mid-row fails the column count; one cut mid-text is caught by the row count check below. Windows (CRLF)
  line ends are accepted.
- Row counts must equal the official GLUE counts (tasks.OFFICIAL_ROWS), which catches truncated
  downloads; `--no-check-row-counts` accepts a deliberately partial copy (the counts are still recorded).
- Test files are unlabelled; they are optional in a local copy (a missing one is skipped), while train
  and the evaluated dev splits are required (check_local_copy).
- `--max-train N` keeps a random.Random(seed) sample of N training rows, written in idx order; dev and
  test splits are never capped.
- Hub STS-B scores are float32 in nyu-mll/glue; they are written as the shortest decimal that float32
  round-trips (3.8, not 3.799999952316284), so they equal the file's scores up to float32 precision.

Manifest `source_files`: for a local copy, one entry per file read (split, path, sha256, rows,
official_rows); for the hub, one per split (split, dataset, config, fingerprint = the `datasets`
fingerprint of the loaded split, rows, official_rows), and `source.commit` is the hub commit the
revision resolved to (null when it could not be resolved).
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import os
import random
from collections import Counter
from pathlib import Path
from typing import Iterable

from glueslim.config import schema_default
from glueslim.errors import UserError
from glueslim.io import atomic_dir, atomic_write_json, atomic_write_jsonl, read_jsonl, sha256_file
from glueslim.modelfiles import file_problem
from glueslim.tasks import OFFICIAL_ROWS, Task, get_task

log = logging.getLogger(__name__)

HUB_DATASET = "nyu-mll/glue"

# Original files: (text_a column, text_b column, label column), by header name.
FILE_COLUMNS = {
    "cola": ("sentence", None, "label"),
    "sst2": ("sentence", None, "label"),
    "mrpc": ("#1 String", "#2 String", "Quality"),
    "stsb": ("sentence1", "sentence2", "score"),
    "qqp": ("question1", "question2", "is_duplicate"),
    "mnli": ("sentence1", "sentence2", "gold_label"),
    "qnli": ("question", "sentence", "label"),
    "rte": ("sentence1", "sentence2", "label"),
    "wnli": ("sentence1", "sentence2", "label"),
    "ax": ("sentence1", "sentence2", None),
}
COLA_NO_HEADER = ("source", "label", "original_label", "sentence")  # CoLA train/dev
NAMED_LABELS = {"mnli", "qnli", "rte"}  # files write label names; the others write 0/1 (in label_names order)

# nyu-mll/glue columns: (text_a, text_b); every config also has `label` (-1 on test) and `idx`.
HUB_COLUMNS = {
    "cola": ("sentence", None), "sst2": ("sentence", None),
    "mrpc": ("sentence1", "sentence2"), "stsb": ("sentence1", "sentence2"),
    "qqp": ("question1", "question2"), "mnli": ("premise", "hypothesis"),
    "qnli": ("question", "sentence"), "rte": ("sentence1", "sentence2"),
    "wnli": ("sentence1", "sentence2"), "ax": ("premise", "hypothesis"),
}


def _task(task: Task | str) -> Task:
    if isinstance(task, Task):
        return task
    try:
        return get_task(task)
    except ValueError as e:
        raise UserError(str(e)) from None


def _has_labels(task: Task, split: str) -> bool:
    return task.labelled and not split.startswith("test")


def _required_splits(task: Task) -> list[str]:
    """Splits a local copy must hold: train and the evaluated dev splits (test files are optional)."""
    needed = {"train"} | {s for s, _ in task.eval_splits}
    return [s for s, _ in task.splits if s in needed]


def _label(task: Task, raw, where: str):
    """One label -> int in label_names order, or the STS-B float score; raw is a file string or a hub number."""
    if task.is_regression:
        try:
            v = float(raw)
        except (TypeError, ValueError):
            raise UserError(f"{where}: score {raw!r} is not a number") from None
        if not (math.isfinite(v) and 0.0 <= v <= 5.0):
            raise UserError(f"{where}: score {raw!r} is outside [0, 5]")
        return v
    if isinstance(raw, str):
        names = task.label_names if task.name in NAMED_LABELS else [str(i) for i in range(task.num_labels)]
        if raw in names:
            return names.index(raw)
        raise UserError(f"{where}: label {raw!r} is not one of {', '.join(names)}")
    if isinstance(raw, int) and 0 <= raw < task.num_labels:
        return raw
    raise UserError(f"{where}: label {raw!r} is not one of 0..{task.num_labels - 1} ({', '.join(task.label_names)})")


def _record(task: Task, split: str, idx: int, a, b, label, where: str) -> dict:
    pair = FILE_COLUMNS[task.name][1] is not None
    for name, text in (("text_a", a), ("text_b", b)) if pair else (("text_a", a),):
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"{where}: empty {name} ({text!r})")
    return {"idx": idx, "text_a": a, "text_b": b,
            "label": _label(task, label, where) if _has_labels(task, split) else None}


def _check_count(task: Task, split: str, rows: int, where: str, check: bool) -> None:
    official = OFFICIAL_ROWS.get((task.name, split))
    if check and official is not None and rows != official:
        raise UserError(f"{where}: {rows} data rows, the official file has {official}; a truncated download? "
                        "pass --no-check-row-counts for a deliberately partial copy")


def read_glue_tsv(task: Task | str, split: str, path: str | os.PathLike) -> list[dict]:
    """Parse and validate one original GLUE TSV into normalized records (row counts are checked by the caller)."""
    task = _task(task)
    path = Path(path)
    a_col, b_col, y_col = FILE_COLUMNS[task.name]
    if not _has_labels(task, split):
        y_col = None
    records = []
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            if task.name == "cola" and not split.startswith("test"):
                header = list(COLA_NO_HEADER)
            else:
                header = next(reader, None)
                if header is None:
                    raise UserError(f"{path}: empty file (no header, no data rows)")
            missing = [c for c in (a_col, b_col, y_col) if c is not None and c not in header]
            if missing:
                raise UserError(f"{path}:{reader.line_num}: header has no column {', '.join(map(repr, missing))} "
                                f"(header: {', '.join(header)})")
            ia = header.index(a_col)
            ib = header.index(b_col) if b_col else None
            iy = header.index(y_col) if y_col else None
            iidx = header.index("index") if "index" in header else None
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if len(row) != len(header):
                    raise UserError(f"{where}: {len(row)} columns, expected {len(header)} ({', '.join(header)})")
                if any("\x00" in cell for cell in row):
                    raise UserError(f"{where}: NUL byte in the row; a damaged file (e.g. a copy cut short by a crash)?")
                idx = len(records)
                if iidx is not None and row[iidx] != str(idx):
                    raise UserError(f"{where}: index column is {row[iidx]!r} but this is data row {idx} (0-based)")
                records.append(_record(task, split, idx, row[ia], row[ib] if ib is not None else None,
                                       row[iy] if iy is not None else None, where))
    except UnicodeDecodeError:
        raise UserError(_bad_utf8(path)) from None
    except OSError as e:  # unreadable (permissions), a directory, an I/O error
        raise UserError(f"{path}: cannot be read ({e.strerror or e}); check the file and its permissions") from None
    except csv.Error as e:  # a NUL byte, or a line longer than csv's field limit (a damaged file)
        raise UserError(f"{path}:{reader.line_num}: unreadable row ({e})") from None
    if not records:
        raise UserError(f"{path}: no data rows")
    return records


def _bad_utf8(path: Path) -> str:
    """Where a file stops being UTF-8: its line and the byte offset in the file."""
    offset = 0
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                return (f"{path}:{lineno}: not valid UTF-8 (byte {line[e.start:e.start + 1]!r} at file offset "
                        f"{offset + e.start}); a truncated or mis-encoded copy?")
            offset += len(line)
    return f"{path}: not valid UTF-8"


def normalize_hub_split(task: Task | str, split_name: str, rows: Iterable[dict]) -> list[dict]:
    """nyu-mll/glue rows (dicts with the config's text columns, `label`, `idx`) -> normalized records."""
    task = _task(task)
    a_col, b_col = HUB_COLUMNS[task.name]
    records, seen = [], set()
    for pos, row in enumerate(rows):
        where = f"{HUB_DATASET}/{task.hub_config} split {split_name} row {pos}"
        try:
            idx, a, b, y = row["idx"], row[a_col], row[b_col] if b_col else None, row["label"]
        except KeyError as e:
            raise UserError(f"{where}: no column {e.args[0]!r} (columns: {', '.join(row)})") from None
        if not isinstance(idx, int) or idx < 0 or idx in seen:
            raise UserError(f"{where}: bad or repeated idx {idx!r}")
        seen.add(idx)
        if task.is_regression and isinstance(y, float):
            import numpy as np

            y = float(str(np.float32(y)))  # the shortest decimal of the stored float32: 3.8, not 3.7999999523
        records.append(_record(task, split_name, idx, a, b, y, where))
    if not records:
        raise UserError(f"{HUB_DATASET}/{task.hub_config} split {split_name}: no rows")
    return records


def cap_train(records: list[dict], max_train: int | None, seed: int) -> list[dict]:
    """A random.Random(seed) sample of max_train records, in idx order; all of them when there are not more."""
    if max_train is None or len(records) <= max_train:
        return records
    keep = sorted(random.Random(seed).sample(range(len(records)), max_train))
    return [records[i] for i in keep]


def _label_summary(task: Task, split: str, records: list[dict]) -> dict:
    if not _has_labels(task, split):
        return {"label_counts": None}
    if task.is_regression:
        ys = [r["label"] for r in records]
        return {"label_counts": None, "label_stats": {"min": min(ys), "max": max(ys), "mean": sum(ys) / len(ys)}}
    counts = Counter(r["label"] for r in records)
    return {"label_counts": {str(i): counts.get(i, 0) for i in range(task.num_labels)}}


def _load_hub(task: Task, revision: str | None) -> tuple[dict, dict]:
    """Download the task from the hub: ({split: records-iterable}, source)."""
    import datasets

    commit = None
    try:
        from huggingface_hub import HfApi

        commit = HfApi().dataset_info(HUB_DATASET, revision=revision).sha
    except Exception as e:  # noqa: BLE001 - best effort; load_dataset below reports real failures
        log.warning("could not resolve %s revision %s to a commit: %s", HUB_DATASET, revision or "main", e)
    try:
        dsd = datasets.load_dataset(HUB_DATASET, task.hub_config, revision=commit or revision)
    except Exception as e:  # noqa: BLE001 - network/hub failures become one clear line
        raise UserError(f"could not load {HUB_DATASET} config {task.hub_config} from the Hugging Face hub "
                        f"({type(e).__name__}: {e}); offline, pass --glue-dir with a local GLUE copy "
                        "(the workflow takes it from the glue_dir config key or $GLUE_DIR)") from None
    source = {"kind": "hub", "dataset": HUB_DATASET, "config": task.hub_config, "revision": revision,
              "commit": commit}
    return dict(dsd), source


def prepare(task: Task | str, out: str | os.PathLike, glue_dir: str | None = None, max_train: int | None = None,
            seed: int = 42, check_row_counts: bool = True, hub_revision: str | None = None) -> dict:
    """Normalise one task into `out/` (written atomically); returns the manifest."""
    task = _task(task)
    if max_train is not None and max_train < 1:
        raise UserError(f"--max-train must be a positive number of examples, got {max_train}")
    splits, source_files = {}, []  # split -> records
    if glue_dir:
        glue_dir = os.path.abspath(os.path.expanduser(glue_dir))
        check_local_copy(glue_dir, [task.name])
        source = {"kind": "local", "glue_dir": glue_dir}
        for split, fname in task.splits:
            path = Path(glue_dir, task.glue_dir, fname)
            if not path.exists() and not path.is_symlink():
                log.info("%s: no %s, split %s skipped (optional)", task.name, path, split)
                continue
            problem = file_problem(path)  # there, but a directory, a dangling link or unreadable
            if problem:
                raise UserError(f"{problem} (split {split} of task {task.name}); replace it with the GLUE file "
                                "or remove it")
            records = read_glue_tsv(task, split, path)
            _check_count(task, split, len(records), str(path), check_row_counts)
            splits[split] = records
            source_files.append({"split": split, "path": str(path), "sha256": sha256_file(path),
                                 "rows": len(records), "official_rows": OFFICIAL_ROWS.get((task.name, split))})
    else:
        dsd, source = _load_hub(task, hub_revision)
        for split, _ in task.splits:
            if split not in dsd:
                if split in _required_splits(task):
                    raise UserError(f"{HUB_DATASET}/{task.hub_config} has no split {split} (has: {', '.join(dsd)})")
                continue
            ds = dsd[split]
            records = normalize_hub_split(task, split, ds)
            where = f"{HUB_DATASET}/{task.hub_config} split {split}"
            _check_count(task, split, len(records), where, check_row_counts)
            splits[split] = records
            source_files.append({"split": split, "dataset": HUB_DATASET, "config": task.hub_config,
                                 "fingerprint": getattr(ds, "_fingerprint", None), "rows": len(records),
                                 "official_rows": OFFICIAL_ROWS.get((task.name, split))})

    if not splits:
        raise UserError(f"{task.name}: no split found in {source}")
    manifest = {"task": task.name, "source": source, "splits": {}, "source_files": source_files,
                "max_train": max_train, "seed": seed}
    with atomic_dir(out) as tmp:
        for split, records in splits.items():
            kept = cap_train(records, max_train, seed) if split == "train" else records
            atomic_write_jsonl(tmp / f"{split}.jsonl", kept)
            manifest["splits"][split] = {"file": f"{split}.jsonl", "rows": len(kept), "rows_source": len(records),
                                         "capped": len(kept) < len(records), **_label_summary(task, split, kept)}
            log.info("%s %s: %d of %d rows", task.name, split, len(kept), len(records))
        atomic_write_json(tmp / "manifest.json", manifest)
    return manifest


def resolve_glue_dir(value: str | None) -> str | None:
    """The local GLUE copy to use: the config value if set, else $GLUE_DIR if set, else None (= the hub)."""
    if value:
        return os.path.expanduser(str(value))
    env = os.environ.get("GLUE_DIR")
    return os.path.expanduser(env) if env else None


def check_local_copy(glue_dir: str | os.PathLike, tasks: list[str]) -> None:
    """Raise UserError naming every task whose train or evaluated dev file is missing from the local copy."""
    root = Path(glue_dir).expanduser().absolute()
    if not root.is_dir():
        raise UserError(f"local GLUE copy {root} is not a directory (set glue_dir / GLUE_DIR to the folder "
                        "holding CoLA/, SST-2/, ...; leave both unset to download from the hub)")
    problems = []
    for name in tasks:
        task = _task(name)
        bad = []
        for split in _required_splits(task):
            path = root / task.glue_dir / task.split_files[split]
            problem = file_problem(path)  # missing, or there but a directory, a dangling link, unreadable
            if problem:
                bad.append(f"{problem if path.exists() or path.is_symlink() else f'missing {path}'} "
                           f"(needed for {'training' if split == 'train' else 'evaluation'})")
        if bad:
            problems.append(f"task {task.name}: {', '.join(bad)}")
    if problems:
        raise UserError("; ".join(problems) + "; a local GLUE copy must hold train and dev for every configured "
                        "task; remove the task from `tasks` or add the file")


def load_split(data_dir: str | os.PathLike, split: str) -> list[dict]:
    """The normalized records of one split written by prepare-data (a damaged or empty file is a UserError)."""
    root, path = Path(data_dir), Path(data_dir) / f"{split}.jsonl"
    problem = file_problem(root, folder=True) or file_problem(path)  # missing, a link to nothing, a directory
    if problem:
        have = sorted(p.stem for p in root.glob("*.jsonl")) if root.is_dir() else []
        missing = root.is_dir() and not (path.exists() or path.is_symlink())
        raise UserError(f"{f'{path}: no such prepared split' if missing else problem} "
                        f"(have: {', '.join(have) or 'none'}); run prepare-data first")
    try:
        rows = read_jsonl(path)
    except ValueError as e:  # a line that is not JSON (read_jsonl names it), bytes that are not UTF-8
        raise UserError(f"{e if str(e).startswith(str(path)) else f'{path}: {e}'}; the prepared data is damaged: "
                        "run prepare-data again") from None
    bad = [n for n, r in enumerate(rows, 1)
           if not (isinstance(r, dict) and isinstance(r.get("idx"), int) and isinstance(r.get("text_a"), str))]
    if not rows or bad:
        what = f"record {bad[0]} is not a prepared record (idx, text_a, text_b, label)" if bad else "no rows"
        raise UserError(f"{path}: {what}; the prepared data is damaged or cut short: run prepare-data again")
    return rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, help="GLUE task id: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli, ax")
    p.add_argument("--out", required=True, help="output folder: <split>.jsonl + manifest.json, replaced atomically")
    p.add_argument("--glue-dir", default=None,
                   help="local copy in the original GLUE layout; empty or absent: download nyu-mll/glue "
                        "from the hub ($GLUE_DIR is not read here: the workflow resolves it)")
    p.add_argument("--max-train", type=int, default=None, help="keep a seeded random sample of N training rows")
    p.add_argument("--seed", type=int, default=schema_default("seed"), help="seed of the --max-train sample")
    p.add_argument("--no-check-row-counts", dest="check_row_counts", action="store_false",
                   help="accept files whose row count differs from the official GLUE count")
    p.add_argument("--hub-revision", default=None, help="revision (branch, tag or commit) of nyu-mll/glue")


def run(args: argparse.Namespace) -> None:
    prepare(args.task, args.out, glue_dir=args.glue_dir or None, max_train=args.max_train, seed=args.seed,
            check_row_counts=args.check_row_counts, hub_revision=args.hub_revision)

