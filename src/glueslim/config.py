"""The start-up check of the workflow configuration: every problem is reported before any job starts.

`check_schema(config, schema_path)` validates the raw config against workflow/schemas/config.schema.yaml
with jsonschema and reports every violation on one line that names the key path, the value and what
was expected (unknown keys get a "did you mean"), instead of Snakemake's dump of the whole schema.
The Snakefile then lets Snakemake's `validate` fill in the defaults, and `check_config(config)` checks
what a schema cannot: model references (a local folder holding a saved model, or a well-formed hub
id, present in the cache when offline), the student layer maps against the teacher's depth,
`profile.task` against `tasks`, the `trust_remote_code` list, and the model names (unique, and the
pruned and quantized models' sources among them). Every check is here and raises `ConfigError`.
Last, `by_name(config)` turns the named lists (students, baselines, tinybert.students) into dicts.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

import yaml

from glueslim.errors import UserError

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"

# keys that were moved: the unknown-key message says where they went
MOVED = {
    ("teacher", "trust_remote_code"): "remote code is allowed per model: list the model by name in the "
                                      "top-level `trust_remote_code: [<model>]` instead",
}
_TYPE_NAMES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
               "null": "null", "object": "a mapping", "array": "a list"}


class ConfigError(UserError):
    """The configuration is invalid; the message lists every problem, one per line."""


# ---------------------------------------------------------------- formatting

def key_path(parts: Iterable) -> str:
    """('finetune', 'per_task', 'rte', 'epochs') -> finetune.per_task.rte.epochs; list items as [i]."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", str(p)):
            out += f".{p}" if out else str(p)
        else:
            out += f"[{str(p)!r}]"
    return out or "(top level)"


def _value(v: Any, limit: int = 80) -> str:
    text = repr(v) if isinstance(v, str) else json.dumps(v, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _resolve(schema: dict, root: dict) -> dict:
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            break
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def expected(schema: dict, root: dict, top: bool = True) -> str:
    """A short English description of what `schema` accepts."""
    s = _resolve(schema, root)
    if "const" in s:
        text = f"exactly {s['const']!r}"
    elif "enum" in s:
        text = "one of " + ", ".join(str(v) for v in s["enum"])
    elif "oneOf" in s or "anyOf" in s:
        text = " or ".join(expected(sub, root, False) for sub in s.get("oneOf", s.get("anyOf")))
    else:
        types = s.get("type", [])
        types = [types] if isinstance(types, str) else list(types)
        text = " or ".join(_TYPE_NAMES.get(t, t) for t in types) or "a value"
        bounds = []
        for key, word in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                          ("exclusiveMaximum", "<")):
            if key in s:
                bounds.append(f"{word} {s[key]}")
        if "minLength" in s:
            bounds.append(f"of at least {s['minLength']} character(s)")
        if "pattern" in s:
            bounds.append(f"matching {s['pattern']}")
        if "items" in s and isinstance(s["items"], dict):
            text += f" of ({expected(s['items'], root, False)})"
        if "minItems" in s:
            bounds.append(f"with at least {s['minItems']} item(s)")
        if s.get("uniqueItems"):
            bounds.append("without repeats")
        if bounds:
            text += " " + ", ".join(bounds)
        if "propertyNames" in s and isinstance(s.get("additionalProperties"), dict):
            text += (f" from ({expected(s['propertyNames'], root, False)}) "
                     f"to ({expected(s['additionalProperties'], root, False)})")
    if "not" in s:
        text += f", but not {expected(s['not'], root, False)}"
    if top and s.get("description"):
        text += f" ({s['description']})"
    return text


def _did_you_mean(word: Any, choices: Iterable) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _yaml_hint(value: Any, schema: dict) -> str:
    types = schema.get("type", [])
    if isinstance(value, str) and ("number" in types or "integer" in types):
        try:
            float(value)
        except ValueError:
            return ""
        mantissa, _, exponent = value.lower().partition("e")
        fixed = mantissa + ("" if "." in mantissa else ".0") + (f"e{exponent}" if exponent else "")
        return f"; YAML reads {value} as text: write {fixed}"
    return ""


def _describe(err, root: dict) -> list[str]:
    path = list(err.absolute_path)
    where = key_path(path)
    v, kind = err.instance, err.validator
    schema = _resolve(err.schema, root) if isinstance(err.schema, dict) else {}
    if "propertyNames" in err.absolute_schema_path:  # the key itself is wrong, not its value
        choices = schema.get("enum", [])
        return [f"{where}: key {v!r} is not allowed: expected {expected(schema, root)}{_did_you_mean(v, choices)}"]
    if kind == "additionalProperties" and isinstance(v, dict):
        allowed = list(schema.get("properties", {}))
        out = []
        for key in (k for k in v if k not in allowed):
            moved = MOVED.get((*map(str, path), key))
            hint = f"; {moved}" if moved else _did_you_mean(key, allowed)
            out.append(f"{key_path(path + [key])}: unknown key (value {_value(v[key])}){hint} "
                       f"({where if path else 'the top level'} takes: {', '.join(allowed)})")
        return out
    if kind == "required" and isinstance(v, dict):
        props = schema.get("properties", {})
        return [f"{key_path(path + [k])}: missing; expected {expected(props.get(k, {}), root)}"
                for k in err.validator_value if k not in v]
    if kind in ("oneOf", "anyOf") and err.context:
        branches: dict = {}
        for sub in err.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        right_kind = [errs for errs in branches.values()
                      if not any(e.validator == "type" and not e.relative_path for e in errs)]
        if len(right_kind) == 1:  # the value has the right type for one branch: report that branch's problem
            return [m for sub in right_kind[0] for m in _describe(sub, root)]
    hint = _did_you_mean(v, schema.get("enum", [])) if kind == "enum" else _yaml_hint(v, schema)
    return [f"{where} = {_value(v)}: expected {expected(schema, root)}{hint}"]


# ---------------------------------------------------------------- checks

def load_schema(path: str | os.PathLike = SCHEMA) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


@functools.cache
def _shipped_schema() -> dict:
    return load_schema()


def schema_default(*keys: str) -> Any:
    """The schema's default of the config key at `keys` (e.g. "finetune", "epochs"): what commands take
    when a flag is not given, so that no default is restated in Python. KeyError if it has none."""
    root = _shipped_schema()
    node = root
    for key in keys:
        node = _resolve(node.get("properties", {}).get(key, {}), root)
    if "default" not in node:
        raise KeyError(f"{SCHEMA.name} has no default for {key_path(keys)}")
    return node["default"]


def schema_problems(config: dict, schema: dict) -> list[str]:
    """One line per schema violation: key path, value, what was expected."""
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    errors = sorted(cls(schema).iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    out: list[str] = []
    for e in errors:
        for line in _describe(e, schema):
            if line not in out:
                out.append(line)
    return out


def _raise(problems: list[str], source: str) -> None:
    if problems:
        head = f"invalid configuration ({source}): {len(problems)} problem{'s' * (len(problems) > 1)}"
        raise ConfigError("\n".join([head, *(f"  - {p}" for p in problems)]))


def check_schema(config: dict, schema_path: str | os.PathLike = SCHEMA) -> None:
    """Raise ConfigError listing every violation of the schema (run before Snakemake's validate)."""
    _raise(schema_problems(config, load_schema(schema_path)), f"checked against {schema_path}")


def _hub_config(ref: str, revision: str | None, cache: str | None) -> str | None:
    """Path of the model's config.json in the local HF cache, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(ref, "config.json", cache_dir=cache, revision=revision)
    except Exception:  # noqa: BLE001 - a malformed cache is reported by the job that loads the model
        return None
    return hit if isinstance(hit, str) else None


def model_ref_problem(ref: str, *, revision: str | None = None, offline: bool = False,
                      cache: str | None = None) -> str | None:
    """Why `ref` cannot name a model (None when it can): a local folder with a config.json, or a hub id."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    path = Path(os.path.expanduser(ref))
    if path.is_dir():
        return None if (path / "config.json").is_file() else f"local folder {path} holds no config.json (not a saved model)"
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


def teacher_layers(config: dict) -> int | None:
    """The teacher's num_hidden_layers where its config.json is at hand (local folder or cache)."""
    t = config["teacher"]
    path = Path(os.path.expanduser(t["model"])) / "config.json"
    if not path.is_file():
        hit = _hub_config(t["model"], t["revision"], config["hf"]["cache"])
        if hit is None:
            return None
        path = Path(hit)
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["num_hidden_layers"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pruned_models(config: dict) -> dict[str, dict]:
    """The head-pruned models by name, <source>-pruned<percent>: {"source": ..., "fraction": ...}."""
    p = config["pruning"]
    return {f"{src}-pruned{round(100 * f)}": {"source": src, "fraction": f}
            for src in p["models"] for f in p["fractions"]}


def int8_models(config: dict) -> dict[str, dict]:
    """The int8 models by name, <source>-int8: {"source": ...}."""
    return {f"{src}-int8": {"source": src} for src in config["quantization"]["models"]}


def _names(entries: list[dict]) -> list[str]:
    return [e["name"] for e in entries]


def model_name_problems(config: dict) -> list[str]:
    """Every model name once across the rows; pruning and quantization sources among this run's models."""
    trained = ["teacher", *_names(config["students"]), *_names(config["tinybert"]["students"]),
               *_names(config["baselines"])]
    pruned = list(pruned_models(config))
    models = trained + pruned + list(int8_models(config))
    problems = []
    clash = sorted({m for m in models if models.count(m) > 1})
    if clash:
        problems.append("model names must be unique across students, tinybert.students, baselines, pruning and "
                        f"quantization; used twice: {', '.join(clash)}")
    for key, allowed in (("pruning", trained), ("quantization", trained + pruned)):
        unknown = [n for n in config[key]["models"] if n not in allowed]
        if unknown:
            problems.append(f"{key}.models: {', '.join(map(repr, unknown))} is not a model of this run; "
                            f"expected one of {', '.join(allowed)}")
    return problems


def _tinybert_problems(config: dict) -> list[str]:
    """tinybert.ablation: its base is a tinybert.students name, its tasks are configured tasks."""
    names = _names(config["tinybert"]["students"])
    abl = config["tinybert"]["ablation"]
    if not abl["base"]:
        return []
    problems = []
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
    teacher_problem = model_ref_problem(t["model"], revision=t["revision"], offline=hf["offline"], cache=cache)
    if teacher_problem:
        problems.append(f"teacher.model: {teacher_problem}")
    for i, ref in enumerate(config["trust_remote_code"]):
        problem = model_ref_problem(ref)
        if problem:
            problems.append(f"trust_remote_code[{i}]: {problem}")
    for i, b in enumerate(config["baselines"]):
        problem = model_ref_problem(b["model"], revision=b["revision"], offline=hf["offline"], cache=cache)
        if problem:
            problems.append(f"baselines[{i}].model ({b['name']}): {problem}")
    n_teacher = None if teacher_problem else teacher_layers(config)
    for s in config["students"]:
        if s["arch"] != "distilbert":
            continue
        name, n, lm = s["name"], s["num_layers"], s["layer_map"]
        if n is not None and lm is not None and len(lm) != n:
            problems.append(f"students.{name}: layer_map {lm} has {len(lm)} entries but num_layers = {n}")
        if n_teacher is not None:
            if n is not None and n > n_teacher:
                problems.append(f"students.{name}.num_layers = {n}: the teacher has only {n_teacher} layers")
            bad = [j for j in lm or [] if j >= n_teacher]
            if bad:
                problems.append(f"students.{name}.layer_map = {lm}: layers {bad} do not exist in the teacher "
                                f"(layers 0..{n_teacher - 1})")
    return problems + model_name_problems(config) + _tinybert_problems(config)


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
