"""Where a training run computes: the device, mixed precision, TF32 and accelerate's processes."""

from __future__ import annotations

import logging
import os

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration

from glueslim.errors import UserError
from glueslim.recipe import PRECISIONS, Recipe

log = logging.getLogger(__name__)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 products in hardware (AVX512-BF16 or AMX), as oneDNN uses them."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # an older torch without these probes
        return False


def choose_precision(requested: str, device_type: str, capability: tuple[int, int] | None,
                     cpu_bf16: bool = False) -> str:
    """accelerate's `mixed_precision` for a training run: "no" (fp32), "bf16" or "fp16".

    "auto" is bf16 wherever the hardware computes it natively, else what is fast there:
    - CUDA: bf16 on compute capability 8.0+ (A100, H100, RTX 30xx and later; torch.cuda.is_bf16_supported()
      also says yes on older GPUs, which only emulate it, slowly), else fp16, for which accelerate scales the
      loss with a GradScaler (saved in the checkpoints). "bf16" on a GPU without it is an error.
    - CPU: bf16 autocast where the CPU has AVX512-BF16 or AMX (`cpu_bf16`; on 2 Zen 4 cores it trains
      MiniLM 1.4x faster than fp32, see benchmarks/), else fp32. fp16, and bf16 without the hardware,
      would be emulated and slower on a CPU: they give fp32.
    Weights, optimizer state and the saved model stay fp32 in every case; "fp32" turns mixed precision off.
    """
    if requested not in PRECISIONS:
        raise UserError(f"precision {requested!r}: expected one of {', '.join(PRECISIONS)}")
    if requested == "fp32":
        return "no"
    if device_type != "cuda":
        return "bf16" if cpu_bf16 and requested in ("auto", "bf16") else "no"
    native_bf16 = capability is not None and tuple(capability) >= (8, 0)
    if requested == "auto":
        return "bf16" if native_bf16 else "fp16"
    if requested == "bf16" and not native_bf16:
        raise UserError(f"precision bf16: this GPU (compute capability {capability}) has no native bf16; "
                        "use precision auto (fp16 with loss scaling) or fp32")
    return requested


def set_tf32(enabled: bool) -> None:
    """TF32 tensor cores for fp32 matmuls and convolutions (CUDA on Ampere and later; no effect elsewhere)."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def make_accelerator(recipe: Recipe) -> tuple[Accelerator, str]:
    """The run's Accelerator and its mixed precision, with the recipe's CUDA settings applied.

    One process, or one per GPU when started by torch.distributed.run (`glueslim.gpus --distributed`,
    which the training rules use when given more than one GPU): accelerate then wraps the model in
    DistributedDataParallel. Each process trains on its share of every batch (`batching.shard_batches`), so
    the global batch, and with it the recipe and the learning-rate schedule, does not depend on the number
    of GPUs; accelerate is told so (split_batches), which makes the scheduler step once per optimizer step.
    """
    cuda = recipe.device != "cpu" and torch.cuda.is_available()
    if recipe.device == "cuda" and not cuda:
        raise UserError("device: cuda was asked for, but torch sees no CUDA device")
    capability = torch.cuda.get_device_capability(int(os.environ.get("LOCAL_RANK", 0))) if cuda else None
    precision = choose_precision(recipe.precision, "cuda" if cuda else "cpu", capability,
                                 cpu_bf16=not cuda and cpu_has_native_bf16())
    if cuda:
        set_tf32(recipe.tf32)
    accelerator = Accelerator(cpu=recipe.device == "cpu", mixed_precision=precision,
                              dataloader_config=DataLoaderConfiguration(split_batches=True))
    if not accelerator.is_main_process:
        logging.getLogger().setLevel(logging.WARNING)  # one copy of the log, from the main process
    log.info("training on %s, %d process(es), mixed precision %s%s", accelerator.device,
             accelerator.num_processes, precision, f", TF32 {'on' if recipe.tf32 else 'off'}" if cuda else "")
    return accelerator, precision
