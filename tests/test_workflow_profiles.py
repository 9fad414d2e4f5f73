"""The profiles by dry runs: what each job asks SLURM for (every job that gets a GPU, found from the jobs
themselves, goes to the GPU partition; no other job does), the local profile on CPU and GPU, the TinyBERT
ablation's jobs, and the conda environment the rules name against pyproject."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from conftest import ROOT

CLASS = {"finetune_teacher": "train", "distill_student": "train", "teacher_outputs": "infer", "predict": "infer",
         "profile": "infer", "prepare_data": "light", "score": "light", "leaderboard": "light"}
RESOURCES = {"train": {"mem_mb": 32000, "runtime": 720}, "infer": {"mem_mb": 16000, "runtime": 120},
             "light": {"mem_mb": 4000, "runtime": 30}}
# one TinyBERT student with an ablation, so that every rule of the workflow has a job
TINYBERT = {"students": [{"name": "tb", "num_layers": 2, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64,
                          "init": "general", "augment": True}],
            "ablation": {"base": "tb", "tasks": ["sst2"],
                         "variants": ["no-general", "no-augment", "no-general-no-augment", "no-attention"]}}


def dry_run(tmp_path, profile: str, **overrides) -> list[dict]:
    """`snakemake -n` on the tiny test config: one record per job (rule, threads, resources, shell)."""
    cfg = yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())
    cfg["data"]["glue_dir"] = None  # the hub: nothing to check on disk, nothing fetched by a dry run
    cfg["teacher"]["model"] = "org/teacher"
    for b in cfg["baselines"]:
        b["model"] = "org/baseline"
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


def workflow_rules() -> set[str]:
    """Every rule of the workflow but `all` (snakemake --list-rules, on config.yaml)."""
    env = {k: v for k, v in os.environ.items() if k != "GLUE_DIR"}
    res = subprocess.run([sys.executable, "-m", "snakemake", "--list-rules", "-s", str(ROOT / "Snakefile")],
                         capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return {line.split()[0] for line in res.stdout.splitlines() if line.strip()} - {"all"}


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
    # the profile says device: cuda
    jobs = dry_run(tmp_path, "slurm", device="auto", gpu={"train_gpus": 2}, tinybert=TINYBERT)
    assert {j["rule"] for j in jobs} - {"all"} == workflow_rules()  # every rule is checked below
    gpu_rules = set()
    for job in jobs:
        rule, res = job["rule"], job["resources"]
        if rule == "all":
            continue
        assert res.get("mem_mb") and res.get("runtime"), job  # every SLURM job has a memory and a time limit
        if rule in CLASS:
            assert (res["mem_mb"], res["runtime"]) == tuple(RESOURCES[CLASS[rule]].values()), job
        # the GPU partition follows from the job's own gpu resource, whatever the rule
        if res.get("gpu", 0) > 0:
            gpu_rules.add(rule)
            assert res["slurm_partition"] == "gpu", job
            assert job["threads"] == 6, job
            training = "--distributed" in job["shell"]  # one process per GPU: the training rules
            assert res["gpu"] == (2 if training else 1), job
            assert job["shell"].startswith(f"python -m glueslim.gpus --gpus {res['gpu']} "), job
            if training:
                assert "--device cuda" in job["shell"] and "--precision auto" in job["shell"], job
        else:
            assert "slurm_partition" not in res, job
            if "gpu" in res:  # int8 kernels run on the CPU
                assert "-int8" in job["shell"] and job["shell"].startswith("python -m glueslim.gpus --gpus 0 -- "), job
    assert {"finetune_teacher", "finetune_baseline", "distill_student", "teacher_outputs", "prune_heads", "predict",
            "profile", "tinybert_general", "tinybert_augment", "tinybert_distill",
            "tinybert_ablation_distill"} <= gpu_rules
    by_rule = {j["rule"]: j for j in jobs}
    sbatch = _sbatch(by_rule["finetune_teacher"])
    assert "--gpus=2" in sbatch and "--cpus-per-task=6" in sbatch and "-p gpu" in sbatch, sbatch
    assert "--mem 32000" in sbatch and "-t 720" in sbatch, sbatch
    sbatch = _sbatch(next(j for j in jobs if j["rule"] == "predict" and "-int8/" not in j["shell"]))
    assert "--gpus=1" in sbatch and "--mem 16000" in sbatch and "-t 120" in sbatch, sbatch
    sbatch = _sbatch(by_rule["score"])
    assert "--gpus" not in sbatch and "--cpus-per-task=1" in sbatch and "--mem 4000" in sbatch and "-t 30" in sbatch
    assert "-p " not in sbatch


def test_slurm_profile_keys(tmp_path):
    prof = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert prof["executor"] == "slurm" and prof["retries"] >= 1 and prof["config"]["device"] == "cuda"
    assert prof["config"]["slurm"]["gpu_partition"]  # every job that gets a GPU goes to this partition
    assert "set-resources" not in prof  # no per-rule list to keep in step with the rules


def test_local_profile_on_cpu_and_gpu(tmp_path):
    jobs = dry_run(tmp_path / "cpu", "local", device="cpu")
    assert all(not j["resources"].get("gpu") for j in jobs)
    assert all(j["shell"].startswith("python -m glueslim.gpus --gpus 0 ") for j in jobs if "glueslim.gpus" in j["shell"])
    jobs = dry_run(tmp_path / "cuda", "local", device="cuda")
    assert all("slurm_partition" not in j["resources"] for j in jobs)  # off SLURM: no partition
    on_gpus = {j["rule"] for j in jobs if j["shell"].startswith("python -m glueslim.gpus ")}
    assert {j["rule"] for j in jobs if j["resources"].get("gpu") == 1} >= on_gpus
    assert {"finetune_teacher", "distill_student", "teacher_outputs", "prune_heads", "predict", "profile"} <= on_gpus


def test_paired_profile_gives_trainings_one_thread_and_profile_jobs_the_config_threads(tmp_path):
    # profiles/paired, for a small CPU box: every rule it names is a rule of the workflow; through it the
    # training, labelling and prediction jobs take one thread (two run side by side on 2 cores) while
    # `profile` keeps the config's threads (6 here), so that on a box of that size it runs alone
    prof = yaml.safe_load((ROOT / "profiles" / "paired" / "config.yaml").read_text())
    paired = set(prof["set-threads"])
    assert paired <= workflow_rules() and "profile" not in paired
    assert {"finetune_teacher", "finetune_baseline", "distill_student", "predict"} <= paired
    plain = dry_run(tmp_path / "local", "local", device="cpu", tinybert=TINYBERT)
    jobs = dry_run(tmp_path / "paired", "paired", device="cpu", tinybert=TINYBERT)
    assert {j["rule"] for j in jobs} == {j["rule"] for j in plain}  # the same jobs, other threads
    assert {j["threads"] for j in plain if j["rule"] in paired} == {6}
    assert {j["threads"] for j in jobs if j["rule"] in paired} == {1}
    assert {j["threads"] for j in jobs if j["rule"] == "profile"} == {6}


def test_tinybert_ablation_variants_change_one_ingredient_each(tmp_path):
    """The ablation's jobs, from a dry run: each variant's command differs from the base's in what it names."""
    jobs = dry_run(tmp_path, "local", tinybert=TINYBERT, device="cpu")
    shell = {re.search(r"--out (\S+)", j["shell"]).group(1): j["shell"]
             for j in jobs if j["rule"] in ("tinybert_distill", "tinybert_ablation_distill")}
    base = shell["results/models/tb/sst2"]
    assert "--init results/general/tb" in base and "--augmented results/augmented/sst2" in base
    variant = {k.split("/")[2]: v for k, v in shell.items() if k.startswith("results/tinybert_ablation/")}
    assert set(variant) == {"tb-no-general", "tb-no-augment", "tb-no-general-no-augment", "tb-no-attention"}
    assert "--student random" in variant["tb-no-general"] and "--augmented" in variant["tb-no-general"]
    assert "--init results/general/tb" in variant["tb-no-augment"] and "--augmented" not in variant["tb-no-augment"]
    both = variant["tb-no-general-no-augment"]
    assert "--student random" in both and "--augmented" not in both
    assert "attention" not in re.search(r"--intermediate ([^-]*)", variant["tb-no-attention"]).group(1)


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
