"""The `forms` section of benchmarks/bench.py: every deployed form of fine-tuned models, scored and timed.

For each `--form-model NAME=DIR` (a fine-tuned fp32 folder; default: the quick preset's teacher and distil on
SST-2) and each form of glueslim.forms.FORMS (or `--forms`): the form is deployed into a scratch folder
(glueslim.deploy, calibrated on the data folder's training split, seeded), scored on the task's whole dev split
in that form (forms.load_model + inference.predict_logits + metrics: what the workflow's predict + score give)
and timed at `--max-seq-length` tokens (128), batch 1 and 32, median of `--runs` after warm-up: fp32 eager and
fp32 torch.compile, every other PyTorch form compiled, the ONNX Runtime forms in their ORT session. Each kernel
dtype's matmul peak is measured once (glueslim.peaks: torch float32/bfloat16/float16/int8, ONNX Runtime's own
float32/int8), and each latency gets its floor: 2 x linear MACs / peak[linear dtype] + 2 x attention MACs /
peak[attention dtype] (+ other MACs at float32), MACs counted on the float model (glueslim.flops.count_macs).
A form the CPU cannot run natively (forms.not_native) is still timed, with fewer runs, and marked emulated.
A form below 80% of its peak at batch 32 gets one profile of where its time goes (torch.profiler self time,
or ONNX Runtime's per-op profile).

`measure(args)` returns the section's rows (the JSON measurements); `section(rows)` renders the tables and
the targets' verdicts from them alone, so `bench.py --render` redoes them.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ("avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni", "avx_vnni", "avx512_fp16", "amx_fp16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
BATCHES = (1, 32)
PEAK_SHARE = 0.80  # every form's target share of its dtype's peak at the largest batch
VARIANT_LABEL = {"eager": "eager", "compiled": "torch.compile", "ort": "ORT session"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("forms section")
    g.add_argument("--form-model", action="append", metavar="NAME=DIR", default=None,
                   help="a fine-tuned fp32 model folder to deploy in every form (repeatable; default: "
                        "teacher=results/models/teacher/sst2 and distil=results/models/distil/sst2)")
    g.add_argument("--form-data", default=str(ROOT / "results" / "data" / "sst2"),
                   help="the task's prepared data folder: calibration from its training split, scores on its "
                        "whole dev split")
    g.add_argument("--forms", nargs="+", default=None, metavar="FORM",
                   help="forms to measure (default: every form of glueslim.forms.FORMS; fp32 always)")
    g.add_argument("--form-calibration-examples", type=int, default=256)
    g.add_argument("--form-emulated-runs", type=int, default=5,
                   help="timed runs of a form the CPU does not run natively (it is slow)")


# ---------------------------------------------------------------- measuring

def _models(args) -> list[tuple[str, Path]]:
    specs = args.form_model or [f"teacher={ROOT / 'results/models/teacher/sst2'}",
                                f"distil={ROOT / 'results/models/distil/sst2'}"]
    out = []
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            raise SystemExit(f"--form-model {spec!r}: expected NAME=DIR, e.g. teacher=results/models/teacher/sst2")
        if not (Path(folder) / "config.json").is_file():
            raise SystemExit(f"--form-model {spec}: {folder}/config.json not found; give a fine-tuned model folder "
                             "(run the quick preset first: make quick)")
        out.append((name, Path(folder)))
    return out


def _task_of(data_dir: Path):
    from glueslim.tasks import get_task

    manifest = data_dir / "manifest.json"
    if not data_dir.is_dir():
        raise SystemExit(f"--form-data {data_dir}: no such folder; give a prepared data folder (results/data/<task>)")
    name = json.loads(manifest.read_text())["task"] if manifest.is_file() else data_dir.name
    return get_task(name)


def _selected_forms(args) -> list[str]:
    from glueslim.forms import FORMS

    chosen = args.forms or list(FORMS)
    unknown = [f for f in chosen if f not in FORMS]
    if unknown:
        raise SystemExit(f"--forms {' '.join(unknown)}: not a form; choose from {', '.join(FORMS)}")
    return ["fp32"] + [f for f in FORMS if f in chosen and f != "fp32"]


def _eval_batch_size() -> int:
    """The predict command's default evaluation batch (the workflow's, unless a preset changes it)."""
    from glueslim.recipe import add_inference_arguments

    p = argparse.ArgumentParser()
    add_inference_arguments(p)
    return p.parse_args([]).eval_batch_size


def _score(model, folder: Path, task, data_dir: Path, max_len: int, batch_size: int) -> dict:
    """The dev metrics of `model` on the task's whole dev split(s), as predict + score compute them."""
    from transformers import DataCollatorWithPadding

    from glueslim.batching import encode
    from glueslim.data import load_split
    from glueslim.forms import model_device
    from glueslim.inference import logits_to_predictions, predict_logits
    from glueslim.metrics import split_metrics, task_metrics
    from glueslim.modeling import load_tokenizer
    from glueslim.tasks import task_mean

    tokenizer = load_tokenizer(str(folder))
    per_file, n = {}, {}
    t0 = time.perf_counter()
    for split, stem in task.eval_splits:
        rows = load_split(data_dir, split)
        feats = encode(tokenizer, rows, max_len)
        logits = predict_logits(model, feats, DataCollatorWithPadding(tokenizer), batch_size, model_device(model))
        per_file[stem] = split_metrics(task.name, stem, [r["label"] for r in rows], logits_to_predictions(task, logits))
        n[stem] = len(rows)
    metrics = task_metrics(task.name, per_file)
    return {"metrics": metrics, "score": 100 * task_mean(task.name, metrics), "n": n,
            "eval_batch_size": batch_size, "seconds": time.perf_counter() - t0}


def _time(model, seq: int, batch: int, runs: int, warmup: int) -> dict:
    """Median (and quartiles) of `runs` forward passes on a random full-length batch, after `warmup` untimed
    ones; the first call is timed apart (`first_call_s`: torch.compile's compilation happens there)."""
    import torch

    from glueslim.flops import dummy_inputs
    from glueslim.forms import model_device

    device = model_device(model)
    inputs = dummy_inputs(model, batch, seq, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        t0 = time.perf_counter()
        model(**inputs)
        sync()
        first = time.perf_counter() - t0
        for _ in range(warmup):
            model(**inputs)
        sync()
        for _ in range(runs):
            t0 = time.perf_counter()
            model(**inputs)
            sync()
            times.append((time.perf_counter() - t0) * 1000.0)
    q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else times * 3
    return {"batch": batch, "seq_length": seq, "median_ms": median, "q1_ms": q1, "q3_ms": q3, "runs": runs,
            "warmup": warmup, "first_call_s": first}


def _holdbacks(model, folder: Path, seq: int, batch: int, threads: int) -> dict:
    """Where a form's time goes at `batch` x `seq`: glueslim.holdbacks, as the profile job records it."""
    from glueslim.flops import dummy_inputs
    from glueslim.forms import model_device
    from glueslim.holdbacks import ort_holdbacks, torch_holdbacks

    if not hasattr(model, "parameters"):  # an ONNX Runtime session
        return ort_holdbacks(folder, threads, batch, seq)
    device = model_device(model)
    return torch_holdbacks(model, dummy_inputs(model, batch, seq, device), device=device, batch_size=batch)


def _deploy(args, name: str, form: str, source: Path, task, data_dir: Path, out: Path, where: str) -> dict:
    """Deploy `form` of `source` into `out` through the deploy command's own code (its flags, as the workflow
    passes them); its summary."""
    from glueslim import deploy

    p = argparse.ArgumentParser()
    deploy.add_arguments(p)
    ns = p.parse_args(["--form", form, "--model-dir", str(source), "--name", f"{name}-{form}", "--out", str(out),
                       "--task", task.name, "--data", str(data_dir), "--calibration-examples",
                       str(args.form_calibration_examples), "--seed", str(args.seeds[0]), "--max-seq-length",
                       str(args.max_seq_length), "--threads", str(args.threads), "--device", where,
                       "--allow-emulated"])
    return deploy.deploy(ns)


def _size_bytes(folder: Path) -> int:
    from glueslim.deploy import WEIGHT_FILES
    from glueslim.profile import size_on_disk

    found = [folder / f for f in WEIGHT_FILES if (folder / f).is_file()]
    return sum(f.stat().st_size for f in found) if found else size_on_disk(folder)


def _peak_rows(forms: list[str], device, threads: int) -> list[dict]:
    """One row per (backend, device, kernel dtype) the forms run: each dtype's matmul peak, measured once."""
    from glueslim.forms import FORMS, run_device
    from glueslim.peaks import form_kernels, measure_peaks, peak_dtypes

    groups: dict[tuple[str, str], list[str]] = {}
    for f in forms:
        key = (FORMS[f].backend, run_device(f, device.type))
        for dtype in peak_dtypes(form_kernels(FORMS[f])):
            groups.setdefault(key, [])
            if dtype not in groups[key]:
                groups[key].append(dtype)
    rows = []
    for (backend, where), dtypes in groups.items():
        print(f"   peaks: {backend} on {where}: {', '.join(dtypes)}", flush=True)
        for dtype, peak in measure_peaks(where, dtypes, backend, threads).items():
            rows.append({"kind": "peak", **peak, "backend": backend, "device": where, "dtype": dtype})
    return rows


def measure(args) -> list[dict]:
    """The section's rows: the CPU's flags, the peaks, then one row per (model, form, variant)."""
    import torch

    from glueslim.forms import cpu_flags

    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    models, data_dir = _models(args), Path(args.form_data)
    task, forms = _task_of(data_dir), _selected_forms(args)
    flags = cpu_flags()
    rows: list[dict] = [{"kind": "cpu", "flags": {f: f in flags for f in FLAGS}, "device": device.type,
                         "threads": torch.get_num_threads(), "task": task.name, "seq_length": args.max_seq_length,
                         "batches": list(BATCHES), "runs": args.runs, "emulated_runs": args.form_emulated_runs}]
    rows += _peak_rows(forms, device, args.threads)
    scratch = Path(args.workdir) / "forms"
    for name, folder in models:
        rows += _measure_model(args, name, folder, task, data_dir, device, forms, scratch, rows)
    return rows


def _measure_model(args, name, source: Path, task, data_dir: Path, device, forms, scratch: Path,
                   so_far: list[dict]) -> list[dict]:
    from glueslim.flops import count_macs
    from glueslim.forms import FORMS, load_model, not_native, run_device
    from glueslim.peaks import form_kernels

    seq, eval_batch = args.max_seq_length, _eval_batch_size()
    fp32 = load_model(source, device, threads=args.threads)
    counted = count_macs(fp32, seq, 1)
    macs = {k: counted[k] for k in ("linear", "attention", "other", "total")}
    del fp32
    out = []
    for form in forms:
        spec, where = FORMS[form], run_device(form, device.type)
        reason = not_native(form, where)
        variants = ["eager", "compiled"] if form == "fp32" else ["ort" if spec.backend == "onnxruntime" else "compiled"]
        base = {"kind": "form", "model": name, "model_dir": str(source), "task": task.name, "form": form,
                "backend": spec.backend, "device": where, "native": reason is None, "not_native_reason": reason,
                "kernels": form_kernels(spec), "macs_per_sequence": macs}
        print(f"== forms: {name} {form}", flush=True)
        try:
            folder, deployed = source, None
            if form != "fp32":
                folder = scratch / name / form
                deployed = _deploy(args, name, form, source, task, data_dir, folder, where)
            model = load_model(folder, device, threads=args.threads)
            dev = _score(model, folder, task, data_dir, seq, eval_batch)
            del model
            size = _size_bytes(folder)
        except Exception as e:  # noqa: BLE001 - one form that fails is a row saying why, not a lost benchmark
            traceback.print_exc(file=sys.stderr)
            out += [{**base, "variant": v, "error": f"{type(e).__name__}: {str(e)[:300]}"} for v in variants]
            continue
        for variant in variants:
            row = {**base, "variant": variant, "folder": str(folder), "deploy": deployed, "dev": dev,
                   "size_bytes": size, "latency": [], "holdbacks": None, "error": None}
            try:
                _time_variant(args, row, folder, device, so_far + out)
            except Exception as e:  # noqa: BLE001
                traceback.print_exc(file=sys.stderr)
                row["error"] = f"{type(e).__name__}: {str(e)[:300]}"
            out.append(row)
            gc.collect()
    return out


def _time_variant(args, row: dict, folder: Path, device, rows: list[dict]) -> None:
    """Fill row["latency"] (batch 1 and 32) and, when it misses PEAK_SHARE at the largest batch, its holdbacks."""
    import torch

    from glueslim.forms import load_model

    runs = args.runs if row["native"] else min(args.runs, args.form_emulated_runs)
    warmup = 3 if row["native"] else 1
    peaks = peak_table(rows)
    for batch in BATCHES:
        torch._dynamo.reset()  # one static graph per batch size (no recompilation with dynamic shapes)
        model = load_model(folder, device, compiled=row["variant"] == "compiled", threads=args.threads)
        entry = _time(model, args.max_seq_length, batch, runs, warmup)
        row["latency"].append(entry)
        share = pct_of_peak(row, entry, peaks)
        print(f"   {row['variant']} b{batch}: {entry['median_ms']:.2f} ms"
              + (f", {100 * share:.0f}% of peak" if share is not None else ""), flush=True)
        if batch == BATCHES[-1] and share is not None and share < PEAK_SHARE:
            try:
                row["holdbacks"] = _holdbacks(model, folder, args.max_seq_length, batch, args.threads)
            except Exception as e:  # noqa: BLE001 - the latency stands without its breakdown
                row["holdbacks"] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
        del model
    torch._dynamo.reset()


# ---------------------------------------------------------------- floors (shared by measuring and rendering)

def peak_table(rows: list[dict]) -> dict[tuple[str, str, str], float | None]:
    return {(r["backend"], r["device"], r["dtype"]): r.get("flops_per_s") for r in rows if r.get("kind") == "peak"}


def floor_ms(row: dict, batch: int, peaks: dict) -> float | None:
    """2 x MACs / peak of each op class's kernel dtype, summed (ms), for the whole batch."""
    total = 0.0
    for part, dtype in row["kernels"].items():
        n = row["macs_per_sequence"].get(part, 0) * batch
        if not n:
            continue
        peak = peaks.get((row["backend"], row["device"], dtype))
        if not peak:
            return None
        total += 2 * n / peak * 1000.0
    return total


def pct_of_peak(row: dict, entry: dict, peaks: dict) -> float | None:
    """The latency's share of its dtype's peak: floor / median (a fraction)."""
    floor = floor_ms(row, entry["batch"], peaks)
    return floor / entry["median_ms"] if floor is not None and entry.get("median_ms") else None


def floor_dtype(row: dict) -> str:
    k = row["kernels"]
    return k["linear"] if k["linear"] == k["attention"] else f"{k['linear']}+{k['attention']}"


# ---------------------------------------------------------------- rendering (from the rows alone)

def _ms(row: dict, batch: int) -> float | None:
    return next((e["median_ms"] for e in row.get("latency") or [] if e["batch"] == batch), None)


def _label(row: dict) -> str:
    return f"{row['form']} ({VARIANT_LABEL[row['variant']]})"


def _usable(row: dict) -> bool:
    """Measured, and native: the forms a user would ship on this machine."""
    return not row.get("error") and row["native"] and all(_ms(row, b) for b in BATCHES)


def _num(x: float | None, fmt: str = "{:.1f}") -> str:
    return "—" if x is None else fmt.format(x)


def _signed(drop: float | None) -> str:
    """A score drop (fp32 minus the form) shown as the form's difference: -0.23 = 0.23 points lower."""
    return "—" if drop is None else f"{0.0 - drop + 0.0:+.2f}"  # never "-0.00"


def _fmt_ms(x: float | None) -> str:
    return "—" if x is None else (f"{x:.1f}" if x >= 10 else f"{x:.2f}")


def _holdback_text(row: dict) -> str:
    h = row.get("holdbacks")
    if not h:
        return " (no profile recorded)"
    if "error" in h:
        return f" (profiling failed: {h['error']})"
    ops = h.get("top_ops") or h.get("top") or []  # glueslim.holdbacks' record (results before it: "top", "how")
    top = ", ".join(f"{o['op']} {100 * o['share']:.0f}%" for o in ops[:4])
    how = h.get("source") or h.get("how")
    return f"; held back by ({how}): matrix products {100 * h['matmul_share']:.0f}% of the time; top: {top}"


class _Model:
    """One model's measured rows, with the figures the tables and targets share."""

    def __init__(self, name: str, rows: list[dict], peaks: dict):
        self.name, self.rows, self.peaks = name, rows, peaks
        self.base = next((r for r in rows if r["form"] == "fp32" and r["variant"] == "eager" and not r.get("error")),
                         None)

    def speedup(self, row: dict, batch: int) -> float | None:
        a, b = (_ms(self.base, batch) if self.base else None), _ms(row, batch)
        return a / b if a and b else None

    def drop(self, row: dict) -> float | None:
        """fp32's dev score minus this form's (points; positive = the form scores lower)."""
        if not self.base or "dev" not in row:
            return None
        return self.base["dev"]["score"] - row["dev"]["score"]

    def pct(self, row: dict, batch: int = BATCHES[-1]) -> float | None:
        entry = next((e for e in row.get("latency") or [] if e["batch"] == batch), None)
        return pct_of_peak(row, entry, self.peaks) if entry else None

    def fastest(self, rows: list[dict], batch: int) -> dict | None:
        rows = [r for r in rows if _usable(r)]
        return min(rows, key=lambda r: _ms(r, batch)) if rows else None

    def best(self, rows: list[dict]) -> dict | None:
        """The usable row with the largest speed-up at the largest batch (then at batch 1)."""
        rows = [r for r in rows if _usable(r)]
        return max(rows, key=lambda r: (_ms(self.base, BATCHES[-1]) / _ms(r, BATCHES[-1]),
                                        _ms(self.base, BATCHES[0]) / _ms(r, BATCHES[0]))) if rows and self.base else None

    def table(self) -> list[str]:
        b0, b1 = BATCHES
        out = [f"### {self.name}", "",
               f"| form | backend | native | dev score (vs fp32, points) | b{b0} ms | b{b1} ms | speed-up vs fp32 eager "
               f"b{b0} / b{b1} | % of dtype peak, b{b1} | size on disk MB |", "|---|---|---|---|---|---|---|---|---|"]
        for r in self.rows:
            native = "yes" if r["native"] else f"emulated, not native: {r['not_native_reason']}"
            backend = f"{r['backend']}, {r['device']}"
            if r.get("error"):
                out.append(f"| {_label(r)} | {backend} | {native} | failed: {r['error']} | | | | | |")
                continue
            drop = self.drop(r)
            dev = f"{r['dev']['score']:.2f}" + ("" if drop is None or r is self.base else f" ({_signed(drop)})")
            s = [self.speedup(r, b) for b in BATCHES]
            pct = self.pct(r)
            out.append(f"| {_label(r)} | {backend} | {native} | {dev} | {_fmt_ms(_ms(r, b0))} | {_fmt_ms(_ms(r, b1))} | "
                       f"{_num(s[0], '{:.2f}x')} / {_num(s[1], '{:.2f}x')} | "
                       f"{_num(None if pct is None else 100 * pct, '{:.0f}%')} of {floor_dtype(r)}"
                       f"{' (above the peak: not the measured kernel)' if pct and pct > 1 else ''} | "
                       f"{r['size_bytes'] / 1e6:.1f} |")
        return out

    def versus_ort(self) -> tuple[list[str], list[tuple]]:
        """Per batch: glueslim's fastest PyTorch form ÷ ONNX Runtime's best form (a line and a target each)."""
        lines, targets = [], []
        for batch in BATCHES:
            ours = self.fastest([r for r in self.rows if r["backend"] == "pytorch"], batch)
            ort = self.fastest([r for r in self.rows if r["backend"] == "onnxruntime"], batch)
            if not ours or not ort:
                lines.append(f"- {self.name}, batch {batch}: no native PyTorch and ONNX Runtime forms both measured")
                continue
            ratio = _ms(ort, batch) / _ms(ours, batch)
            lines.append(f"- {self.name}, batch {batch}: glueslim's fastest form {_label(ours)} "
                         f"{_fmt_ms(_ms(ours, batch))} ms (dev {_signed(self.drop(ours))}) ÷ ONNX Runtime's best "
                         f"{_label(ort)} {_fmt_ms(_ms(ort, batch))} ms (dev {_signed(self.drop(ort))}): "
                         f"{ratio:.2f}x faster")
            targets.append((f"{self.name} batch {batch}: glueslim's fastest form ({_label(ours)}) ≥ 1.25x ONNX "
                            f"Runtime's best ({_label(ort)})", ratio, 1.25, ">="))
        return lines, targets

    def peak_targets(self) -> list[tuple]:
        out = []
        for r in self.rows:
            pct = None if r.get("error") else self.pct(r)
            if pct is None:
                continue
            text = (f"{self.name} {_label(r)}{'' if r['native'] else ' (emulated)'}: ≥ {100 * PEAK_SHARE:.0f}% of "
                    f"its {floor_dtype(r)} peak at batch {BATCHES[-1]}")
            out.append((text + (_holdback_text(r) if pct < PEAK_SHARE else ""), pct, PEAK_SHARE, ">="))
        return out

    def why(self, row: dict) -> str:
        """Its batch-32 speed-up, split exactly: (fp32 floor ÷ its floor: its kernels' peak) × (its share of
        peak ÷ fp32 eager's share)."""
        batch = BATCHES[-1]
        f0, f = floor_ms(self.base, batch, self.peaks), floor_ms(row, batch, self.peaks)
        p0, p = self.pct(self.base), self.pct(row)
        if None in (f0, f, p0, p):
            return "no floor (a peak is missing)"
        return (f"{self.speedup(row, batch):.2f}x at batch {batch} = {f0 / f:.2f}x from its kernels' peak (its floor "
                f"{_fmt_ms(f)} ms against fp32's {_fmt_ms(f0)} ms) x {p / p0:.2f} from running at {100 * p:.0f}% of "
                f"its {floor_dtype(row)} peak where fp32 eager runs at {100 * p0:.0f}% of the float32 peak")


def _kind_targets(m: _Model, kind: str, rows: list[dict], cpu: dict, b1: float, b32: float, drop: float) -> list[tuple]:
    """The teacher's best `kind` (bf16, int8) form against the issue's speed-ups and its score drop."""
    label = f"{m.name}'s best {kind} form"
    texts = [f"{label} ≥ {b1}x fp32 eager at batch {BATCHES[0]}", f"{label} ≥ {b32}x fp32 eager at batch {BATCHES[-1]}",
             f"{label}: dev score drop ≤ {drop} points"]
    bounds = [(b1, ">="), (b32, ">="), (drop, "<=")]
    flags = cpu.get("flags", {})
    if kind == "bf16" and cpu.get("device") == "cpu" and not any(flags.get(f) for f in BF16_FLAGS):
        note = f"not applicable: this CPU has no {' or '.join(BF16_FLAGS)} ({', '.join(BF16_FLAGS)} absent)"
        return [(t, None, b, op, note) for t, (b, op) in zip(texts, bounds)]
    measured = [r for r in rows if not r.get("error") and all(_ms(r, b) for b in BATCHES)]
    best = m.best(rows)
    if best is None:
        note = ("not applicable: " + "; ".join(sorted({r["not_native_reason"] for r in measured}))
                if measured else "not measured (no such form in --forms, or it failed)")
        return [(t, None, b, op, note) for t, (b, op) in zip(texts, bounds)]
    texts = [t.replace(label, f"{label} ({_label(best)})") for t in texts]
    values = [m.speedup(best, BATCHES[0]), m.speedup(best, BATCHES[-1]), m.drop(best)]
    return [(t, v, b, op) for t, v, (b, op) in zip(texts, values, bounds)]


def section(rows: list[dict]) -> dict:
    """The forms section's tables, lines and targets, from its rows."""
    cpu = next((r for r in rows if r.get("kind") == "cpu"), {})
    peaks = peak_table(rows)
    form_rows = [r for r in rows if r.get("kind") == "form"]
    names = list(dict.fromkeys(r["model"] for r in form_rows))
    models = [_Model(n, [r for r in form_rows if r["model"] == n], peaks) for n in names]
    flags = cpu.get("flags", {})
    table = [f"{cpu.get('task', '?')}, {cpu.get('seq_length', '?')} tokens, {cpu.get('threads', '?')} threads on "
             f"{cpu.get('device', '?')}; median of {cpu.get('runs', '?')} timed runs after warm-up "
             f"({cpu.get('emulated_runs', '?')} for an emulated form). CPU flags: "
             + ", ".join(f"{f} {'present' if flags.get(f) else 'absent'}" for f in FLAGS) + ".", "",
             "Matmul peaks (each dtype measured once; a form's floor = 2 x linear MACs / peak[linear dtype] + 2 x "
             "attention MACs / peak[attention dtype], MACs of the float model):", "",
             "| kernels | device | dtype | peak GFLOP/s | how |", "|---|---|---|---|---|"]
    for r in rows:
        if r.get("kind") == "peak":
            gflops = _num(r["flops_per_s"] / 1e9 if r.get("flops_per_s") else None)
            table.append(f"| {r['backend']} | {r['device']} | {r['dtype']} | {gflops} | "
                         f"{r.get('method') or r.get('error', '')} |")
    targets, ratio_lines = [], []
    for m in models:
        table += [""] + m.table()
        lines, tgts = m.versus_ort()
        ratio_lines += lines
        targets += tgts
    table += ["", "glueslim's fastest (PyTorch) form ÷ ONNX Runtime's best form, native forms only:", ""] + ratio_lines
    teacher = next((m for m in models if m.name == "teacher"), models[0] if models else None)
    if teacher is not None and teacher.base is not None:
        bf16 = [r for r in teacher.rows if r["form"] == "bf16"]
        int8 = [r for r in teacher.rows if r["backend"] == "pytorch" and r["form"].startswith("int8")]
        targets = (_kind_targets(teacher, "bf16", bf16, cpu, 3.0, 5.0, 0.2)
                   + _kind_targets(teacher, "int8", int8, cpu, 2.9, 4.9, 0.5) + targets)
        table += ["", *_reach_lines(teacher, bf16, cpu)]
    for m in models:
        targets += m.peak_targets()
    return {"table": table, "targets": targets}


def _reach_lines(m: _Model, bf16: list[dict], cpu: dict) -> list[str]:
    """What the teacher's best form reaches, and why (its share of its dtype's peak); on a CPU without bf16
    instructions, why bf16 cannot help."""
    best = m.best(m.rows)
    out = []
    if best is not None:
        out.append(f"The {m.name}'s fastest native form at batch {BATCHES[-1]} is {_label(best)}: "
                   f"{m.speedup(best, BATCHES[0]):.2f}x / {m.speedup(best, BATCHES[-1]):.2f}x fp32 eager at batch "
                   f"{BATCHES[0]} / {BATCHES[-1]}, dev {_signed(m.drop(best))} points; {m.why(best)}.")
    flags = cpu.get("flags", {})
    if cpu.get("device") == "cpu" and not any(flags.get(f) for f in BF16_FLAGS):
        for r in bf16:
            if r.get("error") or not all(_ms(r, b) for b in BATCHES):
                continue
            p32, p16 = m.peaks.get(("pytorch", "cpu", "float32")), m.peaks.get(("pytorch", "cpu", "bfloat16"))
            peak_note = (f"this CPU's bf16 matmul peak is {p16 / 1e9:.1f} GFLOP/s, {p16 / p32:.2f}x its float32 "
                         f"peak ({p32 / 1e9:.1f})" if p32 and p16 else "no bf16 peak measured")
            pct = m.pct(r)
            out.append(f"bf16 on this CPU (no {' or '.join(BF16_FLAGS)}: emulated) reaches "
                       f"{m.speedup(r, BATCHES[0]):.2f}x / {m.speedup(r, BATCHES[-1]):.2f}x fp32 eager, at "
                       f"{_num(None if pct is None else 100 * pct, '{:.0f}%')} of its bf16 peak: {peak_note}, so "
                       "bf16 cannot beat float32 here whatever its share of that peak; the bf16 targets need "
                       "AVX512-BF16 or AMX-BF16.")
    return out
