"""glueslim's speed, side by side with the Hugging Face Trainer, on one machine and in one run.

    python benchmarks/bench.py --glue-dir ../shared/data/glue            # the full benchmark (~15 min, 2 cores)
    python benchmarks/bench.py --glue-dir ../shared/data/glue --sections train

Sections (each prints a table; all of them are written to benchmarks/results/<date>-<device>.md and .json):
  train      teacher fine-tuning, examples/s and dev score: glueslim's loop against the Trainer with
             run_glue.py's default recipe (padding to max_seq_length) and against the Trainer with dynamic
             padding and length grouping; same model, data, hyperparameters, seed and threads
  kd         one epoch of prediction-layer KD (cached teacher logits, as the workflow does) and of KD that
             runs the teacher every step, each against a plain fine-tuning epoch of the same student
  inference  forward passes at batch 32 and 1 (128 tokens): FLOP/s against the measured matmul peak,
             eager and torch.compile; each student's speed-up over the teacher against its MACs ratio
  tokenize   what the token cache saves: tokenizing a task cold, then loading it from the cache
  forms      (only when asked: it needs fine-tuned models, e.g. the quick preset's) every deployed form of
             each --form-model (fp32 eager and torch.compile, bf16, fp16, int8-dynamic, int8-static compiled;
             onnx, onnx-int8 in ONNX Runtime): dev score on the whole dev split in that form, batch 1 and 32
             latency (128 tokens), % of its kernel dtype's measured matmul peak, size on disk; glueslim's
             fastest form against ONNX Runtime's best; see benchmarks/bench_forms.py

    python benchmarks/bench.py --sections forms --form-model teacher=results/models/teacher/sst2 \
        --form-model distil=results/models/distil/sst2 --form-data results/data/sst2

Every training variant runs in its own fresh process (`--one`), so none inherits another's warm state.
Timings are wall-clock; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_forms  # noqa: E402 - the forms section, beside this file

TRAIN_VARIANTS = {
    "trainer-pad128": "HF Trainer, run_glue.py default (pad to max_seq_length), fp32",
    "trainer-dynamic": "HF Trainer, dynamic padding + group_by_length, fp32",
    "trainer-dynamic-bf16": "HF Trainer, dynamic padding + group_by_length, bf16=True",
    "glueslim": "glueslim (train.train), precision auto",
}
KD_VARIANTS = {
    "student-finetune": "student, plain fine-tuning (CE on gold labels)",
    "student-kd-cached": "student, KD with cached teacher logits (the workflow's way)",
    "student-kd-online": "student, KD running the teacher every step",
}


# ---------------------------------------------------------------- shared set-up

def _data(args, workdir: Path):
    """The task's training sample and dev split, normalised by glueslim.data (once per benchmark run)."""
    from glueslim.data import load_split, prepare

    data_dir = workdir / "data"
    if not (data_dir / "manifest.json").exists():
        prepare(args.task, data_dir, glue_dir=args.glue_dir, max_train=args.train_examples,
                seed=args.seeds[0])  # one sample for every run
    from glueslim.tasks import get_task

    task = get_task(args.task)
    return task, load_split(data_dir, "train"), load_split(data_dir, task.eval_splits[0][0])


def _recipe(args, ckpt: Path):
    """glueslim's Recipe as its commands parse it: their defaults, this run's settings."""
    from glueslim.recipe import Recipe, add_recipe_arguments

    p = argparse.ArgumentParser()
    add_recipe_arguments(p)
    return Recipe.from_args(p.parse_args([
        "--learning-rate", str(args.learning_rate), "--epochs", str(args.epochs), "--batch-size",
        str(args.batch_size), "--max-seq-length", str(args.max_seq_length), "--seed", str(args.seed),
        "--threads", str(args.threads), "--device", "cpu" if args.cpu else "auto", "--checkpoint-dir", str(ckpt)]))


def _dev_score(model, task, tokenizer, dev_rows, max_len: int) -> dict:
    """The dev metrics of `model`, computed the same way for every variant (glueslim's evaluation)."""
    from transformers import DataCollatorWithPadding

    from glueslim.batching import encode
    from glueslim.inference import evaluate_split

    device = next(model.parameters()).device
    feats = encode(tokenizer, dev_rows, max_len)
    return evaluate_split(model, task, feats, DataCollatorWithPadding(tokenizer), 128, device)["metrics"]


def _fresh_classifier(args, task):
    from glueslim.modeling import load_classifier, load_tokenizer

    return load_classifier(args.model, task), load_tokenizer(args.model)


# ---------------------------------------------------------------- one variant, in its own process

def run_one(args) -> dict:
    import torch

    from glueslim.batching import encode
    from glueslim.recipe import seed_everything

    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    task, train_rows, dev_rows = _data(args, workdir)
    seed_everything(args.seed)
    variant = args.one
    n = len(train_rows) * args.epochs

    if variant.startswith("trainer-"):
        from datasets import Dataset
        from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, default_data_collator

        model, tokenizer = _fresh_classifier(args, task)
        pad = variant == "trainer-pad128"
        bf16 = variant.endswith("-bf16")
        a = [r["text_a"] for r in train_rows]
        b = [r["text_b"] for r in train_rows] if train_rows[0]["text_b"] is not None else None
        enc = tokenizer(a, b, truncation=True, max_length=args.max_seq_length,
                        padding="max_length" if pad else False)  # as run_glue.py's preprocess_function
        ds = Dataset.from_dict({**dict(enc), "labels": [r["label"] for r in train_rows]})
        targs = TrainingArguments(
            output_dir=str(workdir / f"trainer-{variant}"), per_device_train_batch_size=args.batch_size,
            learning_rate=args.learning_rate, num_train_epochs=args.epochs, warmup_steps=0.1, weight_decay=0.01,
            adam_epsilon=1e-8, max_grad_norm=1.0, lr_scheduler_type="linear", seed=args.seed,
            use_cpu=args.cpu or not torch.cuda.is_available(), report_to="none", save_strategy="no",
            eval_strategy="no", logging_strategy="no",
            disable_tqdm=True, dataloader_num_workers=0, bf16=bf16,
            train_sampling_strategy="random" if pad else "group_by_length")
        trainer = Trainer(model=model, args=targs, train_dataset=ds, processing_class=tokenizer,
                          data_collator=default_data_collator if pad else DataCollatorWithPadding(tokenizer))
        t0 = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - t0
        model = trainer.model
        optim, precision = targs.optim, "bf16" if bf16 else "fp32"
    elif variant == "glueslim":
        from glueslim.checkpoint import save_model
        from glueslim.train import train

        model, tokenizer = _fresh_classifier(args, task)
        feats = encode(tokenizer, train_rows, args.max_seq_length)
        ckpt = workdir / f"ckpt-glueslim-{args.seed}"
        t0 = time.perf_counter()
        history = train(model, tokenizer, task, feats, [], _recipe(args, ckpt))
        seconds = time.perf_counter() - t0
        if args.seed == args.seeds[0]:  # the KD and inference sections' teacher
            save_model(model, tokenizer, workdir / "teacher", {"base_model": args.model}, history, ckpt)
        shutil.rmtree(ckpt, ignore_errors=True)
        optim, precision = "AdamW (fused)", history[-1]["precision"].replace("no", "fp32")
    else:
        return run_kd_variant(args, task, train_rows, dev_rows, workdir)
    model.eval()
    score = _dev_score(model, task, tokenizer, dev_rows, args.max_seq_length)
    return {"variant": variant, "seed": args.seed, "examples": n, "seconds": seconds, "examples_per_s": n / seconds,
            "dev": score, "optimizer": optim, "precision": precision, "threads": torch.get_num_threads()}


def run_kd_variant(args, task, train_rows, dev_rows, workdir: Path) -> dict:
    import torch
    from transformers import DataCollatorWithPadding

    from glueslim.losses import prediction_loss
    from glueslim.modeling import load_classifier, load_tokenizer
    from glueslim.students import default_layer_map, make_student
    from glueslim.batching import encode
    from glueslim.inference import predict_logits
    from glueslim.train import train

    teacher_dir = workdir / "teacher"
    if not teacher_dir.exists():
        raise SystemExit(f"{teacher_dir}: run the train section first (its glueslim run is the KD teacher)")
    tokenizer = load_tokenizer(str(teacher_dir))
    teacher = load_classifier(str(teacher_dir)).eval()
    student = make_student(teacher, default_layer_map(teacher.config.num_hidden_layers))
    cache_seconds = None
    feats = encode(tokenizer, train_rows, args.max_seq_length)
    if args.one == "student-kd-cached":  # teacher_outputs, as its own job: once per task, shared by all students
        t0 = time.perf_counter()
        logits = predict_logits(teacher, feats, DataCollatorWithPadding(tokenizer), 128, torch.device("cpu"))
        cache_seconds = time.perf_counter() - t0
        for f, z in zip(feats, logits.tolist()):
            f["teacher_logits"] = z

    if args.one == "student-finetune":
        loss_fn = None
    elif args.one == "student-kd-cached":
        def loss_fn(logits, batch):
            return prediction_loss("kl", logits, batch["teacher_logits"], batch["labels"], 0.5, 2.0)
    else:
        def loss_fn(logits, batch):
            with torch.no_grad():
                t = teacher(**{k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch})
            return prediction_loss("kl", logits, t.logits, batch["labels"], 0.5, 2.0)
    recipe = _recipe(args, workdir / f"ckpt-{args.one}")
    t0 = time.perf_counter()
    history = train(student, tokenizer, task, feats, [], recipe, loss_fn=loss_fn)
    seconds = time.perf_counter() - t0
    student.eval()
    n = len(train_rows) * args.epochs
    return {"variant": args.one, "examples": n, "seconds": seconds, "loop_seconds": sum(h["seconds"] for h in history),
            "examples_per_s": n / seconds, "teacher_logits_seconds": cache_seconds,
            "dev": _dev_score(student, task, tokenizer, dev_rows, args.max_seq_length),
            "threads": torch.get_num_threads()}


def _subprocess(args, variant: str, seed: int | None = None) -> dict:
    cmd = [sys.executable, __file__, "--one", variant, "--workdir", args.workdir] + _shared_flags(args, seed)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"variant {variant} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _shared_flags(args, seed: int | None = None) -> list[str]:
    out = ["--task", args.task, "--model", args.model, "--train-examples", str(args.train_examples),
           "--batch-size", str(args.batch_size), "--epochs", str(args.epochs), "--learning-rate",
           str(args.learning_rate), "--max-seq-length", str(args.max_seq_length), "--threads", str(args.threads),
           "--seed", str(args.seeds[0] if seed is None else seed), "--seeds", *map(str, args.seeds)]
    if args.glue_dir:
        out += ["--glue-dir", args.glue_dir]
    if args.cpu:
        out += ["--cpu"]
    return out


# ---------------------------------------------------------------- sections

def _main_metric(dev: dict) -> str:
    return ", ".join(f"{k} {100 * v:.1f}" for k, v in dev.items() if isinstance(v, (int, float)))


def _mean(xs):
    return statistics.fmean(xs)


def _sd(xs):
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def section_train(args, rows: list[dict] | None = None) -> dict:
    runs = rows
    if runs is None:
        runs = [_subprocess(args, v, seed) for seed in args.seeds for v in TRAIN_VARIANTS]  # seeds interleaved
    by = {v: [r for r in runs if r["variant"] == v] for v in TRAIN_VARIANTS}
    speed = {v: _mean([r["examples_per_s"] for r in rs]) for v, rs in by.items()}
    metric = next(iter(runs[0]["dev"]))
    ours = speed["glueslim"]
    table = [f"Mean over seeds {', '.join(map(str, args.seeds))} (± sd); dev {metric} on the whole dev split.", "",
             f"| run | examples/s | wall s | dev {metric} | precision | optimizer | glueslim ÷ this |",
             "|---|---|---|---|---|---|---|"]
    for v, rs in by.items():
        eps, dev = [r["examples_per_s"] for r in rs], [100 * r["dev"][metric] for r in rs]
        table.append(f"| {TRAIN_VARIANTS[v]} | {_mean(eps):.1f} ± {_sd(eps):.1f} | "
                     f"{_mean([r['seconds'] for r in rs]):.1f} | {_mean(dev):.1f} ± {_sd(dev):.1f} | "
                     f"{rs[0]['precision']} | {rs[0]['optimizer']} | {ours / speed[v]:.2f}x |")
    dev = {v: [100 * r["dev"][metric] for r in rs] for v, rs in by.items()}
    # dev scores of one-epoch runs differ by about a point from seed to seed: "equal" means a difference
    # within two standard errors of the difference of the means
    diff = _mean(dev["glueslim"]) - _mean(dev["trainer-dynamic"])
    se = (_sd(dev["glueslim"]) ** 2 / len(dev["glueslim"])
          + _sd(dev["trainer-dynamic"]) ** 2 / len(dev["trainer-dynamic"])) ** 0.5
    targets = [
        ("glueslim ≥ 1.2x Trainer (dynamic padding + length grouping)", ours / speed["trainer-dynamic"], 1.2, ">="),
        ("glueslim ≥ 8x Trainer (run_glue default)", ours / speed["trainer-pad128"], 8.0, ">="),
        (f"glueslim dev {metric} − Trainer (dynamic) dev {metric}: {diff:+.2f} points, standard error {se:.2f}; "
         f"equal or better = above −2 SE (ratio shown: difference ÷ SE)", diff / se if se else diff, -2.0, ">="),
        ("(for reference) glueslim ÷ Trainer with bf16=True", ours / speed["trainer-dynamic-bf16"], 1.0, ">="),
    ]
    return {"rows": runs, "table": table, "targets": targets}


def section_kd(args, rows: list[dict] | None = None) -> dict:
    if rows is None:
        rows = [_subprocess(args, v) for v in KD_VARIANTS]
    by = {r["variant"]: r for r in rows}
    base = by["student-finetune"]["loop_seconds"]
    table = ["| run | epoch s | examples/s | ÷ plain epoch | dev |", "|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {KD_VARIANTS[r['variant']]} | {r['loop_seconds']:.1f} | "
                     f"{r['examples'] / r['loop_seconds']:.1f} | {r['loop_seconds'] / base:.2f}x | "
                     f"{_main_metric(r['dev'])} |")
    cached = by["student-kd-cached"]
    table.append(f"| (caching the teacher's logits, once per task for all students) | "
                 f"{cached['teacher_logits_seconds']:.1f} | | | |")
    targets = [("KD epoch (cached logits) ≤ 1.15x plain epoch", cached["loop_seconds"] / base, 1.15, "<=")]
    return {"rows": rows, "table": table, "targets": targets}


def _shapes(teacher):
    """Students to time against the teacher: the workflow's own ways of shrinking it (random weights do)."""
    import torch

    from glueslim.heads import prune_heads
    from glueslim.prune import heads_to_prune
    from glueslim.students import StudentSpec, build_student, default_layer_map, make_student

    out = {"distil (half the layers)": make_student(teacher, default_layer_map(teacher.config.num_hidden_layers))}
    for name, shape in {"tinybert4 (4L, 312 wide)": (4, 312, 12, 1200), "tinybert2 (2L, 128 wide)": (2, 128, 2, 512)}.items():
        layers, hidden, heads, ffn = shape
        spec = StudentSpec("random", layers, hidden_size=hidden, num_heads=heads, intermediate_size=ffn)
        out[name] = build_student(spec, teacher, seed=42)[0]
    for pct in (20, 40):
        pruned = copy.deepcopy(teacher)
        gen = torch.Generator().manual_seed(0)
        n = pruned.config.num_attention_heads
        importance = [torch.rand(n, generator=gen) for _ in range(pruned.config.num_hidden_layers)]
        prune_heads(pruned, heads_to_prune(importance, pct / 100))
        out[f"pruned{pct} (heads)"] = pruned
    return out


def section_inference(args, rows: list[dict] | None = None) -> dict:
    if rows is None:
        rows = _measure_inference(args)
    teacher = {r["batch"]: r for r in rows if r["model"] == "teacher"}
    t32 = teacher[32]
    peak = 2 * t32["macs"] / (t32["eager_ms"] / 1000) / t32["pct_of_peak"]["eager"]  # as measured
    table = [f"Measured fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s. Teacher forward passes, 128 tokens:", "",
             "| model | batch | eager ms | eager % of peak | compiled ms | compiled % of peak |",
             "|---|---|---|---|---|---|"]
    targets = []
    for batch, r in teacher.items():
        eff = r["pct_of_peak"]
        table.append(f"| teacher | {batch} | {r['eager_ms']:.1f} | {100 * eff['eager']:.1f}% | "
                     f"{r['compiled_ms']:.1f} | {100 * eff['compiled']:.1f}% |")
        if batch == 32:
            targets.append(("inference b32x128, eager: ≥ 85% of matmul peak", eff["eager"], 0.85, ">="))
            targets.append(("inference b32x128, torch.compile: ≥ 85% of matmul peak", eff["compiled"], 0.85, ">="))
    table += ["", "Speed-ups at batch 32 x 128 tokens, eager; a student below 85% of its MACs ratio is also timed "
              "compiled (against the compiled teacher).", "",
              "| student | MACs ratio | speed-up (eager) | ÷ MACs ratio | speed-up (compiled) | ÷ MACs ratio |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        if r["model"] == "teacher":
            continue
        ratio, speedup = r["macs_ratio"], r["speedup"]
        compiled = (f"{r['speedup_compiled']:.2f}x | {100 * r['speedup_compiled'] / ratio:.0f}%"
                    if "speedup_compiled" in r else "— | —")
        table.append(f"| {r['model']} | {ratio:.2f}x | {speedup:.2f}x | {100 * speedup / ratio:.0f}% | {compiled} |")
        best = max(speedup, r.get("speedup_compiled", 0.0))
        targets.append((f"{r['model']}: speed-up ≥ 85% of MACs ratio (best of eager and compiled)", best / ratio,
                        0.85, ">="))
    return {"rows": rows, "table": table, "targets": targets}


def _measure_inference(args) -> list[dict]:
    import torch

    from glueslim.modeling import load_classifier
    from glueslim.flops import count_macs
    from glueslim.timing import measure_latency, measure_peak_flops

    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    teacher_dir = Path(args.workdir) / "teacher"
    teacher = load_classifier(str(teacher_dir) if teacher_dir.exists() else args.model).eval().to(device)
    peak = measure_peak_flops(device)["flops_per_s"]
    seq, rows = 128, []
    for batch in (32, 1):
        macs = count_macs(teacher, seq, batch)["total"]
        eager = measure_latency(teacher, seq, batch, 3, args.runs, device)["median_ms"]
        t0 = time.perf_counter()
        compiled = measure_latency(torch.compile(teacher), seq, batch, 3, args.runs, device)["median_ms"]
        rows.append({"model": "teacher", "batch": batch, "eager_ms": eager, "compiled_ms": compiled, "macs": macs,
                     "peak_flops_per_s": peak, "compile_and_time_s": time.perf_counter() - t0,
                     "pct_of_peak": {k: 2 * macs / (ms / 1000) / peak
                                     for k, ms in (("eager", eager), ("compiled", compiled))}})
        torch._dynamo.reset()
    t_macs, t_ms, t_compiled_ms = rows[0]["macs"], rows[0]["eager_ms"], rows[0]["compiled_ms"]
    for name, student in _shapes(teacher.cpu()).items():
        student = student.eval().to(device)
        macs = count_macs(student, seq, 32)["total"]
        ms = measure_latency(student, seq, 32, 3, args.runs, device)["median_ms"]
        row = {"model": name, "batch": 32, "eager_ms": ms, "macs": macs, "macs_ratio": t_macs / macs,
               "speedup": t_ms / ms}
        if row["speedup"] / row["macs_ratio"] < 0.85:
            row["compiled_ms"] = measure_latency(torch.compile(student), seq, 32, 3, args.runs, device)["median_ms"]
            row["speedup_compiled"] = t_compiled_ms / row["compiled_ms"]
            torch._dynamo.reset()
        rows.append(row)
    return rows


def section_tokenize(args, rows: list[dict] | None = None) -> dict:
    if rows is None:
        rows = [_measure_tokenize(args)]
    times = {k: v for k, v in rows[0].items() if k != "texts"}
    n = rows[0].get("texts")
    table = [f"Each job reads a task's tokens from the cache once any job has tokenized them with the same "
             f"tokenizer; the whole {args.task} training split" + (f", {n} texts:" if n else ":"), "",
             "| tokenizing | seconds |", "|---|---|"] + [f"| {k} | {v:.3f} |" for k, v in times.items()]
    return {"rows": rows, "table": table, "targets": []}


def _measure_tokenize(args) -> dict:
    from glueslim.data import load_split, prepare
    from glueslim.tokens import tokenize
    from glueslim.modeling import load_tokenizer

    workdir = Path(args.workdir)
    full = workdir / "data-full"  # the whole training split: the cache matters for big tasks
    if not (full / "manifest.json").exists():
        prepare(args.task, full, glue_dir=args.glue_dir)
    train_rows = load_split(full, "train")
    tokenizer = load_tokenizer(args.model)
    a = [r["text_a"] for r in train_rows]
    b = [r["text_b"] for r in train_rows] if train_rows[0]["text_b"] is not None else None
    tokenize(tokenizer, a[:8], b[:8] if b else None, args.max_seq_length)  # warm up the tokenizer itself
    times = {}
    for what in ("no cache (tokenize)", "cold cache (tokenize, write the entry)", "warm cache (read the entry)"):
        t0 = time.perf_counter()
        tokenize(tokenizer, a, b, args.max_seq_length, cache_dir=None if what.startswith("no") else workdir / "tokens")
        times[what] = time.perf_counter() - t0
    return {**times, "texts": len(a)}


def section_forms(args, rows: list[dict] | None = None) -> dict:
    if rows is None:
        rows = bench_forms.measure(args)
    return {"rows": rows, **bench_forms.section(rows)}


SECTIONS = {"train": section_train, "kd": section_kd, "inference": section_inference, "tokenize": section_tokenize,
            "forms": section_forms}
DEFAULT_SECTIONS = ["train", "kd", "inference", "tokenize"]  # forms: asked for by name (it needs trained models)


# ---------------------------------------------------------------- main

def _verdict(value: float | None, bound: float, op: str, note: str | None = None) -> str:
    """met / MISSED; a target that does not apply on this machine carries its `note` ("not applicable: ...")."""
    if note:
        return note
    if value is None:
        return "not measured"
    ok = value >= bound if op == ">=" else value <= bound
    return "met" if ok else "MISSED"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--glue-dir", default=os.environ.get("GLUESLIM_GLUE_DIR"),
                   help="a local GLUE copy (default: the hub dataset nyu-mll/glue)")
    p.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    p.add_argument("--task", default="sst2")
    p.add_argument("--train-examples", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--runs", type=int, default=20, help="timed forward passes per inference figure")
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44],
                   help="training runs per variant, one per seed (the KD teacher is the first seed's)")
    p.add_argument("--seed", type=int, default=None, help=argparse.SUPPRESS)  # one variant's seed (--one)
    p.add_argument("--cpu", action="store_true", help="stay on the CPU even where CUDA is available")
    p.add_argument("--sections", nargs="+", default=DEFAULT_SECTIONS, choices=list(SECTIONS))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for the dated results")
    p.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--render", default=None, metavar="JSON",
                   help="rewrite the .md beside a results .json from its measurements (nothing is timed)")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    bench_forms.add_arguments(p)
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    args.seed = args.seeds[0] if args.seed is None else args.seed
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.one:
        print(json.dumps(run_one(args)))
        return
    if args.render:
        render(args)
        return

    with tempfile.TemporaryDirectory(prefix="glueslim-bench-") as tmp:
        args.workdir = args.workdir or tmp
        import torch

        from glueslim.timing import device_info

        info = device_info(torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu"),
                           args.threads)
        from glueslim.forms import cpu_flags

        flags = cpu_flags()
        info["relevant_cpu_flags"] = {f: f in flags for f in bench_forms.FLAGS}
        started = dt.datetime.now(dt.timezone.utc)
        results = {"date": started.isoformat(timespec="seconds"), "device": info, "settings": {
            k: v for k, v in vars(args).items() if k not in ("one", "workdir", "out", "render")}, "sections": {}}
        for name in args.sections:
            print(f"== {name}", flush=True)
            results["sections"][name] = {"rows": SECTIONS[name](args)["rows"]}
            print("\n".join(_render_section(args, name, results["sections"][name])), flush=True)
        out_dir = Path(args.out)
        out_dir.mkdir(parents=True, exist_ok=True)
        _write(args, results, out_dir / f"{started:%Y-%m-%d}-{info.get('type', 'cpu')}")


def _render_section(args, name: str, section: dict) -> list[str]:
    """The section's table and target verdicts, from its measured rows (which `section` gains too)."""
    out = SECTIONS[name](args, rows=section["rows"])
    targets = [(t, v, b, op, *note) for t, v, b, op, *note in out["targets"]]  # note: "not applicable: ..."
    section["targets"] = [{"target": t, "value": v, "bound": b, "op": op, "verdict": _verdict(v, b, op, *note)}
                          for t, v, b, op, *note in targets]
    return [f"## {name}", ""] + out["table"] + [""] + \
        [f"- {t}: {'—' if v is None else f'{v:.2f}'} → **{_verdict(v, b, op, *note)}**"
         for t, v, b, op, *note in targets] + [""]


def _write(args, results: dict, stem: Path) -> None:
    from glueslim.io import atomic_write_json, atomic_write_text

    info, started = results["device"], dt.datetime.fromisoformat(results["date"])
    lines = [f"# glueslim benchmark, {started:%Y-%m-%d %H:%M} UTC", "",
             f"Device: {info.get('name')}, {args.threads} threads; torch {info.get('torch')}. "
             f"{args.task}, {args.train_examples} training examples, {args.model}, batch {args.batch_size}, "
             f"{args.epochs} epoch(s), lr {args.learning_rate}, max_seq_length {args.max_seq_length}. "
             "Dev scores on the full dev split. Made by `python benchmarks/bench.py` (see its docstring)."
             + (" CPU flags: " + ", ".join(f"{f} {'present' if on else 'absent'}"
                                           for f, on in info["relevant_cpu_flags"].items()) + "."
                if info.get("relevant_cpu_flags") else ""), ""]
    for name, section in results["sections"].items():
        lines += _render_section(args, name, section)
    atomic_write_text(stem.with_suffix(".md"), "\n".join(lines))
    atomic_write_json(stem.with_suffix(".json"), results)
    print(f"written: {stem}.md and .json")


def render(args) -> None:
    """--render: the saved measurements, rendered again by this version's tables and targets."""
    path = Path(args.render)
    results = json.loads(path.read_text())
    for k, v in results["settings"].items():
        setattr(args, k, v)
    _write(args, results, path.with_suffix(""))


if __name__ == "__main__":
    main()
