"""glueslim.modelfiles: a model folder checked whole from its files alone (what the start-up check runs);
loading through glueslim.modeling is tested in tests/test_modeling.py."""

import shutil
import sys

from glueslim.modelfiles import file_problem, model_dir_problem


def test_a_whole_folder_passes_and_each_missing_part_is_named(tiny_bert, tmp_path):
    assert model_dir_problem(tiny_bert, need_tokenizer=True) is None
    d = shutil.copytree(tiny_bert, tmp_path / "m")
    (d / "tokenizer.json").unlink()
    assert model_dir_problem(d) is None and model_dir_problem(d, need_weights=False) is None
    assert model_dir_problem(d, need_tokenizer=True).startswith(f"{d}: no tokenizer files")
    w = d / "model.safetensors"
    w.write_bytes(w.read_bytes() + b"\0" * 16)  # padded: the header no longer covers the file
    assert "not fully covered" in model_dir_problem(d)
    assert model_dir_problem(d, need_weights=False) is None
    assert model_dir_problem(d / "config.json") == f"{d / 'config.json'}: not a folder holding a model"


def test_the_check_imports_neither_torch_nor_transformers(tmp_path):
    """The Snakefile's start-up check runs it: it must stay cheap to import."""
    import subprocess

    code = ("import sys, glueslim.modelfiles as m; m.model_dir_problem('.'); "
            "print(sorted(k for k in ('torch', 'transformers') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_file_problem_says_what_is_there(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    assert file_problem(tmp_path / "f") is None and file_problem(tmp_path / "d", folder=True) is None
    assert file_problem(tmp_path / "d") == f"{tmp_path / 'd'} is a directory, not a file"
    assert file_problem(tmp_path / "f", folder=True) == f"{tmp_path / 'f'} is a file, not a folder"
    assert file_problem(tmp_path / "link") == f"{tmp_path / 'link'} is a link to {tmp_path / 'gone'}, which does not exist"
    assert file_problem(tmp_path / "nope") == f"{tmp_path / 'nope'}: no such file"
    assert file_problem(tmp_path / "nope", folder=True) == f"{tmp_path / 'nope'}: no such folder"


def test_deployed_form_folders_pass_and_their_damaged_weights_are_named(tiny_bert, tmp_path):
    """A torchao int8 folder (model_int8_torchao.safetensors) and an ONNX folder (model.onnx) are whole model
    folders; a truncated one is named; the removed quantize command's format is named with the fix."""
    d = shutil.copytree(tiny_bert, tmp_path / "int8")
    w = d / "model.safetensors"
    w.rename(d / "model_int8_torchao.safetensors")
    assert model_dir_problem(d, need_tokenizer=True) is None
    w = d / "model_int8_torchao.safetensors"
    w.write_bytes(w.read_bytes()[:5000])
    assert "model_int8_torchao.safetensors: not a readable safetensors file" in model_dir_problem(d)
    w.unlink()
    assert "no weights file" in model_dir_problem(d) and "model.onnx" in model_dir_problem(d)
    o = d / "model.onnx"
    o.write_bytes(b"\x08\x08\x12\x07pytorch" + b"\0" * 64)  # starts like a ModelProto (ir_version first)
    assert model_dir_problem(d, need_tokenizer=True) is None
    for damaged in (b"", b"\x08\x08", b"PK\x03\x04" + b"\0" * 64):
        o.write_bytes(damaged)
        assert model_dir_problem(d).startswith(f"{o}: not a serialized ONNX model"), damaged
    o.unlink()
    (d / "model_int8.safetensors").write_bytes(b"x")
    assert "the int8 format of the removed quantize command: deploy the float model again" in model_dir_problem(d)
