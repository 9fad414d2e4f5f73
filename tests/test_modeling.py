"""glueslim.modeling (and glueslim.modelfiles): loading a classifier and every model folder the workflow writes;
a damaged or incomplete folder is one line that names the folder or file and what to do."""

import json
from pathlib import Path

import pytest
import torch

from conftest import tiny_classifier as tiny
from glueslim.batching import encode
from glueslim.errors import UserError
from glueslim.heads import heads_per_layer, prune_heads
from glueslim.modeling import load_classifier, load_for_inference, load_tokenizer
from glueslim.tasks import get_task

X = torch.tensor([[2, 7, 8, 9, 3], [2, 11, 12, 3, 0]])
MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])


def test_regression_head_has_one_output(tiny_bert):
    model = load_classifier(str(tiny_bert), get_task("stsb"))
    assert model.config.num_labels == 1 and model.config.problem_type == "regression"
    model = load_classifier(str(tiny_bert), get_task("rte"))
    assert model.config.id2label == {0: "entailment", 1: "not_entailment"}


def test_pruned_model_round_trips_through_save_and_load(tmp_path):
    model = tiny()
    prune_heads(model, {0: [0, 1], 1: [3]})
    model.save_pretrained(tmp_path)
    (tmp_path / "glueslim.json").write_text(json.dumps({"method": "x"}))
    loaded = load_for_inference(str(tmp_path))
    assert heads_per_layer(loaded) == [2, 3]
    assert torch.allclose(loaded(input_ids=X, attention_mask=MASK).logits,
                          model(input_ids=X, attention_mask=MASK).logits, atol=1e-6)


def test_a_folder_of_the_removed_quantize_command_is_named_with_the_fix(tmp_path):
    from safetensors.torch import save_file

    tiny().config.to_json_file(tmp_path / "config.json")
    save_file({"x.weight.int8": torch.zeros(2, 2, dtype=torch.int8)}, str(tmp_path / "model_int8.safetensors"))
    with pytest.raises(UserError, match=rf"^{tmp_path}: holds only model_int8.safetensors, the int8 format of the "
                                        r"removed quantize command: deploy the float model again"):
        load_for_inference(str(tmp_path))


# ---------------------------------------------------------------- damaged or incomplete model folders

def copy_of(tiny_bert, tmp_path, name="m"):
    import shutil

    return Path(shutil.copytree(tiny_bert, tmp_path / name))


def cut(path, n):
    path.write_bytes(path.read_bytes()[:n])


def wider_config(d):
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "hidden_size": 64, "intermediate_size": 128}))


def without(keep):
    def drop(d):
        from safetensors.torch import load_file, save_file

        state = load_file(d / "model.safetensors")
        save_file({k: v for k, v in state.items() if keep(k)}, d / "model.safetensors", metadata={"format": "pt"})
    return drop


def three_labels(d):
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(id2label={"0": "a", "1": "b", "2": "c"}, label2id={"a": 0, "b": 1, "c": 2})
    (d / "config.json").write_text(json.dumps(cfg))


def dangling(d):
    (d / "model.safetensors").unlink()
    (d / "model.safetensors").symlink_to(d / "gone.safetensors")


def sharded(d):
    (d / "model.safetensors").unlink()
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"x": "model-00001-of-00002.safetensors"}}))


BAD_FOLDERS = [  # (damage, file named, words of the message)
    (lambda d: cut(d / "config.json", 40), "config.json", "not valid JSON (line"),
    (lambda d: (d / "config.json").write_text("{}"), "config.json", "has no model_type (it holds {})"),
    (lambda d: (d / "config.json").write_text(""), "config.json", "empty file"),
    (lambda d: (d / "config.json").unlink(), "", "holds no config.json"),
    (lambda d: (d / "config.json").write_text('{"model_type": "bertx"}'), "config.json", "model_type 'bertx' is not"),
    (lambda d: cut(d / "model.safetensors", 0), "model.safetensors", "not a readable safetensors file"),
    (lambda d: cut(d / "model.safetensors", 5000), "model.safetensors", "truncated or damaged"),
    (lambda d: cut(d / "model.safetensors", (d / "model.safetensors").stat().st_size - 8), "model.safetensors",
     "not fully covered"),
    (lambda d: (d / "model.safetensors").unlink(), "", "no weights file"),
    (dangling, "model.safetensors", "is a link to"),
    (sharded, "model-00001-of-00002.safetensors", "no such file"),
    (wider_config, "", "its weights do not fit its config.json"),
    (three_labels, "", "classifier.bias: [2] in the weights file, [3] by config.json"),
    (without(lambda k: ".layer.1." not in k), "", "lacks 16 tensor(s)"),
    (lambda d: cut(d / "tokenizer.json", 1000), "tokenizer.json", "not valid JSON"),
]


@pytest.mark.parametrize("damage, file, words", BAD_FOLDERS)
@pytest.mark.parametrize("load", ["classifier", "inference"])
def test_a_damaged_model_folder_is_one_line_naming_the_file(tiny_bert, tmp_path, damage, file, words, load):
    d = copy_of(tiny_bert, tmp_path)
    damage(d)
    with pytest.raises(UserError) as e:
        load_classifier(str(d)) if load == "classifier" else load_for_inference(str(d))
    msg = str(e.value)
    assert "\n" not in msg and words in msg and msg.startswith(str(d / file) if file else str(d)), msg
    assert any(fix in msg for fix in ("re-run the job that wrote it", "re-download", "newer transformers")), msg


def test_a_folder_without_tokenizer_files_or_with_a_degenerate_one_is_refused(tiny_bert, tmp_path):
    d = copy_of(tiny_bert, tmp_path)
    for f in d.iterdir():
        if f.name.startswith("tokenizer"):
            f.unlink()
    with pytest.raises(UserError, match=rf"^{d}: no tokenizer files .* every word would be \[UNK\]"):
        load_tokenizer(str(d))
    # files that load but hold a lost vocabulary: every word [UNK]
    (d / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghij"]) + "\n")
    with pytest.raises(UserError, match=rf"^{d}: its tokenizer is degenerate \(a vocabulary of 15 tokens; .* 11 of "
                                        r"them \[UNK\]\)"):
        load_tokenizer(str(d))
    assert load_classifier(str(d)).config.vocab_size == 30522  # the weights alone are fine


def test_the_head_may_be_new_only_for_a_new_task_or_a_pretrained_model(tiny_bert, tmp_path):
    d = copy_of(tiny_bert, tmp_path)
    without(lambda k: not k.startswith("classifier"))(d)
    load_classifier(str(d))  # a pre-trained model without a head (general distillation reads one)
    assert load_classifier(str(d), get_task("mnli")).config.num_labels == 3  # a new task's head
    (d / "glueslim.json").write_text(json.dumps({"method": "fine-tuned"}))  # but a trained model needs its head
    with pytest.raises(UserError, match=r"lacks 2 tensor\(s\) the model needs \(e\.g\. classifier\.bias"):
        load_for_inference(str(d))
    # a body of another shape is never accepted, not even for a new task (it would be trained from random)
    wider_config(d)
    with pytest.raises(UserError, match="its weights do not fit its config.json"):
        load_classifier(str(d), get_task("sst2"))


def test_safetensors_beside_a_damaged_pickle_load_from_the_safetensors(tiny_bert, tmp_path):
    d = copy_of(tiny_bert, tmp_path)
    (d / "pytorch_model.bin").write_bytes(b"PK\x03\x04 cut short")
    model = load_classifier(str(d))
    ref = load_classifier(str(tiny_bert))
    assert torch.equal(model.bert.embeddings.word_embeddings.weight, ref.bert.embeddings.word_embeddings.weight)
    (d / "model.safetensors").unlink()  # alone, the damaged pickle is named before torch reads it
    with pytest.raises(UserError, match=r"pytorch_model\.bin: a damaged zip archive"):
        load_classifier(str(d))


def test_the_tokenizer_is_capped_at_the_models_positions_and_longer_lengths_are_refused(tiny_bert):
    tok = load_tokenizer(str(tiny_bert))
    assert tok.model_max_length == 512  # the config's max_position_embeddings
    rows = [{"idx": 0, "text_a": "a good film", "text_b": None, "label": 1}]
    assert len(encode(tok, rows, 512)) == 1
    with pytest.raises(UserError, match=r"max_seq_length = 1024 is longer than the model .* reads \(512 positions\): "
                                        r"set --max-seq-length \(the max_seq_length key\) to 512 or less"):
        encode(tok, rows, 1024)


def test_an_int8_folder_without_its_float_config_is_named(tmp_path):
    from glueslim import torch_forms
    from glueslim.forms import load_model

    torch_forms.save(torch_forms.build(tiny(), "int8-dynamic"), "int8-dynamic", tmp_path)
    (tmp_path / "glueslim.json").write_text(json.dumps({"form": "int8-dynamic"}))
    (tmp_path / "config.json").unlink()
    with pytest.raises(UserError, match=rf"^{tmp_path}: holds no config.json"):
        load_model(tmp_path)
