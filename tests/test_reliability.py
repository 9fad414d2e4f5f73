"""Reliability (issue 8): bad input gets a clear error, interrupted work resumes, nothing unsafe reaches the user.

Every test feeds one kind of bad input (a config typo, a damaged TSV, a diverging loss, an out-of-memory
GPU, a killed job, a crashing writer, a pickle that runs code, a path-escaping target, HTML in a name)
and checks both the message and that nothing was lost or left half-written. The README's "Reliability"
section has the table of what is checked where.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from conftest import ROOT, make_recipe
from glueslim import cli, data, io
from glueslim.errors import UserError
from glueslim.modeling import load_classifier, load_tokenizer
from glueslim.tasks import get_task
from glueslim.batching import encode, length_grouped_batches
from glueslim.checkpoint import save_model
from glueslim.inference import predict_logits
from glueslim.recipe import Recipe
from glueslim.train import NonFiniteLossError, train


# ================================================================ data

def write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


RTE_HEADER = "index\tsentence1\tsentence2\tlabel\n"
STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
STSB_META = "main-captions\tMSRvid\t2012test\t0001\tnone\tnone"


@pytest.mark.parametrize("task, content, line, message", [
    # wrong column count: a stray tab, a missing column, a blank line
    ("rte", RTE_HEADER + "0\ta\tb\tentailment\n1\ta\tb\tc\tentailment\n", 3, "5 columns, expected 4"),
    ("rte", RTE_HEADER + "0\ta\tentailment\n", 2, "3 columns, expected 4"),
    ("rte", RTE_HEADER + "0\ta\tb\tentailment\n\n", 3, "0 columns, expected 4"),
    # a stray quote that opens a field spanning the tab: counted literally, never merged with the next line
    ("rte", RTE_HEADER + '0\t"a\tb"\tc\tentailment\n1\ta\tb\tentailment\n', 2, "5 columns, expected 4"),
    # empty or whitespace-only text
    ("rte", RTE_HEADER + "0\t\tb\tentailment\n", 2, "empty text_a ('')"),
    ("rte", RTE_HEADER + "0\ta\t  \tentailment\n", 2, "empty text_b ('  ')"),
    ("sst2", "sentence\tlabel\n\t1\n", 2, "empty text_a"),
    # labels outside the task's set
    ("rte", RTE_HEADER + "0\ta\tb\tneutral\n", 2, "label 'neutral' is not one of entailment, not_entailment"),
    ("mrpc", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n2\t1\t2\ta\tb\n", 2, "label '2' is not one of 0, 1"),
    ("cola", "gj04\t1\t\tfine.\ngj04\tx\t*\tbad.\n", 2, "label 'x' is not one of 0, 1"),
    ("qqp", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n0\t1\t2\ta?\tb?\t\n", 2, "label '' is not one of 0, 1"),
    # non-numeric or out-of-range STS-B scores
    ("stsb", STSB_HEADER + f"0\t{STSB_META}\ta\tb\tfour\n", 2, "score 'four' is not a number"),
    ("stsb", STSB_HEADER + f"0\t{STSB_META}\ta\tb\t\n", 2, "score '' is not a number"),
    ("stsb", STSB_HEADER + f"0\t{STSB_META}\ta\tb\tinf\n", 2, "score 'inf' is outside [0, 5]"),
    # truncated files: the last line cut mid-row, a file cut inside a UTF-8 character, an index gap
    ("rte", RTE_HEADER + "0\ta\tb\tentailment\n1\tThe cut", 3, "2 columns, expected 4"),
    ("sst2", "sentence\tlabel\ncaf\xe9 \t1\n".encode("utf-8")[:-5], 2, "not valid UTF-8"),
    ("rte", RTE_HEADER + "0\ta\tb\tentailment\n2\tc\td\tentailment\n", 3, "index column is '2' but this is data row 1"),
    # damaged copies: a NUL byte, a line past the csv field limit
    ("sst2", b"sentence\tlabel\nfine\t1\nb\x00d\t0\n", 3, "NUL byte in the row"),
    ("sst2", b"sentence\tlabel\nfine\t1\n" + b"x" * 200_000 + b"\t0\n", 3, "unreadable row"),
])
def test_malformed_tsv_rows_name_file_and_line(tmp_path, task, content, line, message):
    path = write(tmp_path / "f.tsv", content)
    split = "train"
    with pytest.raises(UserError) as e:
        data.read_glue_tsv(task, split, path)
    assert str(e.value).startswith(f"{path}:{line}: "), str(e.value)
    assert message in str(e.value)


def test_empty_and_header_only_files(tmp_path):
    for content, message in [("", "empty file"), ("index\tsentence1\tsentence2\tlabel\n", "no data rows")]:
        path = write(tmp_path / "dev.tsv", content)
        with pytest.raises(UserError, match=re.escape(f"{path}: {message}")):
            data.read_glue_tsv("rte", "validation", path)


def test_known_quirks_are_kept_not_dropped_or_merged(tmp_path):
    """Policy: unbalanced quotes are text, CRLF line ends and a leading BOM are accepted, text is verbatim."""
    content = ("\ufeff" + RTE_HEADER + '0\t" He said so.\tShe "agreed.\tentailment\r\n'
               "1\tIraq\u00e2\x80\x99s \tx\x12y\tnot_entailment\r\n2\ta\tb\tentailment")
    recs = data.read_glue_tsv("rte", "train", write(tmp_path / "train.tsv", content))
    assert [r["idx"] for r in recs] == [0, 1, 2]  # every line is one row: none merged, none dropped
    assert recs[0]["text_a"] == '" He said so.' and recs[0]["text_b"] == 'She "agreed.'
    assert recs[1] == {"idx": 1, "text_a": "Iraq\u00e2\x80\x99s ", "text_b": "x\x12y", "label": 1}


def test_truncated_download_and_missing_split_stop_prepare_and_write_nothing(tmp_path):
    glue = tmp_path / "glue"
    write(glue / "RTE" / "train.tsv", RTE_HEADER + "".join(f"{i}\ta{i}\tb{i}\tentailment\n" for i in range(5)))
    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"task rte: missing .*RTE/dev.tsv \(needed for evaluation\)"):
        data.prepare("rte", out, glue_dir=str(glue))
    write(glue / "RTE" / "dev.tsv", RTE_HEADER + "0\ta\tb\tentailment\n")
    with pytest.raises(UserError, match=r"RTE/train.tsv: 5 data rows, the official file has 2490; a truncated download"):
        data.prepare("rte", out, glue_dir=str(glue))
    write(glue / "RTE" / "dev.tsv", RTE_HEADER + "0\ta\tb\tentailment\n1\ta\tb\tmaybe\n")  # train is fine, dev is not
    with pytest.raises(UserError, match=r"RTE/dev.tsv:3: label 'maybe'"):
        data.prepare("rte", out, glue_dir=str(glue), check_row_counts=False)
    assert not out.exists() and not list(tmp_path.glob(".out.*"))  # nothing half-written


def test_hub_without_a_required_split(tmp_path, monkeypatch):
    import datasets
    import huggingface_hub

    def fake_load(name, config, revision=None):
        return datasets.DatasetDict({"train": datasets.Dataset.from_dict(
            {"sentence": ["a"], "label": [0], "idx": [0]})})

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", lambda *a, **k: (_ for _ in ()).throw(OSError()))
    with pytest.raises(UserError, match="nyu-mll/glue/sst2 has no split validation"):
        data.prepare("sst2", tmp_path / "out", check_row_counts=False)
    assert not (tmp_path / "out").exists()


# ================================================================ training

def targs(tmp_path: Path, **kw) -> Recipe:
    return make_recipe(tmp_path / "ckpt", **kw)


def feats(tokenizer, n: int = 48) -> list[dict]:
    words = ["good", "bad", "fine", "awful", "great", "poor"]
    rows = [{"idx": 100 + i, "text_a": f"{words[i % 6]} film " + "really " * (i % 5) + str(i), "text_b": None,
             "label": int(i % 2 == 0)} for i in range(n)]
    return encode(tokenizer, rows, 32)


@pytest.fixture(scope="module")
def tiny(tiny_bert):
    return tiny_bert, load_tokenizer(str(tiny_bert))


def model_of(tiny_bert) -> torch.nn.Module:
    torch.manual_seed(0)
    return load_classifier(str(tiny_bert), get_task("sst2"))


def nan_at(call: int):
    n = {"calls": 0}

    def loss_fn(logits, batch):
        n["calls"] += 1
        loss = torch.nn.functional.cross_entropy(logits, batch["labels"])
        return loss * float("nan") if n["calls"] == call else loss

    return loss_fn


@pytest.mark.parametrize("call, epoch, step", [(3, 1, 3), (6 + 2, 2, 2)])
def test_non_finite_loss_names_epoch_step_and_batch(tiny, tmp_path, call, epoch, step):
    model_path, tok = tiny
    f = feats(tok)
    args = targs(tmp_path)
    with pytest.raises(NonFiniteLossError) as e:
        train(model_of(model_path), tok, get_task("sst2"), f, f[:16], args, loss_fn=nan_at(call))
    batch = length_grouped_batches([len(x["input_ids"]) for x in f], 8, seed=args.seed * 1000 + epoch)[step - 1]
    idx = ", ".join(str(f[i]["idx"]) for i in batch)
    msg = str(e.value)
    assert f"training loss is nan at epoch {epoch}, step {step} of 6 (optimizer step {6 * (epoch - 1) + step})" in msg
    assert f"on the batch of training examples with idx {idx};" in msg
    assert "Lower learning_rate (now 0.001)" in msg
    ckpt = tmp_path / "ckpt"
    assert not (ckpt / f"epoch_{epoch}").exists()  # nothing of the diverged epoch is kept ...
    if epoch == 2:  # ... and nothing before it is lost
        assert (ckpt / "epoch_1" / "DONE").exists() and f"the checkpoint of epoch 1 stays in {ckpt}" in msg
    else:
        assert "no epoch had completed" in msg


def oom_forward(monkeypatch, when):
    """Make the tiny BERT's forward raise CUDA OOM when `when(n_training_calls, training)` says so."""
    from transformers import BertForSequenceClassification

    real = BertForSequenceClassification.forward
    n = {"train": 0}

    def forward(self, *a, **k):
        if self.training:
            n["train"] += 1
        if when(n["train"], self.training):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, *a, **k)

    monkeypatch.setattr(BertForSequenceClassification, "forward", forward)


def test_gpu_oom_in_training_gives_advice_and_the_advice_resumes(tiny, tmp_path, monkeypatch, caplog):
    model_path, tok = tiny
    f = feats(tok)
    with monkeypatch.context() as m:
        oom_forward(m, lambda n, training: training and n == 6 + 4)  # epoch 2, step 4
        with pytest.raises(UserError) as e:
            train(model_of(model_path), tok, get_task("sst2"), f, f[:16], targs(tmp_path))
    msg = str(e.value)
    assert isinstance(e.value.__cause__, torch.cuda.OutOfMemoryError)
    assert msg.startswith("GPU out of memory in epoch 2, step 4 of 6, on a batch of 8 sequences of")
    assert ("lower batch_size from 8 to 4 and set gradient_accumulation_steps to 2 (the effective batch stays 8)"
            in msg)
    assert "or lower max_seq_length (now 32)" in msg and "students.<name>.train" in msg
    assert (tmp_path / "ckpt" / "epoch_1" / "DONE").exists()
    # following the advice keeps the completed epoch
    caplog.set_level(logging.INFO, logger="glueslim.train")
    hist = train(model_of(model_path), tok, get_task("sst2"), f, f[:16],
                 targs(tmp_path, batch_size=4, gradient_accumulation_steps=2))
    assert "resuming after epoch 1" in caplog.text and [r["epoch"] for r in hist] == [1, 2]


def test_gpu_oom_in_evaluation_names_eval_batch_size(tiny, monkeypatch):
    model_path, tok = tiny
    f = feats(tok, 20)
    from transformers import DataCollatorWithPadding

    oom_forward(monkeypatch, lambda n, training: not training)
    with pytest.raises(UserError, match=r"GPU out of memory running the model on a batch of 16 sequences .*"
                                        r"lower eval_batch_size \(now 16\), e.g. to 8"):
        predict_logits(model_of(model_path), f, DataCollatorWithPadding(tok), 16, "cpu")


def prepared_sst2(root: Path, n_train: int, n_dev: int = 32) -> Path:
    words = ["good", "bad", "fine", "awful", "great", "poor", "dull", "bright"]
    rows = [{"idx": i, "text_a": " ".join(words[(i * k) % 8] for k in range(1, 12 + i % 7)), "text_b": None,
             "label": int(i % 3 == 0)} for i in range(n_train + n_dev)]
    io.atomic_write_jsonl(root / "train.jsonl", rows[:n_train])
    io.atomic_write_jsonl(root / "validation.jsonl", [{**r, "idx": j} for j, r in enumerate(rows[n_train:])])
    return root


def test_gpu_oom_through_the_cli_is_one_line_without_a_traceback(tiny, tmp_path, monkeypatch, capsys):
    model_path, _ = tiny
    d = prepared_sst2(tmp_path / "data", 24, 8)
    oom_forward(monkeypatch, lambda n, training: training and n == 2)
    with pytest.raises(SystemExit) as e:
        cli.main(["finetune", "--task", "sst2", "--data", str(d), "--model", str(model_path), "--out",
                  str(tmp_path / "out"), "--checkpoint-dir", str(tmp_path / "ckpt"), "--device", "cpu",
                  "--threads", "1", "--batch-size", "8", "--epochs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2
    assert err[-1].startswith("glueslim finetune: error: GPU out of memory in epoch 1, step 2 of 3")
    assert "Traceback" not in "\n".join(err) and not (tmp_path / "out").exists()


def test_gradient_accumulation_steps_the_optimizer_once_per_group(tiny, tmp_path, monkeypatch):
    model_path, tok = tiny
    f = feats(tok)  # 48 examples: 6 micro-batches of 8 per epoch
    n = {"steps": 0}
    real = torch.optim.AdamW.step

    def step(self, *a, **k):
        n["steps"] += 1
        return real(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    hist = train(model_of(model_path), tok, get_task("sst2"), f, f[:16], targs(tmp_path, gradient_accumulation_steps=4))
    assert n["steps"] == 2 * 2  # groups of 4 + 2 micro-batches, two epochs
    assert [r["step"] for r in hist] == [2, 4]


def test_a_checkpoint_of_another_recipe_is_not_resumed(tiny, tmp_path, caplog):
    model_path, tok = tiny
    f = feats(tok)
    with pytest.raises(NonFiniteLossError):
        train(model_of(model_path), tok, get_task("sst2"), f, f[:16], targs(tmp_path), loss_fn=nan_at(6 + 1))
    assert (tmp_path / "ckpt" / "epoch_1" / "DONE").exists()
    (tmp_path / "ckpt" / ".epoch_2.abc.tmp").mkdir()  # what a kill during a checkpoint write leaves
    caplog.set_level(logging.INFO, logger="glueslim.train")
    hist = train(model_of(model_path), tok, get_task("sst2"), f, f[:16], targs(tmp_path, learning_rate=5e-4))
    assert "not resuming from" in caplog.text and "changed: learning_rate" in caplog.text
    assert "resuming after" not in caplog.text and [r["epoch"] for r in hist] == [1, 2]
    assert not list((tmp_path / "ckpt").glob(".epoch_*"))


def test_resume_reads_safetensors_and_unpickles_only_with_weights_only(tiny, tmp_path, monkeypatch, caplog):
    model_path, tok = tiny
    f = feats(tok)

    def dies_in_epoch_two(logits, batch, n={"calls": 0}):
        n["calls"] += 1
        if n["calls"] == 6 + 2:
            raise KeyboardInterrupt
        return torch.nn.functional.cross_entropy(logits, batch["labels"])

    with pytest.raises(KeyboardInterrupt):
        train(model_of(model_path), tok, get_task("sst2"), f, f[:16], targs(tmp_path), loss_fn=dies_in_epoch_two)
    ckpt = tmp_path / "ckpt" / "epoch_1"
    assert (ckpt / "model.safetensors").exists() and not list(ckpt.glob("pytorch_model*.bin"))
    calls = []
    real = torch.load

    def spy(*a, **k):
        calls.append(k.get("weights_only"))
        return real(*a, **k)

    monkeypatch.setattr(torch, "load", spy)
    caplog.set_level(logging.INFO, logger="glueslim.train")
    train(model_of(model_path), tok, get_task("sst2"), f, f[:16], targs(tmp_path))
    assert "resuming after epoch 1" in caplog.text
    assert len(calls) >= 3 and all(c is True for c in calls), calls  # optimizer, scheduler, RNG states
    assert "Could not load random states" not in caplog.text


def test_a_killed_finetune_resumes_from_its_last_checkpoint(tiny, tmp_path):
    """SIGKILL a real `python -m glueslim finetune` once epoch 1 is checkpointed, run it again."""
    model_path, _ = tiny
    d = prepared_sst2(tmp_path / "data", 600)
    ckpt, out = tmp_path / "ckpt", tmp_path / "out"
    cmd = [sys.executable, "-m", "glueslim", "finetune", "--task", "sst2", "--data", str(d), "--model",
           str(model_path), "--out", str(out), "--checkpoint-dir", str(ckpt), "--epochs", "3", "--batch-size", "8",
           "--max-seq-length", "64", "--learning-rate", "1e-3", "--device", "cpu", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 240
        while not (ckpt / "epoch_1" / "DONE").exists():
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "epoch 1 never finished"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    done = sorted(int(p.name.split("_")[1]) for p in ckpt.glob("epoch_*") if (p / "DONE").exists())
    assert done and done[-1] < 3, f"the run finished before the kill ({done})"
    last = done[-1]
    before = json.loads((ckpt / f"epoch_{last}" / "glueslim_state.json").read_text())["history"]
    assert not out.exists()  # the killed job left no result

    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"resuming after epoch {last} from {ckpt / f'epoch_{last}'}" in res.stderr
    assert [f"epoch {e}:" in res.stderr for e in (1, 2, 3)] == [e > last for e in (1, 2, 3)]  # no epoch redone
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3] and log[:last] == before
    assert json.loads((out / "glueslim.json").read_text())["task"] == "sst2"
    assert (out / "model.safetensors").exists() and not ckpt.exists()  # checkpoints are spent once saved


# ================================================================ outputs

def test_a_crashing_writer_leaves_no_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "scores" / "teacher.json"
    with pytest.raises(ValueError):
        io.atomic_write_json(target, {"score": float("nan")})  # strict JSON: refused before anything lands
    assert not target.exists() and (not target.parent.exists() or list(target.parent.iterdir()) == [])
    io.atomic_write_json(target, {"score": 0.5})
    with pytest.raises(ValueError):
        io.atomic_write_json(target, {"score": float("inf")})
    assert json.loads(target.read_text()) == {"score": 0.5}  # the previous result is intact
    with pytest.raises(RuntimeError), io.atomic_file(tmp_path / "half.tsv") as tmp:
        tmp.write_text("idx\tlabel\n0\t")
        raise RuntimeError("crash mid-write")
    assert not (tmp_path / "half.tsv").exists() and not list(tmp_path.glob(".half.tsv.*"))
    with pytest.raises(RuntimeError), io.atomic_dir(tmp_path / "models" / "m") as d:
        (d / "config.json").write_text("{}")
        raise RuntimeError("crash mid-save")
    assert list((tmp_path / "models").iterdir()) == []


def test_a_killed_writer_leaves_only_a_hidden_temp_file(tmp_path):
    target = tmp_path / "predictions" / "sst2.tsv"
    code = ("import sys, time; from glueslim.io import atomic_file\n"
            f"with atomic_file({str(target)!r}) as tmp:\n"
            "    f = open(tmp, 'w'); f.write('idx\\tlabel\\n0\\t'); f.flush()\n"
            "    print('writing', flush=True); time.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "writing"
    proc.kill()
    proc.wait(timeout=30)
    assert not target.exists()
    assert [p.name.startswith(".sst2.tsv.") and p.name.endswith(".tmp") for p in target.parent.iterdir()] == [True]


def test_a_crash_while_saving_a_model_keeps_the_checkpoints(tiny, tmp_path, monkeypatch):
    model_path, tok = tiny
    ckpt = tmp_path / "ckpt"
    (ckpt / "epoch_2").mkdir(parents=True)
    (ckpt / "epoch_2" / "DONE").write_text("ok\n")
    monkeypatch.setattr(type(tok), "save_pretrained", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        save_model(model_of(model_path), tok, tmp_path / "models" / "teacher" / "sst2", {"task": "sst2"}, [], ckpt)
    assert list((tmp_path / "models" / "teacher").iterdir()) == []  # no half model folder
    assert (ckpt / "epoch_2" / "DONE").exists()  # a re-run can still resume


def test_prediction_writer_refuses_mismatched_rows(tmp_path):
    from glueslim.evaluate import write_predictions

    with pytest.raises(ValueError):
        write_predictions(tmp_path / "p.tsv", [{"idx": 0, "label": 1}, {"idx": 1, "label": 0}], [1])
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_score_file_fails_the_leaderboard_job_and_keeps_the_last_good_report(tmp_path):
    """Snakemake removes a job's outputs before a re-run and after a failure: the leaderboard renders to
    results/leaderboard/ and publishes to reports/ only on success, so reports/ survives a failed re-run."""

    from conftest import make_tiny_bert, run_snakemake, stub_config
    from report_fixtures import STUDENT, TASKS, make_results

    results = make_results(tmp_path)  # scores, profiles, model records and manifests of two models
    cfg = stub_config(tmp_path, make_tiny_bert(tmp_path / "teacher-model", layers=2), ("SST-2", "MRPC"))
    cfg.update(tasks=TASKS, students=[{"name": STUDENT, "num_layers": 2}], baselines=[], seeds=None, ablation=None,
               published=[])
    cfg["pruning"]["models"], cfg["deploy"] = [], {"forms": ["fp32"], "models": []}

    from glueslim.submission import COLUMNS, server_stems  # the leaderboard links each model's GLUE-server zip
    for model in ("teacher", STUDENT):
        for stem in server_stems(TASKS, False):  # header-only test predictions: zipped as "missing" files
            io.atomic_write_text(results / "predictions_test" / model / f"{stem}.tsv", "\t".join(COLUMNS) + "\n")

    def leaderboard():  # only the leaderboard (and zip) rules run: every other input is taken as it is
        return run_snakemake(tmp_path, cfg, "--allowed-rules", "leaderboard", "glue_submission", "all", cores=1,
                             timeout=300)

    res = leaderboard()
    assert res.returncode == 0, res.stderr[-3000:]
    reports = tmp_path / "reports"
    good = {p.relative_to(reports): p.read_bytes() for p in reports.rglob("*") if p.is_file()}
    assert {"figures/latency_vs_batch.svg", "figures/latency_vs_length.svg", "figures/pareto.svg",
            "leaderboard.html", "leaderboard.json"} <= set(map(str, good))
    assert good[Path("leaderboard.json")] == (tmp_path / "results/leaderboard/leaderboard.json").read_bytes()

    score_file = results / "scores" / f"{STUDENT}.json"
    doc = json.loads(score_file.read_text())
    doc["tasks"]["sst2"]["metrics"]["accuracy"] = 1.7  # 170 % as a fraction
    score_file.write_text(json.dumps(doc))
    res = leaderboard()
    assert res.returncode != 0
    log = (tmp_path / "logs" / "leaderboard.log").read_text()
    assert log.strip().count("\n") == 0 and "Traceback" not in log  # one line
    assert f"scores/{STUDENT}.json: tasks.sst2.metrics.accuracy = 1.7: outside [0, 1]" in log and "re-run score" in log
    assert not (tmp_path / "results/leaderboard/leaderboard.html").exists()  # Snakemake removed its outputs ...
    now = {p.relative_to(reports): p.read_bytes() for p in reports.rglob("*") if p.is_file()}
    assert now == good  # ... the published report is the last good one, whole, with no temp file beside it

    doc["tasks"]["sst2"]["metrics"]["accuracy"] = 0.95
    score_file.write_text(json.dumps(doc))
    res = leaderboard()
    assert res.returncode == 0, res.stderr[-3000:]
    published = json.loads((reports / "leaderboard.json").read_text())
    assert next(r for r in published["rows"] if r["model"] == STUDENT)["task_scores"]["sst2"] == 0.95


# ================================================================ safety

def test_pickle_checkpoints_cannot_run_code(tiny, tmp_path):
    model_path, _ = tiny
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    from safetensors.torch import load_file

    evil = tmp_path / "evil-model"
    evil.mkdir()
    for f in model_path.iterdir():
        if f.name != "model.safetensors":
            shutil.copy(f, evil / f.name)
    state = load_file(model_path / "model.safetensors")
    torch.save({**state, "x": Payload()}, evil / "pytorch_model.bin")
    with pytest.raises(UserError, match="refused to load its PyTorch pickle checkpoint"):
        load_classifier(str(evil), get_task("sst2"))
    assert not marker.exists()
    # beside safetensors weights the pickle is not even opened
    shutil.copy(model_path / "model.safetensors", evil / "model.safetensors")
    load_classifier(str(evil), get_task("sst2"))
    assert not marker.exists()


def test_remote_code_does_not_run_unless_trusted(tiny, tmp_path):
    model_path, _ = tiny
    marker = tmp_path / "REMOTE_CODE_RAN"
    repo = tmp_path / "remote-model"
    shutil.copytree(model_path, repo)
    cfg = json.loads((repo / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "custom.MyConfig", "AutoModelForSequenceClassification": "custom.MyModel"}
    (repo / "config.json").write_text(json.dumps(cfg))
    (repo / "custom.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import BertConfig, BertForSequenceClassification\n"
        "class MyConfig(BertConfig):\n    model_type = 'bert'\n"
        "class MyModel(BertForSequenceClassification):\n    config_class = MyConfig\n")
    load_tokenizer(str(repo))
    load_classifier(str(repo), get_task("sst2"))
    assert not marker.exists()


def test_finetune_cli_runs_remote_code_only_with_the_flag():
    from glueslim import finetune

    p = argparse.ArgumentParser()
    finetune.add_arguments(p)
    base = ["--task", "sst2", "--data", "d", "--model", "m", "--out", "o", "--checkpoint-dir", "c"]
    assert p.parse_args(base).trust_remote_code is False
    assert p.parse_args(base + ["--trust-remote-code"]).trust_remote_code is True


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.attrs: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.update(name for name, _ in attrs)


def parse(html: str) -> Tags:
    t = Tags()
    t.feed(html)
    return t


EVIL_STRINGS = ['<img src=x onerror=alert(1)>', '" onmouseover="alert(2)', "</script><script>alert(3)</script>",
                "<b>bold</b> & 'quote'"]


def test_every_config_and_data_string_is_escaped_in_html(tmp_path):
    """Names, methods, base models, hyperparameters, data paths, device strings and config values all carry
    markup; the page must show them as text: the same tags and attributes as a page with plain strings."""
    from glueslim.report.build import build_leaderboard
    from glueslim.report.render import render_html
    from report_fixtures import STUDENT, TASKS, TEACHER, make_results

    def page(root: Path, strings: list[str]) -> tuple[dict, str]:
        a, b, c, d = strings
        student = a.replace("/", "_")
        results = make_results(root, student_name=student, method=b)
        for p in (results / "models").glob("*/*/glueslim.json"):
            meta = json.loads(p.read_text())
            meta.update(base_model=c, hyperparameters={d: c, "lr": 1e-4})
            p.write_text(json.dumps(meta))
        for p in (results / "profile").glob("*.json"):
            prof = json.loads(p.read_text())
            prof["device"].update(cpu_model=a, name=b, gpu_name=c, cpu_flags=[d, "avx2"], torch=d)
            p.write_text(json.dumps(prof))
        for p in (results / "data").glob("*/manifest.json"):
            man = json.loads(p.read_text())
            man["source"] = {"kind": "local", "glue_dir": a}
            for f in man["source_files"]:
                f["path"] = f"{b}/{c}.tsv"
            p.write_text(json.dumps(man))
        config = {"teacher": {"model": c}, "note": d, a: b, "students": [{"name": student}]}
        doc = build_leaderboard(results, [TEACHER, student], TEACHER, TASKS, config)
        return doc, render_html(doc)

    plain = ["plain-a", "plain b", "plain c", "plain d"]
    _, clean = page(tmp_path / "clean", plain)
    doc, html = page(tmp_path / "evil", EVIL_STRINGS)
    clean_tags, evil_tags = parse(clean), parse(html)
    assert sorted(evil_tags.tags) == sorted(clean_tags.tags)  # no tag was injected ...
    assert evil_tags.attrs == clean_tags.attrs  # ... and no attribute (onerror, onmouseover)
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "alert(3)" in html  # shown, as text
    block = re.search(r'<script type="application/json" id="leaderboard-data">(.*?)</script>', html, re.S)
    assert block and "<" not in block.group(1)  # the embedded JSON cannot end its script block
    embedded = json.loads(block.group(1))
    assert embedded["provenance"]["config"]["teacher"]["model"] == EVIL_STRINGS[2]
    assert STUDENT not in [r["model"] for r in doc["rows"]]


def test_atomic_outputs_get_ordinary_permissions(tmp_path):
    """Temp files are private (0600); the renamed result must be readable like any file the umask allows."""
    mask = os.umask(0o022)
    try:
        io.atomic_write_text(tmp_path / "a.txt", "x")
        with io.atomic_dir(tmp_path / "d") as d:
            (d / "f").write_text("y")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


# ================================================================ model folders and files (issue 15)

def damaged_model(src: Path, dest: Path, damage: str) -> Path:
    """A copy of the tiny model with one kind of damage."""
    shutil.copytree(src, dest)
    if damage == "no tokenizer files":
        for f in dest.glob("tokenizer*"):
            f.unlink()
    elif damage == "truncated weights":
        w = dest / "model.safetensors"
        w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    elif damage == "cut config":
        c = dest / "config.json"
        c.write_text(c.read_text()[:60])
    return dest


def command_line(command: str, model: Path, data_dir: Path, out: Path) -> list[str]:
    """One command of the CLI on `model` (as the teacher, the model to compress or to read), writing `out`."""
    cpu = ["--device", "cpu", "--threads", "1"]
    train = ["--checkpoint-dir", str(out.parent / "ckpt"), "--epochs", "1", "--batch-size", "8", *cpu]
    student = ["--student", "teacher_layers", "--num-layers", "1"]
    return [command, *{
        "finetune": ["--task", "sst2", "--data", str(data_dir), "--model", str(model), "--out", str(out), *train],
        "teacher-outputs": ["--task", "sst2", "--data", str(data_dir), "--teacher-dir", str(model), "--out", str(out),
                            *cpu],
        "distill": ["--task", "sst2", "--data", str(data_dir), "--teacher-dir", str(model), "--teacher-outputs",
                    str(out.parent / "none.safetensors"), "--name", "s", "--out", str(out), *student,
                    "--prediction", "kl", "--temperature", "2", *train],
        "general-distill": ["--teacher", str(model), "--data", str(data_dir), "--out", str(out), *student,
                            "--intermediate", "hidden", *train],
        "augment": ["--task", "sst2", "--data", str(data_dir), "--teacher-dir", str(model), "--out", str(out), *cpu],
        "predict": ["--task", "sst2", "--stem", "sst2", "--data", str(data_dir), "--model-dir", str(model), "--out",
                    str(out), *cpu],
        "profile": ["--model-dir", str(model), "--name", "m", "--out", str(out), *cpu],
        "prune": ["--task", "sst2", "--data", str(data_dir), "--model-dir", str(model), "--fraction", "0.5",
                  "--name", "m", "--out", str(out), *train],
        "deploy": ["--form", "int8-static", "--task", "sst2", "--data", str(data_dir), "--model-dir", str(model),
                   "--name", "m", "--out", str(out), "--calibration-examples", "8"],
    }[command]]


MODEL_COMMANDS = ["finetune", "teacher-outputs", "distill", "general-distill", "augment", "predict", "profile",
                  "prune", "deploy"]
NEEDS_TOKENIZER = {"finetune", "teacher-outputs", "distill", "general-distill", "augment", "predict", "prune",
                   "deploy"}


@pytest.mark.parametrize("damage, file, words", [
    ("no tokenizer files", "", "no tokenizer files"),
    ("truncated weights", "model.safetensors", "not a readable safetensors file"),
    ("cut config", "config.json", "not valid JSON (line"),
])
@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_a_damaged_model_folder_stops_every_command_with_one_line(tiny, tmp_path, capsys, command, damage, file,
                                                                   words):
    """Every command that reads a model folder checks it whole first: one line naming the folder or file and
    what to do, exit 2, no traceback, no output; a teacher without tokenizer files no longer trains to exit 0
    with a 5-token vocabulary."""
    if damage == "no tokenizer files" and command not in NEEDS_TOKENIZER:
        pytest.skip(f"{command} reads no tokenizer")
    model = damaged_model(tiny[0], tmp_path / "model", damage)
    out = tmp_path / "out" / "result"
    with pytest.raises(SystemExit) as e:
        cli.main(command_line(command, model, prepared_sst2(tmp_path / "data", 24, 8), out))
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "Traceback" not in "\n".join(err)
    assert err[-1].startswith(f"glueslim {command}: error: {model / file if file else model}"), err[-1]
    assert words in err[-1] and ("re-run the job" in err[-1] or "tokenizer.save_pretrained" in err[-1]), err[-1]
    assert not out.exists() and not (tmp_path / "out" / "ckpt").exists()


def test_the_startup_check_reads_each_local_model_folder_whole(tiny, tmp_path):
    """teacher.model, baselines[*].model and tinybert.students[*].init are checked before any job."""
    from snakemake.utils import validate

    from glueslim.config import SCHEMA, config_problems

    import yaml

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config.update(teacher={"model": str(damaged_model(tiny[0], tmp_path / "teacher", "no tokenizer files"))},
                  baselines=[{"name": "b", "model": str(damaged_model(tiny[0], tmp_path / "b", "cut config"))}],
                  tinybert={"students": [{"name": "tb", "init": str(damaged_model(tiny[0], tmp_path / "init",
                                                                                   "truncated weights"))}]},
                  students=[], pruning={}, deploy={}, hf={})
    validate(config, str(SCHEMA))  # the schema's defaults, as Snakemake fills them in
    problems = "\n".join(config_problems(config))
    assert f"teacher.model: {tmp_path / 'teacher'}: no tokenizer files" in problems
    assert f"baselines[0].model (b): {tmp_path / 'b' / 'config.json'}: not valid JSON (line" in problems
    assert f"tinybert.students.tb.init: {tmp_path / 'init' / 'model.safetensors'}: not a readable safetensors" in problems
    config["teacher"]["model"] = str(tiny[0])  # the whole model: no problem
    assert "teacher.model" not in "\n".join(config_problems(config))


def test_a_failing_jobs_error_line_reaches_the_terminal_without_a_profile(tmp_path, tiny_bert):
    """Plain `snakemake --cores N` (make quick) does not print logs; the rules' logged() puts the last lines
    of a failed job's log on stderr, so the one-line error is seen without opening logs/."""
    from conftest import run_snakemake
    from conftest import stub_config

    cfg = stub_config(tmp_path, tiny_bert)  # its SST-2/train.tsv holds "x": no header
    res = run_snakemake(tmp_path, cfg, "results/data/sst2", cores=1, timeout=300)
    assert res.returncode != 0
    train = Path(cfg["data"]["glue_dir"]) / "SST-2" / "train.tsv"
    assert f"glueslim prepare-data: error: {train}:1: header has no column" in res.stderr
    assert "Traceback" not in res.stderr


def test_an_os_error_is_one_line_naming_the_file_and_verbose_shows_the_traceback(tiny, tmp_path, capsys,
                                                                                  monkeypatch):
    """An unreadable file (tests run as root, where chmod 000 does not stop a read: the read is made to fail)
    and an output path taken by a folder: one line with the file and the OS reason, exit 2."""
    data_dir = prepared_sst2(tmp_path / "data", 24, 8)
    real_open = open
    split = data_dir / "validation.jsonl"

    def refuse(path, *a, **k):
        if str(path) == str(split):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(io, "open", refuse, raising=False)  # glueslim.io reads the prepared split
    argv = command_line("predict", tiny[0], data_dir, tmp_path / "p.tsv")
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "Traceback" not in "\n".join(err)
    assert err[-1] == (f"glueslim predict: error: {split}: Permission denied; check its permissions (and those of "
                       "its folder)")
    with pytest.raises(PermissionError):  # --verbose: the traceback, for a bug report
        cli.main(["--verbose", *argv])
    monkeypatch.undo()
    (tmp_path / "taken.tsv").mkdir()
    (tmp_path / "taken.tsv" / "keep").write_text("x")
    with pytest.raises(SystemExit):
        cli.main(command_line("predict", tiny[0], data_dir, tmp_path / "taken.tsv"))
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert str(tmp_path / "taken.tsv") in err and "Is a directory; a folder is in the way" in err
    assert (tmp_path / "taken.tsv" / "keep").read_text() == "x"  # nothing removed


@pytest.mark.parametrize("command", ["finetune", "predict"])
def test_a_sequence_length_beyond_the_models_positions_stops_before_the_attention_kernel(tiny, tmp_path, capsys,
                                                                                          command):
    argv = command_line(command, tiny[0], prepared_sst2(tmp_path / "data", 24, 8), tmp_path / "out" / "r")
    with pytest.raises(SystemExit) as e:
        cli.main([*argv, "--max-seq-length", "1024"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "Traceback" not in "\n".join(err)
    assert err[-1] == (f"glueslim {command}: error: max_seq_length = 1024 is longer than the model {tiny[0]} reads "
                       "(512 positions): set --max-seq-length (the max_seq_length key) to 512 or less")
    assert not (tmp_path / "out").exists()


def test_teacher_outputs_of_another_task_or_cut_short_and_a_damaged_init_checkpoint_are_refused(tiny, tmp_path):
    """Cached logits of another task whose idx cover this task's rows trained silently (or failed in a loss
    with a shape error); a cut file failed in safetensors; a damaged `--init` folder in transformers."""
    from safetensors.torch import save_file

    from glueslim.students import StudentSpec, build_student
    from glueslim.teacher_outputs import teacher_logits_for

    rows = [{"idx": i, "text_a": "x", "text_b": None, "label": 0} for i in range(4)]
    path = tmp_path / "rte.safetensors"
    save_file({"idx": torch.arange(10), "logits": torch.randn(10, 2)}, str(path), metadata={"task": "rte"})
    assert len(teacher_logits_for(rows, str(path), "rte")) == 4
    with pytest.raises(UserError, match=r"rte\.safetensors: teacher outputs of task 'rte', not 'sst2': point "
                                        r"--teacher-outputs at this task's file"):
        teacher_logits_for(rows, str(path), "sst2")
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(UserError, match=r"rte\.safetensors: not a readable safetensors file .* truncated or damaged"):
        teacher_logits_for(rows, str(path), "rte")
    init = damaged_model(tiny[0], tmp_path / "init", "cut config")
    with pytest.raises(UserError, match=rf"^{init / 'config.json'}: not valid JSON"):
        build_student(StudentSpec(builder="checkpoint", init=str(init)), model_of(tiny[0]), 0)
