"""The runs behind the leaderboard's rows: seeds, no-KD twins, the ingredient table and published links.

- Seeds (`seeds: [42, 43, 44]`): every student, TinyBERT student and baseline is trained once per seed. The
  first seed's run keeps the row's name; the others are runs named `<name>-seed<S>`, each with its own model
  folders, predictions and score file. Only the first run is profiled, deployed and submitted; the
  leaderboard shows each row's mean and standard deviation over its runs. The teacher is trained once, with
  `seed`: every student of every seed distils from the same teacher.
- Twins (`twin: true` on a student): a row `<name>-nokd` with the student's init and shape, fine-tuned on
  gold labels only (alpha 0, no intermediate losses, no augmentation, no transfer set): what the knowledge
  distillation adds.

`add_twins(config)` runs once the named lists are dicts (config.by_name); `run_problems(config)` checks,
before that, what these add (names, the ablation's rows, the published links) on one line each.
"""

from __future__ import annotations

import os

from glueslim.config import _raise, _trained_names, deployed_models, model_ref_problem, pruned_models

TWIN_SUFFIX = "-nokd"


def seed_list(config: dict) -> list[int]:
    """The seeds of the runs: `seeds`, or `[seed]` when it is null."""
    return list(config.get("seeds") or [config["seed"]])


def seeded_models(config: dict) -> list[str]:
    """The rows trained once per seed: students (twins included), TinyBERT students and baselines."""
    return [n for n in _trained_names(config) + _listed_twins(config) if n != "teacher"]


def _listed_twins(config: dict) -> list[str]:
    """The twin rows of a config whose students are still a list (before add_twins)."""
    students = config["students"]
    return [s["name"] + TWIN_SUFFIX for s in students if s.get("twin")] if isinstance(students, list) else []


def seed_runs(config: dict) -> dict[str, tuple[str, int]]:
    """Every run beyond the first seed's, by name: {"distil-seed43": ("distil", 43), ...}."""
    seeds = seed_list(config)
    return {f"{m}-seed{s}": (m, s) for m in seeded_models(config) for s in seeds[1:]}


def run_of(config: dict, name: str) -> tuple[str, int]:
    """(row, seed) of a run name: a seed run's row and seed, or the name itself with the first seed."""
    return seed_runs(config).get(name, (name, seed_list(config)[0]))


def runs_by_row(config: dict) -> dict[str, dict]:
    """{row: {"seeds": [...], "runs": [row, row-seedS, ...]}} of every row with more than one run."""
    seeds = seed_list(config)
    if len(seeds) < 2:
        return {}
    return {m: {"seeds": seeds, "runs": [m] + [f"{m}-seed{s}" for s in seeds[1:]]} for m in seeded_models(config)}


def twin_spec(spec: dict) -> dict:
    """A student's no-KD twin: its init, shape and recipe; gold labels only."""
    return {**spec, "alpha": 0.0, "intermediate": [], "joint": False, "augment": False, "transfer": False,
            "twin": False, "twin_of": None}


def add_twins(config: dict) -> None:
    """In place, on students by name: `<name>-nokd` after each student with `twin: true`."""
    out = {}
    for name, spec in config["students"].items():
        out[name] = spec
        if spec.get("twin"):
            out[name + TWIN_SUFFIX] = {**twin_spec(spec), "twin_of": name}
    config["students"] = out


def twins(config: dict) -> dict[str, str]:
    """{twin row: its KD row}, after add_twins."""
    return {n: s["twin_of"] for n, s in config["students"].items() if s.get("twin_of")}


def row_names(config: dict) -> list[str]:
    """Every leaderboard row of the config (named lists or dicts): trained, twins, pruned, deployed."""
    return _trained_names(config) + _listed_twins(config) + list(pruned_models(config)) + list(deployed_models(config))


def run_problems(config: dict) -> list[str]:
    """Names a twin or a seed run would take twice; the ablation's and published's rows and references."""
    problems = []
    rows = row_names(config)
    trained = _trained_names(config)
    for s in config["students"]:
        twin = s["name"] + TWIN_SUFFIX
        if s.get("twin") and twin in trained:
            problems.append(f"students.{s['name']}.twin: its twin's row {twin!r} is already a model name; rename that "
                            "model or set twin: false")
        if s.get("transfer") and not config["data"]["max_train_examples"]:
            problems.append(f"students.{s['name']}.transfer: no texts to transfer, data.max_train_examples is null "
                            "(the student already trains on every labelled text): cap the training set or set "
                            "transfer: false")
    seeds = seed_list(config)
    taken = set(rows)
    for m in trained[1:] + [r for r in rows if r.endswith(TWIN_SUFFIX)]:
        for s in seeds[1:]:
            if f"{m}-seed{s}" in taken:
                problems.append(f"seeds: the run {m}-seed{s} of {m} would take the name of another model; rename it")
    hf = config["hf"]
    cache = os.path.abspath(hf["cache"]) if hf["cache"] else None
    for s in config["students"]:  # a checkpoint to start from: a hub id or a whole model folder
        problem = s.get("init") and model_ref_problem(s["init"], offline=hf["offline"], cache=cache)
        if problem:
            problems.append(f"students.{s['name']}.init: {problem}")
    abl = config.get("ablation")
    for i, r in enumerate((abl or {}).get("rows") or []):
        if r["model"] not in rows:
            problems.append(f"ablation.rows[{i}].model = {r['model']!r}: not a row of this run; expected one of "
                            f"{', '.join(rows)}")
    links = [p["model"] for p in config.get("published") or []]
    problems += [f"published: row {m!r} is linked {links.count(m)} times; keep one" for m in dict.fromkeys(links)
                 if links.count(m) > 1]
    if links:
        from glueslim.published import load_references, published_problems

        problems += published_problems(published_map(config), rows, load_references())
    return problems


def published_map(config: dict) -> dict[str, str]:
    """{row: reference id} of `published`."""
    return {p["model"]: p["reference"] for p in config.get("published") or []}


def check_runs(config: dict) -> None:
    """Raise ConfigError listing every run_problems line (named lists, defaults filled in)."""
    _raise(run_problems(config), "checked at start-up")
