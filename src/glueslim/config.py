"""The start-up check of the workflow configuration: every problem is reported before any job starts.

The Snakefile first names a config file that is not a YAML mapping (`config_file_problem`) and reads
nested `--config` values as YAML (`retype_cli_values`). `check_schema(config, schema_path)` then reports
every violation of workflow/schemas/config.schema.yaml and every non-finite number on one line each
(glueslim.schema: key path, value, what was expected). The Snakefile lets Snakemake's `validate` fill in
the defaults, and `check_config(config)` checks what a schema cannot: model references (a local folder
holding a saved model, or a well-formed hub id, present in the cache when offline), the student layer
maps and TinyBERT shapes against the teacher's depth, sequence lengths against its positions,
`profile.task` against `tasks`, the `trust_remote_code` list, the model names (unique, each entry named,
and the pruned and deployed models' sources among them) and the pruning fractions (distinct row names,
each removing some heads and not the same number as another). Every check raises `ConfigError`.
Last, `by_name(config)` turns the named lists (students, baselines, tinybert.students) into dicts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from glueslim.errors import UserError
from glueslim.schema import (  # noqa: F401 - key_path, load_schema, schema_default: part of this module's API
    SCHEMA, key_path, load_schema, schema_default, schema_problems,
)


class ConfigError(UserError):
    """The configuration is invalid; the message lists every problem, one per line."""


def _raise(problems: list[str], source: str) -> None:
    if problems:
        head = f"invalid configuration ({source}): {len(problems)} problem{'s' * (len(problems) > 1)}"
        raise ConfigError("\n".join([head, *(f"  - {p}" for p in problems)]))


def config_file_problem(path: str | os.PathLike) -> str | None:
    """Why a config file cannot be read as a mapping of keys (None when it can): named, with the line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return f"config file {path}: cannot be read ({e.__class__.__name__}: {e})"
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        return (f"config file {path}: not valid YAML{where}: {what} (an unclosed bracket or quote, or tabs "
                "used for indentation?): fix the file")
    if doc is None:
        return f"config file {path}: is empty: it must hold the configuration's keys (tasks:, teacher:, ...)"
    if not isinstance(doc, dict):
        return (f"config file {path}: holds a {type(doc).__name__}, expected a mapping of keys (tasks:, "
                "teacher:, ...): remove the leading '- ' of each line")
    return None


def retype_cli_values(config: dict, cli: dict) -> None:
    """`--config key=value` values that reach the config as text, read as YAML as a config file would, in
    place: Snakemake reads nested values with YAML's base loader (`finetune={"epochs": 2}` gives epochs '2',
    `profile={"batch_sizes": [1, 8]}` gives ['1', '8']) and leaves a top-level `.nan` or `null` as text."""
    for key, value in cli.items():
        if not isinstance(config, dict) or key not in config:
            continue
        if isinstance(value, dict):
            retype_cli_values(config[key], value)
        elif config[key] == value:
            config[key] = _typed(value)


def _typed(value):
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, str) and value.strip():
        try:
            typed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        return value if isinstance(typed, (dict, list)) else typed
    return value


def check_schema(config: dict, schema_path: str | os.PathLike = SCHEMA) -> None:
    """Raise ConfigError listing every violation of the schema (run before Snakemake's validate)."""
    replaced = _replaced_problems(config)
    rest = {k: v for k, v in config.items() if k != "quantization"}
    _raise(replaced + schema_problems(rest, load_schema(schema_path)), f"checked against {schema_path}")


def _hub_config(ref: str, revision: str | None, cache: str | None) -> str | None:
    """Path of the model's config.json in the local HF cache, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(ref, "config.json", cache_dir=cache, revision=revision)
    except Exception:  # noqa: BLE001 - a malformed cache is reported by the job that loads the model
        return None
    return hit if isinstance(hit, str) else None


def model_ref_problem(ref: str, *, revision: str | None = None, offline: bool = False,
                      cache: str | None = None, need_tokenizer: bool = False) -> str | None:
    """Why `ref` cannot name a model (None when it can): a hub id, or a local folder that holds a whole model
    (modelfiles.model_dir_problem: config, weights, and with `need_tokenizer` the tokenizer files)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from glueslim.modelfiles import model_dir_problem

    path = Path(os.path.expanduser(ref))
    if path.is_dir():
        return model_dir_problem(path, need_tokenizer=need_tokenizer)
    if ref.startswith(("/", ".", "~")) or ref.count("/") > 1 or "\\" in ref or path.exists():
        return f"{ref!r} looks like a path but is not a folder holding a model"
    try:
        validate_repo_id(ref)
    except HFValidationError as e:
        return f"{ref!r} is neither a local folder nor a Hugging Face hub id (org/name): {e}"
    if offline and _hub_config(ref, revision, cache) is None:
        return (f"{ref!r} (revision {revision or 'main'}) is not in the Hugging Face cache "
                f"{cache or '(default)'} and hf.offline is on: download it first or set hf.offline: false")
    return None


def model_config(ref: str, revision: str | None, cache: str | None) -> dict | None:
    """A model's config.json where it is at hand (local folder or HF cache) and readable, else None."""
    path = Path(os.path.expanduser(ref)) / "config.json"
    if not path.is_file():
        hit = _hub_config(ref, revision, cache)
        if hit is None:
            return None
        path = Path(hit)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _int_key(doc: dict | None, key: str) -> int | None:
    try:
        return int(doc[key])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return None


def teacher_layers(config: dict) -> int | None:
    """The teacher's num_hidden_layers where its config.json is at hand (local folder or cache)."""
    t = config["teacher"]
    return _int_key(model_config(t["model"], t["revision"], config["hf"]["cache"]), "num_hidden_layers")


def pruned_models(config: dict) -> dict[str, dict]:
    """The head-pruned models by name, <source>-pruned<percent>: {"source": ..., "fraction": ...}."""
    p = config["pruning"]
    return {f"{src}-pruned{round(100 * f)}": {"source": src, "fraction": f}
            for src in p["models"] for f in p["fractions"]}


def _trained_names(config: dict) -> list[str]:
    """teacher, students, tinybert.students, baselines: named lists, or dicts by name after `by_name`."""
    named = (config["students"], config["tinybert"]["students"], config["baselines"])
    return ["teacher"] + [n for items in named for n in (items if isinstance(items, dict) else _names(items))]


def deploy_sources(config: dict) -> list[str]:
    """The models that get the deployed forms: deploy.models, or every model of the run when it is empty."""
    return list(config["deploy"]["models"]) or _trained_names(config) + list(pruned_models(config))


def deployed_models(config: dict) -> dict[str, dict]:
    """Every configured deployed form by row name, <source>-<form>: {"source": ..., "form": ...} (fp32 is the
    source's own row, no new one). Which of them the device runs: glueslim.forms.not_native, in the workflow."""
    forms = [f for f in config["deploy"]["forms"] if f != "fp32"]
    return {f"{src}-{form}": {"source": src, "form": form} for src in deploy_sources(config) for form in forms}


def _replaced_problems(config: dict) -> list[str]:
    """Keys an older glueslim read, with what replaced them."""
    if "quantization" in config:
        models = (config["quantization"] or {}).get("models") if isinstance(config["quantization"], dict) else None
        return [f"quantization = {config['quantization']!r}: replaced by deploy (deployed forms, each scored and "
                f"timed in its form): write deploy: {{models: {models or []}, forms: [fp32, int8-dynamic]}}; the "
                "rows are now <model>-int8-dynamic (torchao; or int8-static, onnx-int8)"]
    return []


def _names(entries: list[dict]) -> list[str]:
    return [e["name"] for e in entries]


def model_name_problems(config: dict) -> list[str]:
    """Every model name once across the rows (a named list becomes a dict by name, where the later entry
    would silently win, and a deployed form's row <model>-<form> must not name another model); pruning and
    deploy sources among this run's models."""
    entries = [("teacher", "teacher")]
    for where, items in (("students", config["students"]), ("tinybert.students", config["tinybert"]["students"]),
                         ("baselines", config["baselines"])):
        entries += [(e["name"], f"{where}[{i}]") for i, e in enumerate(items)]
    trained = [name for name, _ in entries]
    pruned = list(pruned_models(config))  # fractions that round alike: _pruning_problems
    entries += [(name, f"pruning ({p['source']} at {p['fraction']})") for name, p in pruned_models(config).items()]
    problems = []
    for key, allowed in (("pruning", trained), ("deploy", trained + pruned)):
        unknown = [n for n in config[key]["models"] if n not in allowed]
        if unknown:
            problems.append(f"{key}.models: {', '.join(map(repr, unknown))} is not a model of this run; "
                            f"expected one of {', '.join(allowed)}")
    if not problems:
        entries += [(name, f"deploy ({d['source']} as {d['form']})") for name, d in deployed_models(config).items()]
    for name in dict.fromkeys(n for n, _ in entries):
        users = [where for n, where in entries if n == name]
        if len(users) > 1:
            problems.append(f"model names must be unique across students, tinybert.students, baselines, pruning "
                            f"and deploy: {name!r} names both {' and '.join(users)}; rename one")
    return problems


def _source_heads(config: dict, name: str, teacher: dict | None) -> tuple[int, int] | None:
    """(layers, heads per layer) of a pruning source where the config and the teacher's config.json tell."""
    layers, heads = _int_key(teacher, "num_hidden_layers"), _int_key(teacher, "num_attention_heads")
    if name == "teacher":
        return (layers, heads) if layers and heads else None
    for s in config["students"]:
        if s["name"] == name and s["arch"] == "distilbert" and not s.get("init") and layers and heads:
            return s["num_layers"] or max(1, layers // 2), heads  # glueslim.students: half the teacher's
    for t in config["tinybert"]["students"]:
        if t["name"] == name and t["init"] in ("general", "random"):  # a checkpoint's own shape wins
            return t["num_layers"], t["num_heads"]
    for b in config["baselines"]:
        if b["name"] == name:
            doc = model_config(b["model"], b["revision"], config["hf"]["cache"])
            n, h = _int_key(doc, "num_hidden_layers"), _int_key(doc, "num_attention_heads")
            return (n, h) if n and h else None
    return None


def _pruning_problems(config: dict, teacher: dict | None) -> list[str]:
    """Fractions that name the same row, and fractions that remove no head or the same heads as another
    (glueslim.prune.heads_to_prune: round(fraction x all heads), at least one head kept per layer)."""
    fr = config["pruning"]["fractions"]
    problems = []
    percents = [round(100 * f) for f in fr]
    for i, j in ((i, j) for i in range(len(fr)) for j in range(i + 1, len(fr)) if percents[i] == percents[j]):
        problems.append(f"pruning.fractions[{i}] = {fr[i]} and pruning.fractions[{j}] = {fr[j]} both name the "
                        f"rows <model>-pruned{percents[i]} (names use whole percents): keep one, or make them "
                        "differ by at least 0.01")
    if config["pruning"]["models"] and not fr:
        problems.append(f"pruning.fractions is empty, so pruning.models {config['pruning']['models']} makes no "
                        "row: list fractions, e.g. [0.2, 0.4], or set pruning.models: []")
    for src in config["pruning"]["models"]:
        shape = _source_heads(config, src, teacher)
        if shape is None:
            continue
        total, removable = shape[0] * shape[1], shape[0] * (shape[1] - 1)
        removed = [min(int(round(f * total)), removable) for f in fr]
        for i, (f, n) in enumerate(zip(fr, removed)):
            if n == 0:
                problems.append(f"pruning.fractions[{i}] = {f} removes no head of {src} (round({f} x {total} heads)"
                                f"{' = 0' if removable else ': it has one head per layer, and one is always kept'})"
                                f", so row {src}-pruned{percents[i]} would be {src} unchanged: use a fraction of "
                                f"at least {1 / total:.4f}" + ("" if removable else " or leave it out of pruning.models"))
            same = [j for j in range(i) if removed[j] == n and n and percents[j] != percents[i]]
            if same:
                j = same[0]
                problems.append(f"pruning.fractions[{j}] = {fr[j]} and pruning.fractions[{i}] = {f} both remove {n} "
                                f"of {src}'s {total} heads, so rows {src}-pruned{percents[j]} and "
                                f"{src}-pruned{percents[i]} would be the same model: keep one")
    return problems


def _recipes(config: dict):
    """(key path, recipe override) of every training recipe in the config."""
    yield "finetune", config["finetune"]
    for where, items in (("students", config["students"]), ("tinybert.students", config["tinybert"]["students"])):
        for s in items:
            yield f"{where}.{s['name']}.train", s["train"]
    yield "tinybert.general.train", config["tinybert"]["general"]["train"]


def _length_problems(config: dict, teacher: dict | None) -> list[str]:
    """Sequence lengths within the teacher's positions (students share them): else the attention kernel fails."""
    limit = _int_key(teacher, "max_position_embeddings")
    if limit is None:
        return []
    problems = []
    for where, r in _recipes(config):
        for path, sub in ((where, r), *((f"{where}.per_task.{t}", o) for t, o in (r.get("per_task") or {}).items())):
            n = sub.get("max_seq_length")
            if n is not None and n > limit:
                problems.append(f"{path}.max_seq_length = {n}: the teacher ({config['teacher']['model']}) has only "
                                f"{limit} positions (max_position_embeddings): use at most {limit}")
    n = config["profile"]["seq_length"]
    if n > limit:
        problems.append(f"profile.seq_length = {n}: the teacher ({config['teacher']['model']}) has only {limit} "
                        f"positions (max_position_embeddings): use at most {limit}")
    return problems


def _tinybert_problems(config: dict, n_teacher: int | None) -> list[str]:
    """Each TinyBERT student's shape (heads divide the width, a layer map per layer, within the teacher's
    1..N); tinybert.ablation: its base is a tinybert.students name, its tasks are configured tasks."""
    problems = []
    for t in config["tinybert"]["students"]:
        name, lm, n = t["name"], t["layer_map"], t["num_layers"]
        if t["init"] in ("general", "random") and t["hidden_size"] % t["num_heads"]:
            problems.append(f"tinybert.students.{name}: hidden_size = {t['hidden_size']} is not a multiple of "
                            f"num_heads = {t['num_heads']}: each head takes hidden_size / num_heads dimensions")
        if lm is not None and t["init"] in ("general", "random") and len(lm) != n:
            problems.append(f"tinybert.students.{name}: layer_map {lm} has {len(lm)} entries but num_layers = {n}")
        bad = [j for j in lm or [] if n_teacher is not None and j > n_teacher]
        if bad:
            problems.append(f"tinybert.students.{name}.layer_map = {lm}: teacher layers {bad} do not exist "
                            f"(layers 1..{n_teacher})")
    names = _names(config["tinybert"]["students"])
    abl = config["tinybert"]["ablation"]
    if not abl["base"]:
        return problems
    if abl["base"] not in names:
        problems.append(f"tinybert.ablation.base: {abl['base']!r} is not a tinybert.students name "
                        f"(have: {', '.join(names) or 'none'})")
    extra = sorted(set(abl["tasks"]) - set(config["tasks"]))
    if extra:
        problems.append(f"tinybert.ablation.tasks: {extra} are not configured tasks")
    return problems


def config_problems(config: dict) -> list[str]:
    """What the schema cannot check, on a config with its defaults filled in (named lists still lists)."""
    problems = []
    tasks = list(config["tasks"])
    hf = config["hf"]
    cache = os.path.abspath(hf["cache"]) if hf["cache"] else None
    if hf["offline"] and cache and not os.path.isdir(cache):
        problems.append(f"hf.cache = {hf['cache']!r}: no such folder (hf.offline is on, so models come from there)")
    ptask = config["profile"]["task"]
    if ptask is not None and ptask not in tasks:
        problems.append(f"profile.task = {ptask!r}: expected one of the configured tasks {', '.join(tasks)}")
    t = config["teacher"]
    teacher_problem = model_ref_problem(t["model"], revision=t["revision"], offline=hf["offline"], cache=cache,
                                        need_tokenizer=True)
    if teacher_problem:
        problems.append(f"teacher.model: {teacher_problem}")
    for i, ref in enumerate(config["trust_remote_code"]):
        problem = model_ref_problem(ref)
        if problem:
            problems.append(f"trust_remote_code[{i}]: {problem}")
    for i, b in enumerate(config["baselines"]):
        problem = model_ref_problem(b["model"], revision=b["revision"], offline=hf["offline"], cache=cache,
                                    need_tokenizer=True)
        if problem:
            problems.append(f"baselines[{i}].model ({b['name']}): {problem}")
    for s in config["tinybert"]["students"]:  # a checkpoint to start from: a hub id or a whole model folder
        problem = None if s["init"] in ("general", "random") else model_ref_problem(
            s["init"], offline=hf["offline"], cache=cache)
        if problem:
            problems.append(f"tinybert.students.{s['name']}.init: {problem}")
    teacher = None if teacher_problem else model_config(t["model"], t["revision"], hf["cache"])
    n_teacher = _int_key(teacher, "num_hidden_layers")
    for s in config["students"]:
        if s["arch"] != "distilbert":
            continue
        name, n, lm = s["name"], s["num_layers"], s["layer_map"]
        if n is not None and lm is not None and len(lm) != n:
            problems.append(f"students.{name}: layer_map {lm} has {len(lm)} entries but num_layers = {n}")
        if n_teacher is not None and not s.get("init"):  # a checkpoint's own depth: its job checks it
            if n is not None and n > n_teacher:
                problems.append(f"students.{name}.num_layers = {n}: the teacher has only {n_teacher} layers")
            bad = [j for j in lm or [] if j >= n_teacher]
            if bad:
                problems.append(f"students.{name}.layer_map = {lm}: layers {bad} do not exist in the teacher "
                                f"(layers 0..{n_teacher - 1})")
    return (problems + model_name_problems(config) + _pruning_problems(config, teacher)
            + _length_problems(config, teacher) + _tinybert_problems(config, n_teacher))


def check_config(config: dict) -> None:
    """Raise ConfigError listing every problem the schema cannot see (run after defaults are filled in)."""
    _raise(config_problems(config), "checked at start-up")


def by_name(config: dict) -> None:
    """After the checks: the named lists (a preset's list replaces the default's, where dicts would merge)
    become dicts by name, in place: students, baselines and tinybert.students."""
    for parent, key in ((config, "students"), (config, "baselines"), (config["tinybert"], "students")):
        parent[key] = {entry.pop("name"): entry for entry in parent[key]}


def trusts_remote_code(config: dict, ref: str) -> bool:
    """True only for a model the config names in `trust_remote_code`: its repository's code may run."""
    return ref in config["trust_remote_code"]
