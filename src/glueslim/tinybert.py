"""TinyBERT-style distillation: intermediate-layer KD, general distillation, data augmentation, ablation.

Jiao et al. (2020), "TinyBERT: Distilling BERT for Natural Language Understanding", as glueslim runs it:

- a student whose shape (layers, hidden size, heads, intermediate size) does not depend on the teacher's,
  initialised from a checkpoint (hub id or local folder), from this workflow's general distillation, or at
  random (`make_tinybert_student`);
- intermediate matches, declared TextBrewer-style as a list of
  `{teacher_layer, student_layer, feature, loss, weight, proj}` (layer 0 is the embedding output, 1..N the
  transformer layers; feature `embedding`, `hidden`, `attention` or `cls`; loss `mse`, `cosine` or `pkd`;
  proj `linear` or null). `default_matches` builds TinyBERT's: the embeddings, then per student layer m
  the attention scores and hidden states of teacher layer g(m) = m*N/M (`uniform_layer_map`);
- pure losses (`hidden_mse`, `embedding_mse`, `attention_mse`, `cosine_loss`, `pkd_cls_loss`,
  `soft_cross_entropy`), tested in tests/test_tinybert.py;
- attention scores (Q K^T / sqrt(d), before the softmax) taken by forward hooks on the query and key
  projections, installed only for the training forward pass (`capture_qk`): the finished student is a
  plain BertForSequenceClassification, predicted and profiled on transformers' normal (sdpa) path;
- commands `tinybert-general` (intermediate losses only, from the pre-trained teacher, on unlabeled text),
  `tinybert-augment` (N copies per example, words replaced with probability p by masked-LM candidates or,
  for a teacher without a masked-LM head, nearest neighbours in its input-embedding space; labelled by the
  fine-tuned teacher), `tinybert-distill` (stage 1: intermediate layers; stage 2: prediction layer) and
  `tinybert-ablation` (results/ablations/<name>.json for the report).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import re
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from glueslim.errors import UserError

log = logging.getLogger(__name__)

FEATURES = ("embedding", "hidden", "attention", "cls")
LOSSES = ("mse", "cosine", "pkd")
DEFAULT_INTERMEDIATE = ("embedding", "attention", "hidden")
QUERY_NAMES = ("query", "q_lin", "q_proj")
KEY_NAMES = ("key", "k_lin", "k_proj")


# ---------------------------------------------------------------- losses (pure functions of tensors)

def _token_mean(d: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of a per-token loss d (B, L) over the tokens where mask (B, L) is 1 (all when mask is None)."""
    if mask is None:
        return d.mean()
    m = mask.to(d.dtype)
    return (d * m).sum() / m.sum().clamp_min(1)


def hidden_mse(student: torch.Tensor, teacher: torch.Tensor, proj: nn.Module | None = None,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """MSE(student W_h, teacher) of hidden states (B, L, d_s) -> (B, L, d_t), averaged over the hidden
    dimension and the non-padding tokens (`mask`, the attention mask; all tokens when None)."""
    s = proj(student) if proj is not None else student
    if s.shape != teacher.shape:
        raise ValueError(f"hidden states of shape {tuple(s.shape)} and {tuple(teacher.shape)}: a projection "
                         "(proj: linear) is needed when the student and teacher widths differ")
    return _token_mean((s.float() - teacher.float()).pow(2).mean(-1), mask)  # fp32 under mixed precision too


def embedding_mse(student: torch.Tensor, teacher: torch.Tensor, proj: nn.Module | None = None,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """MSE(E_s W_e, E_t) of the embedding layers' outputs, through the learned projection W_e."""
    return hidden_mse(student, teacher, proj, mask)


def cosine_loss(student: torch.Tensor, teacher: torch.Tensor, proj: nn.Module | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """1 - cos(student W, teacher) per token, averaged over the non-padding tokens."""
    s = proj(student) if proj is not None else student
    return _token_mean(1 - F.cosine_similarity(s.float(), teacher.float(), dim=-1), mask)


def pkd_cls_loss(student: torch.Tensor, teacher: torch.Tensor, proj: nn.Module | None = None) -> torch.Tensor:
    """BERT-PKD: squared distance of the L2-normalised [CLS] vectors (B, d), averaged over the batch."""
    s = proj(student) if proj is not None else student
    return (F.normalize(s.float(), dim=-1) - F.normalize(teacher.float(), dim=-1)).pow(2).sum(-1).mean()


def attention_mse(student: torch.Tensor, teacher: torch.Tensor,
                  attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """MSE of unnormalised attention scores (B, H, L, L), over the (query, key) pairs where both are real
    tokens: a padded query or key is left out of the sum and of the count. Student and teacher with
    different numbers of heads are compared on their head-averaged maps."""
    if student.shape[1] != teacher.shape[1]:
        student, teacher = student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)
    d = (student - teacher).pow(2)
    if attention_mask is None:
        return d.mean()
    m = attention_mask.to(d.dtype)
    valid = (m[:, None, :, None] * m[:, None, None, :]).expand_as(d)
    return (d * valid).sum() / valid.sum().clamp_min(1)


def soft_cross_entropy(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Prediction-layer distillation: -sum softmax(t/T) log softmax(s/T), averaged over the batch
    (TinyBERT's, without DistilBERT's T^2 factor); MSE(s, t) for a one-output regression head."""
    if student.shape[-1] == 1:
        return F.mse_loss(student.squeeze(-1).float(), teacher.squeeze(-1).float())
    p_t = F.softmax(teacher.float() / temperature, dim=-1)
    return -(p_t * F.log_softmax(student.float() / temperature, dim=-1)).sum(-1).mean()


def uniform_layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """TinyBERT's g(m) = m * N / M (rounded down): the teacher layer for student layers m = 1..M
    (0, the embeddings, always maps to 0). 4 of 12: [3, 6, 9, 12]; 4 of 6: [1, 3, 4, 6]."""
    if not 1 <= student_layers:
        raise ValueError(f"a student needs at least one layer, not {student_layers}")
    return [m * teacher_layers // student_layers for m in range(1, student_layers + 1)]


def default_matches(student_layers: int, teacher_layers: int, features=DEFAULT_INTERMEDIATE,
                    layer_map: list[int] | None = None, weight: float = 1.0) -> list[dict]:
    """TinyBERT's intermediate matches for the chosen features: `embedding` (layer 0, projected MSE),
    `attention` (scores MSE) and `hidden` (projected MSE) for every student layer m against teacher layer
    layer_map[m-1] (default uniform), and `cls` (BERT-PKD, normalised [CLS] of the same layers)."""
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise ValueError(f"unknown intermediate feature(s) {unknown}: expected {', '.join(FEATURES)}")
    layer_map = list(layer_map) if layer_map else uniform_layer_map(student_layers, teacher_layers)
    if len(layer_map) != student_layers or any(not 1 <= j <= teacher_layers for j in layer_map):
        raise ValueError(f"layer_map {layer_map} must name one teacher layer 1..{teacher_layers} for each of the "
                         f"{student_layers} student layers")
    out = []
    if "embedding" in features:
        out.append({"teacher_layer": 0, "student_layer": 0, "feature": "embedding", "loss": "mse",
                    "weight": weight, "proj": "linear"})
    for m, j in enumerate(layer_map, 1):
        if "attention" in features:
            out.append({"teacher_layer": j, "student_layer": m, "feature": "attention", "loss": "mse",
                        "weight": weight, "proj": None})
        if "hidden" in features:
            out.append({"teacher_layer": j, "student_layer": m, "feature": "hidden", "loss": "mse",
                        "weight": weight, "proj": "linear"})
        if "cls" in features:
            out.append({"teacher_layer": j, "student_layer": m, "feature": "cls", "loss": "pkd",
                        "weight": weight, "proj": "linear"})
    return out


def check_matches(matches: list[dict], student_layers: int, teacher_layers: int) -> list[dict]:
    """Normalise and check a declarative match list (defaults: loss mse, weight 1, proj linear for
    hidden/embedding/cls features and none for attention)."""
    out = []
    for i, m in enumerate(matches):
        unknown = set(m) - {"teacher_layer", "student_layer", "feature", "loss", "weight", "proj"}
        if unknown:
            raise ValueError(f"match {i}: unknown key(s) {sorted(unknown)}")
        feature = m.get("feature", "hidden")
        if feature not in FEATURES:
            raise ValueError(f"match {i}: feature {feature!r} is not one of {', '.join(FEATURES)}")
        t, s = m.get("teacher_layer", 0 if feature == "embedding" else None), \
            m.get("student_layer", 0 if feature == "embedding" else None)
        lo = 1 if feature == "attention" else 0
        if not (isinstance(t, int) and lo <= t <= teacher_layers and isinstance(s, int) and lo <= s <= student_layers):
            raise ValueError(f"match {i}: {feature} needs teacher_layer in {lo}..{teacher_layers} and student_layer "
                             f"in {lo}..{student_layers} (0 = embeddings), not {t} and {s}")
        loss = m.get("loss", "pkd" if feature == "cls" else "mse")
        if loss not in LOSSES or (feature == "attention" and loss != "mse"):
            raise ValueError(f"match {i}: loss {loss!r} for feature {feature} (attention: mse; others: {LOSSES})")
        proj = m.get("proj", None if feature == "attention" else "linear")
        if proj not in (None, "linear") or (feature == "attention" and proj):
            raise ValueError(f"match {i}: proj {proj!r} (linear or null; attention scores take none)")
        out.append({"teacher_layer": t, "student_layer": s, "feature": feature, "loss": loss,
                    "weight": float(m.get("weight", 1.0)), "proj": proj})
    return out


# ---------------------------------------------------------------- attention scores by hooks

def _find_child(layer: nn.Module, names: tuple[str, ...]) -> nn.Module:
    for name, mod in layer.named_modules():
        if name.rsplit(".", 1)[-1] in names and isinstance(mod, nn.Linear):
            return mod
    raise ValueError(f"no query/key projection ({'/'.join(names)}) found in {type(layer).__name__}")


class capture_qk:
    """Context manager: forward hooks on every layer's query and key projections, so that
    `scores(i, attention_mask)` gives layer i's (0-based) unnormalised attention scores Q K^T / sqrt(d),
    shape (B, H, L, L). The hooks exist only inside the `with`: inference never pays for them, and the
    attention implementation (sdpa, eager) does not matter."""

    def __init__(self, model: nn.Module):
        from glueslim.modeling import layer_list

        self.heads = model.config.num_attention_heads
        _, layers = layer_list(model)
        self.mods = [(_find_child(l, QUERY_NAMES), _find_child(l, KEY_NAMES)) for l in layers]
        self.q: dict[int, torch.Tensor] = {}
        self.k: dict[int, torch.Tensor] = {}
        self.handles: list = []

    def __enter__(self):
        for i, (q, k) in enumerate(self.mods):
            self.handles.append(q.register_forward_hook(lambda _m, _i, out, i=i: self.q.__setitem__(i, out)))
            self.handles.append(k.register_forward_hook(lambda _m, _i, out, i=i: self.k.__setitem__(i, out)))
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def scores(self, i: int) -> torch.Tensor:
        q, k = self.q[i], self.k[i]
        b, n, width = q.shape
        d = width // self.heads
        q = q.view(b, n, self.heads, d).transpose(1, 2)
        k = k.view(b, k.shape[1], self.heads, d).transpose(1, 2)
        return (q @ k.transpose(-1, -2)) / math.sqrt(d)


def _feature(feature: str, layer: int, out, cap: capture_qk) -> torch.Tensor:
    if feature == "attention":
        return cap.scores(layer - 1)
    h = out.hidden_states[layer]
    return h[:, 0] if feature == "cls" else h


def match_loss(match: dict, s: torch.Tensor, t: torch.Tensor, proj: nn.Module | None,
               mask: torch.Tensor | None) -> torch.Tensor:
    if match["feature"] == "attention":
        return attention_mse(s.float(), t.float(), mask)
    if match["loss"] == "pkd":
        return pkd_cls_loss(s[:, 0] if s.dim() == 3 else s, t[:, 0] if t.dim() == 3 else t, proj)
    if s.dim() == 2:  # [CLS] vectors
        s, t, mask = s[:, None], t[:, None], None
    if match["loss"] == "cosine":
        return cosine_loss(s, t, proj, mask)
    return hidden_mse(s, t, proj, mask)


class IntermediateDistiller(nn.Module):
    """The student plus the learned projections of its intermediate matches, trained as one model by
    train.train (the projections are optimised and checkpointed with it; the teacher is held outside
    the module tree, frozen). `model(**inputs)` is the student's plain forward (evaluation);
    `model(**inputs, distill=True)` returns `.loss`, the weighted sum of the match losses, and `.parts`."""

    def __init__(self, student: nn.Module, teacher: nn.Module, matches: list[dict]):
        super().__init__()
        self.student = student
        self.__dict__["teacher"] = teacher.eval().requires_grad_(False)  # not a submodule: not trained or saved
        self.matches = check_matches(matches, student.config.num_hidden_layers, teacher.config.num_hidden_layers)
        ds, dt = student.config.hidden_size, teacher.config.hidden_size
        self.proj = nn.ModuleDict({str(i): nn.Linear(ds, dt) for i, m in enumerate(self.matches) if m["proj"]})
        self.config = student.config

    def forward(self, distill: bool = False, **inputs):
        if not distill:
            return self.student(**inputs)
        teacher = self.teacher
        if next(teacher.parameters()).device != inputs["input_ids"].device:
            teacher.to(inputs["input_ids"].device)
        mask = inputs.get("attention_mask")
        with capture_qk(self.student) as s_cap:
            s_out = self.student(**inputs, output_hidden_states=True)
        with torch.no_grad(), capture_qk(teacher) as t_cap:
            t_out = teacher(**inputs, output_hidden_states=True)
        parts = {}
        for i, m in enumerate(self.matches):
            s = _feature(m["feature"], m["student_layer"], s_out, s_cap)
            t = _feature(m["feature"], m["teacher_layer"], t_out, t_cap)
            key = f"{m['feature']}:{m['student_layer']}<-{m['teacher_layer']}"
            parts[key] = m["weight"] * match_loss(m, s, t, self.proj[str(i)] if m["proj"] else None, mask)
        # + 0 * logits: the head takes part in the graph, so DistributedDataParallel finds a gradient for every
        # parameter (stage 1 trains no prediction loss)
        loss = torch.stack(list(parts.values())).sum() + 0.0 * s_out.logits.float().sum()
        return SimpleNamespace(loss=loss, logits=s_out.logits, parts={k: v.detach() for k, v in parts.items()})


def distill_forward(model, inputs):
    return model(**inputs, distill=True)


def intermediate_loss(out, batch):
    return out.loss


# ---------------------------------------------------------------- students

def student_config(teacher_config, num_layers: int, hidden_size: int, num_heads: int, intermediate_size: int):
    """A BertConfig of the given shape with the teacher's vocabulary, positions and labels."""
    from transformers import BertConfig

    tc = teacher_config
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size {hidden_size} must be a multiple of num_heads {num_heads}")
    return BertConfig(
        vocab_size=tc.vocab_size, hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, intermediate_size=intermediate_size, hidden_act=tc.hidden_act,
        max_position_embeddings=tc.max_position_embeddings, type_vocab_size=tc.type_vocab_size,
        pad_token_id=tc.pad_token_id, layer_norm_eps=tc.layer_norm_eps, num_labels=tc.num_labels,
        id2label=tc.id2label, label2id=tc.label2id, problem_type=tc.problem_type,
    )


def make_tinybert_student(teacher, init: str = "random", num_layers: int = 4, hidden_size: int = 312,
                          num_heads: int = 12, intermediate_size: int = 1200, seed: int = 42):
    """The student: `init` "random" (the given shape), or a checkpoint (hub id such as
    huawei-noah/TinyBERT_General_4L_312D, or a local folder, e.g. this workflow's general distillation),
    whose shape wins, with a new head sized like the teacher's."""
    from transformers import BertForSequenceClassification

    tc = teacher.config
    if init == "random":
        torch.manual_seed(seed)
        return BertForSequenceClassification(student_config(tc, num_layers, hidden_size, num_heads,
                                                            intermediate_size))
    from transformers import AutoModelForSequenceClassification

    kwargs = dict(num_labels=tc.num_labels, ignore_mismatched_sizes=True, weights_only=True)
    if tc.problem_type == "regression":
        kwargs["problem_type"] = "regression"
    else:
        kwargs.update(id2label=tc.id2label, label2id=tc.label2id)
    student = AutoModelForSequenceClassification.from_pretrained(init, **kwargs)
    if student.config.vocab_size != tc.vocab_size:
        raise UserError(f"student checkpoint {init}: vocabulary of {student.config.vocab_size} tokens, the teacher's "
                        f"has {tc.vocab_size}: intermediate distillation needs the teacher's tokenizer")
    return student


# ---------------------------------------------------------------- command-line plumbing

def _add_shape(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("student")
    g.add_argument("--init", default="random",
                   help="random, or a checkpoint: hub id (huawei-noah/TinyBERT_General_4L_312D) or local folder")
    g.add_argument("--num-layers", type=int, default=4)
    g.add_argument("--hidden-size", type=int, default=312)
    g.add_argument("--num-heads", type=int, default=12)
    g.add_argument("--intermediate-size", type=int, default=1200)
    g.add_argument("--intermediate", nargs="*", default=list(DEFAULT_INTERMEDIATE), choices=FEATURES,
                   help="features of TinyBERT's default matches (ignored with --matches)")
    g.add_argument("--layer-map", type=int, nargs="+", default=None,
                   help="teacher layer (1..N) for each student layer (default: uniform, m*N/M)")
    g.add_argument("--matches", default=None, help="JSON list of {teacher_layer, student_layer, feature, loss, "
                                                   "weight, proj}, replacing the default matches")


def _matches(args, student, teacher) -> list[dict]:
    M, N = student.config.num_hidden_layers, teacher.config.num_hidden_layers
    try:
        if args.matches:
            return check_matches(json.loads(args.matches), M, N)
        return default_matches(M, N, args.intermediate, args.layer_map)
    except (ValueError, json.JSONDecodeError) as e:
        raise UserError(f"intermediate matches: {e}") from None


def _stage_args(args, epochs, lr, ckpt) -> argparse.Namespace:
    a = argparse.Namespace(**vars(args))
    a.epochs, a.learning_rate, a.checkpoint_dir = epochs, lr, str(ckpt)
    return a


def _student_shape(model) -> dict:
    c = model.config
    return {"num_layers": c.num_hidden_layers, "hidden_size": c.hidden_size, "num_heads": c.num_attention_heads,
            "intermediate_size": c.intermediate_size}


# ---------------------------------------------------------------- general distillation

def add_arguments_tinybert_general(p: argparse.ArgumentParser) -> None:
    from glueslim.train import add_training_arguments

    p.add_argument("--teacher", required=True, help="the pre-trained (not fine-tuned) teacher: hub id or folder")
    p.add_argument("--revision", default=None)
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--data", nargs="*", default=[], help="prepared task folders: their training sentences")
    p.add_argument("--corpus", default=None, help="a text file, one sentence or passage a line (instead of --data)")
    p.add_argument("--max-sentences", type=int, default=None, help="a seeded sample of at most this many")
    p.add_argument("--out", required=True)
    _add_shape(p)
    add_training_arguments(p)


def corpus_sentences(data_dirs: list[str], corpus: str | None, max_sentences: int | None, seed: int) -> list[str]:
    """Unlabeled text: the lines of `corpus`, or the pooled training sentences (text_a and text_b) of the
    prepared tasks, de-duplicated in first-seen order, then a seeded sample of `max_sentences`."""
    from glueslim.data import load_split

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


def run_tinybert_general(args: argparse.Namespace) -> None:
    from glueslim.modeling import load_classifier, load_tokenizer
    from glueslim.train import encode, hyperparameters, save_model, seed_everything, train

    seed_everything(args.seed)
    tokenizer = load_tokenizer(args.teacher, args.revision, args.trust_remote_code)
    teacher = load_classifier(args.teacher, None, args.revision, args.trust_remote_code)
    student = make_tinybert_student(teacher, args.init, args.num_layers, args.hidden_size, args.num_heads,
                                    args.intermediate_size, args.seed)
    matches = _matches(args, student, teacher)
    texts = corpus_sentences(args.data, args.corpus, args.max_sentences, args.seed)
    feats = encode(tokenizer, [{"idx": i, "text_a": t, "text_b": None} for i, t in enumerate(texts)],
                   args.max_seq_length)
    wrapper = IntermediateDistiller(student, teacher, matches)
    history = train(wrapper, tokenizer, None, feats, [], args, loss_fn=intermediate_loss, forward_fn=distill_forward)
    meta = {"model": Path(args.out).name, "method": "TinyBERT general distillation", "teacher": args.teacher,
            "base_model": args.teacher, "init": args.init, **_student_shape(student), "matches": wrapper.matches,
            "sentences": len(texts), "corpus": args.corpus or args.data,
            "hyperparameters": hyperparameters(args)}
    save_model(student, tokenizer, args.out, meta, history, args.checkpoint_dir)


# ---------------------------------------------------------------- data augmentation

def add_arguments_tinybert_augment(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--teacher-dir", required=True, help="the fine-tuned teacher: labels the augmented examples")
    p.add_argument("--mlm-model", default=None,
                   help="pre-trained model whose masked-LM head proposes words; without one (or when it has no "
                        "MLM head) nearest neighbours in the teacher's input-embedding space are used")
    p.add_argument("--copies", type=int, default=20, help="augmented copies per training example (TinyBERT: 20)")
    p.add_argument("--prob", type=float, default=0.4, help="probability of replacing each word (TinyBERT: 0.4)")
    p.add_argument("--candidates", type=int, default=15, help="candidates per word (TinyBERT: 15)")
    p.add_argument("--max-examples", type=int, default=None, help="augment at most this many (seeded sample)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--eval-batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--out", required=True, help="folder: train.jsonl (augmented rows with teacher logits) + meta.json")


def _mlm_model(ref: str | None):
    """The masked-LM model of `ref`, or None when it has no trained MLM head."""
    if not ref:
        return None
    from transformers import AutoModelForMaskedLM

    try:
        model, info = AutoModelForMaskedLM.from_pretrained(ref, output_loading_info=True, weights_only=True)
    except (OSError, ValueError) as e:
        log.warning("no masked-LM model from %s (%s): nearest neighbours instead", ref, e)
        return None
    head = [k for k in info.get("missing_keys", []) if "predictions" in k or k.startswith("cls.") or "lm_head" in k]
    if head:
        log.info("%s has no masked-LM head (missing %s): nearest neighbours in its input embeddings", ref, head[:3])
        return None
    return model.eval()


def _bad_token_ids(tokenizer) -> list[int]:
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return [i for i, t in enumerate(vocab) if t.startswith("##") or t.startswith("[") or not t.isalpha()]


@torch.no_grad()
def embedding_neighbours(embeddings: torch.Tensor, ids: list[int], k: int, exclude: list[int],
                         chunk: int = 1024) -> dict[int, list[int]]:
    """The k nearest tokens (cosine) of each id in `ids` in the embedding table, itself and `exclude` left out."""
    e = F.normalize(embeddings.float(), dim=-1)
    out: dict[int, list[int]] = {}
    for s in range(0, len(ids), chunk):
        part = ids[s:s + chunk]
        sim = e[part] @ e.T
        sim[:, exclude] = -2.0
        sim[torch.arange(len(part)), part] = -2.0
        top = sim.topk(min(k, sim.shape[1]), dim=-1).indices.tolist()
        out.update(zip(part, top))
    return out


def augment_rows(rows: list[dict], tokenizer, copies: int, prob: float, candidates: int, seed: int,
                 embeddings: torch.Tensor | None = None, mlm=None, batch_size: int = 64,
                 max_seq_length: int = 128) -> list[dict]:
    """`copies` augmented versions of every row, deterministic given `seed` (each word's choice comes from a
    random.Random seeded by (seed, example idx, copy)). Words are split off spaces and punctuation; a word that is one
    vocabulary token is replaced with probability `prob` by one of `candidates` candidates: the MLM head's
    best tokens at its position with every chosen word of that copy masked at once (one batched forward
    per `batch_size` copies, not one per word), or its nearest neighbours in `embeddings`. Words of several
    word pieces are kept. Augmented rows get idx -(1 + i*copies + c) and `source_idx`."""
    fields = [k for k in ("text_a", "text_b") if rows and rows[0].get(k) is not None]
    words = sorted({w for r in rows for f in fields for w in _words(r[f])})
    enc = tokenizer(words, add_special_tokens=False)["input_ids"] if words else []
    single = {w: ids[0] for w, ids in zip(words, enc) if len(ids) == 1}
    exclude = _bad_token_ids(tokenizer)
    plans = []  # (row index, copy, {field: [(word, replace?)]})
    for i, r in enumerate(rows):
        for c in range(copies):
            rng = random.Random(f"{seed}:{r['idx']}:{c}")
            plan = {f: [(w, w in single and rng.random() < prob, rng.random()) for w in _words(r[f])]
                    for f in fields}
            plans.append((i, c, plan))
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    if mlm is None:
        if embeddings is None:
            raise ValueError("augmentation needs a masked-LM model or an input-embedding table")
        wanted = sorted({single[w] for _, _, plan in plans for f in fields for w, rep, _ in plan[f] if rep})
        near = embedding_neighbours(embeddings, wanted, candidates, exclude)
        mlm_choices = None
    else:
        mlm_choices = _mlm_candidates(plans, fields, tokenizer, mlm, candidates, exclude, batch_size, max_seq_length)
    out = []
    for n, (i, c, plan) in enumerate(plans):
        row = {"idx": -(1 + i * copies + c), "source_idx": rows[i]["idx"], "copy": c}
        for f in fields:
            new = []
            for j, (w, rep, u) in enumerate(plan[f]):
                if not rep:
                    new.append(w)
                elif mlm_choices is None:
                    cands = near[single[w]]
                    new.append(vocab[cands[int(u * len(cands))]])
                else:
                    cands = mlm_choices[n].get((f, j)) or [w]
                    new.append(cands[int(u * len(cands))])
            row[f] = " ".join(new)
        out.append(row)
    return out


def _words(text: str) -> list[str]:
    """Words and punctuation marks, as BERT's basic tokenizer splits them ("chess." -> "chess", ".")."""
    return re.findall(r"\w+|[^\w\s]", text)


@torch.no_grad()
def _mlm_candidates(plans, fields, tokenizer, mlm, k, exclude, batch_size, max_len) -> list[dict]:
    """For every plan: {(field, word position): [k candidate tokens]} from one masked forward per copy."""
    device = next(mlm.parameters()).device
    batch_size = min(batch_size, 16)  # the logits are batch x length x vocabulary
    res: list[dict] = []
    for s in range(0, len(plans), batch_size):
        part = plans[s:s + batch_size]
        texts = {f: [" ".join(tokenizer.mask_token if rep else w for w, rep, _ in plan[f]) for _, _, plan in part]
                 for f in fields}
        enc = tokenizer(*[texts[f] for f in fields], truncation=True, max_length=max_len, padding=True,
                        return_tensors="pt")
        logits = mlm(**{k_: v.to(device) for k_, v in enc.items()}).logits
        logits[..., exclude] = -1e9
        top = logits.topk(k, dim=-1).indices.cpu()
        for b, (_, _, plan) in enumerate(part):
            masked = (enc["input_ids"][b] == tokenizer.mask_token_id).nonzero().flatten().tolist()
            slots = [(f, j) for f in fields for j, (_, rep, _) in enumerate(plan[f]) if rep]
            res.append({slot: tokenizer.convert_ids_to_tokens(top[b, pos].tolist())
                        for slot, pos in zip(slots, masked)})
    return res


def run_tinybert_augment(args: argparse.Namespace) -> None:
    from transformers import DataCollatorWithPadding

    from glueslim.data import load_split
    from glueslim.io import atomic_dir, atomic_write_json, atomic_write_jsonl
    from glueslim.modeling import load_classifier, load_tokenizer, pick_device
    from glueslim.tasks import get_task
    from glueslim.train import encode, predict_logits

    if args.threads:
        torch.set_num_threads(args.threads)
    task = get_task(args.task)
    device = pick_device(args.device)
    tokenizer = load_tokenizer(args.teacher_dir)
    teacher = load_classifier(args.teacher_dir).to(device)
    rows = load_split(args.data, "train")
    if args.max_examples and len(rows) > args.max_examples:
        rows = random.Random(args.seed).sample(rows, args.max_examples)
    mlm = _mlm_model(args.mlm_model)
    if mlm is not None:
        mlm.to(device)
    emb = teacher.get_input_embeddings().weight.detach().cpu()
    aug = augment_rows(rows, tokenizer, args.copies, args.prob, args.candidates, args.seed, embeddings=emb, mlm=mlm,
                       batch_size=args.eval_batch_size, max_seq_length=args.max_seq_length)
    feats = encode(tokenizer, aug, args.max_seq_length)
    logits = predict_logits(teacher, feats, DataCollatorWithPadding(tokenizer), args.eval_batch_size, device)
    for r, z in zip(aug, logits):
        r["teacher_logits"] = z.tolist()
        r["label"] = float(z[0]) if task.is_regression else int(z.argmax())
    with atomic_dir(args.out) as tmp:
        atomic_write_jsonl(tmp / "train.jsonl", aug)
        atomic_write_json(tmp / "meta.json", {
            "task": task.name, "source_examples": len(rows), "rows": len(aug), "copies": args.copies,
            "prob": args.prob, "candidates": args.candidates, "seed": args.seed,
            "candidate_source": "masked-LM head" if mlm is not None else "input-embedding nearest neighbours",
            "mlm_model": args.mlm_model, "teacher_dir": args.teacher_dir})


# ---------------------------------------------------------------- task distillation (two stages)

def add_arguments_tinybert_distill(p: argparse.ArgumentParser) -> None:
    from glueslim.distill import add_student_inputs
    from glueslim.train import add_training_arguments

    add_student_inputs(p)
    p.add_argument("--augmented", default=None, help="a tinybert-augment folder: its rows join the training set")
    p.add_argument("--temperature", type=float, default=1.0, help="prediction-layer soft cross-entropy")
    p.add_argument("--stage1-epochs", type=int, default=None, help="intermediate layers (default --epochs; 0 skips)")
    p.add_argument("--stage1-learning-rate", type=float, default=None, help="default --learning-rate")
    p.add_argument("--stage2-epochs", type=int, default=None, help="prediction layer (default --epochs)")
    p.add_argument("--stage2-learning-rate", type=float, default=None, help="default --learning-rate")
    p.add_argument("--out", required=True)
    _add_shape(p)
    add_training_arguments(p)


def run_tinybert_distill(args: argparse.Namespace) -> None:
    from glueslim.data import load_split
    from glueslim.distill import teacher_logits_for
    from glueslim.io import read_json, read_jsonl
    from glueslim.modeling import load_classifier, load_tokenizer
    from glueslim.tasks import get_task
    from glueslim.train import encode, hyperparameters, save_model, seed_everything, train

    task = get_task(args.task)
    seed_everything(args.seed)
    tokenizer = load_tokenizer(args.teacher_dir)
    teacher = load_classifier(args.teacher_dir)
    student = make_tinybert_student(teacher, args.init, args.num_layers, args.hidden_size, args.num_heads,
                                    args.intermediate_size, args.seed)
    matches = _matches(args, student, teacher)
    rows = load_split(args.data, "train")
    aug = read_jsonl(Path(args.augmented) / "train.jsonl") if args.augmented else []
    # two blocks, each as an earlier job tokenized it (teacher_outputs, tinybert_augment): token cache hits
    train_feats = encode(tokenizer, rows, args.max_seq_length,
                         extra={"teacher_logits": teacher_logits_for(rows, args.teacher_outputs)})
    if aug:
        train_feats += encode(tokenizer, [{k: r[k] for k in ("idx", "text_a", "text_b", "label") if k in r}
                                          for r in aug], args.max_seq_length,
                              extra={"teacher_logits": [r["teacher_logits"] for r in aug]})
    dev_feats = encode(tokenizer, load_split(args.data, task.eval_splits[0][0]), args.max_seq_length)
    ckpt = Path(args.checkpoint_dir)
    e1 = args.epochs if args.stage1_epochs is None else args.stage1_epochs
    e2 = args.epochs if args.stage2_epochs is None else args.stage2_epochs
    lr1, lr2 = args.stage1_learning_rate or args.learning_rate, args.stage2_learning_rate or args.learning_rate
    T = args.temperature
    stage1 = []
    used = sorted({m["feature"] for m in matches}) if e1 > 0 else []
    if e1 > 0 and matches:
        wrapper = IntermediateDistiller(student, teacher, matches)
        # no dev evaluation in stage 1: the head is not trained yet
        stage1 = train(wrapper, tokenizer, task, train_feats, [], _stage_args(args, e1, lr1, ckpt / "stage1"),
                       loss_fn=intermediate_loss, forward_fn=distill_forward)
        student = wrapper.student
    del teacher
    history = []
    if e2 > 0:
        def pred_loss(z, batch):
            return soft_cross_entropy(z, batch["teacher_logits"].to(z.dtype), T)

        history = train(student, tokenizer, task, train_feats, dev_feats, _stage_args(args, e2, lr2, ckpt / "stage2"),
                        loss_fn=pred_loss)
    if not history:
        history = stage1
    meta = {
        "model": args.name, "task": task.name,
        "method": "TinyBERT-style KD (" + (", ".join(used) or "prediction layer only") + ")",
        "base_model": read_json(Path(args.teacher_dir) / "glueslim.json")["base_model"],
        "teacher": "teacher", "teacher_dir": args.teacher_dir, "arch": "tinybert", "init": args.init,
        **_student_shape(student), "matches": matches if used else [], "intermediate": used,
        "general_distillation": args.init not in ("random",), "augmented": bool(args.augmented),
        "augmented_rows": len(aug),
        "stage1_history": stage1,
        "hyperparameters": {**hyperparameters(args), "temperature": T, "stage1_epochs": e1,
                            "stage1_learning_rate": lr1, "stage2_epochs": e2, "stage2_learning_rate": lr2},
    }
    save_model(student, tokenizer, args.out, meta, history, args.checkpoint_dir)


# ---------------------------------------------------------------- ablation table

def add_arguments_tinybert_ablation(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", nargs="+", required=True)
    p.add_argument("--teacher-root", required=True, help="results/models/teacher")
    p.add_argument("--variant", nargs=2, action="append", metavar=("LABEL", "ROOT"), required=True,
                   help="a row: its label and the folder holding its <task>/ model folders")
    p.add_argument("--title", default="TinyBERT ablation")
    p.add_argument("--order", type=float, default=None)
    p.add_argument("--out", required=True, help="results/ablations/<name>.json")


def dev_score(model_dir: Path) -> float | None:
    """The final epoch's dev score of a trained model folder: the mean of its val_metrics."""
    from glueslim.io import read_jsonl

    rows = read_jsonl(Path(model_dir) / "train_log.jsonl")
    vals = [v for v in (rows[-1].get("val_metrics") or {}).values() if isinstance(v, (int, float))] if rows else []
    return sum(vals) / len(vals) if vals else None


def ablation_table(tasks: list[str], teacher_root: Path, variants: list[tuple[str, Path]], title: str) -> dict:
    from glueslim.io import read_json

    teacher = {t: dev_score(Path(teacher_root) / t) for t in tasks}
    t_mean = _mean(teacher.values())
    rows = [{"variant": "teacher", "general": None, "augmentation": None, "intermediate": None,
             **{t: teacher[t] for t in tasks}, "mean": t_mean, "pct": 100.0 if t_mean else None}]
    for label, root in variants:
        scores = {t: dev_score(Path(root) / t) for t in tasks}
        meta = read_json(Path(root) / tasks[0] / "glueslim.json")
        mean = _mean(scores.values())
        rows.append({"variant": label, "general": "yes" if meta.get("general_distillation") else "no",
                     "augmentation": "yes" if meta.get("augmented") else "no",
                     "intermediate": ", ".join(meta.get("intermediate") or []) or "none",
                     **scores, "mean": mean, "pct": 100 * mean / t_mean if mean is not None and t_mean else None})
    columns = ([{"key": "variant", "label": "variant", "format": "text"},
                {"key": "general", "label": "general KD", "format": "text"},
                {"key": "augmentation", "label": "augmentation", "format": "text"},
                {"key": "intermediate", "label": "intermediate losses", "format": "text"}]
               + [{"key": t, "label": t, "format": "score"} for t in tasks]
               + [{"key": "mean", "label": "mean", "format": "score"},
                  {"key": "pct", "label": "% of teacher", "format": "pct"}])
    caption = (f"Dev-set scores (final epoch) on {', '.join(tasks)} of the TinyBERT-style student with each "
               "ingredient removed in turn: general distillation (student initialised at random instead), data "
               "augmentation, and each intermediate loss of stage 1. % of teacher is the mean score over the mean "
               "of the fine-tuned teacher.")
    return {"title": title, "caption": caption, "columns": columns, "rows": rows}


def _mean(vals) -> float | None:
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def run_tinybert_ablation(args: argparse.Namespace) -> None:
    from glueslim.io import atomic_write_json

    doc = ablation_table(args.tasks, Path(args.teacher_root), [(l, Path(r)) for l, r in args.variant], args.title)
    if args.order is not None:
        doc["order"] = args.order
    atomic_write_json(args.out, doc)
