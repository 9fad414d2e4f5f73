"""glueslim.gpus, the per-job GPU slot pool, on faked GPU counts: distinct GPUs for concurrent jobs, a killed
holder frees its slot, one process per GPU for a multi-GPU training command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from glueslim import gpus


# ---------------------------------------------------------------- the GPU slot pool


def test_visible_devices_are_read_as_cuda_reads_them():
    assert gpus.parse_visible_devices("0,1") == ["0", "1"]
    assert gpus.parse_visible_devices(" 2, 3 ") == ["2", "3"]
    assert gpus.parse_visible_devices("") == []
    assert gpus.parse_visible_devices("-1") == []
    assert gpus.parse_visible_devices("1,-1,2") == ["1"]  # CUDA stops at the first invalid entry
    assert gpus.parse_visible_devices("GPU-8a1b2c3d-0000-1111-2222-333344445555") == [
        "GPU-8a1b2c3d-0000-1111-2222-333344445555"]
    assert gpus.parse_visible_devices("NoDevFiles") == []


def test_lock_files_are_per_slurm_job_inside_slurm(tmp_path):
    env = {gpus.LOCK_DIR_ENV: str(tmp_path)}
    assert gpus.lock_dir(env) == tmp_path
    assert gpus.lock_dir({**env, "SLURM_JOB_ID": "4242"}) == tmp_path / "slurm-4242"


def test_a_multi_gpu_training_command_is_started_one_process_per_gpu():
    cmd = ["python", "-m", "glueslim", "finetune", "--task", "rte"]
    slots = gpus.Slots(["2", "3"], [])
    run, env = gpus.plan(2, True, cmd, {"PATH": "/bin"}, slots)
    assert run == ["python", "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                   "-m", "glueslim", "finetune", "--task", "rte"]
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3" and env["PATH"] == "/bin"
    run, env = gpus.plan(1, True, cmd, {}, gpus.Slots(["1"], []))
    assert run == cmd and env["CUDA_VISIBLE_DEVICES"] == "1"  # one GPU: the command as it is
    assert gpus.plan(0, True, cmd, {"X": "1"}, None) == (cmd, {"X": "1"})
    with pytest.raises(gpus.GpuError, match="python -m MODULE"):
        gpus.distributed_command(["train.sh"], 2)


@pytest.fixture
def fake_box(tmp_path):
    """Environment of a box whose `nvidia-smi -L` lists two GPUs, with its own lock folder."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\n[ \"$1\" = -L ] || exit 1\n"
                   "echo 'GPU 0: NVIDIA Fake 80GB (UUID: GPU-00000000-0000-0000-0000-000000000000)'\n"
                   "echo 'GPU 1: NVIDIA Fake 80GB (UUID: GPU-11111111-1111-1111-1111-111111111111)'\n")
    smi.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")}
    env.update(PATH=os.pathsep.join([str(bin_dir), env["PATH"]]), PYTHONPATH=str(ROOT / "src"),
               **{gpus.LOCK_DIR_ENV: str(tmp_path / "locks")})
    return env


def _job(env, tmp_path, name, n=1, *extra):
    """A GPU job that writes the devices it got to <name>.dev, then holds them until <name>.go exists."""
    script = 'echo "$CUDA_VISIBLE_DEVICES" > "$1.tmp" && mv "$1.tmp" "$1"; while [ ! -e "$2" ]; do sleep 0.05; done'
    return subprocess.Popen(
        [sys.executable, "-m", "glueslim.gpus", "--gpus", str(n), "--poll", "0.1", *extra, "--",
         "sh", "-c", script, "sh", str(tmp_path / f"{name}.dev"), str(tmp_path / f"{name}.go")],
        env=env, stderr=subprocess.PIPE, text=True)


def _devices(tmp_path, name, timeout=30.0):
    path, end = tmp_path / f"{name}.dev", time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > end:
            return None
        time.sleep(0.05)
    return path.read_text().strip()


def _finish(tmp_path, *jobs):
    for name, proc in jobs:
        (tmp_path / f"{name}.go").touch()
    return [proc.wait(timeout=30) for _, proc in jobs]


def test_two_concurrent_jobs_on_a_two_gpu_box_get_different_gpus(fake_box, tmp_path):
    a, b = _job(fake_box, tmp_path, "a"), _job(fake_box, tmp_path, "b")
    try:
        got = {_devices(tmp_path, "a"), _devices(tmp_path, "b")}
        assert got == {"0", "1"}
    finally:
        assert _finish(tmp_path, ("a", a), ("b", b)) == [0, 0]


def test_a_third_job_waits_and_a_killed_holder_frees_its_gpu(fake_box, tmp_path):
    holder = _job(fake_box, tmp_path, "holder", 2)  # takes both GPUs
    assert _devices(tmp_path, "holder") == "0,1"
    waiter = _job(fake_box, tmp_path, "waiter", 1)
    try:
        assert _devices(tmp_path, "waiter", timeout=1.5) is None  # both busy: it waits
        # a job that will not wait long gives up with the holder named
        res = subprocess.run([sys.executable, "-m", "glueslim.gpus", "--gpus", "1", "--timeout", "0.3",
                              "--poll", "0.1", "--", "true"], env=fake_box, capture_output=True, text=True)
        assert res.returncode == 2 and "no 1 free GPU(s)" in res.stderr and f"pid {holder.pid}" in res.stderr
        os.kill(holder.pid, signal.SIGKILL)  # a crash: the kernel drops its locks
        holder.wait(timeout=10)
        assert _devices(tmp_path, "waiter") in {"0", "1"}
    finally:
        holder.kill()
        assert _finish(tmp_path, ("waiter", waiter)) == [0]
    assert "waiting for 1 free GPU(s)" in waiter.stderr.read()


def test_two_gpu_jobs_on_a_four_gpu_box_get_disjoint_pairs(fake_box, tmp_path):
    env = {**fake_box, "CUDA_VISIBLE_DEVICES": "0,1,2,3"}  # the pool is what CUDA_VISIBLE_DEVICES allows
    a, b = _job(env, tmp_path, "a", 2), _job(env, tmp_path, "b", 2)
    try:
        got = [_devices(tmp_path, "a"), _devices(tmp_path, "b")]
        assert sorted(d for pair in got for d in pair.split(",")) == ["0", "1", "2", "3"]
    finally:
        assert _finish(tmp_path, ("a", a), ("b", b)) == [0, 0]


def test_more_gpus_than_the_box_has_is_an_error_and_zero_runs_as_is(fake_box, tmp_path):
    res = subprocess.run([sys.executable, "-m", "glueslim.gpus", "--gpus", "3", "--", "true"],
                         env=fake_box, capture_output=True, text=True)
    assert res.returncode == 2 and "asks for 3 GPU(s) but this machine has 2" in res.stderr
    res = subprocess.run([sys.executable, "-m", "glueslim.gpus", "--gpus", "0", "--", "sh", "-c",
                          'echo "${CUDA_VISIBLE_DEVICES-unset}"; exit 7'], env=fake_box, capture_output=True, text=True)
    assert res.returncode == 7 and res.stdout.strip() == "unset"  # the command's own exit status
