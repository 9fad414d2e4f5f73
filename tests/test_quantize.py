"""glueslim.quantize: the `quantize` command writes a loadable int8 folder that names its source."""

import json
import shutil

import torch

from glueslim import cli
from glueslim.int8 import SCHEME, WEIGHTS, int8_linears
from glueslim.modeling import load_for_inference


def test_quantize_command_writes_an_int8_model_folder(tiny_bert, tmp_path, capsys):
    source = tmp_path / "teacher"
    shutil.copytree(tiny_bert, source)
    (source / "glueslim.json").write_text(json.dumps({"model": "teacher", "method": "fine-tuned teacher"}))
    (source / "train_log.jsonl").write_text('{"epoch": 1}\n')
    out = tmp_path / "teacher-int8"
    cli.main(["quantize", "--model-dir", str(source), "--name", "teacher-int8", "--out", str(out)])
    assert json.loads(capsys.readouterr().out) == {"model": "teacher-int8", "int8_linears": 4 * 6 + 2}
    assert {"config.json", WEIGHTS, "train_log.jsonl", "glueslim.json",
            "tokenizer_config.json"} <= {p.name for p in out.iterdir()}
    meta = json.loads((out / "glueslim.json").read_text())
    assert meta["model"] == "teacher-int8" and meta["method"] == "fine-tuned teacher + int8"
    assert meta["quantized"] == SCHEME and meta["quantized_from"] == str(source)
    assert meta["quantization"]["engine"] == torch.backends.quantized.engine
    model = load_for_inference(out)
    assert len(int8_linears(model)) == 4 * 6 + 2
    assert model(input_ids=torch.tensor([[2, 7, 8, 3]])).logits.shape == (1, 2)
