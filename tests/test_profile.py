"""glueslim.profile: parameter and MAC counts against hand arithmetic and published BERT figures,
latency statistics, and the `profile` command end to end on a tiny random model."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from glueslim import cli
from glueslim.cli import UserError
from glueslim.profile import MIN_RUNS, count_macs, count_parameters, measure_latency

V, H, L, I, P, LABELS = 100, 32, 2, 64, 64, 2  # vocab, hidden, layers, intermediate, positions, labels


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=V, hidden_size=H, num_hidden_layers=L, num_attention_heads=4,
                        intermediate_size=I, max_position_embeddings=P, num_labels=LABELS)
    return BertForSequenceClassification(config).eval()


def bert_on_meta(layers: int) -> BertForSequenceClassification:
    """bert-base-uncased shaped (BertConfig() defaults), no memory, no initialisation cost."""
    with torch.device("meta"):
        return BertForSequenceClassification(BertConfig(num_hidden_layers=layers)).eval()


def test_count_parameters_tiny(tiny):
    embeddings = (100 + 64 + 2) * 32 + 2 * 32  # word + position + 2 token types, embedding LayerNorm
    per_layer = (4 * (32 * 32 + 32)  # query, key, value, attention output dense
                 + 2 * 32            # attention LayerNorm
                 + 32 * 64 + 64      # intermediate dense
                 + 64 * 32 + 32      # output dense
                 + 2 * 32)           # output LayerNorm
    pooler = 32 * 32 + 32
    classifier = 32 * 2 + 2
    got = count_parameters(tiny)
    assert got["embeddings"] == embeddings == 5376
    assert got["without_embeddings"] == 2 * per_layer + pooler + classifier
    assert got["total"] == embeddings + 2 * per_layer + pooler + classifier == 23586


def test_count_macs_tiny(tiny):
    seq = 16
    encoder_linear = L * seq * (4 * H * H + H * I + I * H)  # Q, K, V, attn out; intermediate; output
    # the pooler (then the classifier) runs on the [CLS] token only, not on all 16 tokens:
    # FlopCounterMode reports the pooler dense as a (1 x 32) @ (32 x 32) addmm
    pooler, classifier = 1 * H * H, 1 * H * LABELS
    got = count_macs(tiny, seq)
    assert got["linear"] == encoder_linear + pooler + classifier == 263_232
    assert got["attention"] == 2 * L * seq**2 * H == 32_768  # QK^T and attn.V: seq*seq*hidden each
    assert got["other"] == 0
    assert got["total"] == got["linear"] + got["attention"] == sum(got["by_op"].values())
    assert (got["seq_length"], got["batch_size"]) == (seq, 1)
    # CPU "sdpa" attention runs one fused kernel that torch's counter has no formula for;
    # without profile's custom mapping it would count as 0
    assert got["by_op"]["aten._scaled_dot_product_flash_attention_for_cpu"] == got["attention"]
    assert count_macs(tiny, seq, batch_size=3)["total"] == 3 * got["total"]


def test_count_macs_tiny_meta_matches_cpu(tiny):
    # on "meta" sdpa takes the math path (bmm) instead of the fused CPU kernel: same counts
    with torch.device("meta"):
        meta = BertForSequenceClassification(tiny.config).eval()
    on_meta, on_cpu = count_macs(meta, 16), count_macs(tiny, 16)
    assert "aten.bmm" in on_meta["by_op"]
    assert {k: on_meta[k] for k in ("total", "linear", "attention")} == \
        {k: on_cpu[k] for k in ("total", "linear", "attention")}


@pytest.mark.parametrize("layers", [12, 6])
def test_bert_base_published_figures(layers):
    seq, hidden, inter = 512, 768, 3072
    model = bert_on_meta(layers)
    got = count_macs(model, seq)
    head = (hidden * hidden) + (hidden * 2)  # pooler + classifier, [CLS] token only
    encoder_linear = got["linear"] - head
    assert encoder_linear == layers * seq * (4 * hidden * hidden + 2 * hidden * inter)
    # The often-quoted "87.0e9" for bert-base at 512 tokens (thop) is FLOPs, not MACs: per token
    # the encoder's Linear layers hold 12 * 7.08M = 84.9M weights, one MAC each, so 512 tokens
    # cost 43.49e9 MACs = 86.97e9 FLOPs (FastBERT #32: thop gives 10.89e9 MACs at 128 tokens =
    # 21.8 GFLOPs). 6 layers: half of that.
    expected_macs = 43.49e9 * layers / 12
    assert encoder_linear == pytest.approx(expected_macs, rel=0.01)
    assert 2 * encoder_linear == pytest.approx(87.0e9 * layers / 12, rel=0.01)
    assert got["attention"] == 2 * layers * seq**2 * hidden  # 4.83e9 MACs at 12 layers


def test_bert_base_parameter_figures():
    model = bert_on_meta(12)
    per_layer = (4 * (768 * 768 + 768)  # attention Q, K, V, output dense
                 + 768 * 3072 + 3072    # intermediate
                 + 3072 * 768 + 768     # output
                 + 2 * 2 * 768)         # two LayerNorms
    assert 12 * per_layer == 85_054_464  # 85.05M: encoder linear + LayerNorm only
    pooler = 768 * 768 + 768
    # "85.6M parameters in linear and normalisation layers" = encoder + pooler
    linear_norm = sum(p.numel() for name, m in model.bert.named_modules()
                      if isinstance(m, (torch.nn.Linear, torch.nn.LayerNorm)) and not name.startswith("embeddings")
                      for p in m.parameters())
    assert linear_norm == 12 * per_layer + pooler == 85_645_056
    got = count_parameters(model)
    assert got["without_embeddings"] == linear_norm + (768 * 2 + 2)  # + the 2-label classifier
    assert got["without_embeddings"] == pytest.approx(85.6e6, rel=0.001)
    assert got["embeddings"] == (30522 + 512 + 2) * 768 + 2 * 768
    assert got["total"] == 109_483_778  # bert-base-uncased's 109.48M + classifier


def test_measure_latency(tiny):
    got = measure_latency(tiny, seq_length=8, batch_size=2, warmup=1, runs=MIN_RUNS + 1, device="cpu")
    assert got["runs"] == MIN_RUNS + 1 and got["warmup"] == 1
    assert (got["batch_size"], got["seq_length"]) == (2, 8)
    assert 0 < got["min_ms"] <= got["q1_ms"] <= got["median_ms"] <= got["q3_ms"] <= got["max_ms"]
    assert got["iqr_ms"] == pytest.approx(got["q3_ms"] - got["q1_ms"])
    assert got["throughput_per_s"] == pytest.approx(2 / (got["median_ms"] / 1000))


def test_measure_latency_refuses_too_few_runs(tiny):
    with pytest.raises(UserError, match=rf"--runs {MIN_RUNS - 1}\b.*{MIN_RUNS}"):
        measure_latency(tiny, 8, 1, warmup=1, runs=MIN_RUNS - 1, device="cpu")
    with pytest.raises(UserError, match="--warmup 0"):
        measure_latency(tiny, 8, 1, warmup=0, runs=MIN_RUNS, device="cpu")
    with pytest.raises(UserError, match="max_position_embeddings"):
        measure_latency(tiny, P + 1, 1, warmup=1, runs=MIN_RUNS, device="cpu")


def test_profile_command_end_to_end(tiny, tmp_path):
    model_dir = tmp_path / "tiny"
    tiny.save_pretrained(model_dir, safe_serialization=True)
    (model_dir / "training_args.bin").write_bytes(b"not weights")
    out = tmp_path / "results" / "profile" / "tiny.json"
    threads = torch.get_num_threads()  # pass the current value: leave the test process as it was
    cli.main(["profile", "--model-dir", str(model_dir), "--name", "tiny", "--out", str(out),
              "--seq-length", "16", "--batch-sizes", "1", "4", "--warmup", "1", "--runs", str(MIN_RUNS),
              "--threads", str(threads), "--device", "cpu"])
    got = json.loads(out.read_text())
    assert list(got) == ["model", "model_dir", "parameters", "macs", "size_on_disk_bytes", "latency",
                         "peak_memory_mb", "peak_memory_kind", "device"]
    assert got["model"] == "tiny" and got["model_dir"] == str(model_dir)
    assert got["parameters"] == count_parameters(tiny)
    assert got["macs"] == count_macs(tiny, 16)
    assert got["size_on_disk_bytes"] == (model_dir / "model.safetensors").stat().st_size
    assert [r["batch_size"] for r in got["latency"]] == [1, 4]
    assert all(r["runs"] == MIN_RUNS and r["seq_length"] == 16 for r in got["latency"])
    assert got["peak_memory_kind"] == "process_peak_rss" and got["peak_memory_mb"] > 0
    dev = got["device"]
    assert {"type", "name", "cpu_model", "cpu_flags", "threads", "torch", "transformers", "python",
            "cuda", "gpu_name"} <= set(dev)
    assert dev["type"] == "cpu" and dev["threads"] == threads and dev["gpu_name"] is None
    assert set(dev["cpu_flags"]) <= {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8",
                                     "amx_bf16", "fma"}


def test_profile_command_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["profile", "--model-dir", str(tmp_path), "--name", "x", "--out", str(tmp_path / "x.json"),
                  "--runs", "5"])
    assert e.value.code == 2
    assert "--runs 5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["profile", "--model-dir", str(tmp_path / "missing"), "--name", "x",
                  "--out", str(tmp_path / "x.json")])
    assert "no config.json" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
