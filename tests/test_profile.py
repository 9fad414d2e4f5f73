"""glueslim.profile: the `profile` command end to end on a tiny random model."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import tiny_classifier
from glueslim import cli
from glueslim.flops import count_macs, count_parameters
from glueslim.timing import MIN_RUNS


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
    assert list(got) == ["model", "model_dir", "parameters", "macs", "macs_by_length", "size_on_disk_bytes",
                         "peak_flops", "sweeps", "latency", "latency_compiled", "compile_errors", "peak_memory_mb",
                         "peak_memory_kind", "device"]
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
        assert r["floor_ms"] == pytest.approx(2 * r["macs"] / peak * 1000)
        assert r["pct_of_peak"] == pytest.approx(r["floor_ms"] / r["median_ms"] * 100)
    assert got["peak_memory_kind"] == "process_peak_rss" and got["peak_memory_mb"] > 0
    dev = got["device"]
    assert {"type", "name", "cpu_model", "cpu_flags", "threads", "torch", "transformers", "python",
            "cuda", "gpu_name"} <= set(dev)
    assert dev["type"] == "cpu" and dev["threads"] == threads and dev["gpu_name"] is None
    assert set(dev["cpu_flags"]) <= {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8",
                                     "amx_bf16", "fma"}


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
