"""glueslim.deploy: arguments checked before any model is loaded, and every form's folder round-trips through
deploy -> forms.load_model -> predict on a tiny model (the saved form predicts what the in-memory form does)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import DataCollatorWithPadding

from conftest import SHARED_VOCAB, make_tiny_bert
from glueslim import cli, forms, modeling, torch_forms
from glueslim.batching import encode
from glueslim.data import load_split
from glueslim.errors import UserError
from glueslim.evaluate import read_predictions
from glueslim.forms import load_model, model_device
from glueslim.inference import predict_logits
from glueslim.modeling import load_for_inference, load_tokenizer
from test_forms import THIS, prepare

ALL = ["bf16", "fp16", "int8-dynamic", "int8-static", "onnx", "onnx-int8"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy")
    src = make_tiny_bert(root / "teacher", layers=2, hidden=32, vocab=SHARED_VOCAB)
    (src / "glueslim.json").write_text(json.dumps({"model": "teacher", "task": "sst2", "method": "fine-tuned teacher",
                                                   "hyperparameters": {"learning_rate": 1e-4}}))
    (src / "train_log.jsonl").write_text('{"epoch": 1}\n')
    return root, src, prepare(root / "data")


def deploy_args(src, data, out, form, *extra):
    return ["deploy", "--form", form, "--model-dir", str(src), "--name", f"teacher-{form}", "--out", str(out),
            "--task", "sst2", "--data", str(data), "--device", "cpu", "--threads", "1",
            "--calibration-examples", "16", "--max-seq-length", "32", *extra]


def dev_logits(model, folder, data):
    tok = load_tokenizer(str(folder))
    feats = encode(tok, load_split(data, "validation"), 32)
    return predict_logits(model, feats, DataCollatorWithPadding(tok), 4, model_device(model))


@pytest.fixture
def no_model_loaded(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a model was loaded before the arguments were checked")
    monkeypatch.setattr(modeling, "load_for_inference", refuse)
    monkeypatch.setattr(modeling, "load_tokenizer", refuse)


@pytest.mark.parametrize("form", ALL)
def test_each_form_round_trips_through_deploy_load_and_predict(setup, tmp_path, capsys, form):
    root, src, data = setup
    out = tmp_path / f"teacher-{form}"
    cli.main(deploy_args(src, data, out, form, "--allow-emulated"))
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == f"teacher-{form}" and summary["form"] == form and summary["device"] == "cpu"
    assert summary["native"] == (forms.not_native(form, "cpu") is None)
    assert {"config.json", "glueslim.json", "train_log.jsonl", "tokenizer_config.json"} <= {p.name for p in out.iterdir()}
    assert summary["bytes"] == (out / summary["weights"]).stat().st_size
    record = json.loads((out / "glueslim.json").read_text())
    f = forms.FORMS[form]
    assert record["model"] == f"teacher-{form}" and record["method"] == f"fine-tuned teacher + {form}"
    assert record["form"] == form and record["backend"] == f.backend and record["deployed_from"] == str(src)
    assert record["kernels"] == {"linear": f.linear_dtype, "attention": f.attention_dtype}
    assert record["native"] == summary["native"] and record["hyperparameters"] == {"learning_rate": 1e-4}
    assert ("calibration" in record) == (form == "int8-static")
    assert (form in ("int8-dynamic", "int8-static")) == ("quantization" in record)
    assert (f.backend == "onnxruntime") == ("export" in record)
    model = load_model(out)
    assert model_device(model) == torch.device("cpu")
    got = dev_logits(model, out, data)
    assert torch.isfinite(got).all() and got.shape == (10, 2)
    fp32 = dev_logits(load_for_inference(str(src)), src, data)
    if f.backend == "pytorch":  # the saved form predicts exactly what the same form built in memory does
        tok = load_tokenizer(str(src))
        calibration = (torch_forms.calibration_batches(tok, data, 16, 42, 32)[0] if f.calibrated else None)
        built = torch_forms.build(load_for_inference(str(src)), form, calibration)
        assert torch.equal(got, dev_logits(built, src, data))
        assert summary["reload_max_abs_diff"] == 0.0
    else:
        assert torch.equal(got, dev_logits(load_model(out), out, data))  # a second session: the same logits
        assert record["export"]["max_abs_diff"] < (1e-4 if form == "onnx" else 0.05)
    assert (got - fp32).abs().max() < 0.05 * fp32.abs().max() + 1e-3
    # the predict command reads the form too: its predictions are the form's
    cli.main(["predict", "--task", "sst2", "--stem", "sst2", "--data", str(data), "--model-dir", str(out),
              "--out", str(tmp_path / "sst2.tsv"), "--device", "cpu", "--threads", "1", "--max-seq-length", "32"])
    _, preds = read_predictions(tmp_path / "sst2.tsv", "sst2", load_split(data, "validation"))
    assert preds == got.argmax(-1).tolist()


def test_static_calibration_reads_the_training_split_only_and_is_seeded(setup, tmp_path, capsys):
    root, src, data = setup
    only_train = tmp_path / "data"
    only_train.mkdir()
    (only_train / "train.jsonl").write_bytes((data / "train.jsonl").read_bytes())  # no dev split at all
    for name, seed in (("a", "42"), ("b", "42"), ("c", "7")):
        cli.main(deploy_args(src, only_train, tmp_path / name, "int8-static", "--seed", seed))
    from safetensors import safe_open

    def weights(name):  # tensors and metadata (safetensors writes its header's keys in no fixed order)
        with safe_open(str(tmp_path / name / "model_int8_torchao.safetensors"), "pt") as f:
            return f.metadata(), {k: f.get_tensor(k) for k in f.keys()}

    (meta_a, a), (meta_b, b), (meta_c, c) = weights("a"), weights("b"), weights("c")
    assert meta_a == meta_b == meta_c and a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same seed: the same sample, the same scales
    scales = [k for k in a if k.endswith("._weight_act_quant_scale")]
    assert len(scales) == 14 and not all(torch.equal(a[k], c[k]) for k in scales)  # another seed: other scales
    record = json.loads((tmp_path / "a" / "glueslim.json").read_text())
    assert record["calibration"] == {"split": "train", "examples": 16, "seed": 42,
                                     "source": str(only_train / "train.jsonl"), "max_seq_length": 32}


def test_arguments_are_checked_before_any_model_is_loaded(setup, tmp_path, monkeypatch, no_model_loaded):
    root, src, data = setup
    out = tmp_path / "out"

    def refused(form, *extra, args=None):
        with pytest.raises(UserError) as e:
            from glueslim import deploy
            import argparse
            p = argparse.ArgumentParser()
            deploy.add_arguments(p)
            deploy.deploy(p.parse_args((args or deploy_args(src, data, out, form, *extra))[1:]))
        assert "\n" not in str(e.value) and not out.exists()
        return str(e.value)

    assert refused("int4") == ("--form 'int4': not a deployed form; choose one of: fp32, bf16, fp16, int8-dynamic, "
                               "int8-static, onnx, onnx-int8")
    assert "the fp32 form is the model's own folder" in refused("fp32")
    monkeypatch.setattr(forms, "cpu_flags", lambda: {"avx2", "fma"})
    assert refused("int8-dynamic") == (
        "--form int8-dynamic on cpu: not native (this CPU has no int8 dot-product instructions (AVX512-VNNI, "
        "AVX-VNNI or AMX-INT8): int8 kernels would fall back to slower instruction sequences); pass --allow-emulated "
        "to deploy it anyway, or leave the form out on this machine")
    monkeypatch.setattr(forms, "cpu_flags", lambda: THIS)
    assert "--form bf16 on cpu: not native (this CPU has no AVX512-BF16" in refused("bf16")
    missing = refused("int8-dynamic", args=deploy_args(tmp_path / "nomodel", data, out, "int8-dynamic"))
    assert missing == f"{tmp_path / 'nomodel'}: not a folder holding a model"
    wrong_task = deploy_args(src, data, out, "int8-dynamic")
    wrong_task[wrong_task.index("sst2")] = "cola"
    assert refused("", args=wrong_task) == f"{src}/glueslim.json: a model of task sst2, not --task cola"
    assert "--calibration-examples 0: expected a whole number >= 1" in refused("int8-static", "--calibration-examples", "0")
    if not torch.cuda.is_available():
        assert "--device cuda: torch sees no CUDA device" in refused(
            "", args=[a if a != "cpu" else "cuda" for a in deploy_args(src, data, out, "fp16")])


def test_a_deployed_folder_is_not_deployed_again(setup, tmp_path):
    root, src, data = setup
    cli.main(deploy_args(src, data, tmp_path / "q", "int8-dynamic"))
    with pytest.raises(SystemExit) as e:
        cli.main(deploy_args(tmp_path / "q", data, tmp_path / "qq", "int8-static"))
    assert e.value.code == 2 and not (tmp_path / "qq").exists()


@pytest.mark.parametrize("form", ["int8-dynamic", "onnx-int8"])
def test_a_distilbert_student_deploys_too(setup, tmp_path, capsys, form):
    """The full config's `distil` starts from distilbert-base-uncased: a DistilBERT (no pooler, its own layer
    names) goes through the int8 and ONNX Runtime forms like a BERT and predicts close to its fp32 self."""
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

    root, _, data = setup
    src = tmp_path / "distil"
    torch.manual_seed(0)
    DistilBertForSequenceClassification(DistilBertConfig(
        vocab_size=30522, dim=32, n_layers=2, n_heads=4, hidden_dim=64, num_labels=2)).save_pretrained(src)
    AutoTokenizer.from_pretrained(str(root / "teacher")).save_pretrained(src)
    (src / "glueslim.json").write_text(json.dumps({"model": "distil", "task": "sst2", "method": "DistilBERT-style KD"}))
    (src / "train_log.jsonl").write_text('{"epoch": 1}\n')
    out = tmp_path / f"distil-{form}"
    cli.main(deploy_args(src, data, out, form, "--allow-emulated"))
    got = dev_logits(load_model(out), out, data)
    fp32 = dev_logits(load_for_inference(str(src)), src, data)
    assert torch.isfinite(got).all() and (got - fp32).abs().max() < 0.05 * fp32.abs().max() + 1e-3
