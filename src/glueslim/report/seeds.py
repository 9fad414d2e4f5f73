"""Seeds on the leaderboard: a row trained once per seed is shown as ONE row whose task scores and GLUE scores
are the means over its runs, with the sample standard deviation (ddof=1) beside them; and the noise rule that
says when two such means differ by less than their spread.

`check_seed_runs` checks the --seed-runs map, `aggregate` reads every run's score file and returns the mean
score document (what the rows, the ranking, the Pareto frontier and the budget tables use) and the row's
"seeds" record; `within_noise` is the rule. Pure but for reading the score files.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Mapping, Sequence

from glueslim import tasks as gtasks
from glueslim.errors import UserError
from glueslim.report import collect
from glueslim.report.values import differs, num, ratio

FLAG = "--seed-runs"
TIE = 1e-12  # float slack: 0.80 - 0.78 is 0.020000000000000018, equal to a spread of 0.01 + 0.01
NOISE_TITLE = ("within noise of the row above: the GLUE means differ by no more than the sum of their seed "
               "standard deviations")


def within_noise(mean_a: Any, sd_a: Any, mean_b: Any, sd_b: Any) -> bool | None:
    """Whether two means differ "within noise": |mean_a - mean_b| <= sd_a + sd_b, a missing sd counting 0.
    None (unknown) when both sds are missing or either mean is."""
    a, b, sa, sb = num(mean_a), num(mean_b), num(sd_a), num(sd_b)
    if a is None or b is None or (sa is None and sb is None):
        return None
    return abs(a - b) <= (sa or 0.0) + (sb or 0.0) + TIE  # a difference equal to the spread is within noise


def mean_sd(values: Sequence[Any]) -> tuple[float | None, float | None]:
    """(mean, sample sd with ddof=1) of the values; (None, None) when any is missing; sd None for one value."""
    vals = [num(v) for v in values]
    if not vals or any(v is None for v in vals):
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def glue_of(scores: Mapping[str, Any], tasks: Sequence[str], exclude: tuple[str, ...] = ()) -> float | None:
    """GLUE score over `tasks` minus `exclude`; None unless every one of those tasks has a score."""
    wanted = [t for t in tasks if t not in exclude]
    if not wanted or any(num(scores.get(t)) is None for t in wanted):
        return None
    return gtasks.glue_score({t: scores[t] for t in wanted})


def _bad(msg: str) -> UserError:
    return UserError(f"{FLAG}: {msg}")


def check_seed_runs(value: Any, models: Sequence[str]) -> dict[str, dict]:
    """The --seed-runs map {row: {"seeds": [int, ...], "runs": [row, "<row>-seed<S>", ...]}}, checked: every
    row is in --models, its first run is the row itself, seeds and runs pair up, no run is listed twice or is
    another row of --models."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(f'expected a JSON object {{row: {{"seeds": [...], "runs": [...]}}}}, got {type(value).__name__}')
    seen: dict[str, str] = {}
    out = {}
    for row, spec in value.items():
        if row not in models:
            raise _bad(f"row {row!r} is not in --models ({', '.join(models)}); list it there or drop it from the map")
        if not isinstance(spec, dict) or set(spec) - {"seeds", "runs"} or "runs" not in spec:
            raise _bad(f'{row}: expected {{"seeds": [...], "runs": [...]}}, got {spec!r}')
        runs, seeds = spec["runs"], spec.get("seeds")
        if not isinstance(runs, list) or not runs or not all(isinstance(r, str) and r for r in runs):
            raise _bad(f"{row}.runs must be a non-empty list of run names, got {runs!r}")
        if runs[0] != row:
            raise _bad(f"{row}.runs must start with the row itself ({row!r}), got {runs[0]!r}")
        if seeds is not None and (not isinstance(seeds, list) or len(seeds) != len(runs)
                                  or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
            raise _bad(f"{row}.seeds must be a list of {len(runs)} integers (one per run), got {seeds!r}")
        for r in runs:
            if "/" in r or r in (".", ".."):
                raise _bad(f"{row}: bad run name {r!r}")
            if r in seen:
                raise _bad(f"run {r!r} is listed twice (under {seen[r]!r} and {row!r})")
            if r != row and r in models:
                raise _bad(f"run {r!r} of {row!r} is also a row of --models; a seed's run is not a row of its own")
            seen[r] = row
        out[row] = {"seeds": list(seeds) if seeds is not None else None, "runs": list(runs)}
    return out


def _mean_entry(entries: list[dict]) -> dict:
    """One task's score entry averaged over runs: each metric's mean, the score's mean, the first run's n."""
    keys = list(entries[0]["metrics"])
    return {"metrics": {k: statistics.fmean(e["metrics"][k] for e in entries) for k in keys},
            "score": statistics.fmean(e["score"] for e in entries), "n": entries[0].get("n")}


def single(model: str, score_doc: dict, tasks: Sequence[str]) -> dict:
    """The "seeds" record of a row trained once."""
    scores = {t: (e["score"] if e else None) for t, e in score_doc["tasks"].items()}
    return {"seeds": None, "runs": [model], "n_runs": 1,
            "glue_scores": [glue_of(scores, tasks)],
            "glue_scores_without_wnli": [glue_of(scores, tasks, ("wnli",))],
            "run_task_scores": {t: [scores.get(t)] for t in tasks},
            "sd": None, "sd_without_wnli": None, "task_sd": {t: None for t in tasks}}


def aggregate(results: Path, row: str, spec: Mapping, first: dict, tasks: Sequence[str],
              warnings: list[str]) -> tuple[dict, dict]:
    """(mean score document, "seeds" record) of a row over its runs. `first`: the row's own score document
    (collect.read_scores, already read); the other runs' are read here (a missing file is a UserError naming it)."""
    docs = [first]
    for run in spec["runs"][1:]:
        try:
            docs.append(collect.read_scores(results, run, tasks, warnings))
        except UserError as e:
            raise UserError(f"{FLAG}: run {run!r} of row {row!r}: {e}") from None
    splits = sorted({d["split"] for d in docs})
    if len(splits) > 1:
        raise UserError(f"{FLAG}: the runs of {row!r} were scored on different splits ({', '.join(splits)}); "
                        "re-score them on one")
    per_run = [{t: (e["score"] if e else None) for t, e in d["tasks"].items()} for d in docs]
    for run, d, scores in zip(spec["runs"], docs, per_run):
        stored, glue = d["stored_glue_score"], glue_of(scores, tasks)
        if differs(stored, glue):
            warnings.append(f"{run}: stored glue_score {stored:.6f} differs from the recomputed {glue:.6f} "
                            f"over {', '.join(tasks)}; the recomputed value is used")
    mean_tasks: dict[str, dict | None] = {}
    for t in tasks:
        entries = [d["tasks"].get(t) for d in docs]
        if any(e is None for e in entries):
            mean_tasks[t] = None
            if entries[0] is not None:
                warnings.append(f"{row}: {t} has no score in every run of its seeds; its mean is left empty")
        else:
            mean_tasks[t] = _mean_entry(entries)
    glues = [glue_of(s, tasks) for s in per_run]
    glues_nw = [glue_of(s, tasks, ("wnli",)) for s in per_run]
    record = {
        "seeds": spec.get("seeds"),
        "runs": list(spec["runs"]),
        "n_runs": len(docs),
        "glue_scores": glues,
        "glue_scores_without_wnli": glues_nw,
        "run_task_scores": {t: [s.get(t) for s in per_run] for t in tasks},
        "sd": mean_sd(glues)[1],
        "sd_without_wnli": mean_sd(glues_nw)[1],
        "task_sd": {t: mean_sd([s.get(t) for s in per_run])[1] for t in tasks},
    }
    return {"split": splits[0], "tasks": mean_tasks, "stored_glue_score": None}, record


def apply(results: Path, scores: dict[str, dict], seed_runs: Mapping[str, Mapping], tasks: Sequence[str],
          warnings: list[str]) -> dict[str, dict]:
    """Replace, in `scores` (model -> score document), each seeded row's document by its mean over its runs;
    return every row's "seeds" record (one run for a row absent from the map)."""
    out = {}
    for m in list(scores):
        if m in seed_runs and len(seed_runs[m]["runs"]) > 1:
            scores[m], out[m] = aggregate(results, m, seed_runs[m], scores[m], tasks, warnings)
        else:
            out[m] = {**single(m, scores[m], tasks), "seeds": (seed_runs.get(m) or {}).get("seeds")}
    return out


def attach(rows: list[dict], records: Mapping[str, dict], teacher_glue: Any) -> None:
    """In place: each row's "seeds" record, with its GLUE sd as a share of the teacher's GLUE score
    ("pct_of_teacher_sd", the spread of its % of teacher)."""
    for r in rows:
        rec = records.get(r["model"])
        r["seeds"] = None if rec is None else {**rec, "pct_of_teacher_sd": ratio(rec["sd"], teacher_glue, 100.0)}


def mark_noise(rows: list[dict]) -> None:
    """In place: each row's "noise" vs the row ranked directly above it ({"above", "within_noise", "difference",
    "spread"}; None for the first row)."""
    prev = None
    for r in rows:
        if prev is None:
            r["noise"] = None
        else:
            sa, sb = (prev.get("seeds") or {}).get("sd"), (r.get("seeds") or {}).get("sd")
            a, b = num(prev.get("glue_score")), num(r.get("glue_score"))
            r["noise"] = {"above": prev["model"], "within_noise": within_noise(a, sa, b, sb),
                          "difference": (a - b) if a is not None and b is not None else None,
                          "spread": (num(sa) or 0.0) + (num(sb) or 0.0) if (sa, sb) != (None, None) else None}
        prev = r
