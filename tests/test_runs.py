"""glueslim.runs: seeds as runs <model>-seed<S>, no-KD twins, and the checks of what they add (names, the
ablation's rows, the published links), on the shipped config and presets."""

from __future__ import annotations

import copy

import pytest

from glueslim.config import by_name
from glueslim.runs import (
    add_twins, check_runs, run_of, run_problems, runs_by_row, seed_list, seed_runs, twin_spec, twins,
)
from test_config import full_config, merged, with_defaults
from conftest import ROOT
import yaml


def config_with(**over) -> dict:
    cfg = with_defaults(merged(full_config(), over))
    return cfg


def test_one_seed_adds_no_run_and_the_seed_key_decides_it():
    cfg = config_with(seed=7)
    assert seed_list(cfg) == [7] and seed_runs(cfg) == {} and runs_by_row(cfg) == {}
    assert run_of(cfg, "distil") == ("distil", 7)


def test_each_seed_after_the_first_is_a_named_run_of_every_trained_row_but_the_teacher():
    cfg = config_with(seeds=[42, 43, 44])
    runs = seed_runs(cfg)
    trained = ["distil", "albert", "tinybert4"] + [b["name"] for b in cfg["baselines"]]
    assert set(runs) == {f"{m}-seed{s}" for m in trained for s in (43, 44)}
    assert not any(r.startswith("teacher") for r in runs)
    assert run_of(cfg, "distil-seed44") == ("distil", 44) and run_of(cfg, "distil") == ("distil", 42)
    assert runs_by_row(cfg)["distil"] == {"seeds": [42, 43, 44], "runs": ["distil", "distil-seed43", "distil-seed44"]}


def test_a_twin_keeps_init_shape_and_recipe_and_drops_every_kd_ingredient():
    cfg = config_with(students=[{"name": "kd", "init": "some/checkpoint", "num_layers": 2, "head": "teacher",
                                 "intermediate": ["hidden"], "augment": True, "transfer": True, "twin": True,
                                 "alpha": 0.7,
                                 "train": {"learning_rate": 3e-4}}])
    by_name(cfg)
    add_twins(cfg)
    assert list(cfg["students"]) == ["kd", "kd-nokd"]
    kd, twin = cfg["students"]["kd"], cfg["students"]["kd-nokd"]
    assert twin["alpha"] == 0 and twin["intermediate"] == [] and twin["augment"] is False and twin["twin"] is False
    assert twin["transfer"] is False and kd["transfer"] is True
    for key in ("init", "num_layers", "head", "layer_map", "train", "arch"):
        assert twin[key] == kd[key], key
    assert twins(cfg) == {"kd-nokd": "kd"}
    assert twin_spec(kd)["temperature"] == kd["temperature"]


def test_twins_are_seeded_too():
    cfg = config_with(seeds=[1, 2], students=[{"name": "kd", "twin": True}])
    assert {"kd-seed2", "kd-nokd-seed2"} <= set(seed_runs(cfg))


def test_names_a_twin_or_a_seed_run_would_take_are_reported():
    cfg = config_with(students=[{"name": "kd", "twin": True}, {"name": "kd-nokd"}])
    assert any("students.kd.twin" in p and "'kd-nokd'" in p for p in run_problems(cfg))
    cfg = config_with(seeds=[42, 43], students=[{"name": "kd"}, {"name": "kd-seed43"}])
    assert any("kd-seed43" in p for p in run_problems(cfg))


def test_ablation_rows_and_published_links_must_name_rows_and_references():
    cfg = config_with(ablation={"rows": [{"label": "a", "model": "distil"}, {"label": "b", "model": "nope"}]})
    problems = run_problems(cfg)
    assert len(problems) == 1 and "ablation.rows[1].model = 'nope'" in problems[0]
    cfg = config_with(published=[{"model": "distil", "reference": "no-such-paper"}])
    assert any("no-such-paper" in p for p in run_problems(cfg))
    with pytest.raises(Exception, match="no-such-paper"):
        check_runs(cfg)
    twice = [{"model": "distil", "reference": "distilbert"}] * 2
    assert any("linked 2 times" in p for p in run_problems(config_with(published=twice)))


def test_a_student_checkpoint_must_be_a_model():
    cfg = config_with(students=[{"name": "kd", "init": "./no/such/folder"}])
    assert any(p.startswith("students.kd.init:") for p in run_problems(cfg))


@pytest.mark.parametrize("preset", sorted(p.name for p in (ROOT / "presets").glob("*.yaml")))
def test_shipped_config_and_presets_have_no_run_problems(preset):
    over = yaml.safe_load((ROOT / "presets" / preset).read_text())
    base = merged(full_config(), yaml.safe_load((ROOT / "presets" / "quick.yaml").read_text()))
    cfg = with_defaults(merged(base, over))
    cfg["hf"]["offline"] = False  # the shared cache is a test fixture; names and links are what is checked
    assert run_problems(cfg) == []
    assert run_problems(with_defaults(copy.deepcopy(full_config()))) == []


def test_the_default_config_is_the_poster_table_each_row_beside_its_paper():
    from glueslim.published import load_references

    cfg = with_defaults(full_config())
    refs = load_references()
    recipes = {refs[p["reference"]]["recipe"] for p in cfg["published"]}
    assert {"teacher", "head-pruning", "albert", "quantization", "distilbert", "tinybert"} <= recipes
    links = {p["model"]: p["reference"] for p in cfg["published"]}
    students = {s["name"]: s for s in cfg["students"]}
    assert students["distil"]["init"] == "distilbert/distilbert-base-uncased" and links["distil"] == "distilbert"
    tiny = {t["name"]: t for t in cfg["tinybert"]["students"]}["tinybert4"]
    assert tiny["init"] == "huawei-noah/TinyBERT_General_4L_312D" and tiny["augment"] and tiny["intermediate"]
    assert links["tinybert4"].startswith("tinybert-4")
    assert cfg["pruning"]["fractions"] == [0.4] and links["teacher-pruned40"] == "head-pruning-60"
    assert "int8-dynamic" in cfg["deploy"]["forms"] and refs[links["teacher-int8-dynamic"]]["recipe"] == "quantization"


def test_a_transfer_set_needs_a_training_cap():
    student = [{"name": "kd", "transfer": True}]
    problems = run_problems(config_with(students=student))  # the full config trains on every labelled text
    assert [p for p in problems if "students.kd.transfer" in p] == [
        "students.kd.transfer: no texts to transfer, data.max_train_examples is null (the student already trains "
        "on every labelled text): cap the training set or set transfer: false"]
    capped = config_with(students=student, data={"max_train_examples": {"sst2": 100}})
    assert not [p for p in run_problems(capped) if "transfer" in p]
