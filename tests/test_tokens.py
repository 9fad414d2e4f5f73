"""The token cache: the tokenizer's output, read back by later jobs, keyed on everything that changes it."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from glueslim.tokens import read_tokens, tokenize, tokenizer_fingerprint, write_tokens


def _pairs(n=40):
    rows = [{"idx": i, "text_a": f"the cat sat {i} times", "text_b": "on a mat" if i % 3 else "again and again",
             "label": i % 2} for i in range(n)]
    return [r["text_a"] for r in rows], [r["text_b"] for r in rows], rows


def test_token_cache_matches_the_tokenizer_and_is_read_back(tiny_bert, tmp_path, monkeypatch):
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    a, b, _ = _pairs()
    direct = tok(a, b, truncation=True, max_length=8)
    first = tokenize(tok, a, b, 8, cache_dir=tmp_path)
    assert first == {k: list(map(list, v)) for k, v in direct.items()}
    assert len(list(tmp_path.glob("*.safetensors"))) == 1
    # a second call, e.g. from the next job, reads the cache: the tokenizer is not called again
    monkeypatch.setattr(type(tok), "__call__", lambda *a, **k: pytest.fail("tokenized twice"))
    assert tokenize(tok, a, b, 8, cache_dir=tmp_path) == first


def test_token_cache_keys_on_length_texts_and_tokenizer_and_is_shared_by_copies(tiny_bert, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    a, b, _ = _pairs()
    tokenize(tok, a, b, 8, cache_dir=tmp_path)
    tokenize(tok, a, b, 16, cache_dir=tmp_path)          # another max length
    tokenize(tok, a[:-1], b[:-1], 8, cache_dir=tmp_path)  # other texts
    assert len(list(tmp_path.glob("*.safetensors"))) == 3
    tok.save_pretrained(tmp_path / "student")             # what a student saves: the teacher's tokenizer
    copy = AutoTokenizer.from_pretrained(tmp_path / "student")
    assert tokenizer_fingerprint(copy) == tokenizer_fingerprint(tok)
    other = AutoTokenizer.from_pretrained(tiny_bert, do_lower_case=False)
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(tok)


def test_a_damaged_token_cache_entry_is_rebuilt(tiny_bert, tmp_path, caplog):
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    a, b, _ = _pairs()
    good = tokenize(tok, a, b, 8, cache_dir=tmp_path)
    (entry,) = tmp_path.glob("*.safetensors")
    entry.write_bytes(entry.read_bytes()[:50])  # cut short
    assert tokenize(tok, a, b, 8, cache_dir=tmp_path) == good
    assert "unreadable token cache entry" in caplog.text
    assert tokenize(tok, a, b, 8, cache_dir=tmp_path) == good  # and replaced by a good one


def test_a_cache_entry_round_trips_and_refuses_a_wrong_count(tmp_path):
    enc = {"input_ids": [[2, 7, 3], [2, 3], []], "attention_mask": [[1, 1, 1], [1, 1], []]}
    write_tokens(tmp_path / "e.safetensors", enc)
    assert read_tokens(tmp_path / "e.safetensors", 3) == enc
    with pytest.raises(ValueError, match="2 sequences, expected 3|3 sequences, expected 2"):
        read_tokens(tmp_path / "e.safetensors", 2)
