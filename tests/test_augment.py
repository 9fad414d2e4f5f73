"""TinyBERT data augmentation: word splitting, determinism, the masked-LM head and its fallback."""

from __future__ import annotations

import pytest
import torch

from glueslim.augment import _mlm_model, _words, augment_rows

ROWS = [{"idx": i, "text_a": f"the movie was good and the actors were great {i}", "text_b": None, "label": i % 2}
        for i in range(6)]


@pytest.fixture(scope="module")
def teacher(tiny_bert):
    from glueslim.modeling import load_classifier

    return load_classifier(str(tiny_bert))


def test_words_split_off_punctuation_like_bert():
    assert _words("Three men, playing chess.") == ["Three", "men", ",", "playing", "chess", "."]


def test_augmentation_is_deterministic_and_replaces_single_piece_words(tiny_bert, teacher):
    from glueslim.modeling import load_tokenizer

    tok = load_tokenizer(str(tiny_bert))
    emb = teacher.get_input_embeddings().weight.detach()
    a = augment_rows(ROWS, tok, copies=3, prob=0.5, candidates=5, seed=1, embeddings=emb)
    b = augment_rows(ROWS, tok, copies=3, prob=0.5, candidates=5, seed=1, embeddings=emb)
    c = augment_rows(ROWS, tok, copies=3, prob=0.5, candidates=5, seed=2, embeddings=emb)
    assert a == b and a != c
    assert len(a) == 18 and len({r["idx"] for r in a}) == 18 and all(r["idx"] < 0 for r in a)
    assert [r["source_idx"] for r in a[:3]] == [0, 0, 0]
    assert any(r["text_a"] != ROWS[r["source_idx"]]["text_a"] for r in a)
    for r in a:  # same number of words; only words were swapped
        assert len(r["text_a"].split()) == len(ROWS[r["source_idx"]]["text_a"].split())
    same = augment_rows(ROWS, tok, copies=2, prob=0.0, candidates=5, seed=1, embeddings=emb)
    assert [r["text_a"] for r in same] == [ROWS[r["source_idx"]]["text_a"] for r in same]


def test_mlm_head_is_used_when_present_and_missing_head_falls_back(tiny_bert, tmp_path):
    from transformers import BertConfig, BertForMaskedLM, BertModel

    from glueslim.modeling import load_tokenizer

    tok = load_tokenizer(str(tiny_bert))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32)
    torch.manual_seed(0)
    BertForMaskedLM(cfg).save_pretrained(tmp_path / "mlm")
    BertModel(cfg).save_pretrained(tmp_path / "encoder")
    assert _mlm_model(str(tmp_path / "encoder")) is None  # no MLM head (like all-MiniLM-L6-v2)
    mlm = _mlm_model(str(tmp_path / "mlm"))
    assert mlm is not None
    a = augment_rows(ROWS, tok, copies=2, prob=0.5, candidates=4, seed=3, mlm=mlm, batch_size=5)
    assert a == augment_rows(ROWS, tok, copies=2, prob=0.5, candidates=4, seed=3, mlm=mlm, batch_size=3)
    assert any(r["text_a"] != ROWS[r["source_idx"]]["text_a"] for r in a)


def test_command_defaults_come_from_the_schema():
    import argparse

    from glueslim.augment import add_arguments
    from glueslim.config import schema_default

    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--task", "sst2", "--data", "d", "--teacher-dir", "t", "--out", "o"])
    assert (args.copies, args.prob, args.candidates) == tuple(
        schema_default("tinybert", "augment", k) for k in ("copies", "prob", "candidates"))
    assert args.seed == schema_default("seed") and args.max_seq_length == schema_default("finetune", "max_seq_length")
