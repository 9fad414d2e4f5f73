"""The config schema and its messages: every violation of workflow/schemas/config.schema.yaml on one line
that names the key path, the value and what was expected (unknown keys get a "did you mean", text that
should be a number says how to write it), every non-finite number (.nan, .inf) anywhere in the config, and
the schema's defaults (`schema_default`) that commands take as their flag defaults. glueslim.config runs
these first, then the checks a schema cannot make.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable

import yaml

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"

# keys that were moved: the unknown-key message says where they went
MOVED = {
    ("teacher", "trust_remote_code"): "remote code is allowed per model: list the model by name in the "
                                      "top-level `trust_remote_code: [<model>]` instead",
}
_TYPE_NAMES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
               "null": "null", "object": "a mapping", "array": "a list"}



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


def _integral(value: Any) -> int | None:
    """The integer a number or numeric text stands for (2, 2.0, '2', '2.0', '2e3'), else None."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return int(f) if math.isfinite(f) and f.is_integer() else None


def _yaml_hint(value: Any, schema: dict) -> str:
    """How to write a number the schema wants: integer keys take 2 (a job's flag parser rejects 2.0),
    number keys 2.0 or 2.0e-5 (YAML 1.1 reads 2e-5 as text)."""
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if isinstance(value, bool) or not ("number" in types or "integer" in types):
        return ""
    if "integer" in types and "number" not in types:
        if isinstance(value, int):
            return ""
        n = _integral(value)
        if n is None:
            return "; write a whole number, e.g. 2" if isinstance(value, (str, float)) else ""
        if isinstance(value, str):
            return f"; YAML reads {value!r} as text: write {n} (an integer: no quotes, no decimal point)"
        return f"; write {n} (an integer: no decimal point)"
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        mantissa, _, exponent = value.strip().lower().partition("e")
        fixed = mantissa + ("" if "." in mantissa else ".0") + (f"e{exponent}" if exponent else "")
        return f"; YAML reads {value} as text: write {fixed} (a number: no quotes, a decimal point before any e)"
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


def _nonfinite(value: Any, path: tuple = ()) -> dict[tuple, float]:
    """Every non-finite number (YAML .nan, .inf, -.inf; JSON NaN, Infinity) in `value`, by key path."""
    if isinstance(value, float) and not math.isfinite(value):
        return {path: value}
    if isinstance(value, dict):
        return {p: v for k, sub in value.items() for p, v in _nonfinite(sub, (*path, k)).items()}
    if isinstance(value, (list, tuple)):
        return {p: v for i, sub in enumerate(value) for p, v in _nonfinite(sub, (*path, i)).items()}
    return {}


def _as_text(value: Any, bad: dict[tuple, float], path: tuple = ()) -> Any:
    """`value` with each non-finite number replaced by its text, so that the schema names what it expects."""
    if path in bad:
        return str(bad[path])
    if isinstance(value, dict):
        return {k: _as_text(v, bad, (*path, k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_text(v, bad, (*path, i)) for i, v in enumerate(value)]
    return value


def _validator(schema: dict):
    """The schema's jsonschema validator, with `integer` strict: 2.0 is a number, not an integer (jsonschema
    accepts it, and the job then fails on `--epochs 2.0`)."""
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    checker = cls.TYPE_CHECKER.redefine(
        "integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool))
    return jsonschema.validators.extend(cls, type_checker=checker)(schema)


def schema_problems(config: Any, schema: dict) -> list[str]:
    """One line per schema violation: key path, value, what was expected. A non-finite number is one too,
    wherever it is (a schema's minimum and maximum let NaN through; a job would fail late on a nan loss)."""
    bad = _nonfinite(config)
    errors = sorted(_validator(schema).iter_errors(_as_text(config, bad)),
                    key=lambda e: [str(p) for p in e.absolute_path])
    out: list[str] = []
    for e in errors:
        path = tuple(e.absolute_path)
        if path in bad:
            what = expected(_resolve(e.schema, schema), schema) if isinstance(e.schema, dict) else "a number"
            lines = [f"{key_path(path)} = {bad.pop(path)}: expected a finite number: {what}; .nan and .inf are "
                     "not values any setting takes"]
        else:
            lines = _describe(e, schema)
        out += [line for line in lines if line not in out]
    out += [f"{key_path(path)} = {v}: expected a finite number; .nan and .inf are not values any setting takes"
            for path, v in bad.items() if not any(line.startswith(key_path(path) + ":") for line in out)]
    return out
