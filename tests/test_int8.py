"""glueslim.int8: the int8 model stays close to the float one and its tensors rebuild it exactly."""

import torch

from conftest import tiny_classifier as tiny
from glueslim.int8 import WEIGHTS, int8_linears, load_int8, quantize, rebuild, save_int8

X = torch.tensor([[2, 7, 8, 9, 3], [2, 11, 12, 3, 0]])
MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])


def test_int8_outputs_stay_close_and_reload_bit_for_bit(tmp_path):
    model = tiny(hidden=64)
    with torch.no_grad():
        ref = model(input_ids=X, attention_mask=MASK).logits
    qmodel, tensors = quantize(tiny(hidden=64))
    with torch.no_grad():
        out = qmodel(input_ids=X, attention_mask=MASK).logits
    assert torch.allclose(out, ref, atol=0.05), (out, ref)
    assert sum(k.endswith(".int8") for k in tensors) == 2 * 6 + 2  # 6 Linears per layer, pooler, classifier
    assert all(t.dtype == torch.int8 for k, t in tensors.items() if k.endswith(".int8"))
    again = rebuild(tiny(hidden=64, seed=1), tensors)  # other random weights: all must be overwritten
    with torch.no_grad():
        assert torch.equal(again(input_ids=X, attention_mask=MASK).logits, out)


def test_int8_file_round_trips(tmp_path):
    qmodel, tensors = quantize(tiny(hidden=64))
    save_int8(tmp_path, tensors)
    assert (tmp_path / WEIGHTS).is_file()
    loaded = load_int8(tmp_path, tiny(hidden=64, seed=1))
    assert len(int8_linears(loaded)) == len(int8_linears(qmodel)) == 2 * 6 + 2 and not int8_linears(tiny())
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=X, attention_mask=MASK).logits,
                           qmodel(input_ids=X, attention_mask=MASK).logits)
