"""TinyBERT-style distillation: losses against hand-computed values, masking, layer maps, projections,
score hooks, augmentation determinism, and the commands end to end on tiny random BERTs."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from glueslim.cli import main
from glueslim.tinybert import (
    IntermediateDistiller, ablation_table, attention_mse, augment_rows, capture_qk, check_matches, cosine_loss,
    default_matches, embedding_mse, hidden_mse, make_tinybert_student, pkd_cls_loss, soft_cross_entropy,
    uniform_layer_map, _mlm_model,
)


# ---------------------------------------------------------------- losses

def test_soft_cross_entropy_matches_hand_computation():
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    T = 2.0
    expect = 0.0
    for si, ti in zip(s.tolist(), t.tolist()):
        pt = [math.exp(v / T) for v in ti]
        pt = [v / sum(pt) for v in pt]
        zs = [v / T for v in si]
        lse = math.log(sum(math.exp(v) for v in zs))
        expect += -sum(p * (z - lse) for p, z in zip(pt, zs))
    assert soft_cross_entropy(s, t, T).item() == pytest.approx(expect / 2, rel=1e-6)
    # regression head: MSE
    assert soft_cross_entropy(torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [1.0]])).item() == pytest.approx(2.5)


def test_hidden_mse_through_projection_and_token_mask():
    s = torch.tensor([[[1.0, 2.0], [5.0, 5.0]]])  # (1, 2 tokens, 2)
    t = torch.tensor([[[1.0, 0.0, 2.0], [0.0, 0.0, 0.0]]])
    proj = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        proj.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))  # s W -> [1, 2, 3], [5, 5, 10]
    # token 1 only: ((1-1)^2 + (2-0)^2 + (3-2)^2) / 3 = 5/3
    mask = torch.tensor([[1, 0]])
    assert hidden_mse(s, t, proj, mask).item() == pytest.approx(5 / 3)
    assert embedding_mse(s, t, proj, mask).item() == pytest.approx(5 / 3)
    # both tokens: (5/3 + (25 + 25 + 100)/3) / 2
    assert hidden_mse(s, t, proj).item() == pytest.approx((5 / 3 + 50) / 2)
    with pytest.raises(ValueError, match="projection"):
        hidden_mse(s, t)


def test_cosine_and_pkd_losses():
    s = torch.tensor([[[1.0, 0.0]]])
    t = torch.tensor([[[0.0, 3.0]]])
    assert cosine_loss(s, t).item() == pytest.approx(1.0)
    # normalised [CLS]: |(1,0) - (0,1)|^2 = 2 ; identical directions: 0
    assert pkd_cls_loss(s[:, 0], t[:, 0]).item() == pytest.approx(2.0)
    assert pkd_cls_loss(torch.tensor([[2.0, 2.0]]), torch.tensor([[5.0, 5.0]])).item() == pytest.approx(0.0, abs=1e-7)


def test_attention_mse_leaves_padded_queries_and_keys_out():
    B, H, L = 1, 2, 3
    s = torch.zeros(B, H, L, L)
    t = torch.zeros(B, H, L, L)
    t[..., :2, :2] = 2.0  # real pairs differ by 2
    mask = torch.tensor([[1, 1, 0]])
    # anything at a padded query or key must not count, however large
    s[..., 2, :] = 1e6
    s[..., :, 2] = -1e6
    assert attention_mse(s, t, mask).item() == pytest.approx(4.0)
    s2 = s.clone()
    s2[..., 2, :] = -7.0
    assert attention_mse(s2, t, mask).item() == pytest.approx(4.0)
    # without a mask every pair counts: 8 of 18 pairs differ by 2 -> 4*8/18 ... on clean tensors
    clean = torch.zeros(B, H, L, L)
    assert attention_mse(clean, t).item() == pytest.approx(4 * 8 / 18)
    # different head counts: head-averaged maps
    assert attention_mse(torch.zeros(1, 1, 3, 3), t, mask).item() == pytest.approx(4.0)


def test_uniform_layer_map_and_default_matches():
    assert uniform_layer_map(4, 12) == [3, 6, 9, 12]
    assert uniform_layer_map(4, 6) == [1, 3, 4, 6]
    assert uniform_layer_map(2, 6) == [3, 6]
    assert uniform_layer_map(6, 6) == [1, 2, 3, 4, 5, 6]
    m = default_matches(4, 12)
    assert m[0] == {"teacher_layer": 0, "student_layer": 0, "feature": "embedding", "loss": "mse", "weight": 1.0,
                    "proj": "linear"}
    assert [(x["student_layer"], x["teacher_layer"]) for x in m if x["feature"] == "attention"] == \
        [(1, 3), (2, 6), (3, 9), (4, 12)]
    assert len(default_matches(4, 12, ["hidden"])) == 4
    assert [x["teacher_layer"] for x in default_matches(2, 6, ["attention"], layer_map=[2, 5])] == [2, 5]
    with pytest.raises(ValueError):
        default_matches(2, 6, ["hidden"], layer_map=[1, 7])
    with pytest.raises(ValueError):
        check_matches([{"feature": "attention", "teacher_layer": 1, "student_layer": 1, "loss": "cosine"}], 2, 6)
    assert check_matches([{"feature": "cls", "teacher_layer": 6, "student_layer": 2}], 2, 6)[0]["loss"] == "pkd"


# ---------------------------------------------------------------- models

@pytest.fixture(scope="module")
def teacher(tiny_bert):
    from glueslim.modeling import load_classifier

    return load_classifier(str(tiny_bert))


def test_student_shape_is_independent_and_projections_map_widths(teacher):
    student = make_tinybert_student(teacher, "random", num_layers=2, hidden_size=24, num_heads=2,
                                    intermediate_size=40)
    c = student.config
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size) == (2, 24, 2, 40)
    assert c.vocab_size == teacher.config.vocab_size and c.num_labels == teacher.config.num_labels
    w = IntermediateDistiller(student, teacher, default_matches(2, 4))
    assert {k: tuple(p.weight.shape) for k, p in w.proj.items()} == {"0": (32, 24), "2": (32, 24), "4": (32, 24)}
    assert "teacher" not in dict(w.named_children())  # the teacher is neither trained nor saved
    batch = {"input_ids": torch.tensor([[2, 40, 50, 3, 0], [2, 60, 3, 0, 0]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]])}
    out = w(**batch, distill=True)
    assert out.loss.requires_grad and out.logits.shape == (2, 2)
    assert set(out.parts) == {"embedding:0<-0", "attention:1<-2", "hidden:1<-2", "attention:2<-4", "hidden:2<-4"}
    out.loss.backward()
    assert w.proj["0"].weight.grad is not None
    assert not any(p.grad is not None for p in teacher.parameters())
    assert w(**batch).logits.shape == (2, 2)  # the plain forward: the student alone


def test_hooked_scores_are_the_pre_softmax_attention(teacher):
    """softmax(hooked Q K^T / sqrt(d) + mask) equals the eager implementation's attention probabilities,
    and the hooks are gone after the `with`."""
    from transformers import AutoModelForSequenceClassification

    eager = AutoModelForSequenceClassification.from_config(teacher.config, attn_implementation="eager").eval()
    eager.load_state_dict(teacher.state_dict())
    ids = torch.tensor([[2, 40, 50, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0]])
    hooks = lambda: sum(len(m._forward_hooks) for m in eager.modules() if isinstance(m, nn.Linear))  # noqa: E731
    before = hooks()
    with torch.no_grad(), capture_qk(eager) as cap:
        assert hooks() == before + 2 * teacher.config.num_hidden_layers
        out = eager(input_ids=ids, attention_mask=mask, output_attentions=True)
    for i in range(teacher.config.num_hidden_layers):
        scores = cap.scores(i) + (1 - mask[:, None, None, :]) * torch.finfo(torch.float32).min
        torch.testing.assert_close(scores.softmax(-1), out.attentions[i], atol=1e-5, rtol=1e-4)
    assert not cap.handles
    assert hooks() == before


# ---------------------------------------------------------------- augmentation

ROWS = [{"idx": i, "text_a": f"the movie was good and the actors were great {i}", "text_b": None, "label": i % 2}
        for i in range(6)]


def test_words_split_off_punctuation_like_bert():
    from glueslim.tinybert import _words

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


# ---------------------------------------------------------------- commands end to end

def _train_flags(tmp, ckpt, epochs=2, lr="3e-3"):
    return ["--device", "cpu", "--threads", "1", "--batch-size", "8", "--eval-batch-size", "16",
            "--max-seq-length", "24", "--epochs", str(epochs), "--learning-rate", lr, "--warmup-ratio", "0",
            "--checkpoint-dir", str(tmp / ckpt)]


def test_general_distillation_lowers_its_loss_and_feeds_task_distillation(tiny_bert, tmp_path):
    from glueslim.io import atomic_write_jsonl, read_jsonl

    words = "good bad fine awful great poor movie film actor story plot long short funny sad".split()
    lines = [" ".join(words[(i * k) % len(words)] for k in range(1, 7)) for i in range(64)]
    (tmp_path / "corpus.txt").write_text("\n".join(lines) + "\n")
    gen = tmp_path / "general"
    main(["tinybert-general", "--teacher", str(tiny_bert), "--corpus", str(tmp_path / "corpus.txt"),
          "--out", str(gen), "--num-layers", "2", "--hidden-size", "16", "--num-heads", "2",
          "--intermediate-size", "32", *_train_flags(tmp_path, "ckpt-g", epochs=4)])
    log_ = read_jsonl(gen / "train_log.jsonl")
    assert len(log_) == 4 and log_[-1]["train_loss"] < 0.8 * log_[0]["train_loss"], log_
    assert json.loads((gen / "glueslim.json").read_text())["num_layers"] == 2

    # a task: data, teacher (with its meta), cached outputs, augmentation, two-stage distillation, ablation
    data = tmp_path / "data"
    rows = [{"idx": i, "text_a": lines[i], "text_b": None, "label": i % 2} for i in range(40)]
    atomic_write_jsonl(data / "train.jsonl", rows)
    atomic_write_jsonl(data / "validation.jsonl", rows[:16])
    teacher_dir = tmp_path / "teacher" / "sst2"
    teacher_dir.parent.mkdir()
    import shutil

    shutil.copytree(tiny_bert, teacher_dir)
    (teacher_dir / "glueslim.json").write_text(json.dumps({"base_model": "tiny"}))
    (teacher_dir / "train_log.jsonl").write_text(json.dumps({"epoch": 1, "val_metrics": {"accuracy": 0.5}}) + "\n")
    main(["teacher-outputs", "--task", "sst2", "--data", str(data), "--teacher-dir", str(teacher_dir),
          "--out", str(tmp_path / "to.safetensors"), "--device", "cpu", "--max-seq-length", "24"])
    main(["tinybert-augment", "--task", "sst2", "--data", str(data), "--teacher-dir", str(teacher_dir),
          "--mlm-model", str(teacher_dir), "--copies", "2", "--prob", "0.3", "--candidates", "4",
          "--device", "cpu", "--max-seq-length", "24", "--out", str(tmp_path / "aug")])
    aug = read_jsonl(tmp_path / "aug" / "train.jsonl")
    meta = json.loads((tmp_path / "aug" / "meta.json").read_text())
    assert len(aug) == 80 and meta["candidate_source"] == "input-embedding nearest neighbours"
    assert all(len(r["teacher_logits"]) == 2 and r["label"] in (0, 1) for r in aug)
    common = ["tinybert-distill", "--task", "sst2", "--data", str(data), "--teacher-dir", str(teacher_dir),
              "--teacher-outputs", str(tmp_path / "to.safetensors"), "--stage1-epochs", "1", "--stage2-epochs", "1"]
    main([*common, "--name", "tb", "--init", str(gen), "--augmented", str(tmp_path / "aug"),
          "--out", str(tmp_path / "tb" / "sst2"), *_train_flags(tmp_path, "ckpt-tb", epochs=1)])
    main([*common, "--name", "tb-x", "--init", "random", "--num-layers", "2", "--hidden-size", "16",
          "--num-heads", "2", "--intermediate-size", "32", "--intermediate", "hidden",
          "--out", str(tmp_path / "tbx" / "sst2"), *_train_flags(tmp_path, "ckpt-tbx", epochs=1)])
    m = json.loads((tmp_path / "tb" / "sst2" / "glueslim.json").read_text())
    assert m["general_distillation"] and m["augmented"] and m["augmented_rows"] == 80 and m["num_layers"] == 2
    assert m["intermediate"] == ["attention", "embedding", "hidden"] and len(m["stage1_history"]) == 1
    from glueslim.modeling import load_for_inference

    plain = load_for_inference(str(tmp_path / "tb" / "sst2"))
    assert type(plain).__name__ == "BertForSequenceClassification" and plain.config.hidden_size == 16
    doc = ablation_table(["sst2"], tmp_path / "teacher", [("full", tmp_path / "tb"), ("hidden only", tmp_path / "tbx")],
                         "TinyBERT ablation")
    assert [r["variant"] for r in doc["rows"]] == ["teacher", "full", "hidden only"]
    assert doc["rows"][2]["general"] == "no" and doc["rows"][2]["intermediate"] == "hidden"
    from glueslim.report import read_ablations

    (tmp_path / "abl").mkdir()
    (tmp_path / "abl" / "tinybert.json").write_text(json.dumps(doc))
    (table,) = read_ablations(tmp_path / "abl")
    assert len(table["rows"]) == 3 and table["columns"][-1]["format"] == "pct"


@pytest.mark.e2e
def test_general_distillation_runs_in_two_processes(tiny_bert, tmp_path):
    """The multi-GPU path on CPU (torch.distributed.run, gloo): the distiller's every parameter gets a gradient."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    (tmp_path / "corpus.txt").write_text("\n".join(f"good film number {i} was fine" for i in range(32)) + "\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "glueslim",
         "tinybert-general", "--teacher", str(tiny_bert), "--corpus", str(tmp_path / "corpus.txt"),
         "--out", str(tmp_path / "gen"), "--num-layers", "2", "--hidden-size", "16", "--num-heads", "2",
         "--intermediate-size", "32", *_train_flags(tmp_path, "ckpt", epochs=1)],
        env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    log_ = [json.loads(line) for line in (tmp_path / "gen" / "train_log.jsonl").read_text().splitlines()]
    assert log_[-1]["processes"] == 2
