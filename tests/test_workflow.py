"""The workflow: dry runs that check the configuration before any job and keep every target inside results/,
and (e2e) the Snakemake DAG on a tiny random BERT and tiny real-data fixtures, and once with the real teacher
from ../shared. Every leaderboard score is recomputed here from the saved predictions."""

from __future__ import annotations

import csv
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score

from conftest import ROOT, run_snakemake, SHARED_GLUE, SHARED_HF, make_tiny_bert, SHARED_VOCAB, needs_shared, stub_config

# ---------------------------------------------------------------- dry runs

def dry_run(workdir: Path, config: dict, *extra: str) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, config, *extra, cores=1, timeout=300)


def dry_run_config(tmp_path: Path) -> dict:
    """The tiny test config on a stub GLUE copy and a real tiny teacher folder (the start-up check reads a
    local model folder whole)."""
    return stub_config(tmp_path, make_tiny_bert(tmp_path / "teacher-model", vocab=SHARED_VOCAB))


def test_snakemake_reports_config_problems_before_any_job(tmp_path):
    cfg = dry_run_config(tmp_path)
    cfg["tasks"] = ["sst2", "sst3"]
    cfg["finetune"]["learning_rte"] = 1e-4
    cfg["teacher"]["model"] = "org/name/extra"  # well-formed for the schema; the start-up check catches it
    res = dry_run(tmp_path, cfg, "-n")
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "tasks[1] = 'sst3': expected one of cola, sst2" in out
    assert "finetune.learning_rte: unknown key (value 0.0001); did you mean learning_rate?" in out
    assert "Additional properties are not allowed" not in out  # not Snakemake's schema dump
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()
    del cfg["finetune"]["learning_rte"]
    cfg["tasks"] = ["sst2"]
    res = dry_run(tmp_path, cfg, "-n")
    assert res.returncode != 0
    assert "teacher.model: 'org/name/extra' looks like a path but is not a folder holding a model" in res.stderr
    assert not (tmp_path / "results").exists()


def test_wildcards_cannot_escape_results_and_remote_code_needs_a_name(tmp_path):
    cfg = dry_run_config(tmp_path)
    # targets a rule would match if its wildcards took any string ("teacher/x", "sst2/x", an unknown student)
    for target in ["results/scores/teacher/x.json", "results/data/sst2/x", "results/models/evil/sst2"]:
        res = dry_run(tmp_path, cfg, "-n", target)
        assert res.returncode != 0 and "MissingRuleException" in res.stdout + res.stderr, (target, res.stderr[-2000:])
    # a configured target is fine, and the teacher is fine-tuned without --trust-remote-code ...
    res = dry_run(tmp_path, cfg, "-n", "-p", "results/models/teacher/sst2")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "glueslim finetune" in res.stdout and "--trust-remote-code" not in res.stdout
    # ... unless the config names exactly that model
    cfg["trust_remote_code"] = [cfg["teacher"]["model"]]
    res = dry_run(tmp_path, cfg, "-n", "-p", "results/models/teacher/sst2")
    assert res.returncode == 0 and "--trust-remote-code" in res.stdout
    assert not (tmp_path / "results").exists()




def test_model_names_are_checked_before_any_job(tmp_path):
    cfg = dry_run_config(tmp_path)
    cfg["baselines"][0]["name"] = "distil-int8-static"  # also the int8 form of the student distil
    cfg["deploy"]["models"] = ["distil", "nobody"]
    res = dry_run(tmp_path, cfg, "-n")
    assert res.returncode != 0
    assert "deploy.models: 'nobody' is not a model of this run" in res.stderr
    cfg["deploy"]["models"] = ["distil"]
    res = dry_run(tmp_path, cfg, "-n")
    assert res.returncode != 0
    assert "model names must be unique across students, tinybert.students, baselines, pruning and deploy: " \
           "'distil-int8-static' names both baselines[0] and deploy (distil as int8-static); rename one" in res.stderr
    # the key deployed forms replaced: what to write instead
    del cfg["deploy"]
    cfg["quantization"] = {"models": ["distil"]}
    res = dry_run(tmp_path, cfg, "-n")
    assert res.returncode != 0
    assert "quantization = {'models': ['distil']}: replaced by deploy" in res.stderr
    assert "deploy: {models: ['distil'], forms: [fp32, int8-dynamic]}" in res.stderr
    assert not (tmp_path / "results").exists()


def tiny_teacher_config(tmp_path: Path, tiny_bert: Path) -> dict:
    """dry_run_config on the tiny saved BERT (4 layers of 4 heads, 512 positions) as teacher and baseline."""
    cfg = dry_run_config(tmp_path)
    cfg["teacher"]["model"] = str(tiny_bert)
    for b in cfg["baselines"]:
        b["model"] = str(tiny_bert)
    return cfg


def test_bad_values_stop_before_any_job_and_keep_the_last_model(tmp_path, tiny_bert):
    import copy

    base = tiny_teacher_config(tmp_path, tiny_bert)
    cfg = copy.deepcopy(base)
    kept = tmp_path / "results" / "models" / "teacher" / "sst2" / "glueslim.json"  # a previous run's model
    kept.parent.mkdir(parents=True)
    kept.write_text("{}")
    cfg["pruning"]["fractions"] = [0.5, 0.504, 0.02]  # one row name twice; round(0.02 x 16 heads) = 0
    cfg["students"].append({"name": "distil", "num_layers": 1})
    cfg["finetune"]["max_seq_length"] = 1024
    res = dry_run(tmp_path, cfg, "-n")
    assert res.returncode != 0
    for line in ["pruning.fractions[0] = 0.5 and pruning.fractions[1] = 0.504 both name the rows <model>-pruned50",
                 "pruning.fractions[2] = 0.02 removes no head of teacher (round(0.02 x 16 heads) = 0)",
                 f"'distil' names both students[0] and students[{len(cfg['students']) - 1}]; rename one",
                 "finetune.max_seq_length = 1024: the teacher", "has only 512 positions"]:
        assert line in res.stderr, (line, res.stderr[-3000:])
    # nested --config values are read as YAML (epochs 1 is fine), and a .nan in them is caught
    cfg = copy.deepcopy(base)
    res = dry_run(tmp_path, cfg, "-n", "--config", 'finetune={"epochs": 1, "warmup_ratio": .nan}',
                  'students=[]', "deploy={\"models\": []}")
    assert res.returncode != 0
    assert "finetune.warmup_ratio = nan: expected a finite number: a number >= 0, <= 1" in res.stderr
    assert "finetune.epochs" not in res.stderr
    res = dry_run(tmp_path, cfg, "-n", "-p", "--config", 'finetune={"epochs": 1}', "seed=4294967295")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "--epochs 1 " in res.stdout and "--epochs 1.0" not in res.stdout
    # a missing GLUE folder: one line, no stack frame from a .smk file
    cfg["data"]["glue_dir"] = str(tmp_path / "no-glue")
    res = dry_run(tmp_path, cfg, "-n")
    assert res.returncode != 0 and f"glueslim: local GLUE copy {tmp_path / 'no-glue'} is not a directory" in res.stderr
    assert 'File "' not in res.stderr and ".smk" not in res.stderr
    assert kept.read_text() == "{}" and not (tmp_path / "logs").exists()


def test_a_broken_workflow_config_file_is_named(tmp_path, tiny_bert):
    import shutil

    copy = tmp_path / "workflow-copy"  # the Snakefile reads config.yaml beside it
    copy.mkdir()
    shutil.copy(ROOT / "Snakefile", copy / "Snakefile")
    shutil.copytree(ROOT / "workflow", copy / "workflow")
    (copy / "src").symlink_to(ROOT / "src")
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text(yaml.safe_dump(tiny_teacher_config(tmp_path, tiny_bert)))
    for text, expected in [("tasks: [sst2\nseed: 1\n", "not valid YAML at line 2, column 5"), ("", "is empty"),
                           ("- tasks\n", "holds a list, expected a mapping of keys")]:
        (copy / "config.yaml").write_text(text)
        res = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(copy / "Snakefile"), "-d", str(tmp_path),
                              "--configfile", str(cfg_file), "-n", "--cores", "1"],
                             capture_output=True, text=True, timeout=300)
        assert res.returncode != 0
        assert f"glueslim: config file {copy / 'config.yaml'}: {expected}" in res.stderr, res.stderr[-2000:]
        assert 'File "' not in res.stderr


# ---------------------------------------------------------------- end to end

def snakemake(workdir: Path, config: dict, *extra: str) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, config, *extra, cores=2, timeout=1500)


def copy_head(src: Path, dst: Path, n: int, header: bool = True) -> None:
    """The first n data rows of an original GLUE file, bytes untouched."""
    lines = src.read_bytes().splitlines(keepends=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(b"".join(lines[: n + int(header)]))


def tiny_glue(root: Path) -> Path:
    glue = root / "glue"
    for d, n_train, n_dev in [("SST-2", 96, 48), ("STS-B", 96, 48)]:
        copy_head(SHARED_GLUE / d / "train.tsv", glue / d / "train.tsv", n_train)
        copy_head(SHARED_GLUE / d / "dev.tsv", glue / d / "dev.tsv", n_dev)
    return glue


def base_config(glue: Path, model: str, tasks: list[str]) -> dict:
    cfg = yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())
    cfg["data"]["glue_dir"] = str(glue)
    cfg["teacher"]["model"] = model
    cfg["baselines"][0]["model"] = model
    for s in cfg["students"]:
        if s.get("init") == "FILLED_IN_BY_THE_TEST":
            s["init"] = model
    cfg["tasks"] = tasks
    return cfg


def read_tsv(path: Path) -> tuple[list[str], list[str]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [r["label"] for r in rows], [r["prediction"] for r in rows]


def recompute(task: str, pred_dir: Path) -> float:
    """A task's score straight from its prediction file, with scikit-learn/scipy."""
    y, p = read_tsv(pred_dir / f"{task}.tsv")
    if task == "stsb":
        y, p = [float(v) for v in y], [float(v) for v in p]
        return (pearsonr(y, p)[0] + spearmanr(y, p)[0]) / 2
    y, p = [int(v) for v in y], [int(v) for v in p]
    if task == "mrpc":
        return (f1_score(y, p) + accuracy_score(y, p)) / 2
    return accuracy_score(y, p)


def check_leaderboard(workdir: Path, tasks: list[str], models: list[str]) -> dict:
    doc = json.loads((workdir / "reports" / "leaderboard.json").read_text())
    for name in ("leaderboard.json", "leaderboard.html", "figures/pareto.svg"):  # published copies of the outputs
        assert (workdir / "reports" / name).read_bytes() == (workdir / "results/leaderboard" / name).read_bytes()
    assert sorted(r["model"] for r in doc["rows"]) == sorted(models)
    for row in doc["rows"]:
        runs = (row.get("seeds") or {}).get("runs") or [row["model"]]  # a seeded row: the mean over its runs
        per_run = [{t: recompute(t, workdir / "results" / "predictions" / run) for t in tasks} for run in runs]
        scores = {t: statistics.mean(r[t] for r in per_run) for t in tasks}
        for t in tasks:
            assert row["task_scores"][t] == pytest.approx(scores[t], abs=1e-9), (row["model"], t)
        assert row["glue_score"] == pytest.approx(sum(scores.values()) / len(scores), abs=1e-9)
        if len(runs) > 1:
            glue = [sum(r.values()) / len(r) for r in per_run]
            assert row["seeds"]["sd"] == pytest.approx(statistics.stdev(glue), abs=1e-9), row["model"]
        assert row["parameters"] > 0 and row["macs"] > 0 and row["latency_ms"]["batch_1"]["median"] > 0
    html = (workdir / "reports" / "leaderboard.html").read_text()
    assert "dev" in html and all(m in html for m in models)
    return doc


@pytest.mark.e2e
@needs_shared
def test_tiny_workflow_runs_end_to_end(tmp_path):
    glue = tiny_glue(tmp_path)
    model = make_tiny_bert(tmp_path / "tiny-bert", layers=4, vocab=SHARED_VOCAB)
    tasks = ["sst2", "stsb"]
    res = snakemake(tmp_path, base_config(glue, str(model), tasks))
    assert res.returncode == 0, res.stderr[-4000:]
    # the deployed forms of distil (.test/config.yaml): bf16 runs where the CPU has bf16 instructions and is
    # skipped with a note elsewhere; int8-static and onnx-int8 need VNNI or AMX-INT8 (every CI machine has one)
    from glueslim.forms import not_native
    forms = ["int8-static", "onnx-int8"] + (["bf16"] if not_native("bf16", "cpu") is None else [])
    doc = check_leaderboard(tmp_path, tasks, ["teacher", "distil", "distil-nokd", "albert", "ckpt", "baseline",
                                              "teacher-pruned50", *(f"distil-{f}" for f in forms)])
    # seeds [42, 43]: every student, twin and baseline twice, the second run named <model>-seed43, trained with
    # seed 43; only the first is profiled; the teacher once
    rows = {r["model"]: r for r in doc["rows"]}
    for m in ("distil", "distil-nokd", "albert", "ckpt", "baseline"):
        assert rows[m]["seeds"]["runs"] == [m, f"{m}-seed43"] and rows[m]["seeds"]["seeds"] == [42, 43]
        record = json.loads((tmp_path / f"results/models/{m}-seed43/sst2/glueslim.json").read_text())
        assert record["hyperparameters"]["seed"] == 43
        assert not (tmp_path / f"results/profile/{m}-seed43.json").exists()
    assert not list((tmp_path / "results/models").glob("teacher-seed*"))
    # the twin: the same init and recipe on gold labels only; the checkpoint student: its layers 0 and 3, the
    # teacher's head, an intermediate stage; the twin table, the ablation and the published figures
    twin = json.loads((tmp_path / "results/models/distil-nokd/sst2/glueslim.json").read_text())
    assert twin["kd"] is False and twin["layer_map"] == [0, 2] and "no-KD twin" in twin["method"]
    assert "transfer_rows" not in twin
    # distil's transfer set: sst2's 32 training texts beyond the cap of 64, labelled by the teacher; stsb is not
    # capped, so there is nothing beyond it
    for task, n in (("sst2", 32), ("stsb", 0)):
        for run in ("distil", "distil-seed43"):
            assert json.loads((tmp_path / f"results/models/{run}/{task}/glueslim.json").read_text())["transfer_rows"] == n
    xfer = [json.loads(line) for line in (tmp_path / "results/transfer/sst2/train.jsonl").open()]
    capped = {json.loads(line)["idx"] for line in (tmp_path / "results/data/sst2/train.jsonl").open()}
    assert len(xfer) == 32 and not {r["idx"] for r in xfer} & capped
    assert any("distil also trained on a transfer set" in w for w in doc["warnings"])
    ckpt = json.loads((tmp_path / "results/models/ckpt/sst2/glueslim.json").read_text())
    assert ckpt["layer_map"] == [0, 3] and ckpt["head"] == "teacher" and ckpt["intermediate"] == ["attention", "hidden"]
    assert [(t["kd"], t["twin"]) for t in doc["twins"]] == [("distil", "distil-nokd")]
    assert [r["model"] for r in doc["seed_ablation"]["rows"]] == ["distil-nokd", "distil", "ckpt"]
    assert rows["distil"]["published"]["id"] == "distilbert" and rows["albert"]["published"] is None
    assert (tmp_path / "reports/figures/relative.svg").exists()
    methods = {r["model"]: r["method"] for r in doc["rows"]}
    assert methods["teacher-pruned50"] == "fine-tuned teacher + head pruning 50%"
    assert methods["distil-int8-static"] == "DistilBERT-style KD, with a teacher-labelled transfer set + int8-static"
    skipped = {s["row"]: s["reason"] for s in doc["skipped_forms"]}
    assert ("distil-bf16" in skipped) == ("bf16" not in forms)
    if "distil-bf16" in skipped:
        assert "no AVX512-BF16 or AMX-BF16" in skipped["distil-bf16"]
        assert "distil-bf16" in (tmp_path / "reports/leaderboard.html").read_text()  # the note names it
    # each form is calibrated on training examples, scored in its own form and timed by its own runtime
    record = json.loads((tmp_path / "results/models/distil-int8-static/sst2/glueslim.json").read_text())
    assert record["form"] == "int8-static" and record["calibration"]["split"] == "train"
    profile = json.loads((tmp_path / "results/profile/distil-onnx-int8.json").read_text())
    assert profile["backend"] == "onnxruntime" and "int8" in profile["peaks"]
    assert methods["albert"].startswith("ALBERT-style KD") and methods["baseline"] == "fine-tuned baseline"
    rows = {r["model"]: r for r in doc["rows"]}
    # half the heads physically removed: fewer parameters and MACs than the teacher
    assert rows["teacher-pruned50"]["parameters"] < rows["teacher"]["parameters"]
    assert rows["teacher-pruned50"]["macs"] < rows["teacher"]["macs"]
    # int8 keeps the float model's parameters and MACs, and is smaller on disk
    for form in forms:
        assert rows[f"distil-{form}"]["parameters"] == rows["distil"]["parameters"]
        assert rows[f"distil-{form}"]["macs"] == rows["distil"]["macs"]
        assert rows[f"distil-{form}"]["size_on_disk_mb"] < rows["distil"]["size_on_disk_mb"]
    # every row carries the same fields
    assert len({frozenset(r) for r in doc["rows"]}) == 1
    # the student has half the teacher's layers, initialised from layers 0 and 2
    meta = json.loads((tmp_path / "results/models/distil/sst2/glueslim.json").read_text())
    assert meta["layer_map"] == [0, 2] and meta["method"] == "DistilBERT-style KD, with a teacher-labelled transfer set"
    student = next(r for r in doc["rows"] if r["model"] == "distil")
    teacher = next(r for r in doc["rows"] if r["model"] == "teacher")
    assert student["parameters"] < teacher["parameters"]
    # per-epoch logs with train and validation loss
    log = [json.loads(line) for line in (tmp_path / "results/models/teacher/stsb/train_log.jsonl").open()]
    assert [r["epoch"] for r in log] == [1, 2] and all("val_loss" in r and "train_loss" in r for r in log)
    # every rule left a benchmark file and a log
    assert list((tmp_path / "results/benchmarks/finetune_teacher").glob("*.tsv"))
    assert (tmp_path / "logs/distill_student/distil/sst2.log").exists()
    # tokenization once per tokenizer and task: the fine-tuning jobs tokenized sst2; the student's and the
    # prediction jobs that came after them read those tokens (a student's tokenizer is the teacher's)
    assert list((tmp_path / "results/tokens").glob("*.safetensors"))
    for later in ("logs/distill_student/distil/sst2.log", "logs/predict/distil/sst2.log"):
        text = (tmp_path / later).read_text()
        assert "token cache: read" in text and "token cache: tokenized" not in text, later
    # a re-run has nothing to do
    res = snakemake(tmp_path, base_config(glue, str(model), tasks), "-n")
    assert "Nothing to be done" in res.stdout + res.stderr
    # Snakemake's own report: the leaderboard, the figures and every profile, with captions
    res = snakemake(tmp_path, base_config(glue, str(model), tasks), "--report", str(tmp_path / "report.zip"))
    assert res.returncode == 0, res.stderr[-4000:]
    import zipfile
    names = zipfile.ZipFile(tmp_path / "report.zip").namelist()
    for f in ("leaderboard.html", "leaderboard.json", "pareto.svg", "latency_vs_length.svg", "teacher.json"):
        assert any(n.endswith("/" + f) for n in names), f


@pytest.mark.e2e
@needs_shared
def test_missing_split_fails_before_any_job(tmp_path):
    glue = tiny_glue(tmp_path)
    (glue / "RTE").mkdir()
    copy_head(SHARED_GLUE / "RTE" / "dev.tsv", glue / "RTE" / "dev.tsv", 10)
    res = snakemake(tmp_path, base_config(glue, "unused", ["sst2", "rte"]), "-n")
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "task rte: missing" in out and "RTE/train.tsv" in out
    assert not (tmp_path / "results").exists()


@pytest.mark.e2e
@needs_shared
def test_config_typo_is_rejected_with_the_key_named(tmp_path):
    cfg = base_config(tiny_glue(tmp_path), "unused", ["sst2"])
    cfg["finetune"]["learning_rte"] = 1e-4
    res = snakemake(tmp_path, cfg, "-n")
    assert res.returncode != 0 and "finetune.learning_rte: unknown key (value 0.0001); did you mean learning_rate?" \
        in res.stdout + res.stderr


@pytest.mark.e2e
@needs_shared
@pytest.mark.real_teacher
@pytest.mark.skipif(not (SHARED_HF / "models--sentence-transformers--all-MiniLM-L6-v2").is_dir(),
                    reason="all-MiniLM-L6-v2 not in ../shared/hf-cache")
def test_real_teacher_on_a_few_hundred_sst2_examples(tmp_path):
    cfg = base_config(SHARED_GLUE, "sentence-transformers/all-MiniLM-L6-v2", ["sst2"])
    cfg["data"] = {"glue_dir": str(SHARED_GLUE), "max_train_examples": 800, "check_row_counts": True}
    cfg["hf"] = {"cache": str(SHARED_HF), "offline": True}
    cfg["threads"] = 2
    cfg["finetune"].update(learning_rate=1e-4, epochs=2, batch_size=16, max_seq_length=128)
    cfg["students"] = [{"name": "distil", "num_layers": 3, "train": {"learning_rate": 1e-4}}]
    cfg["baselines"], cfg["pruning"]["models"], cfg["seeds"], cfg["ablation"] = [], [], None, None
    cfg["deploy"] = {"models": ["teacher"], "forms": ["fp32", "int8-static"]}  # scored in its form
    res = snakemake(tmp_path, cfg)
    assert res.returncode == 0, res.stderr[-4000:]
    doc = check_leaderboard(tmp_path, ["sst2"], ["teacher", "distil", "teacher-int8-static"])
    rows = {r["model"]: r for r in doc["rows"]}
    teacher = rows["teacher"]
    # 100 optimizer steps on 800 examples lift the real encoder well above the 50.9% majority class of SST-2 dev
    assert teacher["task_scores"]["sst2"] > 0.7
    # its int8 form, calibrated on training examples and scored in int8, keeps nearly all of it
    int8 = rows["teacher-int8-static"]
    assert int8["form"] == "int8-static" and abs(int8["task_scores"]["sst2"] - teacher["task_scores"]["sst2"]) < 0.05
    assert int8["size_on_disk_mb"] < teacher["size_on_disk_mb"]
    manifest = json.loads((tmp_path / "results/data/sst2/manifest.json").read_text())
    dev = next(f for f in manifest["source_files"] if f["split"] == "validation")
    # the sha256 that ../shared/data/PROVENANCE.md lists for SST-2/dev.tsv
    assert dev["sha256"] == "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0"
    assert dev["rows"] == 872
