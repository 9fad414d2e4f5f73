"""From records to batches: tokenized features, length-grouped training batches, evaluation batches, and
each process's share of a batch."""

from __future__ import annotations

import random

from torch.utils.data import DataLoader

from glueslim.errors import UserError
from glueslim.tokens import tokenize

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def encode(tokenizer, rows: list[dict], max_len: int, extra: dict[str, list] | None = None) -> list[dict]:
    """Tokenize once, unpadded (through the token cache: tokens.tokenize); `extra` adds per-example fields
    (e.g. cached teacher logits)."""
    check_max_length(tokenizer, max_len)
    a = [r["text_a"] for r in rows]
    b = [r["text_b"] for r in rows] if rows and rows[0].get("text_b") is not None else None
    enc = tokenize(tokenizer, a, b, max_len)
    feats = []
    for i, r in enumerate(rows):
        f = {k: enc[k][i] for k in enc.keys()}
        f["idx"] = r["idx"]
        if r.get("label") is not None:
            f["labels"] = r["label"]
        for k, v in (extra or {}).items():
            f[k] = v[i]
        feats.append(f)
    return feats


def check_max_length(tokenizer, max_len: int) -> None:
    """A UserError when `max_len` is more tokens than the model reads (the tokenizer's model_max_length, which
    modeling.load_tokenizer caps at the model's max_position_embeddings): caught here, not in the attention."""
    limit = getattr(tokenizer, "model_max_length", None)
    if not isinstance(max_len, int) or max_len < 1:
        raise UserError(f"max_seq_length = {max_len!r}: expected a whole number of tokens >= 1")
    if isinstance(limit, int) and max_len > limit:
        raise UserError(f"max_seq_length = {max_len} is longer than the model {tokenizer.name_or_path} reads "
                        f"({limit} positions): set --max-seq-length (the max_seq_length key) to {limit} or less")


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int, mega: int = 50) -> list[list[int]]:
    """Shuffle, sort within chunks of `mega` batches by length, then shuffle the batches.

    Batches hold examples of similar length, so dynamic padding wastes little compute, while the order
    stays random from epoch to epoch (the seed includes the epoch).
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    for s in range(0, len(order), batch_size * mega):
        chunk = sorted(order[s : s + batch_size * mega], key=lambda i: -lengths[i])
        batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches by decreasing length (least padding); callers restore the order."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[k : k + batch_size] for k in range(0, len(order), batch_size)]


def make_loader(feats: list[dict], batches: list[list[int]], collator) -> DataLoader:
    return DataLoader(batches, batch_size=None, collate_fn=lambda idx: collator([feats[i] for i in idx]))


def shard_batches(batches: list[list[int]], rank: int, world: int) -> list[list[int]]:
    """Process `rank`'s share of every batch: batch[rank::world] (batches hold examples of similar length,
    so the shares are alike too). A batch with fewer examples than processes (at most the epoch's last,
    smallest one) is left out, so that every process takes the same number of steps."""
    if world == 1:
        return batches
    return [b[rank::world] for b in batches if len(b) >= world]
