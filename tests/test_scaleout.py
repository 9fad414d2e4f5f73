"""Scale-out without a GPU: the precision choice with mocked CUDA capabilities, the per-job GPU slot pool on
faked GPU counts, batch sharding, the SLURM and local profiles by dry runs, the conda environment against
pyproject, and (marked e2e) two-process training with a kill and a resume, over gloo on CPU."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from conftest import ROOT, SHARED_VOCAB, make_tiny_bert
from glueslim import gpus, train
from glueslim.errors import UserError

# ---------------------------------------------------------------- precision, TF32, sharding


@pytest.mark.parametrize("requested, device, capability, expected", [
    ("auto", "cpu", None, "no"),            # a CPU without native bf16 trains in fp32
    ("bf16", "cpu", None, "no"),
    ("fp16", "cpu", None, "no"),
    ("auto", "cuda", (9, 0), "bf16"),       # H100
    ("auto", "cuda", (8, 0), "bf16"),       # A100
    ("auto", "cuda", (8, 6), "bf16"),       # RTX 30xx
    ("auto", "cuda", (7, 5), "fp16"),       # T4: fp16 with loss scaling
    ("auto", "cuda", (7, 0), "fp16"),       # V100
    ("fp16", "cuda", (9, 0), "fp16"),
    ("bf16", "cuda", (8, 0), "bf16"),
    ("fp32", "cuda", (9, 0), "no"),
])
def test_precision_choice(requested, device, capability, expected):
    assert train.choose_precision(requested, device, capability) == expected


@pytest.mark.parametrize("requested, expected", [("auto", "bf16"), ("bf16", "bf16"), ("fp16", "no"), ("fp32", "no")])
def test_cpu_with_native_bf16_trains_in_bf16_unless_told_otherwise(requested, expected):
    assert train.choose_precision(requested, "cpu", None, cpu_bf16=True) == expected


def test_bf16_cpu_training_keeps_fp32_weights_and_learns(tmp_path):
    """The CPU bf16 path end to end, where this CPU has it: autocast in the loop, fp32 weights saved."""
    if not train.cpu_has_native_bf16():
        pytest.skip("this CPU has no AVX512-BF16 or AMX")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from glueslim.tasks import get_task

    path = make_tiny_bert(tmp_path / "m", layers=2, hidden=32, vocab=SHARED_VOCAB)
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForSequenceClassification.from_pretrained(path)
    rows = [{"idx": i, "text_a": "good fun" if i % 2 else "bad awful", "text_b": None, "label": i % 2}
            for i in range(64)]
    feats = train.encode(tok, rows, 16)
    args = SimpleNamespace(learning_rate=3e-3, epochs=6, batch_size=16, eval_batch_size=32, max_seq_length=16,
                           warmup_ratio=0.0, weight_decay=0.0, grad_clip=1.0, gradient_accumulation_steps=1,
                           seed=0, threads=1, device="cpu", precision="auto", tf32=True,
                           checkpoint_dir=str(tmp_path / "ckpt"))
    history = train.train(model, tok, get_task("sst2"), feats, feats, args)
    assert [h["precision"] for h in history] == ["bf16"] * 6
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_metrics"]["accuracy"] == 1.0


def test_bf16_on_a_gpu_without_it_is_refused():
    with pytest.raises(UserError, match="no native bf16"):
        train.choose_precision("bf16", "cuda", (7, 5))


class _FakeAccelerator:
    def __init__(self, **kwargs):
        self.kwargs, self.device, self.num_processes, self.is_main_process = kwargs, "cuda:0", 1, True


def _training_args(**kw):
    return SimpleNamespace(**{"device": "auto", "precision": "auto", "tf32": True, **kw})


@pytest.mark.parametrize("capability, expected", [((8, 0), "bf16"), ((7, 5), "fp16")])
def test_accelerator_gets_the_precision_and_tf32_of_the_gpu(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    monkeypatch.setattr(train, "Accelerator", _FakeAccelerator)
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        for tf32 in (False, True):
            acc, precision = train.make_accelerator(_training_args(tf32=tf32))
            assert precision == expected and acc.kwargs["mixed_precision"] == expected
            assert acc.kwargs["cpu"] is False
            assert acc.kwargs["dataloader_config"].split_batches  # scheduler steps once per optimizer step
            assert torch.backends.cuda.matmul.allow_tf32 is tf32 and torch.backends.cudnn.allow_tf32 is tf32
        acc, precision = train.make_accelerator(_training_args(precision="fp32"))
        assert precision == "no"
        for native, want in ((False, "no"), (True, "bf16")):  # CUDA there, CPU asked for: the CPU's own choice
            monkeypatch.setattr(train, "cpu_has_native_bf16", lambda native=native: native)
            acc, precision = train.make_accelerator(_training_args(device="cpu"))
            assert precision == want and acc.kwargs["mixed_precision"] == want and acc.kwargs["cpu"] is True
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_cuda_asked_for_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="device: cuda"):
        train.make_accelerator(_training_args(device="cuda"))


def test_shards_split_every_batch_across_processes():
    batches = train.length_grouped_batches([(i * 7) % 23 for i in range(101)], 8, seed=1)
    assert train.shard_batches(batches, 0, 1) is batches  # one process: unchanged
    shards = [train.shard_batches(batches, r, 3) for r in range(3)]
    assert len({len(s) for s in shards}) == 1  # every process takes the same number of steps
    kept = [b for b in batches if len(b) >= 3]  # the epoch's last batch of 101 % 8 = 5 stays
    for k, batch in enumerate(kept):  # each global batch is split into disjoint shares
        parts = [shards[r][k] for r in range(3)]
        assert sorted(i for p in parts for i in p) == sorted(batch)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


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


# ---------------------------------------------------------------- profiles (dry runs)

GPU_RULES = {"finetune_teacher", "finetune_baseline", "distill_student", "teacher_outputs", "prune_heads",
             "predict", "profile"}
TRAIN_RULES = {"finetune_teacher", "finetune_baseline", "distill_student"}
CLASS = {"finetune_teacher": "train", "distill_student": "train", "teacher_outputs": "infer", "predict": "infer",
         "profile": "infer", "prepare_data": "light", "score": "light", "leaderboard": "light"}
RESOURCES = {"train": {"mem_mb": 32000, "runtime": 720}, "infer": {"mem_mb": 16000, "runtime": 120},
             "light": {"mem_mb": 4000, "runtime": 30}}


def _dry_run(tmp_path, profile: str, **overrides) -> list[dict]:
    """`snakemake -n` on the tiny test config: one record per job (rule, threads, resources, shell)."""
    cfg = yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())
    cfg["data"]["glue_dir"] = None  # the hub: nothing to check on disk, nothing fetched by a dry run
    cfg["teacher"]["model"] = "org/teacher"
    for b in cfg.get("baselines") or []:  # list or mapping, whichever the schema takes
        (b if isinstance(b, dict) and "model" in b else cfg["baselines"][b])["model"] = "org/baseline"
    cfg.update(threads=6, resources=RESOURCES, **overrides)
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if k not in ("GLUE_DIR", "CUDA_VISIBLE_DEVICES")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    # --cores 64: a dry run caps threads at --cores (1 by default), a cluster run does not
    res = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"),
                          "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"),
                          "--workflow-profile", str(ROOT / "profiles" / profile), "--cores", "64"],
                         capture_output=True, text=True, env=env, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    jobs = []
    for block in re.split(r"\n(?=rule \w+:\n)", out)[1:]:
        job = {"rule": re.match(r"rule (\w+):", block).group(1), "threads": 1, "resources": {}, "shell": ""}
        if m := re.search(r"^\s+threads: (\d+)$", block, re.M):
            job["threads"] = int(m.group(1))
        if m := re.search(r"^\s+resources: (.*)$", block, re.M):
            for item in m.group(1).split(", "):
                key, _, value = item.partition("=")
                job["resources"][key] = int(value) if value.isdigit() else value
        if m := re.search(r"^Shell command: (.*)$", block, re.M):
            job["shell"] = m.group(1)
        jobs.append(job)
    assert jobs, out[-3000:]
    return jobs


class _Resources(dict):
    __getattr__ = dict.__getitem__


def _sbatch(job: dict) -> str:
    """The sbatch line snakemake-executor-plugin-slurm would submit for a dry-run job."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    fake = SimpleNamespace(resources=_Resources(job["resources"]), threads=job["threads"], name=job["rule"])
    part = job["resources"].get("slurm_partition")
    params = {"run_uuid": "x", "slurm_logfile": "x.log", "comment_str": job["rule"], "account": "",
              "partition": f"-p {part}" if part else "", "workdir": "."}
    return get_submit_command(fake, params) + set_gres_string(fake)


def test_slurm_profile_requests_per_rule(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    jobs = _dry_run(tmp_path, "slurm", device="auto", gpu={"train_gpus": 2})  # the profile says device: cuda
    rules = {j["rule"] for j in jobs}
    assert {"finetune_teacher", "distill_student", "predict", "profile", "prepare_data", "score"} <= rules
    for job in jobs:
        rule, res = job["rule"], job["resources"]
        if rule == "all":
            continue
        assert res.get("mem_mb") and res.get("runtime"), job  # every SLURM job has a memory and a time limit
        if rule in CLASS:
            assert (res["mem_mb"], res["runtime"]) == tuple(RESOURCES[CLASS[rule]].values()), job
        if rule in ("predict", "profile") and "-int8/" in job["shell"]:  # int8 kernels run on the CPU
            assert res["gpu"] == 0 and job["shell"].startswith("python -m glueslim.gpus --gpus 0 -- "), job
        elif rule in GPU_RULES:
            n = 2 if rule in TRAIN_RULES else 1
            assert res["gpu"] == n and res["slurm_partition"] == "gpu", job
            assert job["threads"] == 6, job
            wrapper = f"python -m glueslim.gpus --gpus {n} {'--distributed ' if rule in TRAIN_RULES else ''}-- "
            assert job["shell"].startswith(wrapper), job
            if rule in TRAIN_RULES:
                assert "--device cuda" in job["shell"] and "--precision auto" in job["shell"], job
        else:
            assert not res.get("gpu") and "slurm_partition" not in res, job
    by_rule = {j["rule"]: j for j in jobs}
    sbatch = _sbatch(by_rule["finetune_teacher"])
    assert "--gpus=2" in sbatch and "--cpus-per-task=6" in sbatch and "-p gpu" in sbatch, sbatch
    assert "--mem 32000" in sbatch and "-t 720" in sbatch, sbatch
    sbatch = _sbatch(next(j for j in jobs if j["rule"] == "predict" and "-int8/" not in j["shell"]))
    assert "--gpus=1" in sbatch and "--mem 16000" in sbatch and "-t 120" in sbatch, sbatch
    sbatch = _sbatch(by_rule["score"])
    assert "--gpus" not in sbatch and "--cpus-per-task=1" in sbatch and "--mem 4000" in sbatch and "-t 30" in sbatch


def test_slurm_profile_keys(tmp_path):
    prof = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert prof["executor"] == "slurm" and prof["retries"] >= 1 and prof["config"]["device"] == "cuda"
    assert GPU_RULES <= set(prof["set-resources"])  # every GPU rule goes to a GPU partition
    assert all("slurm_extra" not in v for v in prof["set-resources"].values())  # gpu is mapped by the plugin


def test_local_profile_on_cpu_and_gpu(tmp_path):
    jobs = _dry_run(tmp_path / "cpu", "local", device="cpu")
    assert all(not j["resources"].get("gpu") for j in jobs)
    assert all(j["shell"].startswith("python -m glueslim.gpus --gpus 0 ") for j in jobs if j["rule"] in GPU_RULES)
    jobs = _dry_run(tmp_path / "cuda", "local", device="cuda")
    assert {j["rule"] for j in jobs if j["resources"].get("gpu") == 1} >= GPU_RULES & {j["rule"] for j in jobs}


# ---------------------------------------------------------------- conda environment

CONDA_NAME = {"torch": "pytorch"}  # pip name -> conda-forge name where they differ
NOT_IN_ENV = {"snakemake"}  # drives the jobs from its own environment


def _conda_spec(line: str) -> tuple[str, str]:
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(.*)", line.strip())
    return m.group(1).lower(), m.group(2).replace(" ", "")


@pytest.mark.parametrize("env_file", sorted((ROOT / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_conda_environment_matches_pyproject(env_file):
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load(env_file.read_text())
    specs = dict(_conda_spec(d) for d in env["dependencies"] if isinstance(d, str))
    assert "defaults" not in env["channels"] and env["channels"][0] == "conda-forge"
    wanted = {}
    for dep in project["dependencies"]:
        req = Requirement(dep)
        if req.name.lower() not in NOT_IN_ENV:
            wanted[CONDA_NAME.get(req.name.lower(), req.name.lower())] = str(req.specifier)
    assert {k: v for k, v in specs.items() if k != "python"} == wanted
    python = specs["python"].lstrip("=")  # "=3.11": any 3.11.x
    assert SpecifierSet(project["requires-python"]).contains(python + ".0")
    rules = " ".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    assert re.search(r'CONDA_ENV = "\.\./\.\./envs/' + re.escape(env_file.name) + '"', rules)


# ---------------------------------------------------------------- two processes, killed and resumed

TRAIN_FLAGS = ["--device", "cpu", "--threads", "1", "--epochs", "2", "--batch-size", "8", "--learning-rate",
               "1e-3", "--max-seq-length", "32", "--eval-batch-size", "16"]


@pytest.mark.e2e
def test_two_process_training_resumes_after_a_kill(tmp_path):
    """The multi-GPU path on CPU: glueslim.gpus --distributed -> torch.distributed.run -> accelerate (gloo)."""
    model = make_tiny_bert(tmp_path / "bert", vocab=SHARED_VOCAB)
    env = {k: v for k, v in os.environ.items() if k not in ("SLURM_JOB_ID",)}
    env.update(CUDA_VISIBLE_DEVICES="0,1,2,3", PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]),
               **{gpus.LOCK_DIR_ENV: str(tmp_path / "locks")})

    def launch(name, **extra_env):
        return subprocess.Popen(
            [sys.executable, "-m", "glueslim.gpus", "--gpus", "2", "--distributed", "--", sys.executable, "-m",
             "ddp_worker", str(model), str(tmp_path / name), "--checkpoint-dir", str(tmp_path / f"{name}.ckpt"),
             *TRAIN_FLAGS], env={**env, **extra_env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    # a straight run and one that dies in epoch 2 (6 steps per epoch), side by side on a 4-GPU box
    straight, killed = launch("straight"), launch("resumed", DIE_AT="9")
    out_s, out_k = straight.communicate(timeout=600)[0], killed.communicate(timeout=600)[0]
    assert straight.returncode == 0, out_s[-3000:]
    assert killed.returncode != 0 and not (tmp_path / "resumed").exists(), out_k[-3000:]
    pairs = [re.search(r"CUDA_VISIBLE_DEVICES=(\S+)", o).group(1) for o in (out_s, out_k)]
    assert sorted(",".join(pairs).split(",")) == ["0", "1", "2", "3"]  # disjoint GPU pairs
    ckpt = tmp_path / "resumed.ckpt"
    assert (ckpt / "epoch_1" / "DONE").exists() and not (ckpt / "epoch_2").exists()
    assert sorted(p.name for p in (ckpt / "epoch_1").glob("random_states_*")) == [
        "random_states_0.pkl", "random_states_1.pkl"]  # one RNG state per process

    resumed = launch("resumed")
    out_r = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, out_r[-3000:]
    assert "resuming after epoch 1" in out_r
    log = [yaml.safe_load(line) for line in (tmp_path / "resumed" / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and {r["processes"] for r in log} == {2}
    assert log[-1]["lr"] == 0.0  # the schedule ran out exactly: one scheduler step per global batch
    assert not ckpt.exists()  # spent checkpoints removed once the model is saved
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(tmp_path / "resumed" / "model.safetensors")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_tinybert_ablation_variants_change_one_ingredient_each(tmp_path):
    """The ablation's jobs, from a dry run: each variant's command differs from the base's in what it names."""
    tb = {"students": [{"name": "tb", "num_layers": 2, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64,
                        "init": "general", "augment": True}],
          "ablation": {"base": "tb", "tasks": ["sst2"],
                       "variants": ["no-general", "no-augment", "no-general-no-augment", "no-attention"]}}
    jobs = _dry_run(tmp_path, "local", tinybert=tb, device="cpu")
    shell = {re.search(r"--out (\S+)", j["shell"]).group(1): j["shell"]
             for j in jobs if j["rule"] in ("tinybert_distill", "tinybert_ablation_distill")}
    base = shell["results/models/tb/sst2"]
    assert "--init results/general/tb" in base and "--augmented results/augmented/sst2" in base
    variant = {k.split("/")[2]: v for k, v in shell.items() if k.startswith("results/tinybert_ablation/")}
    assert set(variant) == {"tb-no-general", "tb-no-augment", "tb-no-general-no-augment", "tb-no-attention"}
    assert "--init random" in variant["tb-no-general"] and "--augmented" in variant["tb-no-general"]
    assert "--init results/general/tb" in variant["tb-no-augment"] and "--augmented" not in variant["tb-no-augment"]
    both = variant["tb-no-general-no-augment"]
    assert "--init random" in both and "--augmented" not in both
    assert "attention" not in re.search(r"--intermediate ([^-]*)", variant["tb-no-attention"]).group(1)
