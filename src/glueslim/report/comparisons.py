"""Seed-aware comparisons between leaderboard rows (their GLUE means and seed sds, glueslim.report.seeds): the
"KD vs no-KD twin" table (--twins) and the ingredient ablation table (--ablation). Pure functions of the rows.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from glueslim.errors import UserError
from glueslim.report.seeds import within_noise
from glueslim.report.values import num

VERDICTS = {
    "kd_better": "KD beats its twin by more than the seeds' spread",
    "within_noise": "within noise",
    "twin_better": "twin better",
}


def _fig(row: Mapping) -> dict:
    """A row's GLUE mean, seed sd, number of runs and % of teacher."""
    seeds = row.get("seeds") or {}
    return {"glue_score": row.get("glue_score"), "sd": seeds.get("sd"), "n_runs": seeds.get("n_runs", 1),
            "pct_of_teacher": row.get("pct_of_teacher")}


def _spread(sd_a: Any, sd_b: Any) -> float | None:
    return None if num(sd_a) is None and num(sd_b) is None else (num(sd_a) or 0.0) + (num(sd_b) or 0.0)


def check_twins(value: Any, models: Sequence[str]) -> dict[str, str]:
    """The --twins map {twin row: its KD row}, both in --models and different."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f'--twins: expected a JSON object {{"<name>-nokd": "<name>"}}, got {type(value).__name__}')
    for twin, kd in value.items():
        for what, name in (("twin", twin), ("KD row", kd)):
            if not isinstance(name, str) or name not in models:
                raise UserError(f"--twins: {what} {name!r} (pair {twin!r}: {kd!r}) is not in --models "
                                f"({', '.join(models)})")
        if twin == kd:
            raise UserError(f"--twins: {twin!r} is paired with itself")
    return dict(value)


def verdict(kd_glue: Any, kd_sd: Any, twin_glue: Any, twin_sd: Any) -> tuple[str, str]:
    """(key, text) of a KD row against its no-KD twin, by the noise rule (seeds.within_noise)."""
    kd, tw = num(kd_glue), num(twin_glue)
    if kd is None or tw is None:
        return "unknown", "no GLUE score for both"
    wn = within_noise(kd, kd_sd, tw, twin_sd)
    if wn is None:
        who = "KD" if kd > tw else "twin"
        return "unknown", f"{who} ahead by {abs(kd - tw) * 100:.1f}; one run each, no seed spread to judge it"
    key = "within_noise" if wn else ("kd_better" if kd > tw else "twin_better")
    return key, VERDICTS[key]


def twin_table(rows: Sequence[Mapping], twins: Mapping[str, str]) -> list[dict]:
    """One entry per (twin, KD row) pair: both GLUE means ± sd, Δ = KD − twin, the spread, the verdict."""
    by = {r["model"]: r for r in rows}
    out = []
    for twin, kd in twins.items():
        k, t = _fig(by[kd]), _fig(by[twin])
        key, text = verdict(k["glue_score"], k["sd"], t["glue_score"], t["sd"])
        both = None not in (num(k["glue_score"]), num(t["glue_score"]))
        delta = (k["glue_score"] - t["glue_score"]) if both else None
        out.append({"kd": kd, "twin": twin, "kd_glue": k["glue_score"], "kd_sd": k["sd"], "kd_runs": k["n_runs"],
                    "twin_glue": t["glue_score"], "twin_sd": t["sd"], "twin_runs": t["n_runs"], "delta": delta,
                    "spread": _spread(k["sd"], t["sd"]),
                    "within_noise": within_noise(k["glue_score"], k["sd"], t["glue_score"], t["sd"]),
                    "verdict": key, "verdict_text": text})
    return out


def check_ablation(value: Any, models: Sequence[str]) -> dict | None:
    """The --ablation spec {"title", "caption" (optional), "rows": [{"label", "model"}, ...]}, checked."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"title", "caption", "rows"}:
        raise UserError('--ablation: expected a JSON object {"title", "caption", "rows": [{"label", "model"}]}, '
                        f"got {value!r:.120}")
    title, caption, spec_rows = value.get("title"), value.get("caption", ""), value.get("rows")
    if not isinstance(title, str) or not title.strip():
        raise UserError('--ablation: "title" must be a non-empty string')
    if not isinstance(caption, str):
        raise UserError('--ablation: "caption" must be a string')
    if not isinstance(spec_rows, list) or not spec_rows:
        raise UserError('--ablation: "rows" must be a non-empty list of {"label", "model"} objects')
    for i, r in enumerate(spec_rows):
        if not isinstance(r, dict) or set(r) != {"label", "model"} or not isinstance(r["label"], str):
            raise UserError(f'--ablation: rows[{i}] must be {{"label": "...", "model": "<row>"}}, got {r!r}')
        if r["model"] not in models:
            raise UserError(f"--ablation: rows[{i}] ({r['label']!r}): model {r['model']!r} is not in --models "
                            f"({', '.join(models)})")
    return {"title": title, "caption": caption, "rows": [dict(r) for r in spec_rows]}


def ablation_table(rows: Sequence[Mapping], spec: Mapping) -> dict:
    """The ingredient table: per spec row, its model's GLUE mean ± sd, % of teacher, and Δ and the noise rule
    against the previous spec row."""
    by = {r["model"]: r for r in rows}
    out, prev = [], None
    for s in spec["rows"]:
        f = _fig(by[s["model"]])
        entry = {"label": s["label"], "model": s["model"], **f, "delta": None, "within_noise": None}
        if prev is not None and None not in (num(f["glue_score"]), num(prev["glue_score"])):
            entry["delta"] = f["glue_score"] - prev["glue_score"]
            entry["within_noise"] = within_noise(f["glue_score"], f["sd"], prev["glue_score"], prev["sd"])
        out.append(entry)
        prev = f
    return {"title": spec["title"], "caption": spec.get("caption", ""), "rows": out}
