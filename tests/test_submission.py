"""glueslim.submission: the GLUE server zip (file names, columns, label vocabularies), what it lacks and why,
test predictions written by predict's code and never taken for dev files, and the leaderboard's link."""

from __future__ import annotations

import csv
import re
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from glueslim import cli
from glueslim.errors import UserError
from glueslim.io import atomic_write_jsonl
from glueslim.submission import SERVER_FILES, build_submission, server_stems
from glueslim.tasks import TASKS, get_task

from report_fixtures import CONFIG, STUDENT, TEACHER, results  # noqa: F401 - `results` is a fixture
from report_fixtures import TASKS as REPORT_TASKS

ALL_TASKS = ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"]

# What the GLUE server accepts (gluebenchmark.com; the GLUE baselines' and jiant's submission writers):
# one file per task under these names, header `index<TAB>prediction`, and these prediction vocabularies.
SERVER = {
    "CoLA.tsv": {"0", "1"}, "SST-2.tsv": {"0", "1"}, "MRPC.tsv": {"0", "1"}, "QQP.tsv": {"0", "1"},
    "WNLI.tsv": {"0", "1"}, "STS-B.tsv": "score",
    "MNLI-m.tsv": {"entailment", "neutral", "contradiction"}, "MNLI-mm.tsv": {"entailment", "neutral", "contradiction"},
    "AX.tsv": {"entailment", "neutral", "contradiction"},
    "QNLI.tsv": {"entailment", "not_entailment"}, "RTE.tsv": {"entailment", "not_entailment"},
}


def write_test_file(path: Path, preds: list, order=None) -> None:
    """A test prediction file as predict-test writes it: idx, empty label, prediction."""
    path.parent.mkdir(parents=True, exist_ok=True)
    order = order or range(len(preds))
    path.write_text("idx\tlabel\tprediction\n" + "".join(f"{i}\t\t{preds[i]}\n" for i in order), encoding="utf-8")


def fake_predictions(pred_dir: Path, stems, n: int = 6) -> None:
    for stem in stems:
        f = next(f for f in SERVER_FILES if f.stem == stem)
        task = get_task(f.task)
        preds = [[-0.7, 0.2, 2.5, 5.4, 3.14159, 1.0][i % 6] if task.is_regression else i % task.num_labels
                 for i in range(n)]
        write_test_file(pred_dir / f"{stem}.tsv", preds, order=reversed(range(n)))  # any order in, sorted out


def read_zip(path: Path) -> dict[str, list[list[str]]]:
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        return {name: list(csv.reader(io.StringIO(z.read(name).decode("utf-8")), delimiter="\t"))
                for name in z.namelist()}


def test_a_complete_submission_matches_the_servers_names_columns_and_labels(tmp_path, monkeypatch):
    monkeypatch.setattr("glueslim.submission.OFFICIAL_ROWS", {})  # 6 rows a file here, not the official counts
    stems = server_stems(ALL_TASKS, include_diagnostic=True)
    assert sorted(f.name for f in stems.values()) == sorted(SERVER)
    fake_predictions(tmp_path / "pred", stems)
    s = build_submission("teacher", tmp_path / "pred", ALL_TASKS, True, tmp_path / "teacher.zip",
                         tmp_path / "teacher.json")
    files = read_zip(tmp_path / "teacher.zip")
    assert sorted(files) == sorted(SERVER)  # the server's files and nothing else
    for name, rows in files.items():
        assert rows[0] == ["index", "prediction"], name
        assert [int(r[0]) for r in rows[1:]] == list(range(6)), name  # sorted by index, every row once
        values = [r[1] for r in rows[1:]]
        if SERVER[name] == "score":
            assert values == ["0.000", "0.200", "2.500", "5.000", "3.142", "1.000"]  # clipped to [0, 5]
        else:
            assert set(values) <= SERVER[name], (name, values)
    # label names follow each task's own label order (QNLI/RTE: 0 = entailment; MNLI: 0 = entailment)
    assert [r[1] for r in files["RTE.tsv"][1:3]] == ["entailment", "not_entailment"]
    assert [r[1] for r in files["MNLI-m.tsv"][1:4]] == ["entailment", "neutral", "contradiction"]
    assert [r[1] for r in files["WNLI.tsv"][1:3]] == ["0", "1"]
    assert s["complete"] and s["missing"] == [] and json.loads((tmp_path / "teacher.json").read_text()) == s
    assert b"Complete" in zipfile.ZipFile(tmp_path / "teacher.zip").comment
    first = (tmp_path / "teacher.zip").read_bytes()
    build_submission("teacher", tmp_path / "pred", ALL_TASKS, True, tmp_path / "teacher.zip", tmp_path / "t.json")
    assert (tmp_path / "teacher.zip").read_bytes() == first  # the same bytes on every run


def test_a_partial_run_lists_every_missing_file_with_the_reason(tmp_path):
    tasks = ["cola", "sst2", "mrpc", "stsb", "rte"]  # the quick preset
    stems = server_stems(tasks, include_diagnostic=True)
    assert set(stems) == set(tasks)  # no AX without the MNLI model
    fake_predictions(tmp_path / "pred", stems)
    write_test_file(tmp_path / "pred" / "rte.tsv", [])  # a local copy without RTE/test.tsv
    s = build_submission("distil", tmp_path / "pred", tasks, True, tmp_path / "distil.zip", tmp_path / "distil.json")
    assert sorted(read_zip(tmp_path / "distil.zip")) == ["CoLA.tsv", "MRPC.tsv", "SST-2.tsv", "STS-B.tsv"]
    missing = {m["file"]: m["reason"] for m in s["missing"]}
    assert sorted(missing) == ["AX.tsv", "MNLI-m.tsv", "MNLI-mm.tsv", "QNLI.tsv", "QQP.tsv", "RTE.tsv", "WNLI.tsv"]
    assert missing["QQP.tsv"] == "task qqp is not in `tasks`: add it"
    assert missing["AX.tsv"] == "AX is predicted by the MNLI model: add mnli to `tasks`"
    assert missing["RTE.tsv"] == "results/data/rte has no test split (the local GLUE copy lacks test.tsv)"
    assert not s["complete"]
    assert "CoLA.tsv has 6 rows, the server expects 1063: it will reject it" in s["warnings"]
    comment = zipfile.ZipFile(tmp_path / "distil.zip").comment.decode()
    assert "Missing for a complete submission: " in comment and "QQP.tsv (task qqp is not in `tasks`: add it)" in comment
    fake_predictions(tmp_path / "mnli", server_stems(["mnli"], False))
    s = build_submission("x", tmp_path / "mnli", ["mnli"], False, tmp_path / "x.zip", tmp_path / "x.json")
    assert sorted(read_zip(tmp_path / "x.zip")) == ["MNLI-m.tsv", "MNLI-mm.tsv"]
    assert {m["file"]: m["reason"] for m in s["missing"]}["AX.tsv"] == "include_diagnostic is off: set it to true"


@pytest.mark.parametrize("body, message", [
    ("idx\tlabel\tprediction\n0\t1\t1\n", "rte.tsv:2: has the label '1', but test labels are not public: this is not "
                                          "a test prediction file (the test split); re-run predict-test"),
    ("idx\tlabel\tprediction\n0\t\t2\n", "rte.tsv:2: prediction '2' is not a label id 0..1; re-run predict-test"),
    ("idx\tlabel\tprediction\n0\t\t1\n0\t\t0\n", "rte.tsv:3: idx '0' is not a new non-negative integer"),
    ("index\tprediction\n0\tentailment\n", "rte.tsv:1: expected the header idx label prediction (tab-separated), "
                                           "found 'index prediction'"),
    ("idx\tlabel\tprediction\n0\t1\n", "rte.tsv:2: 2 columns, expected 3"),
])
def test_a_bad_test_file_is_one_line_naming_file_and_line_and_no_zip_is_written(tmp_path, body, message):
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "rte.tsv").write_text(body, encoding="utf-8")
    with pytest.raises(UserError) as e:
        build_submission("m", tmp_path / "pred", ["rte"], False, tmp_path / "m.zip", tmp_path / "m.json")
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "m.zip").exists() and not (tmp_path / "m.json").exists()


def test_stsb_rejects_a_non_finite_score(tmp_path):
    write_test_file(tmp_path / "pred" / "stsb.tsv", ["nan"])
    with pytest.raises(UserError, match=r"stsb.tsv:2: prediction 'nan' is not a finite number"):
        build_submission("m", tmp_path / "pred", ["stsb"], False, tmp_path / "m.zip", tmp_path / "m.json")


def test_every_server_file_maps_to_a_real_task_split():
    for f in SERVER_FILES:
        assert f.split in get_task(f.task).split_files and f.model_task in TASKS
        assert not f.split.startswith("validation")  # never a dev split


def test_predict_test_uses_predicts_code_and_an_absent_test_split_gives_an_empty_file(tiny_bert, tmp_path):
    rows = [{"idx": i, "text_a": f"good film {i}", "text_b": None, "label": None} for i in range(5)]
    atomic_write_jsonl(tmp_path / "data" / "test.jsonl", rows)
    args = ["--data", str(tmp_path / "data"), "--model-dir", str(tiny_bert), "--device", "cpu", "--threads", "1"]
    cli.main(["predict-test", "--stem", "sst2", "--out", str(tmp_path / "pred" / "sst2.tsv"), *args])
    lines = (tmp_path / "pred" / "sst2.tsv").read_text().splitlines()
    assert lines[0] == "idx\tlabel\tprediction" and len(lines) == 6
    assert all(line.split("\t")[1] == "" and line.split("\t")[2] in {"0", "1"} for line in lines[1:])
    # MNLI's matched test split is not in this folder: a header-only file, listed as missing in the zip
    cli.main(["predict-test", "--stem", "mnli_matched", "--out", str(tmp_path / "pred" / "mnli_matched.tsv"), *args])
    assert (tmp_path / "pred" / "mnli_matched.tsv").read_text() == "idx\tlabel\tprediction\n"
    s = build_submission("m", tmp_path / "pred", ["sst2"], False, tmp_path / "m.zip", tmp_path / "m.json")
    assert [f["file"] for f in s["files"]] == ["SST-2.tsv"] and s["files"][0]["rows"] == 5


def test_the_leaderboard_links_each_zip_and_lists_what_is_missing(results, tmp_path):  # noqa: F811
    subs = tmp_path / "subs"
    for model in (TEACHER, STUDENT):
        fake_predictions(tmp_path / "pred" / model, server_stems(REPORT_TASKS, False))
        build_submission(model, tmp_path / "pred" / model, REPORT_TASKS, False, subs / f"{model}.zip",
                         subs / f"{model}.json")
    out, pub = tmp_path / "render", tmp_path / "reports"
    cmd = [sys.executable, "-m", "glueslim", "leaderboard", "--results", str(results), "--models", TEACHER, STUDENT,
           "--teacher", TEACHER, "--tasks", *REPORT_TASKS, "--config-json", json.dumps(CONFIG),
           "--out-json", str(out / "leaderboard.json"), "--out-html", str(out / "leaderboard.html"),
           "--submissions", str(subs), "--publish", str(pub)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((pub / "leaderboard.json").read_text())
    sub = {s["model"]: s for s in doc["glue_submission"]}
    assert sub[STUDENT]["zip"] == f"glue_submission/{STUDENT}.zip"
    assert sub[STUDENT]["files"] == ["SST-2.tsv", "MRPC.tsv"]
    assert "CoLA.tsv" in [m["file"] for m in sub[STUDENT]["missing"]]
    assert (pub / "glue_submission" / f"{STUDENT}.zip").read_bytes() == (subs / f"{STUDENT}.zip").read_bytes()
    html = (pub / "leaderboard.html").read_text()
    assert f'href="glue_submission/{STUDENT}.zip"' in html and "task cola is not in `tasks`: add it" in html


def test_the_workflow_zips_every_model_and_the_leaderboard_waits_for_the_zips(tmp_path, tiny_bert):
    from conftest import run_snakemake, stub_config

    res = run_snakemake(tmp_path, stub_config(tmp_path, tiny_bert), "-n", "-p", cores=1, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    models = ["teacher", "distil", "distil-nokd", "albert", "ckpt", "baseline", "teacher-pruned50"]  # trained models
    leaderboard = out[out.index("rule leaderboard:"):]
    leaderboard = leaderboard[:leaderboard.index("\n    output:")]
    for m in models:
        assert f"results/glue_submission/{m}.zip" in leaderboard, m  # the leaderboard (make quick) needs every zip
    # deployed forms (distil-int8-static, ...) are scored and timed, but ship the model's zip: none of their own
    assert "results/glue_submission/distil-int8-static.zip" not in leaderboard
    assert "results/scores/distil-int8-static.json" in leaderboard
    # the first seed's run of each: a run of another seed (distil-seed43) is scored, not submitted
    assert re.search(r"^predict_test\s+14$", out, re.M) and re.search(r"^glue_submission\s+7$", out, re.M)
    assert "results/glue_submission/distil-seed43.zip" not in leaderboard
    assert "results/scores/distil-seed43.json" in leaderboard
    assert "python -m glueslim predict-test --stem stsb --data results/data/stsb --model-dir " \
           "results/models/teacher-pruned50/stsb" in out
    assert "--publish reports" in out and "--submissions results/glue_submission" in out
