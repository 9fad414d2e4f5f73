"""The ONNX Runtime forms on tiny models: export round trips (fp32 and int8), dynamic shapes, fusions,
head-pruned and ALBERT graphs, ORT's peak and per-op profile, and clear errors for a damaged folder."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
import torch
from conftest import tiny_classifier

from glueslim import onnx_forms
from glueslim.errors import UserError
from glueslim.heads import prune_heads
from glueslim.onnx_forms import OrtClassifier, export_onnx, ort_peak_flops, ort_time_by_op


class BertTokenizerStub:
    """All export_onnx reads of a tokenizer: the inputs it produces."""
    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]


def deploy(model, folder, quantize: bool) -> dict:
    info = export_onnx(model, BertTokenizerStub(), folder, quantize=quantize, threads=1)
    model.config.save_pretrained(folder)  # the deploy command writes config.json next to model.onnx
    return info


def batch(n: int, length: int, vocab: int = 50, seed: int = 0) -> dict[str, torch.Tensor]:
    """`n` rows of `length` tokens; every other row padded after its first third."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (n, length), generator=g)
    mask = torch.ones_like(ids)
    mask[::2, max(1, length // 3):] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def torch_logits(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def op_types(path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def floats(graph) -> int:
    return sum(math.prod(t.dims) for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT)


@pytest.fixture(scope="module")
def model():
    return tiny_classifier(layers=2, heads=4, hidden=32, init=0.2)


@pytest.fixture(scope="module")
def fp32_dir(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    return folder, deploy(model, folder, quantize=False)


@pytest.fixture(scope="module")
def int8_dir(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx-int8")
    return folder, deploy(model, folder, quantize=True)


@pytest.mark.parametrize("shape", [(3, 17), (1, 40)])
def test_the_fp32_graph_gives_the_torch_logits_at_any_batch_and_length(model, fp32_dir, shape):
    folder, _ = fp32_dir
    ort_model = OrtClassifier(folder, threads=1).eval()
    inputs = batch(*shape)
    got = ort_model(**inputs).logits
    assert got.dtype == torch.float32 and got.device.type == "cpu" and got.shape == (shape[0], 2)
    torch.testing.assert_close(got, torch_logits(model, inputs), atol=1e-4, rtol=1e-4)


def test_the_fp32_graph_is_one_fused_file_with_its_info(fp32_dir):
    folder, info = fp32_dir
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.onnx"]  # no temp or external data
    assert info["bytes"] == (folder / "model.onnx").stat().st_size
    assert info["opset"] == onnx_forms.OPSET and "dynamo=False" in info["exporter"] and info["quantization"] is None
    assert info["fusions"]["Attention"] == 2 and info["fusions"]["SkipLayerNormalization"] == 4
    assert {"Attention", "SkipLayerNormalization", "EmbedLayerNormalization"} <= op_types(folder / "model.onnx")
    assert info["max_abs_diff"] < 1e-4
    graph = onnx.load(str(folder / "model.onnx")).graph
    assert all(t.data_location == onnx.TensorProto.DEFAULT for t in graph.initializer)
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert dims == {n: ["batch", "sequence"] for n in ("input_ids", "attention_mask", "token_type_ids")}


def test_the_int8_graph_holds_int8_weights_and_mostly_agrees(model, fp32_dir, int8_dir):
    folder, info = int8_dir
    graph = onnx.load(str(folder / "model.onnx")).graph
    int8_values = sum(math.prod(t.dims) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8)
    assert int8_values >= 2 * (4 * 32 * 32 + 2 * 32 * 64)  # every encoder Linear of the 2 layers: Q, K, V, out, FFN
    assert info["quantization"]["per_channel"] and info["quantization"]["weight_type"] == "QInt8"
    assert info["quantization"]["quantized_ops"]
    fp32_graph = onnx.load(str(fp32_dir[0] / "model.onnx")).graph
    assert floats(graph) < 0.25 * floats(fp32_graph)  # only biases, scales and norms stay float
    inputs = batch(64, 24, seed=1)
    want, got = torch_logits(model, inputs), OrtClassifier(folder, threads=1)(**inputs).logits
    assert (got.argmax(-1) == want.argmax(-1)).float().mean() >= 0.8
    assert (got - want).abs().mean() < 0.2 * want.std()


def test_missing_inputs_get_defaults_and_extra_keys_are_ignored(model, fp32_dir):
    inputs = batch(2, 9)
    got = OrtClassifier(fp32_dir[0])(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                     labels=torch.tensor([0, 1]))
    torch.testing.assert_close(got.logits, torch_logits(model, inputs), atol=1e-4, rtol=1e-4)


def test_export_keeps_the_callers_attention_implementation(tmp_path):
    m = tiny_classifier(layers=1)
    before = m.config._attn_implementation
    export_onnx(m, BertTokenizerStub(), tmp_path, quantize=False)
    assert m.config._attn_implementation == before


def test_the_torch_export_based_exporter_steps_in_when_the_torchscript_one_fails(tmp_path, monkeypatch):
    export = torch.onnx.export

    def torchscript_gone(*args, dynamo=True, **kwargs):
        if not dynamo:
            raise RuntimeError("the TorchScript exporter was removed")
        return export(*args, dynamo=dynamo, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", torchscript_gone)
    m = tiny_classifier(layers=1, init=0.2)
    info = deploy(m, tmp_path, quantize=False)
    assert "dynamo=True" in info["exporter"] and "removed" in info["exporter"] and info["opset"] >= 18
    inputs = batch(3, 10)
    torch.testing.assert_close(OrtClassifier(tmp_path)(**inputs).logits, torch_logits(m, inputs), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("drop, attention", [({0: [1], 1: [2]}, 2), ({0: [1, 2], 1: [0]}, 0)])
def test_a_head_pruned_model_exports_and_fuses_attention_only_when_its_layers_agree(tmp_path, drop, attention):
    m = tiny_classifier(layers=2, heads=4, hidden=32, init=0.2)
    prune_heads(m, drop)
    info = deploy(m, tmp_path, quantize=False)
    assert info["fusions"].get("Attention", 0) == attention
    assert (info["fusion_note"] is None) == (attention > 0)
    inputs = batch(3, 11)
    torch.testing.assert_close(OrtClassifier(tmp_path)(**inputs).logits, torch_logits(m, inputs), atol=1e-4, rtol=1e-4)


def test_an_albert_classifier_round_trips(tmp_path):
    from transformers import AlbertConfig, AlbertForSequenceClassification

    torch.manual_seed(0)
    cfg = AlbertConfig(vocab_size=50, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, max_position_embeddings=64, initializer_range=0.2)
    m = AlbertForSequenceClassification(cfg).eval()
    deploy(m, tmp_path, quantize=False)
    inputs = batch(2, 13)
    torch.testing.assert_close(OrtClassifier(tmp_path)(**inputs).logits, torch_logits(m, inputs), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", ["float32", "int8"])
def test_ort_peak_flops_is_a_positive_finite_figure_per_kind(kind):
    peak = ort_peak_flops(kind, threads=1, sizes=(64, 128), runs=3, warmup=1)
    assert peak["flops_per_s"] > 0 and math.isfinite(peak["flops_per_s"])
    assert peak["dtype"] == kind and peak["best_size"] in (64, 128) and peak["matmul_sizes"] == [64, 128]
    assert {"method", "runs", "warmup", "threads"} <= set(peak)


def test_ort_peak_flops_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="bfloat16"):
        ort_peak_flops("bfloat16", threads=1, sizes=(8,), runs=1, warmup=0)


def test_ort_time_by_op_splits_the_time_and_leaves_no_trace(int8_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    rows = ort_time_by_op(int8_dir[0], batch=2, seq_length=16, threads=1, runs=2)
    assert list(tmp_path.iterdir()) == []  # the trace file and its folder are gone
    named = [r for r in rows if r["op"] != "other"]
    assert 1 <= len(named) <= 8 and len(rows) <= 9
    assert [r["ms"] for r in named] == sorted((r["ms"] for r in named), reverse=True)
    assert sum(r["share"] for r in rows) == pytest.approx(1.0, abs=1e-6)
    assert all(r["ms"] >= 0 for r in rows) and any(r["op"] in ("DynamicQuantizeMatMul", "MatMulInteger",
                                                               "MatMulIntegerToFloat", "QAttention") for r in rows)


def test_a_damaged_or_missing_model_file_is_a_one_line_user_error(fp32_dir, tmp_path):
    (tmp_path / "config.json").write_bytes((fp32_dir[0] / "config.json").read_bytes())
    with pytest.raises(UserError, match="model.onnx: no such file"):
        OrtClassifier(tmp_path)
    (tmp_path / "model.onnx").write_bytes((fp32_dir[0] / "model.onnx").read_bytes()[:5000])
    with pytest.raises(UserError, match="model.onnx.*damaged") as e:
        OrtClassifier(tmp_path)
    assert "\n" not in str(e.value) and str(tmp_path / "model.onnx") in str(e.value)


def test_a_missing_config_is_a_user_error(fp32_dir, tmp_path):
    (tmp_path / "model.onnx").write_bytes((fp32_dir[0] / "model.onnx").read_bytes())
    with pytest.raises(UserError, match="config.json"):
        OrtClassifier(tmp_path)


def test_cuda_without_the_cuda_provider_is_a_user_error(fp32_dir, monkeypatch):
    monkeypatch.setattr(onnx_forms.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(UserError, match="CUDAExecutionProvider"):
        OrtClassifier(fp32_dir[0], device="cuda")


def test_the_random_feeds_cover_every_graph_input(fp32_dir):
    session = onnx_forms._session(fp32_dir[0] / "model.onnx", threads=1)
    feeds = onnx_forms._random_feeds(session, 50, 2, 7)
    assert set(feeds) == {"input_ids", "attention_mask", "token_type_ids"}
    assert all(v.shape == (2, 7) and v.dtype == np.int64 for v in feeds.values())
    assert feeds["input_ids"].max() < 50
