"""Features and batches: tokenized features through the cache, length-grouped training batches, evaluation
batches and each process's share of a batch."""

from __future__ import annotations

from transformers import AutoTokenizer

from glueslim.batching import encode, length_grouped_batches, shard_batches, sorted_batches
from glueslim.tokens import TOKEN_CACHE_ENV


def test_length_grouped_batches_cover_every_example_once_and_group_lengths():
    lengths = [(i * 37) % 101 for i in range(1000)]
    batches = length_grouped_batches(lengths, 16, seed=3, mega=10)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    # within a batch, lengths are close (sorted inside chunks of 10 batches)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 15
    assert batches == length_grouped_batches(lengths, 16, seed=3, mega=10)  # deterministic
    assert batches != length_grouped_batches(lengths, 16, seed=4, mega=10)  # but reshuffled per epoch


def test_evaluation_batches_go_by_decreasing_length():
    lengths = [3, 9, 1, 7, 5]
    assert sorted_batches(lengths, 2) == [[1, 3], [4, 0], [2]]


def test_shards_split_every_batch_across_processes():
    batches = length_grouped_batches([(i * 7) % 23 for i in range(101)], 8, seed=1)
    assert shard_batches(batches, 0, 1) is batches  # one process: unchanged
    shards = [shard_batches(batches, r, 3) for r in range(3)]
    assert len({len(s) for s in shards}) == 1  # every process takes the same number of steps
    kept = [b for b in batches if len(b) >= 3]  # the epoch's last batch of 101 % 8 = 5 stays
    for k, batch in enumerate(kept):  # each global batch is split into disjoint shares
        parts = [shards[r][k] for r in range(3)]
        assert sorted(i for p in parts for i in p) == sorted(batch)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_encode_uses_the_cache_from_the_environment(tiny_bert, tmp_path, monkeypatch):
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    rows = [{"idx": i, "text_a": f"the cat sat {i} times", "text_b": "on a mat" if i % 3 else "again and again",
             "label": i % 2} for i in range(40)]
    monkeypatch.setenv(TOKEN_CACHE_ENV, str(tmp_path / "tokens"))
    feats = encode(tok, rows, 8, extra={"teacher_logits": [[0.0, 1.0]] * len(rows)})
    assert len(list((tmp_path / "tokens").glob("*.safetensors"))) == 1
    assert [f["idx"] for f in feats] == [r["idx"] for r in rows] and feats[4]["labels"] == 0
    assert feats[0]["input_ids"] == tok(rows[0]["text_a"], rows[0]["text_b"], truncation=True, max_length=8)["input_ids"]
