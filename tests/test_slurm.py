"""The workflow on a real SLURM through profiles/slurm: a one-node cluster (tests/slurm/cluster.sh: munged,
mariadbd, slurmdbd, slurmctld, slurmd; partitions `cpu`, the default, and `gpu`; one counted GPU per CPU)
runs the tiny config to the leaderboard. SLURM's own accounting (sacct), not the profile file, shows where
each job ran: every job whose `gpu` resource is > 0 (read from the workflow's dry run) on partition `gpu`
with gres/gpu=1, every other job on the default partition without a GPU. A second run's teacher is killed
by `scancel --signal=TERM` after its first epoch checkpoint; the profile's `retries` resubmits it, it
resumes after epoch 1 and ends with the same weights as an uninterrupted run. Needs root (the daemons)
and Debian's packages (`tests/slurm/cluster.sh install`, which the fixture runs when they are missing);
skipped otherwise.

The node has no real GPU. The profile's `device: cuda` would make torch fail on its CPU, so the runs pass
the profile's `config:` again with `device=auto`, and a stand-in `nvidia-smi` on PATH lets the workflow's
auto-detection count a GPU (workflow/rules/common.smk): each GPU job then asks SLURM for one, glueslim.gpus
hands it the GPU SLURM named in CUDA_VISIBLE_DEVICES, and torch, finding no CUDA, trains on the CPU."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, SHARED_GLUE, SHARED_VOCAB, make_tiny_bert, needs_shared
from test_workflow import base_config, copy_head, tiny_glue

pytestmark = [pytest.mark.e2e, pytest.mark.slurm, needs_shared]

CLUSTER_SH = ROOT / "tests" / "slurm" / "cluster.sh"
PROFILE = ROOT / "profiles" / "slurm"
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
COMMANDS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd", "sbatch", "sacct", "scancel", "squeue")
DAEMONS = {"munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd", "slurmstepd"}
PID_FILES = ("munged.pid", "mysql/mariadbd.pid", "slurmdbd.pid", "slurmctld.pid", "slurmd.pid")
RUN_TIMEOUT = 900  # seconds for all the runs together; the test takes about 3-5 minutes on 2 cores


# ---------------------------------------------------------------- the cluster

def _clock_ticks() -> float:
    return float(Path("/proc/uptime").read_text().split()[0]) * os.sysconf("SC_CLK_TCK")


def started_since(ticks: float, cluster: Path) -> list[str]:
    """Live processes started since `ticks` (clock ticks after boot) that belong to the test cluster: its
    daemons and job step managers, and any process of one of its jobs."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            comm = stat[stat.index("(") + 1: stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] == "Z" or int(fields[19]) < ticks:  # a zombie holds nothing; or it was there before
                continue
            environ = (proc / "environ").read_bytes()
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        if comm in DAEMONS or (b"SLURM_CLUSTER_NAME=glueslim\0" in environ and b"SLURM_JOB_ID=" in environ):
            found.append(f"{proc.name} ({comm})")
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A running one-node SLURM: yields the environment for its commands (SLURM_CONF set). Afterwards every
    job is cancelled, every daemon is stopped by its PID, and nothing the cluster started is left running."""
    if os.geteuid() != 0:
        pytest.skip("a one-node SLURM needs root (it starts munged, mariadbd, slurmdbd, slurmctld and slurmd); "
                    "run the tests as root, or deselect them with -m 'not slurm'")
    missing = [c for c in COMMANDS if not shutil.which(c, path=SBIN_PATH)]
    if missing:
        if not shutil.which("apt-get"):
            pytest.skip(f"SLURM is not installed ({', '.join(missing)} missing) and there is no apt-get to install "
                        f"it; install slurm-wlm, munge, slurmdbd and mariadb-server")
        try:
            res = subprocess.run(["bash", str(CLUSTER_SH), "install"], capture_output=True, text=True, timeout=900)
            failed = res.returncode != 0 and (res.stderr or res.stdout).strip()[-500:]
        except subprocess.TimeoutExpired:
            failed = "apt-get took more than 900 s"
        if failed or (failed := [c for c in COMMANDS if not shutil.which(c, path=SBIN_PATH)]):
            pytest.skip(f"SLURM could not be installed (tests/slurm/cluster.sh install): {failed}")
    cluster = tmp_path_factory.mktemp("slurm-cluster")
    ticks = _clock_ticks() - 1
    env = {**os.environ, "PATH": SBIN_PATH, "SLURM_CONF": str(cluster / "slurm.conf")}
    started: list[int] = []
    try:
        res = subprocess.run(["bash", str(CLUSTER_SH), "start", str(cluster)], capture_output=True, text=True,
                             timeout=180, env=env)
        started = [int(p.read_text()) for f in PID_FILES if (p := cluster / f).exists() and p.read_text().strip()]
        assert res.returncode == 0, f"cluster.sh start {cluster} failed: {res.stdout[-500:]}{res.stderr[-2000:]}"
        assert len(started) == len(PID_FILES), f"pid files: {started}"
        yield env
    finally:
        _teardown(cluster, env, started, ticks)


def _teardown(cluster: Path, env: dict, started: list[int], ticks: float) -> None:
    if (cluster / "slurmctld.pid").exists():  # cancel what a failed test left queued or running
        jobs = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, env=env).stdout.split()
        if jobs:
            subprocess.run(["scancel", *jobs], env=env)
            for _ in range(150):
                if not subprocess.run(["squeue", "-h"], capture_output=True, text=True, env=env).stdout.strip():
                    break
                time.sleep(0.2)
    subprocess.run(["bash", str(CLUSTER_SH), "stop", str(cluster)], env=env, timeout=120)
    shutil.rmtree(cluster / "mysql", ignore_errors=True)  # the accounting database: ~200 MB
    left = [pid for pid in started if _alive(pid)]
    assert not left, f"daemons still running after cluster.sh stop: {left}"
    for _ in range(50):  # job step managers exit a moment after slurmd
        if not (left := started_since(ticks, cluster)):
            break
        time.sleep(0.2)
    assert not left, f"processes of the test cluster still running: {left}"


def sacct(env: dict, since: datetime) -> list[dict]:
    out = subprocess.run(
        ["sacct", "-X", "--parsable2", "--noheader", "-S", since.strftime("%Y-%m-%dT%H:%M:%S"),
         "--format=JobID,Comment,Partition,AllocTRES,State,ReqTRES,WorkDir"],
        capture_output=True, text=True, env=env, check=True).stdout
    keys = ("id", "comment", "partition", "alloc", "state", "req", "workdir")
    return [dict(zip(keys, line.split("|"))) for line in out.splitlines() if line.strip()]


def default_partition(env: dict) -> str:
    parts = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, env=env).stdout.split()
    return next(p.rstrip("*") for p in parts if p.endswith("*"))


# ---------------------------------------------------------------- the runs

def profile_overrides() -> list[str]:
    """The profile's own `config:` entries with device=auto (see the module docstring): a --config on the
    command line replaces the profile's, so they are passed again."""
    cfg = yaml.safe_load((PROFILE / "config.yaml").read_text())["config"]
    return [f"{k}={json.dumps(v)}" for k, v in {**cfg, "device": "auto"}.items()]


def snakemake_cmd(workdir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(workdir / "config.yaml"), "--workflow-profile", str(PROFILE),
            "--config", *profile_overrides(),
            "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1", *extra]


def start(cmd: list[str], workdir: Path, env: dict) -> subprocess.Popen:
    log = open(workdir / "snakemake.out", "w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env, cwd=workdir)


def tail(workdir: Path, n: int = 4000) -> str:
    return (workdir / "snakemake.out").read_text()[-n:]


def stop(proc: subprocess.Popen) -> None:
    """SIGINT (Snakemake's main process ignores SIGTERM while jobs run; SIGINT cancels them), then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def dry_run_jobs(workdir: Path, env: dict, *targets: str) -> dict[str, int]:
    """{SLURM job comment: GPUs} of every job the run submits, from the workflow's own dry run: the comment
    the SLURM executor gives a job is rule_<rule>_wildcards_<values joined by _>."""
    res = subprocess.run(snakemake_cmd(workdir, "-n", *targets), capture_output=True, text=True, env=env,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = {}
    for block in re.split(r"\n\s*\n", res.stdout + "\n" + res.stderr):
        m = re.search(r"^rule (\w+):$", block, re.M)
        if not m:
            continue  # localrule all, Job stats, ...
        w = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        values = [kv.split("=", 1)[1] for kv in w.group(1).split(", ")] if w else []
        comment = f"rule_{m.group(1)}" + (f"_wildcards_{'_'.join(values)}" if values else "")
        r = re.search(r"^\s+resources: .*\bgpu=(\d+)", block, re.M)
        jobs[comment] = int(r.group(1)) if r else 0
    assert jobs, res.stdout[-3000:]
    return jobs


def squeue_job(env: dict, comment: str, workdir: Path) -> str | None:
    out = subprocess.run(["squeue", "-h", "-o", "%i|%k|%Z|%T"], capture_output=True, text=True, env=env).stdout
    for line in out.splitlines():
        jid, com, wd, state = line.split("|")
        if com == comment and Path(wd) == workdir and state == "RUNNING":
            return jid
    return None


def check_placement(rows: list[dict], expected: dict[str, int], default: str, where: str) -> None:
    for row in rows:
        gpus = expected[row["comment"]]
        if gpus > 0:
            assert row["partition"] == "gpu" and f"gres/gpu={gpus}" in row["alloc"], (where, row)
            assert f"gres/gpu={gpus}" in row["req"], (where, row)
        else:
            assert row["partition"] == default and "gres/gpu" not in row["alloc"], (where, row)


def test_workflow_runs_on_slurm_through_the_profile(slurm, tmp_path):
    t0 = time.monotonic()
    since = datetime.now() - timedelta(minutes=5)
    env = dict(slurm)
    env.pop("GLUE_DIR", None)
    fake = tmp_path / "bin"  # the stand-in nvidia-smi: the node's GPUs are counted by SLURM, not real
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: counted by SLURM (UUID: GPU-0)'\n")
    (fake / "nvidia-smi").chmod(0o755)
    env["PATH"] = os.pathsep.join([str(fake), str(Path(sys.executable).parent), env["PATH"]])
    model = make_tiny_bert(tmp_path / "tiny-bert", layers=4, vocab=SHARED_VOCAB)

    # the tiny config, cut to what covers every kind of job: a GPU rule's job with a GPU (training,
    # distillation, teacher outputs, prediction, profiling), a GPU rule's job without one (the int8 form's
    # prediction and profile) and the CPU rules (data, deployed forms, scores, leaderboard)
    main = tmp_path / "main"
    main.mkdir()
    cfg = base_config(tiny_glue(main), str(model), ["sst2"])
    cfg["students"], cfg["baselines"], cfg["pruning"]["models"] = cfg["students"][:1], [], []
    cfg["students"][0]["twin"], cfg["seeds"], cfg["ablation"] = False, None, None  # one run of one student
    cfg["profile"].update(batch_sizes=[1], compile_batch_sizes=[])
    # a GPU box runs no CPU-kernel form natively: emulated, the int8 form's jobs run on the CPU nodes
    cfg["deploy"].update(forms=["fp32", "int8-static"], emulated=True)
    (main / "config.yaml").write_text(yaml.safe_dump(cfg))
    # the run whose teacher is killed: epochs of a few seconds (3000 SST-2 rows), 3 of them
    killed = tmp_path / "killed"
    glue = killed / "glue"
    killed_rows = 3000  # all of them: the tiny config's cap (64) makes epochs too short to kill one
    copy_head(SHARED_GLUE / "SST-2" / "train.tsv", glue / "SST-2" / "train.tsv", killed_rows)
    copy_head(SHARED_GLUE / "SST-2" / "dev.tsv", glue / "SST-2" / "dev.tsv", 48)
    kcfg = base_config(glue, str(model), ["sst2"])
    kcfg["device"] = "auto"
    kcfg["data"]["max_train_examples"] = {"sst2": killed_rows}
    kcfg["finetune"]["epochs"] = 3
    (killed / "config.yaml").write_text(yaml.safe_dump(kcfg))
    # the same job uninterrupted, on this machine without SLURM (no nvidia-smi: no GPU wrapper; both on the CPU)
    local = tmp_path / "local"
    local.mkdir()
    (local / "config.yaml").write_text(yaml.safe_dump(kcfg))
    teacher = "results/models/teacher/sst2"

    expected = dry_run_jobs(main, env, "leaderboard")
    kexpected = dry_run_jobs(killed, env, teacher)
    assert any(g > 0 for g in expected.values()) and any(g == 0 for g in expected.values()), expected

    local_env = {**env, "PATH": os.pathsep.join([str(Path(sys.executable).parent), slurm["PATH"]])}
    procs = {
        "local": start([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(local),
                        "--configfile", str(local / "config.yaml"), "--cores", "1", teacher], local, local_env),
        "killed": start(snakemake_cmd(killed, teacher), killed, env),
        "main": start(snakemake_cmd(main, "leaderboard"), main, env),
    }
    workdirs = {"local": local, "killed": killed, "main": main}
    comment = "rule_finetune_teacher_wildcards_sst2"
    epoch1 = killed / "results/checkpoints/teacher/sst2/epoch_1/DONE"
    job_id = cancelled = None
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while any(p.poll() is None for p in procs.values()):
            assert time.monotonic() < deadline, {k: tail(w, 1500) for k, w in workdirs.items()}
            if cancelled is None:
                job_id = job_id or squeue_job(env, comment, killed)
                if job_id and epoch1.exists():  # kill the teacher in its second epoch
                    # SIGTERM to the job's processes, as at a time limit or pre-emption: SLURM marks the job
                    # FAILED. (A plain `scancel`, or --signal=KILL, marks it "CANCELLED by <uid>", which the
                    # SLURM executor plugin 2.8.0 takes for a running job: Snakemake would wait forever.)
                    subprocess.run(["scancel", "--signal=TERM", job_id], env=env, check=True)
                    cancelled = job_id
                    print(f"scancel --signal=TERM {job_id} after epoch 1 at {time.monotonic() - t0:.0f} s")
                assert not (killed / teacher).exists(), "the teacher finished before it could be cancelled"
            time.sleep(0.2)
    finally:
        for p in procs.values():
            stop(p)
    for name, p in procs.items():
        assert p.returncode == 0, f"{name}: {tail(workdirs[name])}"
    assert cancelled, "the teacher's SLURM job was never seen running with an epoch checkpoint"

    # where every job ran, from SLURM's accounting
    rows = sacct(env, since)
    default = default_partition(env)
    assert default == "cpu"
    mine = [r for r in rows if Path(r["workdir"]) == main]
    assert sorted(r["comment"] for r in mine) == sorted(expected), "every job of the run, once, on SLURM"
    assert all(r["state"] == "COMPLETED" for r in mine), [r for r in mine if r["state"] != "COMPLETED"]
    check_placement(mine, expected, default, "main")
    gpu_jobs = sorted({c.split("_wildcards_")[0] for c, g in expected.items() if g > 0})
    print(f"{len(mine)} jobs; with a GPU on partition gpu: {', '.join(gpu_jobs)}")

    # the kill: cancelled, resubmitted by `retries`, resumed after epoch 1, the same weights as without a kill
    krows = [r for r in rows if Path(r["workdir"]) == killed]
    check_placement(krows, kexpected, default, "killed")
    states = [(r["id"], r["state"]) for r in krows if r["comment"] == comment]
    assert len(states) == 2 and states[0][0] == cancelled, states
    assert states[0][1] == "FAILED" and states[1][1] == "COMPLETED", states
    assert all(r["state"] == "COMPLETED" for r in krows if r["comment"] != comment), krows
    log = (killed / "logs/finetune_teacher/sst2.log").read_text()
    assert "resuming after epoch 1 " in log, log[-3000:]
    history = [json.loads(line)["epoch"] for line in (killed / teacher / "train_log.jsonl").open()]
    assert history == [1, 2, 3]
    from safetensors.torch import load_file
    import torch

    got, want = load_file(killed / teacher / "model.safetensors"), load_file(local / teacher / "model.safetensors")
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want), [k for k in want if not torch.equal(got[k], want[k])]

    # the leaderboard, with a row per model
    board = next(p for p in main.rglob("leaderboard.json") if ".snakemake" not in p.parts)
    doc = json.loads(board.read_text())
    assert sorted(r["model"] for r in doc["rows"]) == ["distil", "distil-int8-static", "teacher"]
    print(f"SLURM test: {time.monotonic() - t0:.0f} s")
