"""glueslim.profile: the `profile` command end to end on a tiny random model, fp32 and its deployed forms."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from conftest import tiny_classifier
from glueslim import cli, peaks, profile, torch_forms
from glueslim.flops import count_macs, count_parameters
from glueslim.timing import MIN_RUNS

# the fields of an fp32 profile before deployed forms existed, in order: every one is kept
FP32_FIELDS = ["model", "model_dir", "parameters", "macs", "macs_by_length", "size_on_disk_bytes", "peak_flops", "sweeps",
               "latency", "latency_compiled", "compile_errors", "peak_memory_mb", "peak_memory_kind", "device"]
FORM_FIELDS = ["form", "backend", "native", "not_native_reason", "kernels", "peaks", "holdbacks"]


@pytest.fixture(scope="module")
def tiny():
    return tiny_classifier(vocab=100)  # 2 layers, hidden 32, 64 positions


def test_profile_command_end_to_end(tiny, tmp_path):
    model_dir = tmp_path / "tiny"
    tiny.save_pretrained(model_dir, safe_serialization=True)
    (model_dir / "training_args.bin").write_bytes(b"not weights")
    out = tmp_path / "results" / "profile" / "tiny.json"
    threads = torch.get_num_threads()  # pass the current value: leave the test process as it was
    cli.main(["profile", "--model-dir", str(model_dir), "--name", "tiny", "--out", str(out),
              "--seq-length", "16", "--batch-sizes", "1", "4", "--seq-lengths", "8", "16", "32", "128",
              "--warmup", "1", "--runs", str(MIN_RUNS), "--threads", str(threads), "--device", "cpu"])
    got = json.loads(out.read_text())
    assert [k for k in got if k in FP32_FIELDS] == FP32_FIELDS and set(got) == set(FP32_FIELDS + FORM_FIELDS)
    assert (got["form"], got["backend"], got["native"], got["not_native_reason"]) == ("fp32", "pytorch", True, None)
    assert got["kernels"] == {"linear": "float32", "attention": "float32", "other": "float32"}
    assert list(got["peaks"]) == ["float32"] and got["peak_flops"]["dtype"] == "float32"
    assert got["peak_flops"]["flops_per_s"] == got["peaks"]["float32"]["flops_per_s"]
    assert got["peak_flops"]["candidates"] == {"float32": got["peak_flops"]["flops_per_s"]}
    assert got["sweeps"]["runner"] == "eager" and {r["runner"] for r in got["latency"]} == {"eager"}
    hb = got["holdbacks"]  # at the largest batch of the batch sweep, eager
    assert (hb["batch_size"], hb["seq_length"], hb["runner"]) == (4, 16, "eager")
    assert 0 < hb["matmul_share"] <= 1 and hb["matmul_share"] == pytest.approx(hb["matmul_ms"] / hb["total_ms"])
    assert all(0 <= o["share"] <= 1 for o in hb["top_ops"]) and len(hb["top_ops"]) <= 8
    assert got["latency_compiled"] == [] and got["compile_errors"] == []  # eager only unless asked
    assert got["model"] == "tiny" and got["model_dir"] == str(model_dir)
    assert got["parameters"] == count_parameters(tiny)
    assert got["macs"] == count_macs(tiny, 16)
    assert got["size_on_disk_bytes"] == (model_dir / "model.safetensors").stat().st_size
    # batch sweep at 16 tokens, then the length sweep at batch 1; 128 > max_position_embeddings (64)
    assert [(r["batch_size"], r["seq_length"]) for r in got["latency"]] == [(1, 16), (4, 16), (1, 8), (1, 32)]
    assert got["sweeps"]["batch"] == {"seq_length": 16, "batch_sizes": [1, 4]}
    assert got["sweeps"]["length"] == {"batch_size": 1, "seq_lengths": [8, 16, 32, 128]}
    assert [s["seq_length"] for s in got["sweeps"]["skipped"]] == [128]
    assert [m["seq_length"] for m in got["macs_by_length"]] == [8, 16, 32]
    for m in got["macs_by_length"]:
        ref = count_macs(tiny, m["seq_length"])
        assert (m["total"], m["linear"], m["attention"]) == (ref["total"], ref["linear"], ref["attention"])
    peak = got["peak_flops"]["flops_per_s"]
    assert peak > 0 and peak == max(got["peak_flops"]["measured_flops_per_s"])  # before and after the sweep
    assert len(got["peak_flops"]["measured_flops_per_s"]) == 2
    macs = {m["seq_length"]: m["total"] for m in got["macs_by_length"]}
    for r in got["latency"]:
        assert r["runs"] == MIN_RUNS and r["warmup"] == 1 and r["threads"] == threads and r["device"] == "cpu"
        assert r["macs"] == macs[r["seq_length"]] * r["batch_size"]
        assert r["floor_ms"] == pytest.approx(2 * r["macs"] / peak * 1000) and r["floor_dtype"] == "float32"
        assert r["pct_of_peak"] == pytest.approx(r["floor_ms"] / r["median_ms"] * 100)
    assert got["peak_memory_kind"] == "process_peak_rss" and got["peak_memory_mb"] > 0
    dev = got["device"]
    assert {"type", "name", "cpu_model", "cpu_flags", "threads", "torch", "transformers", "python",
            "cuda", "gpu_name"} <= set(dev)
    assert dev["type"] == "cpu" and dev["threads"] == threads and dev["gpu_name"] is None
    assert set(dev["cpu_flags"]) <= {"avx2", "avx512f", "fma", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
                                     "amx_tile", "amx_int8", "amx_bf16", "amx_fp16"}


def test_profile_times_the_compiled_model_beside_the_eager_one(tiny, tmp_path):
    model_dir = tmp_path / "tiny"
    tiny.save_pretrained(model_dir, safe_serialization=True)
    out = tmp_path / "tiny.json"
    cli.main(["profile", "--model-dir", str(model_dir), "--name", "tiny", "--out", str(out), "--seq-length", "16",
              "--batch-sizes", "1", "2", "--seq-lengths", "--compile-batch-sizes", "2", "--warmup", "1",
              "--runs", str(MIN_RUNS), "--threads", str(torch.get_num_threads()), "--device", "cpu"])
    got = json.loads(out.read_text())
    assert [(r["batch_size"], r["seq_length"]) for r in got["latency"]] == [(1, 16), (2, 16)]  # eager, as before
    (c,) = got["latency_compiled"]
    assert (c["batch_size"], c["seq_length"], c["compiler"]) == (2, 16, "torch.compile") and c["compile_seconds"] > 0
    assert c["runs"] == MIN_RUNS and c["macs"] == count_macs(tiny, 16)["total"] * 2
    assert c["pct_of_peak"] == pytest.approx(c["floor_ms"] / c["median_ms"] * 100)
    assert got["compile_errors"] == []


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
    with pytest.raises(SystemExit):
        cli.main(["profile", "--model-dir", str(tmp_path), "--name", "x", "--out", str(tmp_path / "x.json"),
                  "--seq-lengths", "32", "0"])
    assert "--seq-lengths 32 0" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


@pytest.fixture(autouse=True)
def _inductor_freezing_restored():
    """forms.load_model(compiled=True) turns inductor's freezing on process-wide: leave it as it was."""
    import torch._inductor.config as inductor_config
    saved = inductor_config.freezing
    yield
    inductor_config.freezing = saved


def _deploy_by_hand(tiny, form: str, folder):
    """A `form` folder of `tiny` as glueslim deploy writes it: the form's weights, config.json, glueslim.json."""
    folder.mkdir(parents=True)
    torch_forms.save(torch_forms.build(copy.deepcopy(tiny), form), form, folder)
    (folder / "glueslim.json").write_text(json.dumps({"form": form}))
    return folder


def _profile(model_dir, out, *extra):
    cli.main(["profile", "--model-dir", str(model_dir), "--name", "row", "--out", str(out), "--seq-length", "16",
              "--warmup", "1", "--runs", str(MIN_RUNS), "--threads", str(torch.get_num_threads()), "--device", "cpu",
              *extra])
    return json.loads(out.read_text())


def test_int8_form_floor_takes_linear_at_the_int8_peak(tiny, tmp_path, monkeypatch):
    fake = {"float32": 2e10, "int8": 8e10}  # fixed figures: the arithmetic, not this machine, is checked
    monkeypatch.setattr(peaks, "measure_peak_flops", lambda device, dtype: {
        "flops_per_s": fake[dtype], "dtype": dtype, "backend": "pytorch", "method": "fake"})
    folder = _deploy_by_hand(tiny, "int8-dynamic", tmp_path / "row")
    got = _profile(folder, tmp_path / "row.json", "--batch-sizes", "2", "--seq-lengths", "8", "32")
    assert (got["form"], got["backend"], got["native"]) == ("int8-dynamic", "pytorch", True)  # native: VNNI here
    assert got["kernels"] == {"linear": "int8", "attention": "float32", "other": "float32"}
    assert {d: p["flops_per_s"] for d, p in got["peaks"].items()} == fake
    assert got["peak_flops"]["dtype"] == "int8" and got["peak_flops"]["candidates"] == fake
    # counted on the float architecture: the same parameters and MACs as the float model
    assert got["parameters"] == count_parameters(tiny) and got["macs"] == count_macs(tiny, 16)
    assert got["size_on_disk_bytes"] == (folder / torch_forms.TORCHAO_INT8).stat().st_size
    # timed through the deployed runner at the batch sweep only
    assert got["sweeps"]["length"]["seq_lengths"] == [] and "fp32" in got["sweeps"]["length"]["not_timed"]
    (r,) = got["latency"]
    assert (r["batch_size"], r["seq_length"], r["runner"]) == (2, 16, "torch.compile") and r["compile_seconds"] > 0
    assert got["compile_errors"] == [] and got["sweeps"]["runner"] == "torch.compile"
    m = got["macs"]
    want = 2 * 2 * m["linear"] / 8e10 * 1000 + 2 * 2 * (m["attention"] + m["other"]) / 2e10 * 1000
    assert r["floor_ms"] == pytest.approx(want) and r["floor_dtype"] == "int8 linear + float32 attention"
    assert r["pct_of_peak"] == pytest.approx(want / r["median_ms"] * 100)
    hb = got["holdbacks"]
    assert (hb["batch_size"], hb["runner"]) == (2, "torch.compile") and 0 <= hb["matmul_share"] <= 1
    assert hb["matmul_share"] == pytest.approx(hb["matmul_ms"] / hb["total_ms"])


def test_bf16_form_on_a_cpu_without_bf16_is_timed_and_flagged(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(profile, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_vnni", "fma"})  # this CPU's kind
    monkeypatch.setattr(torch, "compile", lambda model, **k: (_ for _ in ()).throw(RuntimeError("no C++ compiler")))
    folder = _deploy_by_hand(tiny, "bf16", tmp_path / "row")
    got = _profile(folder, tmp_path / "row.json", "--batch-sizes", "1", "2")
    assert got["native"] is False and "AVX512-BF16" in got["not_native_reason"]
    assert list(got["peaks"]) == ["float32", "bfloat16"] and got["peak_flops"]["dtype"] == "bfloat16"
    assert all(p["flops_per_s"] > 0 for p in got["peaks"].values())
    # a form that does not compile is timed eager, the error recorded, never a failed job
    assert [(r["batch_size"], r["runner"]) for r in got["latency"]] == [(1, "eager"), (2, "eager")]
    assert [e["batch_size"] for e in got["compile_errors"]] == [1, 2]
    assert "no C++ compiler" in got["compile_errors"][0]["error"] and got["sweeps"]["runner"] == "eager"
    bf16 = got["peaks"]["bfloat16"]["flops_per_s"]
    for r in got["latency"]:
        assert r["floor_dtype"] == "bfloat16" and r["floor_ms"] == pytest.approx(2 * r["macs"] / bf16 * 1000)
    assert got["parameters"] == count_parameters(tiny)
    fp32_bytes = sum(p.numel() * 4 for p in tiny.state_dict().values())
    assert got["size_on_disk_bytes"] < 0.6 * fp32_bytes  # the saved bf16 weights, half the size
    assert got["holdbacks"]["batch_size"] == 2 and got["holdbacks"]["runner"] == "eager"


def test_onnx_int8_form_is_timed_in_onnx_runtime(tiny_bert, tmp_path):
    from glueslim.modeling import load_for_inference, load_tokenizer
    from glueslim.onnx_forms import export_onnx

    folder = tmp_path / "row"
    folder.mkdir()
    export_onnx(load_for_inference(str(tiny_bert)), load_tokenizer(str(tiny_bert)), folder, quantize=True, threads=1)
    load_for_inference(str(tiny_bert)).config.to_json_file(folder / "config.json")
    (folder / "glueslim.json").write_text(json.dumps({"form": "onnx-int8"}))
    got = _profile(folder, tmp_path / "row.json", "--batch-sizes", "1", "2")
    assert (got["form"], got["backend"]) == ("onnx-int8", "onnxruntime")
    assert {d: p["backend"] for d, p in got["peaks"].items()} == {"float32": "onnxruntime", "int8": "onnxruntime"}
    assert set(got["peak_flops"]["candidates"]) == {"onnxruntime:float32", "onnxruntime:int8"}
    assert got["size_on_disk_bytes"] == (folder / "model.onnx").stat().st_size
    assert {r["runner"] for r in got["latency"]} == {"onnxruntime"} and got["sweeps"]["runner"] == "onnxruntime"
    for r in got["latency"]:
        assert r["floor_dtype"] == "int8 linear + float32 attention" and r["floor_ms"] > 0
    hb = got["holdbacks"]
    assert hb["runner"] == "onnxruntime" and "onnxruntime" in hb["source"] and 0 < hb["matmul_share"] <= 1
    assert any(o["matmul"] for o in hb["top_ops"]) and all(0 <= o["share"] <= 1 for o in hb["top_ops"])
