"""`glueslim deploy`: write a trained float32 model in one deployed form (glueslim.forms.FORMS) to its own folder.

Every argument is checked before a model is loaded: the form (one of FORMS), whether the device runs it
natively (`forms.not_native`; a non-native form is refused unless --allow-emulated), the source folder (a
whole fp32 model folder with its tokenizer), the task and the prepared data's training split (the calibration
examples of int8-static, and the sample the reload check runs). The folder is written atomically: config.json,
the tokenizer, the source's train_log.jsonl, the form's weights (glueslim.torch_forms or
glueslim.onnx_forms) and a glueslim.json with the source's record plus `form`, `backend`, `deployed_from`,
`kernels`, `native` (and `calibration`, `quantization` or `export` where they apply). Before the folder is
published, the saved form is loaded back and must predict what the built form predicted. One JSON line sums
it up on stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from glueslim.errors import UserError
from glueslim.forms import FORMS, form_of, not_native, run_device
from glueslim.modelfiles import check_model_dir
from glueslim.record import RECORD_FILE, read_record
from glueslim.recipe import add_inference_arguments
from glueslim.schema import schema_default
from glueslim.tasks import get_task

CHECK_EXAMPLES = 8  # training examples the reload check predicts
WEIGHT_FILES = ("model.safetensors", "model_int8_torchao.safetensors", "model.onnx")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--form", required=True, help=f"the deployed form: {', '.join(FORMS)}")
    p.add_argument("--model-dir", required=True, help="the trained float32 model folder to deploy")
    p.add_argument("--name", required=True, help="the row's name in the leaderboard (<model>-<form>)")
    p.add_argument("--out", required=True, help="the form's folder, replaced atomically")
    p.add_argument("--task", required=True)
    p.add_argument("--data", required=True, help="the prepared data folder of the task (results/data/<task>): "
                                                 "calibration and check examples come from its training split")
    p.add_argument("--calibration-examples", type=int, default=schema_default("deploy", "calibration_examples"),
                   help="int8-static: training examples whose activations set the int8 scales")
    p.add_argument("--seed", type=int, default=schema_default("seed"), help="seed of the calibration sample")
    # --max-seq-length, --threads (torch and ONNX Runtime intra-op threads) and --device: the device the form
    # is deployed for (auto: CUDA when torch sees one and the form has CUDA kernels, else the CPU), which
    # decides whether the form is native
    add_inference_arguments(p)
    p.add_argument("--allow-emulated", action="store_true",
                   help="deploy a form the device does not run natively (e.g. bf16 on a CPU without AVX512-BF16)")


def resolve_device(form: str, choice: str) -> str:
    """The device type the form is deployed for: `choice`, auto resolved to CUDA when torch sees a GPU and the
    form has CUDA kernels (forms.run_device), else cpu."""
    if choice != "auto":
        if choice == "cuda":
            import torch
            if not torch.cuda.is_available():
                raise UserError("--device cuda: torch sees no CUDA device; use --device cpu or auto")
        return choice
    import torch
    return run_device(form, "cuda") if torch.cuda.is_available() else "cpu"


def check_arguments(args: argparse.Namespace) -> tuple[str, str | None]:
    """Every check that needs no model: (device type, why the form is not native or None). UserError otherwise."""
    if args.form not in FORMS:
        raise UserError(f"--form {args.form!r}: not a deployed form; choose one of: {', '.join(FORMS)}")
    if args.form == "fp32":
        raise UserError("--form fp32: the fp32 form is the model's own folder (its <model> row); deploy another "
                        f"form: {', '.join(f for f in FORMS if f != 'fp32')}")
    device = resolve_device(args.form, args.device)
    reason = not_native(args.form, device)
    if reason and not args.allow_emulated:
        raise UserError(f"--form {args.form} on {device}: not native ({reason}); pass --allow-emulated to deploy "
                        "it anyway, or leave the form out on this machine")
    check_model_dir(args.model_dir, need_tokenizer=True)
    source_form = form_of(args.model_dir)
    if source_form != "fp32":
        raise UserError(f"{args.model_dir}: a deployed {source_form} folder; deploy from the float32 model it was "
                        f"deployed from ({read_record(args.model_dir).get('deployed_from', 'its source')})")
    task = get_task(args.task)
    recorded = _source_record(args.model_dir).get("task")
    if recorded and recorded != task.name:
        raise UserError(f"{args.model_dir}/{RECORD_FILE}: a model of task {recorded}, not --task {task.name}")
    for flag, value in (("calibration-examples", args.calibration_examples), ("max-seq-length", args.max_seq_length)):
        if value < 1:
            raise UserError(f"--{flag} {value}: expected a whole number >= 1")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads {args.threads}: expected a whole number >= 1")
    return device, reason


def _source_record(model_dir: str) -> dict:
    return read_record(model_dir) if (Path(model_dir) / RECORD_FILE).exists() else {}


def run(args: argparse.Namespace) -> None:
    print(json.dumps(deploy(args)))


def deploy(args: argparse.Namespace) -> dict:
    """Check the arguments, build the form, write its folder; the summary printed by `run`."""
    device, reason = check_arguments(args)
    from glueslim.torch_forms import calibration_batches  # torch from here on
    import torch

    from glueslim.io import atomic_dir
    from glueslim.modeling import load_for_inference, load_tokenizer
    from glueslim.record import write_record

    start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    form = FORMS[args.form]
    tokenizer = load_tokenizer(args.model_dir)
    check, _ = calibration_batches(tokenizer, args.data, CHECK_EXAMPLES, args.seed, args.max_seq_length,
                                   batch_size=CHECK_EXAMPLES)
    calibration = None
    if form.calibrated:
        calibration = calibration_batches(tokenizer, args.data, args.calibration_examples, args.seed,
                                          args.max_seq_length)
    model = load_for_inference(args.model_dir, "cpu")
    source = _source_record(args.model_dir)
    with atomic_dir(args.out) as tmp:
        extra, built = _build_and_save(model, tokenizer, form.name, tmp, calibration, args.threads, check[0])
        tokenizer.save_pretrained(tmp)
        log = Path(args.model_dir) / "train_log.jsonl"
        if log.exists():  # the curves are the float model's
            shutil.copy(log, tmp / "train_log.jsonl")
        record = {**source, "model": args.name, "task": source.get("task", get_task(args.task).name),
                  "method": f"{source.get('method', 'pretrained')} + {form.name}",
                  "form": form.name, "backend": form.backend, "deployed_from": str(args.model_dir),
                  "kernels": {"linear": form.linear_dtype, "attention": form.attention_dtype},
                  "native": reason is None, **extra}
        if calibration is not None:
            record["calibration"] = calibration[1]
        write_record(tmp, record)
        reloaded = _reload_check(tmp, form.name, check[0], built)
        weights = next(tmp / f for f in WEIGHT_FILES if (tmp / f).exists())
        size = weights.stat().st_size
    return {"model": args.name, "form": form.name, "backend": form.backend, "device": device,
            "native": reason is None, "not_native_reason": reason, "weights": weights.name, "bytes": size,
            "reload_max_abs_diff": reloaded, "seconds": round(time.perf_counter() - start, 2)}


def _build_and_save(model, tokenizer, form: str, out: Path, calibration, threads, check: dict):
    """Write the form's weights and config.json to `out`: (record fields, the built form's logits on `check`)."""
    import torch

    if FORMS[form].backend == "onnxruntime":
        from glueslim.onnx_forms import export_onnx
        info = export_onnx(model, tokenizer, out, quantize=form == "onnx-int8", threads=threads)
        model.config.to_json_file(out / "config.json")
        return {"export": info}, None  # export_onnx compares the graph with the torch model itself
    from glueslim import torch_forms
    built = torch_forms.build(model, form, calibration[0] if calibration else None)
    with torch.inference_mode():
        logits = built(**_on(check, built)).logits.float().cpu()
    torch_forms.save(built, form, out)
    extra = {"quantization": torch_forms.scheme(form)} if form in torch_forms.INT8_FORMS else {}
    return extra, logits


def _on(batch: dict, model) -> dict:
    from glueslim.forms import model_device
    device = model_device(model)
    return {k: v.to(device) for k, v in batch.items()}


def _reload_check(folder: Path, form: str, check: dict, built) -> float | None:
    """Load the written folder back; a PyTorch form must predict exactly what the built one did (the largest
    difference, 0.0, is returned); an ONNX form must give finite logits (export_onnx compared it already)."""
    import torch

    from glueslim.forms import load_model
    model = load_model(folder, "cpu")
    with torch.inference_mode():
        logits = model(**_on(check, model)).logits.float().cpu()
    if not torch.isfinite(logits).all():
        raise RuntimeError(f"{folder}: the saved {form} model gives non-finite logits")
    if built is None:
        return None
    diff = float((logits - built).abs().max())
    if not torch.equal(logits, built):
        raise RuntimeError(f"{folder}: the saved {form} model predicts differently from the one built in memory "
                           f"(largest logit difference {diff:g}); a bug in saving or loading the form")
    return diff
