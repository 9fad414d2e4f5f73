"""Deployed forms on the leaderboard: each row's form, backend, source model and kernel dtypes, the row order
(a model's forms together, fp32 first), the forms the workflow skipped, and the CPU instructions each dtype
needs to run natively.

A row of a deployed form is named `<model>-<form>` (glueslim.forms); its glueslim.json and profile say its
`form` and `backend`. Rows without them (every row before deployed forms) are fp32 PyTorch rows.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from glueslim.errors import UserError
from glueslim.forms import BF16_FLAGS, FORMS, FP16_FLAGS, INT8_FLAGS
from glueslim.report.values import unique

DEFAULT_FORM, DEFAULT_BACKEND = "fp32", "pytorch"
DTYPES = ("float32", "bfloat16", "float16", "int8")
# how each kind of row is timed (the profile's runner for it)
TIMED_WITH = {
    ("pytorch", True): "PyTorch eager",
    ("pytorch", False): "torch.compile (inductor, frozen weights)",
    ("onnxruntime", True): "an ONNX Runtime session",
    ("onnxruntime", False): "an ONNX Runtime session",
}
# the CPU instructions that run each low-precision dtype natively: (dtype, short name, [(flag, name)])
_ISA = (
    ("bfloat16", "bf16", [(f, n) for f, n in (("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX-BF16"))
                          if f in BF16_FLAGS]),
    ("float16", "fp16", [(f, n) for f, n in (("avx512_fp16", "AVX512-FP16"), ("amx_fp16", "AMX-FP16"))
                         if f in FP16_FLAGS]),
    ("int8", "int8", [(f, n) for f, n in (("avx512_vnni", "AVX512-VNNI"), ("avx_vnni", "AVX-VNNI"),
                                          ("amx_int8", "AMX-INT8")) if f in INT8_FLAGS]),
)
SKIPPED_KEYS = ("model", "form", "row", "reason")


def _one(m: str, key: str, values: Sequence[Any], warnings: list[str]) -> Any:
    """The one value the model's tasks agree on (the first, warned about, when they do not); None if none."""
    vals = unique(v for v in values if v is not None)
    if len(vals) > 1:
        warnings.append(f"{m}: tasks disagree on {key} ({'; '.join(map(str, vals))}); the first is used")
    return vals[0] if vals else None


def row_form(m: str, metas: Mapping[str, dict], prof: Mapping, models: Sequence[str], warnings: list[str]) -> dict:
    """The row's `form`, `backend`, `source_model` (the model it was deployed from: itself for fp32),
    `kernels` ({"linear", "attention", "other"}: the kernel dtype of each op class, which its floors use),
    `native`, `emulated`, `not_native_reason`, `timed_with`."""
    form = str(_one(m, "form", [v.get("form") for v in metas.values()], warnings) or prof.get("form") or DEFAULT_FORM)
    if prof.get("form") not in (None, form):
        warnings.append(f"{m}: its glueslim.json says form {form!r}, its profile {prof.get('form')!r}")
    known = FORMS.get(str(form))
    backend = str(_one(m, "backend", [v.get("backend") for v in metas.values()], warnings) or prof.get("backend")
                  or (known.backend if known else DEFAULT_BACKEND))
    kernels = prof.get("kernels") if isinstance(prof.get("kernels"), dict) else None  # what its floors used
    if kernels is None:
        kernels = _one(m, "kernels", [v.get("kernels") for v in metas.values() if isinstance(v.get("kernels"), dict)],
                       warnings)
    if not isinstance(kernels, dict):
        kernels = ({"linear": known.linear_dtype, "attention": known.attention_dtype} if known
                   else {"linear": "float32", "attention": "float32"})
    kernels = {k: str(kernels.get(k) or "float32") for k in ("linear", "attention", "other")}
    suffix = f"-{form}"
    source = m[: -len(suffix)] if form != DEFAULT_FORM and m.endswith(suffix) and m[: -len(suffix)] in models else m
    native = prof.get("native") is not False
    return {"form": form, "backend": backend, "source_model": source, "kernels": kernels, "native": native,
            "emulated": not native and form != DEFAULT_FORM,
            "not_native_reason": None if native else (prof.get("not_native_reason") or "not native on this device"),
            "timed_with": TIMED_WITH.get((backend, form == DEFAULT_FORM), backend)}


def _form_rank(form: str) -> tuple[int, str]:
    order = list(FORMS)
    return (0, "") if form == DEFAULT_FORM else ((order.index(form), "") if form in order else (len(order), form))


def sort_rows(rows: list[dict], models: Sequence[str]) -> None:
    """In place: models by GLUE score (best first; the score of a model's fp32 row, or its best form's when
    it has none; no score last; ties in --models order), each model's forms together, fp32 first, then in
    glueslim.forms order."""
    order = {m: i for i, m in enumerate(models)}
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["source_model"], []).append(r)

    def group_score(src: str) -> float | None:
        base = [r for r in groups[src] if r["model"] == src]
        scores = [r["glue_score"] for r in (base or groups[src]) if r["glue_score"] is not None]
        return max(scores) if scores else None

    rank = {src: (group_score(src) is None, -(group_score(src) or 0.0), order.get(src, len(order))) for src in groups}
    rows.sort(key=lambda r: (rank[r["source_model"]], r["model"] != r["source_model"], _form_rank(r["form"]),
                             order.get(r["model"], len(order))))


def check_skipped_forms(value: Any, where: str = "--skipped-forms") -> list[dict]:
    """The forms the workflow did not run: a list of {"model", "form", "row", "reason"} (strings)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise UserError(f"{where}: expected a JSON list of {{\"model\", \"form\", \"row\", \"reason\"}} objects, "
                        f"got {type(value).__name__}")
    out = []
    for i, s in enumerate(value):
        if not isinstance(s, dict) or any(not isinstance(s.get(k), str) or not s.get(k) for k in SKIPPED_KEYS):
            raise UserError(f"{where}[{i}]: expected an object with non-empty strings "
                            f"{', '.join(SKIPPED_KEYS)}; got {s!r}"[:300])
        out.append({k: s[k] for k in SKIPPED_KEYS})
    return out


def skipped_notes(skipped: Sequence[dict], models: Sequence[str], warnings: list[str]) -> list[dict]:
    """Each skipped form with its note ("teacher-bf16 not run: <reason>"); a skipped row that has results
    anyway is warned about."""
    out = []
    for s in skipped:
        if s["row"] in models:
            warnings.append(f"{s['row']} is listed as skipped ({s['reason']}) but is also among --models")
        out.append({**s, "note": f"{s['row']} not run: {s['reason']}"})
    return out


def instruction_sets(cpu_flags: Sequence[str]) -> dict:
    """Per low-precision dtype: the CPU instructions that run it natively, present or absent, and one line."""
    flags = set(cpu_flags or [])
    out = {}
    for dtype, short, isa in _ISA:
        present = [name for flag, name in isa if flag in flags]
        absent = [name for flag, name in isa if flag not in flags]
        text = (f"{short}: {', '.join(present)}" + (f" (no {', '.join(absent)})" if absent else "") if present
                else f"{short}: none of {', '.join(absent)} (not native: emulated or slow)")
        out[dtype] = {"flags": [f for f, _ in isa], "present": present, "absent": absent, "native": bool(present),
                      "text": text}
    return out


def forms_summary(rows: Sequence[dict]) -> list[dict]:
    """One entry per form on the board, in row order: backend, kernels, how its floors are bounded, how it
    was timed, its description, and its rows."""
    out: dict[str, dict] = {}
    for r in rows:
        f = out.setdefault(r["form"], {
            "form": r["form"], "backend": r["backend"], "kernels": r["kernels"],
            "floor_dtype": r.get("floor_dtype"), "timed_with": r.get("timed_with"),
            "description": FORMS[r["form"]].description if r["form"] in FORMS else None,
            "rows": [], "emulated_rows": []})
        f["rows"].append(r["model"])
        if r.get("emulated"):
            f["emulated_rows"].append(r["model"])
    return list(out.values())

