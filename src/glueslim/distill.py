"""Distillation commands: `distill` (task distillation, every recipe) and `general-distill`.

`distill` trains a student of a task from its fine-tuned teacher. The student comes from a builder
(glueslim.students: teacher_layers, albert, checkpoint, random), the losses from the distiller
(glueslim.distiller), in one or two stages:

- stage 1, only when `--intermediate` or `--matches` is given: the intermediate matches (TinyBERT's
  embeddings, attention scores and hidden states by default) against the live teacher, `--stage1-epochs`;
- stage 2, the prediction layer: `--prediction kl` (DistilBERT: T^2 KL, hard labels weighted 1 - alpha)
  or `soft_ce` (TinyBERT: soft cross-entropy) against the cached teacher logits (`teacher-outputs`).

`--joint` trains both in one stage instead (the intermediate matches plus the prediction KD, `--stage2-epochs`).

DistilBERT- and ALBERT-style students are `--student teacher_layers|albert --prediction kl --alpha A`;
TinyBERT-style ones `--student random|checkpoint --prediction soft_ce --intermediate ...`; any other mix
works too. `--augmented` (an `augment` folder) adds augmented rows to any student's training set, and
`--transfer` (a `transfer-set` folder) the task's training texts beyond the cap, labelled by the teacher.
`--head teacher` starts any BERT/ALBERT student of the teacher's width with the teacher's pooler and
classifier. `--alpha 0` without intermediate matches is a no-KD twin: gold labels only (record `kd`: false).

`general-distill` distils a student from the pre-trained teacher with the intermediate matches alone, on
unlabeled text (a corpus file, or the pooled training sentences of the prepared tasks).
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import fields, replace
from pathlib import Path

from glueslim.batching import encode
from glueslim.checkpoint import save_model
from glueslim.config import schema_default
from glueslim.data import load_split
from glueslim.distiller import PredictionKD, distiller
from glueslim.errors import UserError
from glueslim.features import FEATURES, check_matches, default_matches
from glueslim.io import read_jsonl
from glueslim.losses import PREDICTION_LOSSES
from glueslim.modeling import load_classifier, load_tokenizer
from glueslim.recipe import Recipe, add_recipe_arguments, seed_everything
from glueslim.record import read_record
from glueslim.students import BUILDERS, HEADS, StudentSpec, build_student
from glueslim.tasks import get_task
from glueslim.teacher_outputs import teacher_logits_for
from glueslim.train import train

BUILDER_METHODS = {"teacher_layers": "DistilBERT-style KD",
                   "albert": "ALBERT-style KD (shared layer, factorised embeddings)"}


# ---------------------------------------------------------------- arguments

def _add_student(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("student (glueslim.students)")
    g.add_argument("--student", required=True, choices=list(BUILDERS),
                   help="teacher_layers: the teacher's width, fewer layers copied from it; albert: factorised "
                        "embeddings, one shared layer; checkpoint: --init; random: the shape below")
    g.add_argument("--num-layers", type=int, default=None,
                   help="student depth (teacher_layers: default half the teacher's; albert: the teacher's)")
    g.add_argument("--layer-map", type=int, nargs="+", default=None,
                   help="teacher_layers, albert: the teacher layer (0-based) that initialises each student "
                        "layer (default: every other one; albert: the middle one); checkpoint: the checkpoint's "
                        "layers (0-based) to keep (default: all, or every k-th of --num-layers)")
    g.add_argument("--embedding-size", type=int, default=None, help="albert: the factorised embedding size E")
    g.add_argument("--init", default=None, help="checkpoint: hub id (huawei-noah/TinyBERT_General_4L_312D) or "
                                                "local folder (general-distill output); its shape wins")
    g.add_argument("--hidden-size", type=int, default=None, help="random")
    g.add_argument("--num-heads", type=int, default=None, help="random")
    g.add_argument("--intermediate-size", type=int, default=None, help="random")


def _add_matches(p: argparse.ArgumentParser, intermediate_default) -> None:
    g = p.add_argument_group("intermediate matches (glueslim.features)")
    g.add_argument("--intermediate", nargs="*", default=intermediate_default, choices=FEATURES,
                   help="features of TinyBERT's default matches (ignored with --matches)")
    g.add_argument("--match-layer-map", type=int, nargs="+", default=None,
                   help="teacher layer (1..N) matched to each student layer (default: uniform, m*N/M)")
    g.add_argument("--matches", default=None, help="JSON list of {teacher_layer, student_layer, feature, loss, "
                                                   "weight, proj}, replacing the default matches")


def add_arguments_distill(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--teacher-dir", required=True, help="the fine-tuned teacher of this task")
    p.add_argument("--teacher-outputs", required=True, help="its cached logits, written by teacher-outputs")
    p.add_argument("--name", required=True, help="the student's name in the leaderboard")
    p.add_argument("--out", required=True)
    p.add_argument("--augmented", default=None, help="an augment folder: its rows join the training set")
    p.add_argument("--transfer", default=None, help="a transfer-set folder: the task's other training texts, "
                                                    "labelled by the teacher, join the training set")
    _add_student(p)
    p.add_argument("--head", choices=HEADS, default="new",
                   help="new: the builder's head (checkpoint, random: a fresh one); teacher: the fine-tuned "
                        "teacher's pooler and classifier (the student's width must be the teacher's)")
    g = p.add_argument_group("prediction layer (glueslim.losses)")
    g.add_argument("--prediction", required=True, choices=list(PREDICTION_LOSSES),
                   help="kl: DistilBERT's T^2 * KL; soft_ce: TinyBERT's soft cross-entropy (MSE for regression)")
    g.add_argument("--alpha", type=float, default=None,
                   help="weight of the prediction KD; 1 - alpha weights the hard-label loss (default: KD alone; "
                        "0: gold labels only, a no-KD twin when there are no intermediate matches)")
    g.add_argument("--temperature", type=float, required=True)
    _add_matches(p, None)
    g = p.add_argument_group("stages: 1 intermediate layers (with --intermediate or --matches), 2 prediction layer")
    g.add_argument("--stage1-epochs", type=int, default=None, help="default --epochs; 0 skips stage 1")
    g.add_argument("--stage1-learning-rate", type=float, default=None, help="default --learning-rate")
    g.add_argument("--stage2-epochs", type=int, default=None, help="default --epochs")
    g.add_argument("--stage2-learning-rate", type=float, default=None, help="default --learning-rate")
    g.add_argument("--joint", action="store_true",
                   help="one stage: the intermediate matches and the prediction KD together (--stage2-epochs, "
                        "--stage2-learning-rate), instead of stage 1 then stage 2")
    add_recipe_arguments(p)


def add_arguments_general(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", required=True, help="the pre-trained (not fine-tuned) teacher: hub id or folder")
    p.add_argument("--revision", default=None)
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--data", nargs="*", default=[], help="prepared task folders: their training sentences")
    p.add_argument("--corpus", default=None, help="a text file, one sentence or passage a line (instead of --data)")
    p.add_argument("--max-sentences", type=int, default=None, help="a seeded sample of at most this many")
    p.add_argument("--out", required=True)
    _add_student(p)
    _add_matches(p, schema_default("tinybert", "general", "intermediate"))
    add_recipe_arguments(p)


# ---------------------------------------------------------------- shared steps

def _spec(args: argparse.Namespace) -> StudentSpec:
    return StudentSpec(args.student, args.num_layers, tuple(args.layer_map) if args.layer_map else None,
                       args.embedding_size, args.init, args.hidden_size, args.num_heads, args.intermediate_size,
                       getattr(args, "head", "new"))


def _matches(args: argparse.Namespace, student, teacher) -> list[dict]:
    M, N = student.config.num_hidden_layers, teacher.config.num_hidden_layers
    try:
        if args.matches:
            return check_matches(json.loads(args.matches), M, N)
        return default_matches(M, N, args.intermediate or [], args.match_layer_map)
    except (ValueError, json.JSONDecodeError) as e:
        raise UserError(f"intermediate matches: {e}") from None


def _command(args: argparse.Namespace) -> dict:
    """The command's own settings (not the recipe's): what a resumed checkpoint must share besides it."""
    skip = {f.name for f in fields(Recipe)} | {"func", "command", "out"}
    return {k: v for k, v in sorted(vars(args).items()) if k not in skip}


def _shape(model) -> dict:
    c = model.config
    return {"num_layers": c.num_hidden_layers, "hidden_size": c.hidden_size, "num_heads": c.num_attention_heads,
            "intermediate_size": c.intermediate_size}


NO_KD = "fine-tuned on gold labels only (no-KD twin)"


def _method(builder: str, two_stage: bool, used: list[str], kd: PredictionKD, joint: bool, augmented: bool,
            transfer: bool = False) -> str:
    if not kd.kd and not used:  # the teacher's knowledge only through the labels of extra rows, if any
        extra = [x for x, on in (("teacher-labelled augmented rows", augmented),
                                 ("a teacher-labelled transfer set", transfer)) if on]
        return f"fine-tuned on gold labels and {' and '.join(extra)}" if extra else NO_KD
    method = _base_method(builder, two_stage, used, kd, joint)
    return method + ", with a teacher-labelled transfer set" if transfer else method


def _base_method(builder: str, two_stage: bool, used: list[str], kd: PredictionKD, joint: bool) -> str:
    if not two_stage:
        return BUILDER_METHODS.get(builder, f"prediction-layer KD ({kd.loss})")
    what = ", ".join(used) or "prediction layer only"
    if joint:
        what += " with the prediction layer in one stage" if used else ""
        return f"{BUILDER_METHODS.get(builder, 'TinyBERT-style KD')} ({what})"
    if builder in BUILDER_METHODS:
        return f"{BUILDER_METHODS[builder]}, intermediate layers first ({what})"
    return f"TinyBERT-style KD ({what})"


# ---------------------------------------------------------------- task distillation

def run_distill(args: argparse.Namespace) -> None:
    recipe = Recipe.from_args(args)
    task = get_task(args.task)
    seed_everything(recipe.seed)
    tokenizer = load_tokenizer(args.teacher_dir)
    teacher = load_classifier(args.teacher_dir)
    spec = _spec(args)
    student, built = build_student(spec, teacher, recipe.seed)
    try:
        kd = PredictionKD(args.prediction, 1.0 if args.alpha is None else args.alpha, args.temperature)
    except ValueError as e:
        raise UserError(str(e)) from None
    two_stage = args.intermediate is not None or args.matches is not None
    matches = _matches(args, student, teacher) if two_stage else []
    rows = load_split(args.data, "train")
    aug = read_jsonl(Path(args.augmented) / "train.jsonl") if args.augmented else []
    transfer = read_jsonl(Path(args.transfer) / "train.jsonl") if args.transfer else []
    # two blocks, each as an earlier job tokenized it (teacher_outputs, augment): token cache hits
    train_feats = encode(tokenizer, rows, recipe.max_seq_length,
                         extra={"teacher_logits": teacher_logits_for(rows, args.teacher_outputs, task.name)})
    if aug:
        train_feats += encode(tokenizer, [{k: r[k] for k in ("idx", "text_a", "text_b", "label") if k in r}
                                          for r in aug], recipe.max_seq_length,
                              extra={"teacher_logits": [r["teacher_logits"] for r in aug]})
    if transfer:
        train_feats += encode(tokenizer, transfer, recipe.max_seq_length,
                              extra={"teacher_logits": [r["teacher_logits"] for r in transfer]})
    dev_feats = encode(tokenizer, load_split(args.data, task.eval_splits[0][0]), recipe.max_seq_length)
    e1 = recipe.epochs if args.stage1_epochs is None else args.stage1_epochs
    e2 = recipe.epochs if args.stage2_epochs is None else args.stage2_epochs
    lr1 = args.stage1_learning_rate or recipe.learning_rate
    lr2 = args.stage2_learning_rate or recipe.learning_rate
    joint = args.joint
    if joint and not matches:
        raise UserError("--joint trains the intermediate matches with the prediction KD in one stage: it needs "
                        "--intermediate FEATURE... or --matches")
    staged = two_stage and not joint  # stage 1 then stage 2
    command = _command(args)
    ckpt = Path(recipe.checkpoint_dir)
    stage1 = []
    used = sorted({m["feature"] for m in matches}) if (e2 if joint else e1) > 0 else []
    if staged and e1 > 0 and matches:
        stage = distiller(student, teacher, matches)
        # no dev evaluation in stage 1: the head is not trained yet
        stage1 = train(stage.model, tokenizer, task, train_feats, [],
                       replace(recipe, epochs=e1, learning_rate=lr1, checkpoint_dir=str(ckpt / "stage1")),
                       stage.loss_fn, stage.forward_fn, run_extra={**command, "stage": 1})
    teacher = teacher if joint else None  # the joint stage matches against it; stage 2 needs only its logits
    recipe2 = replace(recipe, epochs=e2, learning_rate=lr2)
    if staged:
        recipe2 = replace(recipe2, checkpoint_dir=str(ckpt / "stage2"))
    history = []
    if e2 > 0:
        stage = distiller(student, teacher, matches if joint else None, kd=kd)
        history = train(stage.model, tokenizer, task, train_feats, dev_feats, recipe2, stage.loss_fn,
                        stage.forward_fn, run_extra={**command, "stage": 2} if staged else command)
    if not history:
        history = stage1
    hyperparameters = {**(recipe if staged else recipe2).hyperparameters(),
                       **({} if args.alpha is None else {"alpha": args.alpha}), "temperature": args.temperature}
    record = {
        "model": args.name, "task": task.name,
        "method": _method(spec.builder, two_stage, used, kd, joint, bool(aug), bool(args.transfer)),
        "base_model": read_record(args.teacher_dir)["base_model"], "teacher": "teacher",
        "teacher_dir": args.teacher_dir, **built,
        # knowledge from the teacher: its logits, its features, or its labels on augmented rows or transfer texts
        "kd": kd.kd or bool(used) or bool(aug) or bool(transfer),
    }
    if args.transfer:
        record["transfer_rows"] = len(transfer)
    if two_stage:
        record.update({"matches": matches if used else [], "intermediate": used,
                       "general_distillation": spec.builder == "checkpoint"})
    if staged:
        hyperparameters.update({"stage1_epochs": e1, "stage1_learning_rate": lr1, "stage2_epochs": e2,
                                "stage2_learning_rate": lr2})
    if joint:
        hyperparameters["joint"] = True
    if two_stage or aug:
        record.update({"augmented": bool(args.augmented), "augmented_rows": len(aug)})
    if staged:
        record["stage1_history"] = stage1
    record["hyperparameters"] = hyperparameters
    save_model(student, tokenizer, args.out, record, history, recipe.checkpoint_dir)


# ---------------------------------------------------------------- general distillation

def corpus_sentences(data_dirs: list[str], corpus: str | None, max_sentences: int | None, seed: int) -> list[str]:
    """Unlabeled text: the lines of `corpus`, or the pooled training sentences (text_a and text_b) of the
    prepared tasks, de-duplicated in first-seen order, then a seeded sample of `max_sentences`."""
    if corpus:
        texts = [line.strip() for line in open(corpus, encoding="utf-8")]
    else:
        texts = [r[k] for d in data_dirs for r in load_split(d, "train") for k in ("text_a", "text_b") if r.get(k)]
    texts = list(dict.fromkeys(t for t in texts if t))
    if not texts:
        raise UserError("general distillation: the corpus is empty")
    if max_sentences and len(texts) > max_sentences:
        texts = random.Random(seed).sample(texts, max_sentences)
    return texts


def run_general(args: argparse.Namespace) -> None:
    recipe = Recipe.from_args(args)
    seed_everything(recipe.seed)
    tokenizer = load_tokenizer(args.teacher, args.revision, args.trust_remote_code)
    teacher = load_classifier(args.teacher, None, args.revision, args.trust_remote_code)
    student, built = build_student(_spec(args), teacher, recipe.seed)
    matches = _matches(args, student, teacher)
    if not matches:
        raise UserError("general distillation needs intermediate matches (--intermediate or --matches)")
    texts = corpus_sentences(args.data, args.corpus, args.max_sentences, recipe.seed)
    feats = encode(tokenizer, [{"idx": i, "text_a": t, "text_b": None} for i, t in enumerate(texts)],
                   recipe.max_seq_length)
    stage = distiller(student, teacher, matches)
    history = train(stage.model, tokenizer, None, feats, [], recipe, stage.loss_fn, stage.forward_fn,
                    run_extra=_command(args))
    record = {"model": Path(args.out).name, "method": "TinyBERT general distillation", "teacher": args.teacher,
              "base_model": args.teacher, "init": built.get("init", args.student), **_shape(student),
              "matches": stage.model.matches, "sentences": len(texts), "corpus": args.corpus or args.data,
              "hyperparameters": recipe.hyperparameters()}
    save_model(student, tokenizer, args.out, record, history, recipe.checkpoint_dir)
