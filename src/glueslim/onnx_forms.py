"""The ONNX Runtime forms: export a sequence classifier to one ONNX file, run it, and time ORT's own kernels.

`export_onnx` traces the model (torch.onnx.export, TorchScript exporter, dynamic batch and sequence axes),
applies ORT's transformer fusions (`onnxruntime.transformers.optimizer`, model_type "bert") and, for the
int8 form, ORT's dynamic quantization (int8 per-channel weights, activations quantized per batch at run
time), and writes out_dir/model.onnx atomically. `OrtClassifier` runs such a folder like a transformers
model (`model(**batch).logits`). `ort_peak_flops` and `ort_time_by_op` give the profile its ORT peak
and the per-op split of a model's time.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import tempfile
import time
import warnings
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from glueslim.errors import UserError

MODEL_FILE = "model.onnx"
OPSET = 17
EXPORTER = "torch.onnx.export (TorchScript, dynamo=False)"
QUANTIZATION = {"method": "onnxruntime.quantization.quantize_dynamic", "weight_type": "QInt8",
                "per_channel": True, "activations": "uint8, dynamic (per batch)",
                "op_types": "quantize_dynamic's defaults: MatMul and the embedding Gathers"}
_ORT_ERRORS = tuple(getattr(ort.capi.onnxruntime_pybind11_state, name) for name in
                    ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile", "NotImplemented",
                     "RuntimeException"))


@contextmanager
def _quiet():
    """Silence the exporter's and the ORT tools' chatter (deprecation notes, tracer notes, INFO logs)."""
    loggers = [logging.getLogger(n) for n in ("onnxruntime", "torch.onnx", "")]  # "": quantize_dynamic's logs
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(max(lg.level, logging.ERROR))
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def _input_names(model, tokenizer) -> list[str]:
    """The inputs to export, in the order of the model's forward signature (the order the tracer names them)."""
    wanted = {"input_ids", "attention_mask"} | ({"token_type_ids"} & set(getattr(tokenizer, "model_input_names", ())))
    params = list(inspect.signature(model.forward).parameters)
    return [p for p in params if p in wanted]


def _example(model, names: list[str]) -> dict[str, torch.Tensor]:
    """Two rows of 8 tokens, the second padded: the traced mask path must be the padded one."""
    ids = torch.randint(5, max(6, model.config.vocab_size), (2, 8), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    values = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    return {n: values[n] for n in names}


def _trace(model, example: dict[str, torch.Tensor], path: Path) -> str:
    """torch.onnx.export with eager attention (the pattern ORT's Attention fusion recognises): the TorchScript
    exporter, or the torch.export-based one where that fails (its graphs get fewer fusions). Returns which."""
    names = list(example)
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    common = dict(kwargs=example, input_names=names, output_names=["logits"], dynamic_axes=axes)
    previous = getattr(model.config, "_attn_implementation", None)
    swap = previous not in (None, "eager") and hasattr(model, "set_attn_implementation")
    if swap:
        model.set_attn_implementation("eager")
    try:
        with _quiet(), torch.no_grad():
            try:
                torch.onnx.export(model, (), str(path), opset_version=OPSET, dynamo=False, **common)
                return EXPORTER
            except Exception as e:  # noqa: BLE001 - TorchScript exporter removed or unable: try the new one
                why = f"{type(e).__name__}: {str(e)[:120]}"
            torch.onnx.export(model, (), opset_version=max(OPSET, 18), dynamo=True, **common).save(str(path))
            return f"torch.onnx.export (dynamo=True; the TorchScript exporter failed: {why})"
    finally:
        if swap:
            model.set_attn_implementation(previous)


def _attention_shape(config) -> tuple[int, int, str | None]:
    """(num_heads, attention width) for ORT's Attention fusion, and a note; (0, 0, why) when the layers' head
    counts differ (a head-pruned model): one count fits them all or the fusion builds wrong Attention nodes."""
    heads = int(config.num_attention_heads)
    size = int(getattr(config, "attention_head_size", 0) or config.hidden_size // heads)
    pruned = {int(k): len(set(v)) for k, v in (getattr(config, "pruned_heads", None) or {}).items()}
    kept = sorted({heads - pruned.get(i, 0) for i in range(int(config.num_hidden_layers))})
    if len(kept) > 1:
        return 0, 0, f"attention not fused: the layers keep different numbers of heads ({kept[0]} to {kept[-1]})"
    return kept[0], kept[0] * size, None


def _fuse(src: Path, dst: Path, config) -> tuple[dict[str, int], str | None]:
    """ORT's BERT fusions (offline, graph level only): (fusions applied, note) or ({}, why it was skipped)."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    heads, width, note = _attention_shape(config)
    options = FusionOptions("bert")
    options.enable_attention = heads > 0
    try:
        with _quiet():
            opt = optimize_model(str(src), model_type="bert", num_heads=heads, hidden_size=width, opt_level=0,
                                 optimization_options=options)
            stats = {op: n for op, n in opt.get_fused_operator_statistics().items() if n}
            opt.save_model_to_file(str(dst), use_external_data_format=False)
    except Exception as e:  # noqa: BLE001 - an unfused graph still runs; the record says why it is unfused
        return {}, f"fusion skipped: {type(e).__name__}: {str(e)[:200]}"
    return stats, note


def _quantize(src: Path, dst: Path) -> dict:
    """Dynamic int8 of the traced (unfused) graph: per-channel QInt8 weights, uint8 activations quantized per
    batch. (DefaultTensorType lets it type the outputs of contrib ops shape inference cannot, should a graph
    hold any.)"""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    ops: dict[str, int] = defaultdict(int)
    for node in onnx.load(str(dst), load_external_data=False).graph.node:
        if node.op_type in ("MatMulInteger", "DynamicQuantizeLinear", "QAttention", "DynamicQuantizeMatMul", "QGemm"):
            ops[node.op_type] += 1
    return {**QUANTIZATION, "quantized_ops": dict(ops)}


def export_onnx(model, tokenizer, out_dir, quantize: bool, threads: int | None = None) -> dict:
    """Write out_dir/model.onnx (one file, weights inside): the fused fp32 graph, or the int8 one.

    int8 quantizes first and fuses after: on all-MiniLM-L6-v2 that order was as fast as fusing first (whose
    QAttention ran no faster), kept the logits at least as close, and leaves ORT free to fuse each int8
    product with its activation quantization at load time (DynamicQuantizeMatMul, MatMulIntegerToFloat).
    The written graph is run once on the example batch against the torch model: `max_abs_diff`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    example = _example(model, _input_names(model, tokenizer))
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".onnx-") as tmp:
        traced, quantized, final = Path(tmp, "traced.onnx"), Path(tmp, "int8.onnx"), Path(tmp, MODEL_FILE)
        exporter = _trace(model, example, traced)
        quantization = _quantize(traced, quantized) if quantize else None
        unfused = quantized if quantize else traced
        fusions, note = _fuse(unfused, final, model.config)
        if not final.exists():
            os.replace(unfused, final)
        got = _session(final, threads).run(["logits"], {k: v.numpy() for k, v in example.items()})[0]
        with torch.no_grad():
            want = model(**example).logits.float().numpy()
        opset = next(o.version for o in onnx.load(str(final), load_external_data=False).opset_import
                     if o.domain in ("", "ai.onnx"))
        os.replace(final, out_dir / MODEL_FILE)
    return {"opset": opset, "exporter": exporter, "fusions": fusions, "fusion_note": note,
            "quantization": quantization, "bytes": (out_dir / MODEL_FILE).stat().st_size,
            "inputs": list(example), "max_abs_diff": float(np.abs(got - want).max())}


def _session(path, threads: int | None = None, device: str = "cpu", profile_prefix: str | None = None):
    """An InferenceSession on `path` (all graph optimizations); a damaged file is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; deploy the ONNX form again (python -m glueslim deploy --form onnx)")
    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UserError(f"device {device}: this onnxruntime has no CUDAExecutionProvider "
                            "(install onnxruntime-gpu) or run the ONNX form on the CPU")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    if profile_prefix:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    try:
        return ort.InferenceSession(str(path), opts, providers=providers)
    except _ORT_ERRORS as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: not a loadable ONNX model ({first}); the file is damaged: "
                        "deploy the ONNX form again") from e


def _config(model_dir):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(model_dir))
    except (OSError, ValueError) as e:
        raise UserError(f"{model_dir}/config.json: missing or not a model configuration; "
                        "deploy the ONNX form again") from e


class OrtClassifier:
    """A deployed ONNX folder run like a transformers classifier: `model(**batch).logits` (CPU float32)."""

    def __init__(self, model_dir, threads: int | None = None, device: str = "cpu"):
        self.model_dir, self.device = Path(model_dir), torch.device("cpu")
        self.session = _session(self.model_dir / MODEL_FILE, threads, device)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.config = _config(self.model_dir)

    def eval(self) -> OrtClassifier:
        return self

    def to(self, *args, **kwargs) -> OrtClassifier:
        """A no-op, for callers written for nn.Module: the session's device is fixed at construction."""
        return self

    def __call__(self, **batch):
        from transformers.modeling_outputs import SequenceClassifierOutput

        ids = batch["input_ids"]
        feeds = {}
        for name in self.input_names:
            value = batch.get(name)
            if value is None:  # token_type_ids not given: segment 0; attention_mask not given: no padding
                value = torch.zeros_like(ids) if name == "token_type_ids" else torch.ones_like(ids)
            feeds[name] = value.detach().cpu().to(torch.int64).numpy()
        logits = self.session.run(["logits"], feeds)[0]
        return SequenceClassifierOutput(logits=torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32)))


def _random_feeds(session, vocab_size: int, batch: int, seq_length: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Full-length random token ids, segment 0, no padding: the profile's timing inputs."""
    ids = np.random.default_rng(seed).integers(0, vocab_size, (batch, seq_length), dtype=np.int64)
    values = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return {i.name: values.get(i.name, np.zeros_like(ids)) for i in session.get_inputs()}


def ort_time_by_op(model_dir, batch: int, seq_length: int, threads: int | None, runs: int = 5) -> list[dict]:
    """Where an ONNX folder's time goes: ORT's profiler over `runs` runs (after one untimed), node time summed
    per op type, per run. The top 8 [{"op", "ms", "share"}] by time, then {"op": "other", ...} for the rest."""
    if runs < 1:
        raise ValueError(f"ort_time_by_op needs at least one timed run (got runs={runs})")
    vocab = _config(model_dir).vocab_size
    with tempfile.TemporaryDirectory(prefix="ort-profile-") as tmp:
        session = _session(Path(model_dir) / MODEL_FILE, threads, profile_prefix=str(Path(tmp, "trace")))
        feeds = _random_feeds(session, vocab, batch, seq_length)
        for _ in range(runs + 1):
            session.run(None, feeds)
        trace = json.loads(Path(session.end_profiling()).read_text())
    spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in trace if e.get("name") == "model_run")[1:]  # not warm-up
    per_op: dict[str, float] = defaultdict(float)
    for e in trace:
        op = e.get("args", {}).get("op_name")
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and op is not None:
            if any(start <= e["ts"] <= end for start, end in spans):
                per_op[op] += e["dur"] / 1000.0 / len(spans)  # microseconds summed over runs -> ms per run
    total = sum(per_op.values()) or 1.0
    ranked = sorted(per_op.items(), key=lambda kv: kv[1], reverse=True)
    rows = [{"op": op, "ms": ms, "share": ms / total} for op, ms in ranked[:8]]
    rest = sum(ms for _, ms in ranked[8:])
    if rest:
        rows.append({"op": "other", "ms": rest, "share": rest / total})
    return rows


def _product_graph(kind: str, n: int) -> tuple[bytes, dict[str, np.ndarray]]:
    """A one-node graph of one n x n product as ORT runs it in the model's form, and its feeds.

    float32: MatMul(A, B). int8: DynamicQuantizeMatMul(A float, B int8 per-column scale), the kernel the
    int8 graphs of `_quantize` run after ORT's own fusions (it quantizes A to uint8 on each call, as in the
    model, then multiplies with the VNNI/AMX u8s8 kernels)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    x = helper.make_tensor_value_info("A", TensorProto.FLOAT, [n, n])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n, n])
    if kind == "float32":
        b = numpy_helper.from_array(rng.standard_normal((n, n), dtype=np.float32), "B")
        node, inits, opsets = helper.make_node("MatMul", ["A", "B"], ["Y"]), [b], [helper.make_opsetid("", OPSET)]
    elif kind == "int8":
        b = numpy_helper.from_array(rng.integers(-127, 128, (n, n), dtype=np.int8), "B")
        scale = numpy_helper.from_array(np.full((n,), 0.01, dtype=np.float32), "B_scale")
        zero = numpy_helper.from_array(np.zeros((n,), dtype=np.int8), "B_zero")
        node = helper.make_node("DynamicQuantizeMatMul", ["A", "B", "B_scale", "B_zero"], ["Y"], domain="com.microsoft")
        inits, opsets = [b, scale, zero], [helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]
    else:
        raise ValueError(f"no ORT peak measurement for kind {kind!r} (float32 or int8)")
    graph = helper.make_graph([node], f"peak_{kind}_{n}", [x], [y], initializer=inits)
    return helper.make_model(graph, opset_imports=opsets).SerializeToString(), {"A": a}


def ort_peak_flops(kind: str, threads: int | None, sizes: tuple[int, ...] = (512, 1024), runs: int = 10,
                   warmup: int = 2) -> dict:
    """ORT's peak matrix-product throughput on the CPU: the best FLOP/s (2 n^3 per product) of `runs` timed
    one-node products of n x n matrices (`_product_graph`), over `sizes`. Best, not median: the floor it
    yields must be a lower bound on the model's matrix-product time."""
    best, best_n = 0.0, None
    for n in sizes:
        graph, feeds = _product_graph(kind, n)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads, opts.inter_op_num_threads = int(threads), 1
        session = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
        for _ in range(warmup):
            session.run(None, feeds)
        for _ in range(runs):
            t0 = time.perf_counter()
            session.run(None, feeds)
            seconds = time.perf_counter() - t0
            if seconds > 0 and 2 * n**3 / seconds > best:
                best, best_n = 2 * n**3 / seconds, n
    op = "MatMul" if kind == "float32" else "DynamicQuantizeMatMul (uint8 activations x int8 weights)"
    return {"flops_per_s": best, "method": f"best of timed square ONNX Runtime {op}", "dtype": kind,
            "matmul_sizes": list(sizes), "best_size": best_n, "runs": runs, "warmup": warmup,
            "threads": threads, "backend": "onnxruntime"}
