"""prepare-data: parsing quirks of the original GLUE TSVs, validation, capping, the hub path, the real copy."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import pytest

from glueslim import cli, data
from glueslim.errors import UserError
from glueslim.tasks import get_task

SHARED_GLUE = Path(__file__).parents[1].parent / "shared" / "data" / "glue"
PROVENANCE = SHARED_GLUE.parent / "PROVENANCE.md"


def write_tsv(path: Path, lines: list[str], bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((("\ufeff" if bom else "") + "".join(line + "\n" for line in lines)).encode("utf-8"))
    return path


def sst2_copy(root: Path, n_train: int = 10) -> Path:
    """A tiny local GLUE copy holding SST-2 train (n_train rows, alternating labels) and dev (3 rows)."""
    write_tsv(root / "SST-2" / "train.tsv", ["sentence\tlabel"] + [f"sentence {i} \t{i % 2}" for i in range(n_train)])
    write_tsv(root / "SST-2" / "dev.tsv", ["sentence\tlabel", "good \t1", "bad \t0", "fine \t1"])
    return root


# ---- parsing quirks -----------------------------------------------------------------------------

def test_cola_train_has_no_header_and_test_has_one(tmp_path):
    train = write_tsv(tmp_path / "train.tsv", ["gj04\t1\t\tOur friends won't buy this analysis.",
                                               "gj04\t0\t*\tOne more pseudo generalization or I'm giving up."])
    recs = data.read_glue_tsv("cola", "train", train)
    assert recs == [
        {"idx": 0, "text_a": "Our friends won't buy this analysis.", "text_b": None, "label": 1},
        {"idx": 1, "text_a": "One more pseudo generalization or I'm giving up.", "text_b": None, "label": 0},
    ]
    test = write_tsv(tmp_path / "test.tsv", ["index\tsentence", "0\tBill whistled past the house."])
    assert data.read_glue_tsv("cola", "test", test) == [
        {"idx": 0, "text_a": "Bill whistled past the house.", "text_b": None, "label": None}]


def test_unbalanced_quotes_never_merge_rows(tmp_path):
    lines = ["index\tsentence1\tsentence2\tlabel",
             '0\t" The witness said he never saw it.\tA man spoke of it twice.\tentailment',
             '1\tShe called it "art.\tNothing was said.\tnot_entailment',
             "2\tThe third row.\tStill here.\tentailment"]
    path = write_tsv(tmp_path / "dev.tsv", lines)
    # the fixture is the real hazard: default csv quoting swallows the next line(s)
    assert len(list(csv.reader(io.StringIO(path.read_text()), delimiter="\t"))) < len(lines)
    recs = data.read_glue_tsv("rte", "validation", path)
    assert [r["idx"] for r in recs] == [0, 1, 2]
    assert recs[0]["text_a"] == '" The witness said he never saw it.'
    assert recs[1]["text_a"] == 'She called it "art.'
    assert [r["label"] for r in recs] == [0, 1, 0]


def test_mrpc_header_with_bom(tmp_path):
    path = write_tsv(tmp_path / "train.tsv", ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
                                              "1\t702876\t702977\tAmrozi accused his brother .\tReferring to him ."],
                     bom=True)
    assert data.read_glue_tsv("mrpc", "train", path) == [
        {"idx": 0, "text_a": "Amrozi accused his brother .", "text_b": "Referring to him .", "label": 1}]


STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"


def stsb_row(i: int, score: str) -> str:
    meta = "main-captions\tMSRvid\t2012test\t0001\tnone\tnone"
    return f"{i}\t{meta}\tA plane is taking off.\tA plane takes off.\t{score}"


def test_stsb_scores_parse_as_floats(tmp_path):
    path = write_tsv(tmp_path / "dev.tsv", [STSB_HEADER, stsb_row(0, "5.000"), stsb_row(1, "3.800"),
                                            stsb_row(2, "0.0"), stsb_row(3, "2.1428571428571")])
    assert [r["label"] for r in data.read_glue_tsv("stsb", "validation", path)] == [5.0, 3.8, 0.0, 2.1428571428571]
    test = write_tsv(tmp_path / "test.tsv", [STSB_HEADER.rsplit("\t", 1)[0], stsb_row(0, "x").rsplit("\t", 1)[0]])
    assert data.read_glue_tsv("stsb", "test", test)[0]["label"] is None


@pytest.mark.parametrize("score, msg", [("abc", "is not a number"), ("5.5", "is outside [0, 5]"),
                                        ("-0.1", "is outside [0, 5]"), ("nan", "is outside [0, 5]")])
def test_stsb_bad_score_names_file_and_line(tmp_path, score, msg):
    path = write_tsv(tmp_path / "dev.tsv", [STSB_HEADER, stsb_row(0, "1.0"), stsb_row(1, score)])
    with pytest.raises(UserError, match=rf"{re.escape(str(path))}:3: score '{re.escape(score)}' {re.escape(msg)}"):
        data.read_glue_tsv("stsb", "validation", path)


def test_wrong_column_count_names_file_and_line(tmp_path):
    path = write_tsv(tmp_path / "dev.tsv", ["sentence\tlabel", "fine\t1", "a stray\ttab\t0"])
    with pytest.raises(UserError, match=rf"{re.escape(str(path))}:3: 3 columns, expected 2"):
        data.read_glue_tsv("sst2", "validation", path)
    blank = write_tsv(tmp_path / "blank.tsv", ["sentence\tlabel", "fine\t1", "", "good\t1"])
    with pytest.raises(UserError, match=rf"{re.escape(str(blank))}:3: 0 columns"):
        data.read_glue_tsv("sst2", "validation", blank)


@pytest.mark.parametrize("task, header, row, label", [
    ("sst2", "sentence\tlabel", "fine\t2", "'2'"),
    ("sst2", "sentence\tlabel", "fine\tpositive", "'positive'"),
    ("rte", "index\tsentence1\tsentence2\tlabel", "0\ta\tb\tneutral", "'neutral'"),
    ("mnli", "index\tsentence1\tsentence2\tgold_label", "0\ta\tb\t-", "'-'"),
])
def test_label_outside_the_set(tmp_path, task, header, row, label):
    path = write_tsv(tmp_path / "f.tsv", [header, row])
    with pytest.raises(UserError, match=rf"{re.escape(str(path))}:2: label {label} is not one of"):
        data.read_glue_tsv(task, "train", path)


def test_empty_text_and_empty_files(tmp_path):
    path = write_tsv(tmp_path / "dev.tsv", ["index\tsentence1\tsentence2\tlabel", "0\tPremise.\t \tentailment"])
    with pytest.raises(UserError, match=rf"{re.escape(str(path))}:2: empty text_b"):
        data.read_glue_tsv("rte", "validation", path)
    header_only = write_tsv(tmp_path / "h.tsv", ["sentence\tlabel"])
    with pytest.raises(UserError, match="no data rows"):
        data.read_glue_tsv("sst2", "validation", header_only)
    empty = write_tsv(tmp_path / "e.tsv", [])
    with pytest.raises(UserError, match="empty file"):
        data.read_glue_tsv("sst2", "validation", empty)
    with pytest.raises(UserError, match="no data rows"):
        data.read_glue_tsv("cola", "train", empty)


def test_index_column_must_match_row_position(tmp_path):
    path = write_tsv(tmp_path / "test.tsv", ["index\tsentence", "0\ta", "2\tb"])
    with pytest.raises(UserError, match=rf"{re.escape(str(path))}:3: index column is '2' but this is data row 1"):
        data.read_glue_tsv("sst2", "test", path)


def test_mnli_columns_by_header_and_text_labels(tmp_path):
    train_cols = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
                  "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"]
    dev_cols = train_cols[:-1] + ["label2", "label3", "label4", "label5", "gold_label"]
    for cols, split in [(train_cols, "train"), (dev_cols, "validation_matched")]:
        rows = []
        for i, lab in enumerate(["entailment", "neutral", "contradiction"]):
            vals = {c: "x" for c in cols} | {"index": str(i), "sentence1": f"P{i}.", "sentence2": f"H{i}.",
                                             "label1": "neutral", "gold_label": lab}
            rows.append("\t".join(vals[c] for c in cols))
        path = write_tsv(tmp_path / f"{split}.tsv", ["\t".join(cols)] + rows)
        recs = data.read_glue_tsv("mnli", split, path)
        assert [(r["text_a"], r["text_b"], r["label"]) for r in recs] == [
            ("P0.", "H0.", 0), ("P1.", "H1.", 1), ("P2.", "H2.", 2)]


# ---- prepare: row counts, cap, manifest ---------------------------------------------------------

def test_row_count_check_and_opt_out(tmp_path):
    glue = sst2_copy(tmp_path / "glue")
    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"SST-2/train.tsv: 10 data rows, the official file has 67349; "
                                        r"a truncated download\? pass --no-check-row-counts"):
        data.prepare("sst2", out, glue_dir=str(glue))
    assert not out.exists()  # nothing half-written
    m = data.prepare("sst2", out, glue_dir=str(glue), check_row_counts=False)
    assert m["source"] == {"kind": "local", "glue_dir": str(glue)}
    assert [(f["split"], f["rows"], f["official_rows"]) for f in m["source_files"]] == [
        ("train", 10, 67349), ("validation", 3, 872)]  # test.tsv absent: optional, skipped
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "train.jsonl", "validation.jsonl"]
    assert json.loads((out / "manifest.json").read_text()) == m
    assert m["splits"]["validation"] == {"file": "validation.jsonl", "rows": 3, "rows_source": 3, "capped": False,
                                         "label_counts": {"0": 1, "1": 2}}
    assert data.load_split(out, "validation")[0] == {"idx": 0, "text_a": "good ", "text_b": None, "label": 1}
    with pytest.raises(UserError, match="no such prepared split"):
        data.load_split(out, "test")


def test_seeded_cap_is_deterministic_and_idx_sorted(tmp_path):
    glue = sst2_copy(tmp_path / "glue", n_train=50)
    kw = dict(glue_dir=str(glue), check_row_counts=False, max_train=8)
    m = data.prepare("sst2", tmp_path / "a", seed=1, **kw)
    data.prepare("sst2", tmp_path / "b", seed=1, **kw)
    data.prepare("sst2", tmp_path / "c", seed=2, **kw)
    a, b, c = (data.load_split(tmp_path / d, "train") for d in "abc")
    assert a == b and a != c
    idx = [r["idx"] for r in a]
    assert len(idx) == 8 and idx == sorted(idx) and len(set(idx)) == 8
    assert all(r["text_a"] == f"sentence {r['idx']} " and r["label"] == r["idx"] % 2 for r in a)
    assert m["max_train"] == 8 and m["seed"] == 1
    assert {k: m["splits"]["train"][k] for k in ("rows", "rows_source", "capped")} == {
        "rows": 8, "rows_source": 50, "capped": True}
    assert sum(m["splits"]["train"]["label_counts"].values()) == 8
    assert m["splits"]["validation"]["rows"] == 3  # dev is never capped
    big = data.prepare("sst2", tmp_path / "d", glue_dir=str(glue), check_row_counts=False, max_train=500)
    assert big["splits"]["train"]["capped"] is False and big["splits"]["train"]["rows"] == 50


def test_check_local_copy_names_every_missing_task_and_file(tmp_path):
    glue = sst2_copy(tmp_path / "glue")
    write_tsv(glue / "QNLI" / "dev.tsv", ["index\tquestion\tsentence\tlabel"])
    data.check_local_copy(glue, ["sst2", "ax"])  # test files (and the diagnostic set) are optional
    with pytest.raises(UserError) as e:
        data.check_local_copy(glue, ["sst2", "qnli", "mnli"])
    msg = str(e.value)
    assert "sst2" not in msg
    assert f"task qnli: missing {glue / 'QNLI' / 'train.tsv'} (needed for training)" in msg
    assert f"task mnli: missing {glue / 'MNLI' / 'train.tsv'}" in msg
    assert str(glue / "MNLI" / "dev_mismatched.tsv") in msg and "QNLI/dev.tsv" not in msg
    assert "\n" not in msg and "remove the task from `tasks` or add the file" in msg
    with pytest.raises(UserError, match="not a directory"):
        data.check_local_copy(tmp_path / "nowhere", ["sst2"])


def test_resolve_glue_dir(monkeypatch):
    monkeypatch.delenv("GLUE_DIR", raising=False)
    assert data.resolve_glue_dir(None) is None and data.resolve_glue_dir("") is None
    monkeypatch.setenv("GLUE_DIR", "/env/glue")
    assert data.resolve_glue_dir(None) == "/env/glue"
    assert data.resolve_glue_dir("/cfg/glue") == "/cfg/glue"


def test_cli_success_and_one_line_error(tmp_path, capsys):
    glue = sst2_copy(tmp_path / "glue")
    out = tmp_path / "out"
    cli.main(["prepare-data", "--task", "sst2", "--out", str(out), "--glue-dir", str(glue),
              "--no-check-row-counts", "--max-train", "4", "--seed", "3"])
    m = json.loads((out / "manifest.json").read_text())
    assert m["splits"]["train"]["rows"] == 4 and m["seed"] == 3
    with pytest.raises(SystemExit) as e:
        cli.main(["prepare-data", "--task", "qnli", "--out", str(tmp_path / "q"), "--glue-dir", str(glue)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("glueslim prepare-data: error: task qnli: missing") and "\n" not in err



def test_a_required_file_that_is_a_directory_or_a_dangling_link_is_named_as_such(tmp_path):
    glue = sst2_copy(tmp_path / "glue")
    dev = glue / "SST-2" / "dev.tsv"
    dev.unlink()
    dev.mkdir()
    train = glue / "SST-2" / "train.tsv"
    train.rename(glue / "elsewhere.tsv")
    train.symlink_to(tmp_path / "moved" / "train.tsv")
    with pytest.raises(UserError) as e:
        data.check_local_copy(glue, ["sst2"])
    msg = str(e.value)
    assert f"{train} is a link to {tmp_path / 'moved' / 'train.tsv'}, which does not exist (needed for training)" in msg
    assert f"{dev} is a directory, not a file (needed for evaluation)" in msg and "missing" not in msg
    # an optional test file that is there but is a directory is not skipped as if absent
    train.unlink()
    (glue / "elsewhere.tsv").rename(train)
    dev.rmdir()
    write_tsv(dev, ["sentence\tlabel", "good \t1"])
    (glue / "SST-2" / "test.tsv").mkdir()
    with pytest.raises(UserError, match=r"test\.tsv is a directory, not a file \(split test of task sst2\)"):
        data.prepare("sst2", tmp_path / "out", glue_dir=str(glue), check_row_counts=False)
    assert not (tmp_path / "out").exists()


def test_an_unreadable_file_names_the_file_and_the_reason(tmp_path, monkeypatch):
    """Tests run as root, where permission bits do not stop a read: os.access and open are made to refuse."""
    glue = sst2_copy(tmp_path / "glue")
    train = glue / "SST-2" / "train.tsv"
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: str(p) != str(train) and real_access(p, mode))
    with pytest.raises(UserError, match=rf"{train}: not readable \(permission denied\); fix its permissions"):
        data.check_local_copy(glue, ["sst2"])
    monkeypatch.undo()

    def refuse(path, *a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(data, "open", refuse, raising=False)
    with pytest.raises(UserError, match=rf"^{train}: cannot be read \(Permission denied\); check the file"):
        data.read_glue_tsv("sst2", "train", train)


@pytest.mark.parametrize("content, words", [
    ("", "no rows"),
    ('{"idx": 0, "text_a": "good", "text_b": null, "label": 1}\n{"idx": 1, "text_a": "ba', "not valid JSON"),
    ('{"idx": 0, "text_a": "good", "text_b": null, "label": 1}\n[1, 2]\n', "record 2 is not a prepared record"),
    ('{"idx": "0", "text": "good"}\n', "record 1 is not a prepared record"),
])
def test_a_damaged_or_empty_prepared_split_is_named(tmp_path, content, words):
    (tmp_path / "train.jsonl").write_text(content)
    with pytest.raises(UserError) as e:
        data.load_split(tmp_path, "train")
    msg = str(e.value)
    assert msg.startswith(str(tmp_path / "train.jsonl")) and words in msg and msg.endswith("run prepare-data again")


def test_a_prepared_split_that_is_a_directory_or_a_folder_that_links_nowhere(tmp_path):
    (tmp_path / "validation.jsonl").mkdir()
    with pytest.raises(UserError, match=r"validation\.jsonl is a directory, not a file"):
        data.load_split(tmp_path, "validation")
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    with pytest.raises(UserError, match=rf"^{tmp_path / 'link'} is a link to {tmp_path / 'gone'}, which does not exist"):
        data.load_split(tmp_path / "link", "train")

# ---- the hub path, on in-memory datasets shaped like nyu-mll/glue --------------------------------

def test_normalize_hub_split():
    from datasets import Dataset

    sst2 = Dataset.from_dict({"sentence": ["hide new secretions ", "contains no wit "], "label": [0, 1], "idx": [0, 1]})
    assert data.normalize_hub_split("sst2", "train", sst2) == [
        {"idx": 0, "text_a": "hide new secretions ", "text_b": None, "label": 0},
        {"idx": 1, "text_a": "contains no wit ", "text_b": None, "label": 1}]
    test = Dataset.from_dict({"sentence": ["uneasy mishmash"], "label": [-1], "idx": [0]})
    assert data.normalize_hub_split("sst2", "test", test)[0]["label"] is None

    mnli = Dataset.from_dict({"premise": ["P0", "P1", "P2"], "hypothesis": ["H0", "H1", "H2"],
                              "label": [0, 1, 2], "idx": [0, 1, 2]})
    recs = data.normalize_hub_split(get_task("mnli"), "validation_matched", mnli)
    assert [(r["text_a"], r["text_b"], r["label"]) for r in recs] == [("P0", "H0", 0), ("P1", "H1", 1), ("P2", "H2", 2)]
    qqp = Dataset.from_dict({"question1": ["q1"], "question2": ["q2"], "label": [-1], "idx": [7]})
    assert data.normalize_hub_split("qqp", "test", qqp) == [{"idx": 7, "text_a": "q1", "text_b": "q2", "label": None}]
    qnli = Dataset.from_dict({"question": ["Q?"], "sentence": ["S."], "label": [1], "idx": [0]})
    assert data.normalize_hub_split("qnli", "validation", qnli)[0]["label"] == 1  # not_entailment
    ax = Dataset.from_dict({"premise": ["The cat sat."], "hypothesis": ["It did not."], "label": [-1], "idx": [0]})
    assert data.normalize_hub_split("ax", "test", ax)[0]["label"] is None

    import datasets
    feats = datasets.Features({"sentence1": datasets.Value("string"), "sentence2": datasets.Value("string"),
                               "label": datasets.Value("float32"), "idx": datasets.Value("int32")})
    stsb = Dataset.from_dict({"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [3.8, 5.0], "idx": [0, 1]},
                             features=feats)
    assert [r["label"] for r in data.normalize_hub_split("stsb", "validation", stsb)] == [3.8, 5.0]


@pytest.mark.parametrize("task, cols, msg", [
    ("sst2", {"sentence": ["ok", "fine"], "label": [0, 2], "idx": [0, 1]}, "row 1: label 2 is not one of 0..1"),
    ("sst2", {"sentence": ["ok"], "label": [-1], "idx": [0]}, "row 0: label -1"),  # -1 outside test splits
    ("rte", {"sentence1": ["a"], "sentence2": [""], "label": [0], "idx": [0]}, "row 0: empty text_b"),
    ("stsb", {"sentence1": ["a"], "sentence2": ["b"], "label": [5.5], "idx": [0]}, "outside"),
    ("sst2", {"sentence": ["a", "b"], "label": [0, 0], "idx": [0, 0]}, "repeated idx"),
    ("sst2", {"text": ["a"], "label": [0], "idx": [0]}, "no column 'sentence'"),
])
def test_normalize_hub_split_errors(task, cols, msg):
    from datasets import Dataset

    with pytest.raises(UserError, match=re.escape(msg)):
        data.normalize_hub_split(task, "train", Dataset.from_dict(cols))


def test_prepare_from_hub_offline_stub(tmp_path, monkeypatch):
    import datasets
    import huggingface_hub

    calls = []

    def split(labels):
        n = len(labels)
        return datasets.Dataset.from_dict({"sentence": [f"s{i}" for i in range(n)], "label": labels,
                                           "idx": list(range(n))})

    def fake_load(name, config, revision=None):
        calls.append((name, config, revision))
        return datasets.DatasetDict({"train": split([i % 2 for i in range(20)]), "validation": split([1] * 4),
                                     "test": split([-1] * 3)})

    def no_network(self, *a, **k):
        raise OSError("offline")

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", no_network)
    with pytest.raises(UserError, match="split train: 20 data rows, the official file has 67349"):
        data.prepare("sst2", tmp_path / "x", hub_revision="v1")
    m = data.prepare("sst2", tmp_path / "out", max_train=5, check_row_counts=False, hub_revision="v1")
    assert calls[-1] == ("nyu-mll/glue", "sst2", "v1")
    assert m["source"] == {"kind": "hub", "dataset": "nyu-mll/glue", "config": "sst2", "revision": "v1", "commit": None}
    assert [(f["split"], f["rows"], f["official_rows"]) for f in m["source_files"]] == [
        ("train", 20, 67349), ("validation", 4, 872), ("test", 3, 1821)]
    assert all(f["fingerprint"] for f in m["source_files"])
    assert m["splits"]["train"]["rows"] == 5 and m["splits"]["validation"]["label_counts"] == {"0": 0, "1": 4}
    assert data.load_split(tmp_path / "out", "test") == [
        {"idx": i, "text_a": f"s{i}", "text_b": None, "label": None} for i in range(3)]

    def down(*a, **k):
        raise ConnectionError("hub unreachable")

    monkeypatch.setattr(datasets, "load_dataset", down)
    with pytest.raises(UserError, match="could not load nyu-mll/glue config sst2 .*pass --glue-dir"):
        data.prepare("sst2", tmp_path / "y")


# ---- the real GLUE copy in ../shared --------------------------------------------------------------

real = pytest.mark.skipif(not SHARED_GLUE.is_dir(), reason=f"no real GLUE copy at {SHARED_GLUE}")


def provenance_sha256() -> dict[str, str]:
    """`glue/<TASK>/<file>` -> sha256, from the per-file sections of PROVENANCE.md."""
    text = PROVENANCE.read_text(encoding="utf-8")
    return dict(re.findall(r"^### `(glue/[^`]+)`\n(?:(?!^###).*\n)*?- sha256: `([0-9a-f]{64})`", text, flags=re.M))


@real
@pytest.mark.parametrize("task, max_train, dev_counts", [
    ("sst2", 500, {"0": 428, "1": 444}),  # negative/positive
    ("mrpc", None, {"0": 129, "1": 279}),  # not_equivalent/equivalent
    ("stsb", 300, None),
])
def test_real_copy(tmp_path, task, max_train, dev_counts):
    m = data.prepare(task, tmp_path / task, glue_dir=str(SHARED_GLUE), max_train=max_train)
    t = get_task(task)
    official = {s: n for (name, s), n in data.OFFICIAL_ROWS.items() if name == task}
    assert {s: v["rows_source"] for s, v in m["splits"].items()} == official
    train = m["splits"]["train"]
    assert train["rows"] == (max_train or official["train"]) and train["capped"] == (max_train is not None)
    assert len(data.load_split(tmp_path / task, "train")) == train["rows"]
    assert m["splits"]["validation"]["label_counts"] == dev_counts
    hashes = provenance_sha256()
    assert len(m["source_files"]) == 3
    for f in m["source_files"]:
        assert f["rows"] == f["official_rows"]
        assert f["sha256"] == hashes[f"glue/{t.glue_dir}/{Path(f['path']).name}"]
    if task == "stsb":
        stats = m["splits"]["validation"]["label_stats"]
        assert stats["min"] == 0.0 and stats["max"] == 5.0
        assert data.load_split(tmp_path / task, "test")[0]["label"] is None


@real
def test_real_sst2_dev_sha256_listed_in_provenance():
    assert provenance_sha256()["glue/SST-2/dev.tsv"] == \
        "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0"
    assert data.sha256_file(SHARED_GLUE / "SST-2" / "dev.tsv") == provenance_sha256()["glue/SST-2/dev.tsv"]


@real
def test_real_check_local_copy_names_qnli_train():
    data.check_local_copy(SHARED_GLUE, ["cola", "sst2", "mrpc", "stsb", "rte", "wnli", "ax"])
    with pytest.raises(UserError, match=re.escape(str(SHARED_GLUE / "QNLI" / "train.tsv"))):
        data.check_local_copy(SHARED_GLUE, ["sst2", "qnli"])
