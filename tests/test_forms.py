"""glueslim.forms and glueslim.torch_forms: the registry, which device runs which form natively, the calibration
sample (training examples only, seeded), and each PyTorch form's save/load round trip on a tiny model."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest
import torch

from conftest import SHARED_VOCAB, make_tiny_bert
from glueslim import forms, torch_forms
from glueslim.errors import UserError
from glueslim.forms import FORMS, form_of, load_model, model_device, not_native
from glueslim.io import atomic_write_jsonl
from glueslim.modeling import load_for_inference, load_tokenizer

TORCH_FORMS = ["bf16", "fp16", "int8-dynamic", "int8-static"]
AMX = {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"}
AVX2 = {"avx2", "fma"}
THIS = {"avx2", "fma", "avx512f", "avx512bw", "avx512_vnni"}  # this machine's CPU: VNNI, no BF16, no AMX


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny trained-looking fp32 folder (2 layers, real WordPiece vocabulary)."""
    d = make_tiny_bert(tmp_path_factory.mktemp("forms") / "src", layers=2, hidden=32, vocab=SHARED_VOCAB)
    (d / "glueslim.json").write_text(json.dumps({"model": "m", "task": "sst2", "method": "fine-tuned teacher"}))
    return d


@pytest.fixture(autouse=True)
def _inductor_freezing_restored():
    """load_model(compiled=True) turns inductor's freezing on process-wide: leave it as it was for other tests."""
    import torch._inductor.config as inductor_config
    saved = inductor_config.freezing
    yield
    inductor_config.freezing = saved


def prepare(root, n_train=40, n_dev=10):
    """A prepared data folder: train.jsonl and validation.jsonl with distinct texts."""
    words = ["good", "bad", "film", "great", "boring", "actors", "plot", "fun"]
    def text(kind, i):
        return f"{kind} {words[i % 8]} {words[(i * 3) % 8]} " + " ".join(words[: 1 + i % 7])
    atomic_write_jsonl(root / "train.jsonl", [{"idx": i, "text_a": text("train", i), "text_b": None,
                                               "label": i % 2} for i in range(n_train)])
    atomic_write_jsonl(root / "validation.jsonl", [{"idx": i, "text_a": text("dev", i), "text_b": None,
                                                    "label": i % 2} for i in range(n_dev)])
    return root


def batch_of(tokenizer, texts):
    return dict(tokenizer(texts, padding=True, return_tensors="pt"))


def header(path) -> dict:
    """A safetensors file's header: {tensor name: {"dtype", "shape", ...}}."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return {k: v for k, v in json.loads(f.read(n)).items() if k != "__metadata__"}


# ---- the registry and native support ----------------------------------------------------------------------

def test_the_registry_names_every_form_with_its_kernels():
    assert list(FORMS) == ["fp32", "bf16", "fp16", "int8-dynamic", "int8-static", "onnx", "onnx-int8"]
    assert all(f.name == name for name, f in FORMS.items())
    assert {f.backend for f in FORMS.values()} == {"pytorch", "onnxruntime"}
    assert [n for n, f in FORMS.items() if f.calibrated] == ["int8-static"]
    assert FORMS["int8-static"].linear_dtype == "int8" and FORMS["int8-static"].attention_dtype == "float32"
    assert FORMS["bf16"].linear_dtype == FORMS["bf16"].attention_dtype == FORMS["bf16"].weights == "bfloat16"


def test_forms_imports_without_torch():
    code = "import sys, glueslim.forms as f; f.not_native('bf16', 'cpu'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("flags, native", [
    (AMX, {"fp32", "bf16", "fp16", "int8-dynamic", "int8-static", "onnx", "onnx-int8"}),
    (AVX2, {"fp32", "onnx"}),
    (THIS, {"fp32", "int8-dynamic", "int8-static", "onnx", "onnx-int8"}),
])
def test_which_cpu_runs_which_form_natively(flags, native):
    got = {name for name in FORMS if not_native(name, "cpu", flags) is None}
    assert got == native
    reasons = {name: not_native(name, "cpu", flags) for name in FORMS if name not in native}
    for name, reason in reasons.items():
        assert reason.startswith("this CPU has no ") and "\n" not in reason
        assert {"bf16": "AVX512-BF16", "fp16": "AVX512-FP16"}.get(name, "VNNI") in reason, reason


def test_which_forms_a_gpu_runs_natively(monkeypatch):
    import onnxruntime

    assert not_native("fp16", "cuda") is None and not_native("fp32", "cuda") is None
    for name in ("int8-dynamic", "int8-static"):
        assert "CPU only" in not_native(name, "cuda")
    assert "CPU execution provider only" in not_native("onnx-int8", "cuda")
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert "no CUDAExecutionProvider" in not_native("onnx", "cuda")
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert not_native("onnx", "cuda") is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla T4")
    assert not_native("bf16", "cuda") == "this GPU (Tesla T4) has no bfloat16 support: bf16 would be emulated"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert not_native("bf16", "cuda") is None
    assert "not 'mps'" in not_native("bf16", "mps")
    with pytest.raises(UserError, match=r"form 'int4' is not a deployed form; choose one of: fp32, bf16, fp16, "):
        not_native("int4", "cpu")


def test_cpu_flags_reads_this_machines_cpu(monkeypatch):
    flags = forms.cpu_flags()
    assert isinstance(flags, set)
    with open("/proc/cpuinfo") as f:
        assert ("fpu" in flags) == any(line.startswith("flags") and " fpu" in line for line in f)
    monkeypatch.setattr(forms, "cpu_flags", lambda: AVX2)
    assert "VNNI" in not_native("int8-dynamic", "cpu")  # flags default to the machine's


def test_form_of_reads_the_record(tmp_path):
    assert form_of(tmp_path) == "fp32"
    (tmp_path / "glueslim.json").write_text(json.dumps({"model": "m"}))
    assert form_of(tmp_path) == "fp32"
    (tmp_path / "glueslim.json").write_text(json.dumps({"form": "int8-static"}))
    assert form_of(tmp_path) == "int8-static"
    (tmp_path / "glueslim.json").write_text(json.dumps({"form": "int3"}))
    with pytest.raises(UserError, match=rf"^{tmp_path}/glueslim.json: form 'int3' is not one of fp32, bf16"):
        form_of(tmp_path)


# ---- calibration: training examples only, seeded ----------------------------------------------------------

def test_calibration_draws_a_seeded_sample_of_training_examples_only(source, tmp_path):
    data = prepare(tmp_path / "data")
    train = {r["text_a"] for r in map(json.loads, (data / "train.jsonl").read_text().splitlines())}
    dev = {r["text_a"] for r in map(json.loads, (data / "validation.jsonl").read_text().splitlines())}
    rows, path = torch_forms.calibration_rows(data, 12, seed=3)
    assert path == data / "train.jsonl" and len(rows) == 12 and len({r["idx"] for r in rows}) == 12
    assert {r["text_a"] for r in rows} <= train and not {r["text_a"] for r in rows} & dev
    assert torch_forms.calibration_rows(data, 12, seed=3)[0] == rows
    assert torch_forms.calibration_rows(data, 12, seed=4)[0] != rows
    assert len(torch_forms.calibration_rows(data, 1000, seed=3)[0]) == 40  # all of a smaller split
    tok = load_tokenizer(str(source))
    batches, info = torch_forms.calibration_batches(tok, data, n=12, seed=3, max_seq_length=6, batch_size=5)
    assert info == {"split": "train", "examples": 12, "seed": 3, "source": str(data / "train.jsonl"),
                    "max_seq_length": 6}
    assert [len(b["input_ids"]) for b in batches] == [5, 5, 2] and max(b["input_ids"].shape[1] for b in batches) <= 6
    decoded = [tok.decode(ids[m.bool()], skip_special_tokens=True) for b in batches
               for ids, m in zip(b["input_ids"], b["attention_mask"])]
    assert all(t.startswith("train ") for t in decoded) and len(decoded) == 12
    with pytest.raises(UserError, match="run prepare-data first"):
        torch_forms.calibration_rows(tmp_path / "nodata", 5, 0)


def test_static_scales_are_max_abs_over_the_batches_with_the_inputs_ndim(source):
    model = load_for_inference(str(source))
    tok = load_tokenizer(str(source))
    batches = [batch_of(tok, ["a good film", "bad"]), batch_of(tok, ["great actors and a fun plot"])]
    names = torch_forms.int8_linears(model)
    assert "classifier" in names and "bert.pooler.dense" in names and len(names) == 2 * 6 + 2
    scales = torch_forms.activation_scales(model, batches, names)
    seen = {}
    hook = model.classifier.register_forward_hook(lambda m, i, o: seen.setdefault("x", []).append(i[0].abs().max()))
    with torch.no_grad():
        for b in batches:
            model(**b)
    hook.remove()
    assert scales["classifier"].shape == (1, 1) and scales["bert.encoder.layer.0.attention.self.query"].shape == (1, 1, 1)
    assert torch.allclose(scales["classifier"], max(seen["x"]) / 127.5)


# ---- round trips ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("form", TORCH_FORMS)
def test_each_torch_form_saves_and_loads_back_exactly(source, tmp_path, form):
    tok = load_tokenizer(str(source))
    batch = batch_of(tok, ["a good film", "the actors were great and the plot was fun", "boring"])
    reference = load_for_inference(str(source))(**batch).logits
    built = torch_forms.build(load_for_inference(str(source)), form, [batch] if form == "int8-static" else None)
    with torch.no_grad():
        expected = built(**batch).logits
    torch_forms.save(built, form, tmp_path)
    (tmp_path / "glueslim.json").write_text(json.dumps({"form": form}))
    loaded = load_model(tmp_path)
    with torch.no_grad():
        got = loaded(**batch).logits
    assert torch.equal(got, expected) and torch.isfinite(got).all()
    assert model_device(loaded) == torch.device("cpu")
    assert (got.float() - reference).abs().max() < 0.05 * reference.abs().max() + 1e-3  # close to fp32
    if form in ("bf16", "fp16"):
        dtype = {"bf16": "BF16", "fp16": "F16"}[form]
        weights = header(tmp_path / "model.safetensors")
        assert {v["dtype"] for v in weights.values()} == {dtype}
        assert got.dtype == torch_forms.FLOAT_DTYPES[form]
        assert (tmp_path / "model.safetensors").stat().st_size < 0.55 * (source / "model.safetensors").stat().st_size
    else:
        weights = header(tmp_path / "model_int8_torchao.safetensors")
        qdata = {k: v["dtype"] for k, v in weights.items() if k.endswith("._weight_qdata")}
        assert len(qdata) == 2 * 6 + 2 and set(qdata.values()) == {"I8"}
        assert not any(k.endswith(".weight") and "dense" in k for k in weights)  # no float Linear weight left
        static = [k for k in weights if k.endswith("._weight_act_quant_scale")]
        assert len(static) == (len(qdata) if form == "int8-static" else 0)
        assert type(loaded.classifier.weight).__name__ == "Int8Tensor"


def test_a_saved_form_that_does_not_match_its_record_is_refused(source, tmp_path):
    torch_forms.save(torch_forms.build(load_for_inference(str(source)), "int8-dynamic"), "int8-dynamic", tmp_path)
    (tmp_path / "glueslim.json").write_text(json.dumps({"form": "int8-static"}))
    with pytest.raises(UserError, match=r"holds the int8-dynamic form, glueslim.json says int8-static"):
        load_model(tmp_path)
    (tmp_path / "glueslim.json").write_text(json.dumps({"form": "bf16"}))
    (tmp_path / "model.safetensors").write_bytes((source / "model.safetensors").read_bytes())
    with pytest.raises(UserError, match=r"model.safetensors: weights in torch.float32, not torch.bfloat16"):
        load_model(tmp_path)


@pytest.mark.parametrize("form", ["fp32", "int8-static"])
def test_compiled_and_eager_models_agree(source, tmp_path, form):
    tok = load_tokenizer(str(source))
    batch = batch_of(tok, ["a good film", "the actors were great", "boring plot"])
    folder = source
    if form != "fp32":
        folder = tmp_path / form
        folder.mkdir()
        torch_forms.save(torch_forms.build(load_for_inference(str(source)), form, [batch]), form, folder)
        (folder / "glueslim.json").write_text(json.dumps({"form": form}))
    eager = load_model(folder)
    compiled = load_model(folder, compiled=True)
    assert type(compiled).__name__ == "OptimizedModule" and compiled.config.num_labels == 2
    with torch.no_grad():
        a, b = eager(**batch).logits, compiled(**batch).logits
    assert torch.equal(a.argmax(-1), b.argmax(-1))
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-3), (a - b).abs().max()
    import torch._inductor.config as inductor_config
    assert inductor_config.freezing  # on the CPU, compiled with weights frozen into the graph
