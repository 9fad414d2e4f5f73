"""TinyBERT's data augmentation of a task's training set, labelled by the fine-tuned teacher (`augment`).

Every training example gets N copies in which each word is replaced with probability p by one of k
candidates: a masked-LM head's best tokens at its position (`--mlm-model`, the pre-trained teacher), or,
for a model without a masked-LM head (all-MiniLM-L6-v2), its nearest neighbours in the teacher's
input-embedding space. The fine-tuned teacher's logits label the copies; `distill --augmented` adds them
to any student's training set. Deterministic given the seed.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import re

import torch
import torch.nn.functional as F
from transformers import AutoModelForMaskedLM

from glueslim.config import schema_default
from glueslim.data import load_split
from glueslim.io import atomic_dir, atomic_write_json, atomic_write_jsonl
from glueslim.modeling import load_classifier, load_tokenizer, pick_device
from glueslim.progress import Progress
from glueslim.recipe import add_inference_arguments, add_labelling_precision
from glueslim.tasks import get_task
from glueslim.teacher_outputs import label_rows

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--teacher-dir", required=True, help="the fine-tuned teacher: labels the augmented examples")
    p.add_argument("--mlm-model", default=None,
                   help="pre-trained model whose masked-LM head proposes words; without one (or when it has no "
                        "MLM head) nearest neighbours in the teacher's input-embedding space are used")
    p.add_argument("--copies", type=int, default=schema_default("tinybert", "augment", "copies"),
                   help="augmented copies per training example")
    p.add_argument("--prob", type=float, default=schema_default("tinybert", "augment", "prob"),
                   help="probability of replacing each word")
    p.add_argument("--candidates", type=int, default=schema_default("tinybert", "augment", "candidates"),
                   help="candidates per word")
    p.add_argument("--max-examples", type=int, default=schema_default("tinybert", "augment", "max_examples"),
                   help="augment at most this many (seeded sample)")
    p.add_argument("--seed", type=int, default=schema_default("seed"))
    add_inference_arguments(p)
    add_labelling_precision(p)
    p.add_argument("--out", required=True, help="folder: train.jsonl (augmented rows with teacher logits) + meta.json")


def _mlm_model(ref: str | None):
    """The masked-LM model of `ref`, or None when it has no trained MLM head."""
    if not ref:
        return None
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
                 max_seq_length: int | None = None) -> list[dict]:
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
    progress = Progress(math.ceil(len(plans) / batch_size), "augment: masked-LM candidates", unit="copies")
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
        progress.update(1, len(part))
    progress.close()
    return res


def run(args: argparse.Namespace) -> None:
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
    aug = label_rows(aug, teacher, tokenizer, task, args, device, "augment: teacher labels")
    with atomic_dir(args.out) as tmp:
        atomic_write_jsonl(tmp / "train.jsonl", aug)
        atomic_write_json(tmp / "meta.json", {
            "task": task.name, "source_examples": len(rows), "rows": len(aug), "copies": args.copies,
            "prob": args.prob, "candidates": args.candidates, "seed": args.seed,
            "candidate_source": "masked-LM head" if mlm is not None else "input-embedding nearest neighbours",
            "mlm_model": args.mlm_model, "teacher_dir": args.teacher_dir,
            "inference_precision": args.inference_precision})
