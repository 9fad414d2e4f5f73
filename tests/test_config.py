"""glueslim.config: every config problem on one line, all at once, before any job starts: schema violations
(key path, value, what was expected, a "did you mean"), then what a schema cannot check (model references,
layer maps, profile.task, trust_remote_code, model names); the named lists by name after the checks."""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import ROOT, SHARED_HF
from glueslim.config import (
    ConfigError, by_name, check_config, check_schema, config_problems, deployed_models, model_name_problems,
    model_ref_problem, pruned_models, schema_problems, trusts_remote_code,
)

SCHEMA_PATH = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())


def merged(base: dict, over: dict) -> dict:
    """Snakemake's --configfile merge: mappings merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def full_config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def with_defaults(cfg: dict) -> dict:
    from snakemake.utils import validate

    cfg = copy.deepcopy(cfg)
    validate(cfg, str(SCHEMA_PATH))
    return cfg


def rename_first_student(cfg: dict, name: str) -> dict:
    cfg = copy.deepcopy(cfg)
    if isinstance(cfg["students"], dict):
        first = next(iter(cfg["students"]))
        cfg["students"][name] = cfg["students"].pop(first)
    else:
        cfg["students"][0]["name"] = name
    return cfg


def test_shipped_config_and_presets_pass_the_check():
    assert schema_problems(full_config(), SCHEMA) == []
    for preset in sorted((ROOT / "presets").glob("*.yaml")):
        assert schema_problems(merged(full_config(), yaml.safe_load(preset.read_text())), SCHEMA) == [], preset
    assert config_problems(with_defaults(full_config())) == []  # bert-base-uncased: a well-formed hub id


def test_typo_names_the_key_path_the_value_and_the_fix():
    cfg = full_config()
    cfg["finetune"]["learning_rte"] = 1e-4
    with pytest.raises(ConfigError) as e:
        check_schema(cfg, SCHEMA_PATH)
    msg = str(e.value)
    assert "finetune.learning_rte: unknown key (value 0.0001); did you mean learning_rate?" in msg
    assert "finetune takes: learning_rate, epochs" in msg
    assert "Additional properties" not in msg and "$schema" not in msg  # no schema dump
    assert len(msg.splitlines()) == 2  # the header and one line per problem


@pytest.mark.parametrize("edit, expected", [
    (lambda c: c["finetune"].update(epochs=0), "finetune.epochs = 0: expected an integer >= 1"),
    (lambda c: c["finetune"].update(learning_rate="2e-5"),
     "finetune.learning_rate = '2e-5': expected a number > 0, <= 1; YAML reads 2e-5 as text: write 2.0e-5"),
    (lambda c: c["finetune"].update(batch_size=True), "finetune.batch_size = true: expected an integer >= 1"),
    (lambda c: c.update(device="gpu"), "device = 'gpu': expected one of auto, cpu, cuda"),
    (lambda c: c["finetune"]["per_task"].update(rte={"epoch": 3}),
     "finetune.per_task.rte.epoch: unknown key (value 3); did you mean epochs?"),
    (lambda c: c["finetune"].pop("batch_size"), "finetune.batch_size: missing; expected an integer >= 1"),
    (lambda c: c["teacher"].update(trust_remote_code=True),
     "teacher.trust_remote_code: unknown key (value true); remote code is allowed per model: list the model"),
    (lambda c: c["data"].update(max_train_examples={"cola": 0}),
     "data.max_train_examples.cola = 0: expected an integer >= 1"),
    (lambda c: c["data"].update(max_train_examples="lots"), "data.max_train_examples = 'lots': expected null or"),
    (lambda c: c["data"].update(max_transfer_examples={"cola": -1}),
     "data.max_transfer_examples.cola = -1: expected an integer >= 0"),
    (lambda c: c.update(spam=1), "spam: unknown key (value 1)"),
    (lambda c: c["teacher"].update(model="bert base"), "teacher.model = 'bert base': expected a string"),
])
def test_each_schema_violation_is_one_clear_line(edit, expected):
    cfg = full_config()
    edit(cfg)
    problems = schema_problems(cfg, SCHEMA)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


@pytest.mark.parametrize("edit, expected", [
    (lambda c: c.update(tasks=["sst2", "sst3"]), "tasks[1] = 'sst3': expected one of cola, sst2, mrpc"),
    (lambda c: c["finetune"]["per_task"].update(mrcp={"epochs": 2}),
     "finetune.per_task: key 'mrcp' is not allowed: expected one of cola, sst2"),
    (lambda c: c["data"].update(max_train_examples={"qnli2": 5}), "data.max_train_examples: key 'qnli2' is not allowed"),
    (lambda c: c["profile"].update(task="ax"), "profile.task = 'ax': expected one of cola, sst2"),
])
def test_unknown_task_names_are_reported(edit, expected):
    cfg = full_config()
    edit(cfg)
    problems = schema_problems(cfg, SCHEMA)
    assert any(p.startswith(expected) for p in problems), problems
    assert any("did you mean" in p for p in problems) or "ax" in expected


@pytest.mark.parametrize("name", ["../evil", "teacher", "a/b", ".hidden", "x" * 65, "café", "-dash", ""])
def test_student_names_that_could_leave_results_are_rejected(name):
    problems = schema_problems(rename_first_student(full_config(), name), SCHEMA)
    assert problems and all("a folder name under results/" in p for p in problems), problems
    assert any(repr(name) in p for p in problems)


def test_every_problem_is_reported_at_once():
    cfg = full_config()
    cfg["tasks"] = ["sst3"]
    cfg["finetune"]["learning_rte"] = 1
    cfg["threads"] = 0
    with pytest.raises(ConfigError) as e:
        check_schema(cfg, SCHEMA_PATH)
    assert "3 problems" in str(e.value) and len(str(e.value).splitlines()) == 4


def test_model_references(tmp_path, tiny_bert):
    assert model_ref_problem(str(tiny_bert)) is None
    assert model_ref_problem("bert-base-uncased") is None and model_ref_problem("org/model-1.5") is None
    (tmp_path / "empty").mkdir()
    assert "holds no config.json" in model_ref_problem(str(tmp_path / "empty"))
    for bad in ["org/name/extra", "../missing", "./models/x", "/abs/nowhere", "~/nowhere"]:
        assert "looks like a path" in model_ref_problem(bad), bad
    for bad in ["org--x/y", "-org/name", "org/na me", "a" * 97]:
        assert "neither a local folder nor a Hugging Face hub id" in model_ref_problem(bad), bad
    # offline: the hub id must be in the cache
    msg = model_ref_problem("org/not-cached", offline=True, cache=str(tmp_path))
    assert "is not in the Hugging Face cache" in msg and "hf.offline is on" in msg
    if (SHARED_HF / "models--sentence-transformers--all-MiniLM-L6-v2").is_dir():
        assert model_ref_problem("sentence-transformers/all-MiniLM-L6-v2", offline=True, cache=str(SHARED_HF)) is None


def test_config_checks_beyond_the_schema(tmp_path, tiny_bert):
    cfg = with_defaults(full_config())
    cfg["teacher"]["model"] = str(tiny_bert)  # 4 layers
    cfg["tasks"] = ["sst2"]
    cfg["profile"]["task"] = "rte"
    cfg["trust_remote_code"] = ["../x/y/z"]
    cfg["hf"] = {"offline": True, "cache": str(tmp_path / "no-cache")}
    students = cfg["students"] if isinstance(cfg["students"], list) else [{"name": k, **v} for k, v in cfg["students"].items()]
    students = [s for s in students if s.get("arch", "distilbert") == "distilbert"][:1]
    students[0].update(num_layers=2, layer_map=[0, 1, 2], init=None)  # the teacher's own layers
    cfg["students"] = students
    cfg["baselines"] = [{"name": "b1", "model": "org/not-cached", "revision": None}] if "baselines" in cfg else []
    problems = config_problems(cfg)
    text = "\n".join(problems)
    assert "hf.cache = " in text and "no such folder" in text
    assert "profile.task = 'rte': expected one of the configured tasks sst2" in text
    assert "trust_remote_code[0]: '../x/y/z' looks like a path" in text
    assert "layer_map [0, 1, 2] has 3 entries but num_layers = 2" in text
    if "baselines" in full_config():
        assert "baselines[0].model (b1): 'org/not-cached' (revision main) is not in the Hugging Face cache" in text
    students[0].update(num_layers=None, layer_map=[0, 4])
    cfg.update(trust_remote_code=[], profile={**cfg["profile"], "task": None}, hf={"offline": False, "cache": None},
               baselines=[])
    assert config_problems(cfg) == [f"students.{students[0]['name']}.layer_map = [0, 4]: layers [4] do not exist "
                                    "in the teacher (layers 0..3)"]
    with pytest.raises(ConfigError, match="checked at start-up"):
        check_config(cfg)


def test_trust_remote_code_only_for_named_models():
    cfg = {"trust_remote_code": ["org/trusted"]}
    assert trusts_remote_code(cfg, "org/trusted")
    assert not trusts_remote_code(cfg, "org/other") and not trusts_remote_code(cfg, "org/Trusted")
    assert not trusts_remote_code({"trust_remote_code": []}, "org/trusted")
    assert not trusts_remote_code({"trust_remote_code": []}, "x")


def test_model_names_are_unique_and_compressed_models_name_a_model_of_the_run():
    cfg = with_defaults(full_config())
    cfg["pruning"].update(models=["teacher", "distil"], fractions=[0.2, 0.5])
    cfg["deploy"].update(models=["teacher-pruned20", "albert"], forms=["fp32", "int8-static", "onnx"])
    assert list(pruned_models(cfg)) == ["teacher-pruned20", "teacher-pruned50", "distil-pruned20", "distil-pruned50"]
    assert pruned_models(cfg)["distil-pruned50"] == {"source": "distil", "fraction": 0.5}
    assert deployed_models(cfg) == {  # fp32 is each model's own row
        "teacher-pruned20-int8-static": {"source": "teacher-pruned20", "form": "int8-static"},
        "teacher-pruned20-onnx": {"source": "teacher-pruned20", "form": "onnx"},
        "albert-int8-static": {"source": "albert", "form": "int8-static"},
        "albert-onnx": {"source": "albert", "form": "onnx"}}
    assert model_name_problems(cfg) == []
    cfg["deploy"]["models"] = []  # every model of the run, pruned ones included
    assert {d["source"] for d in deployed_models(cfg).values()} == {
        "teacher", "distil", "albert", *(t["name"] for t in cfg["tinybert"]["students"]),
        *(b["name"] for b in cfg["baselines"]), *pruned_models(cfg)}
    cfg["baselines"].append({"name": "distil-pruned20", "model": "org/x"})
    cfg["baselines"].append({"name": "distil-onnx", "model": "org/y"})
    cfg["tinybert"]["students"] = [{"name": "albert"}]
    cfg = with_defaults(cfg)
    problems = model_name_problems(cfg)
    assert problems[0] == ("model names must be unique across students, tinybert.students, baselines, pruning "
                           "and deploy: 'albert' names both students[1] and tinybert.students[0]; rename one")
    n = len(cfg["baselines"])
    assert problems[1].endswith(f"'distil-pruned20' names both baselines[{n - 2}] and pruning (distil at 0.2); rename one")
    assert problems[2].endswith(f"'distil-onnx' names both baselines[{n - 1}] and deploy (distil as onnx); rename one")
    cfg["pruning"]["models"].append("nobody")
    cfg["deploy"]["models"] = ["distil-int8"]
    problems = model_name_problems(cfg)
    assert "pruning.models: 'nobody' is not a model of this run; expected one of teacher, distil" in problems[0]
    assert problems[1].startswith("deploy.models: 'distil-int8' is not a model of this run")
    assert problems[0] in config_problems(cfg)


def test_named_lists_become_dicts_by_name():
    cfg = with_defaults(full_config())
    cfg["tinybert"]["students"] = [{"name": "tb", "num_layers": 4}]
    by_name(cfg)
    assert list(cfg["students"]) == ["distil", "albert"] and "name" not in cfg["students"]["distil"]
    assert cfg["baselines"]["tinybert-4l"]["model"] == "huawei-noah/TinyBERT_General_4L_312D"
    assert cfg["tinybert"]["students"] == {"tb": {"num_layers": 4}}


# ---------------------------------------------------------------- issue 15: one layer that sees every value

@pytest.mark.parametrize("where, edit", [
    ("finetune.learning_rate = nan", lambda c: c["finetune"].update(learning_rate=float("nan"))),
    ("finetune.weight_decay = nan", lambda c: c["finetune"].update(weight_decay=float("nan"))),
    ("finetune.per_task.rte.grad_clip = nan", lambda c: c["finetune"]["per_task"].update(rte={"grad_clip": float("nan")})),
    ("students[0].alpha = nan", lambda c: c["students"][0].update(alpha=float("nan"))),
    ("students[0].temperature = inf", lambda c: c["students"][0].update(temperature=float("inf"))),
    ("students[1].train.warmup_ratio = nan", lambda c: c["students"][1]["train"].update(warmup_ratio=float("nan"))),
    ("tinybert.augment.prob = nan", lambda c: c["tinybert"]["augment"].update(prob=float("nan"))),
    ("tinybert.students[0].temperature = -inf",
     lambda c: c["tinybert"].update(students=[{"name": "tb", "temperature": float("-inf")}])),
    ("pruning.fractions[1] = nan", lambda c: c["pruning"].update(fractions=[0.2, float("nan")])),
    ("seed = nan", lambda c: c.update(seed=float("nan"))),
])
def test_non_finite_numbers_are_rejected_wherever_they_are(where, edit):
    cfg = full_config()
    edit(cfg)
    problems = schema_problems(cfg, SCHEMA)
    assert len(problems) == 1 and problems[0].startswith(f"{where}: expected a finite number"), problems
    assert ".nan and .inf are not values any setting takes" in problems[0]
    with pytest.raises(ConfigError, match="1 problem"):
        check_schema(cfg, SCHEMA_PATH)


@pytest.mark.parametrize("edit, expected", [
    (lambda c: c["finetune"].update(epochs=2.0), "finetune.epochs = 2.0: expected an integer >= 1; write 2 (an integer"),
    (lambda c: c["finetune"].update(epochs="2"), "finetune.epochs = '2': expected an integer >= 1; YAML reads '2' as "
                                                 "text: write 2 (an integer"),
    (lambda c: c["finetune"].update(batch_size=1.5), "finetune.batch_size = 1.5: expected an integer >= 1; write a whole"),
    (lambda c: c["finetune"].update(learning_rate="2e-5"), "finetune.learning_rate = '2e-5': expected a number > 0, "
                                                           "<= 1; YAML reads 2e-5 as text: write 2.0e-5"),
    (lambda c: c.update(seed=2**32), "seed = 4294967296: expected an integer >= 0, <= 4294967295 (numpy's seed range"),
    (lambda c: c.update(seed=-1), "seed = -1: expected an integer >= 0"),
])
def test_number_hints_fit_the_key_type(edit, expected):
    cfg = full_config()
    edit(cfg)
    problems = schema_problems(cfg, SCHEMA)
    assert len(problems) == 1 and problems[0].startswith(expected), problems
    assert "2.0" not in problems[0].split("expected")[1] or "learning_rate" in expected  # never 2.0 for an integer


def test_nested_command_line_values_are_read_as_yaml():
    from glueslim.config import retype_cli_values

    # what `--config 'finetune={"epochs": 2, "warmup_ratio": .nan}' 'profile={"batch_sizes": [1, 8]}'` gives
    cli = {"finetune": {"epochs": "2", "learning_rate": "1.0e-4", "warmup_ratio": ".nan",
                        "per_task": {"rte": {"epochs": "4"}}}, "profile": {"batch_sizes": ["1", "8"]}}
    cfg = merged(full_config(), cli)
    retype_cli_values(cfg, cli)
    assert cfg["finetune"]["epochs"] == 2 and cfg["finetune"]["learning_rate"] == 1e-4
    assert cfg["finetune"]["per_task"]["rte"] == {"epochs": 4} and cfg["profile"]["batch_sizes"] == [1, 8]
    assert cfg["teacher"]["model"] == "bert-base-uncased"  # values not given on the command line: untouched
    assert schema_problems(cfg, SCHEMA) == ["finetune.warmup_ratio = nan: expected a finite number: a number >= 0, "
                                            "<= 1; .nan and .inf are not values any setting takes"]


@pytest.mark.parametrize("text, expected", [
    ("tasks: [sst2\nseed: 1\n", "not valid YAML at line 2, column 5"),
    ("", "is empty"),
    ("# only a comment\n", "is empty"),
    ("- tasks\n- seed\n", "holds a list, expected a mapping of keys"),
    ("finetune:\n\tepochs: 2\n", "not valid YAML at line 2"),
])
def test_a_broken_config_file_is_named(tmp_path, text, expected):
    from glueslim.config import config_file_problem

    path = tmp_path / "my-config.yaml"
    path.write_text(text)
    problem = config_file_problem(path)
    assert problem.startswith(f"config file {path}: ") and expected in problem, problem
    path.write_text("tasks: [sst2]\n")
    assert config_file_problem(path) is None


@pytest.mark.parametrize("key", ["students", "baselines", "tinybert.students"])
def test_two_entries_with_one_name_are_both_named(key):
    cfg = with_defaults(full_config())
    parent = cfg["tinybert"] if key == "tinybert.students" else cfg
    name = key.split(".")[-1]
    entry = {"students": {"name": "twin"}, "baselines": {"name": "twin", "model": "org/a"},
             "tinybert.students": {"name": "twin"}}[key]
    parent[name] = [*parent[name], dict(entry), dict(entry)]
    cfg = with_defaults(cfg)
    n = len(parent[name])
    assert f"'twin' names both {key}[{n - 2}] and {key}[{n - 1}]; rename one" in "\n".join(config_problems(cfg))


def small_teacher_config(tiny_bert) -> dict:
    """The full config on the tiny BERT: 4 layers of 4 heads (16 heads), 512 positions."""
    cfg = with_defaults(full_config())
    cfg["teacher"]["model"] = str(tiny_bert)
    cfg["baselines"], cfg["deploy"]["models"] = [], []
    cfg["students"][0]["init"] = None  # distil: the teacher's own layers (half of them), so its heads are known
    cfg["tinybert"]["students"] = []
    assert config_problems(cfg) == []
    return cfg


def test_pruning_fractions_that_collide_or_remove_nothing(tiny_bert):
    cfg = small_teacher_config(tiny_bert)
    cfg["pruning"].update(models=["teacher", "distil"], fractions=[0.5, 0.504, 0.02, 0.52])
    problems = config_problems(cfg)
    assert problems[0] == ("pruning.fractions[0] = 0.5 and pruning.fractions[1] = 0.504 both name the rows "
                           "<model>-pruned50 (names use whole percents): keep one, or make them differ by at least 0.01")
    text = "\n".join(problems)
    # glueslim.prune.heads_to_prune removes round(0.02 x 16) = 0 heads of the teacher
    assert ("pruning.fractions[2] = 0.02 removes no head of teacher (round(0.02 x 16 heads) = 0), so row "
            "teacher-pruned2 would be teacher unchanged: use a fraction of at least 0.0625") in text
    # distil: 2 of the teacher's layers, 8 heads
    assert "pruning.fractions[2] = 0.02 removes no head of distil (round(0.02 x 8 heads) = 0)" in text
    assert ("pruning.fractions[0] = 0.5 and pruning.fractions[3] = 0.52 both remove 8 of teacher's 16 heads, so rows "
            "teacher-pruned50 and teacher-pruned52 would be the same model: keep one") in text
    assert len(problems) == 5, problems
    cfg["pruning"].update(fractions=[0.25, 0.5])
    assert config_problems(cfg) == []
    cfg["pruning"]["fractions"] = []
    assert config_problems(cfg) == ["pruning.fractions is empty, so pruning.models ['teacher', 'distil'] makes no "
                                    "row: list fractions, e.g. [0.2, 0.4], or set pruning.models: []"]


def test_the_removed_head_count_is_the_one_prune_removes():
    import torch

    from glueslim.config import _pruning_problems
    from glueslim.prune import heads_to_prune

    teacher = {"num_hidden_layers": 4, "num_attention_heads": 4}
    cfg = with_defaults(full_config())
    cfg["pruning"]["models"] = ["teacher"]
    importance = [torch.rand(4) for _ in range(4)]
    for f in (0.01, 0.03, 0.04, 0.05, 0.07, 0.1):
        cfg["pruning"]["fractions"] = [f]
        removes_none = sum(map(len, heads_to_prune(importance, f).values())) == 0
        assert removes_none == bool(_pruning_problems(cfg, teacher)), f


def test_sequence_lengths_within_the_teachers_positions(tiny_bert):
    cfg = small_teacher_config(tiny_bert)
    cfg["finetune"]["max_seq_length"] = 1024
    cfg["finetune"]["per_task"] = {"rte": {"max_seq_length": 600}}
    cfg["students"][0]["train"]["per_task"] = {"sst2": {"max_seq_length": 513}}
    cfg["profile"]["seq_length"] = 2048
    problems = config_problems(cfg)
    assert problems == [
        f"finetune.max_seq_length = 1024: the teacher ({tiny_bert}) has only 512 positions (max_position_embeddings): "
        "use at most 512",
        f"finetune.per_task.rte.max_seq_length = 600: the teacher ({tiny_bert}) has only 512 positions "
        "(max_position_embeddings): use at most 512",
        f"students.distil.train.per_task.sst2.max_seq_length = 513: the teacher ({tiny_bert}) has only 512 positions "
        "(max_position_embeddings): use at most 512",
        f"profile.seq_length = 2048: the teacher ({tiny_bert}) has only 512 positions (max_position_embeddings): "
        "use at most 512",
    ]


def test_tinybert_student_shapes(tiny_bert):
    cfg = small_teacher_config(tiny_bert)
    cfg["tinybert"]["students"] = [{"name": "tb", "hidden_size": 30, "num_heads": 4, "num_layers": 2,
                                    "layer_map": [1, 2, 5], "init": "random"}]
    cfg = with_defaults(cfg)
    assert config_problems(cfg) == [
        "tinybert.students.tb: hidden_size = 30 is not a multiple of num_heads = 4: each head takes "
        "hidden_size / num_heads dimensions",
        "tinybert.students.tb: layer_map [1, 2, 5] has 3 entries but num_layers = 2",
        "tinybert.students.tb.layer_map = [1, 2, 5]: teacher layers [5] do not exist (layers 1..4)",
    ]


@pytest.mark.parametrize("edit, expected", [  # more bad inputs a user may write: each one line
    (lambda c: c.update(tasks=[]), "tasks = []: expected a list of"),
    (lambda c: c.update(tasks=["sst2", "sst2"]), 'tasks = ["sst2", "sst2"]: expected a list of'),
    (lambda c: c.update(threads=0), "threads = 0: expected an integer >= 1"),
    (lambda c: c["profile"].update(batch_sizes=[]), "profile.batch_sizes = []: expected a list of"),
    (lambda c: c["resources"]["train"].update(mem_mb=-1), "resources.train.mem_mb = -1: expected an integer >= 100"),
    (lambda c: c["data"].update(max_train_examples=0), "data.max_train_examples = 0: expected an integer >= 1"),
    (lambda c: c["profile"].update(runs=5), "profile.runs = 5: expected an integer >= 20"),
    (lambda c: c.update(tasks="sst2"), "tasks = 'sst2': expected a list of"),
])
def test_more_bad_inputs_are_one_line_each(edit, expected):
    cfg = full_config()
    edit(cfg)
    problems = schema_problems(cfg, SCHEMA)
    assert len(problems) == 1 and problems[0].startswith(expected), problems
