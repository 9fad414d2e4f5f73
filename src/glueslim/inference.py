"""Running a classifier over tokenized examples: logits in input order, predictions, dev loss and metrics.

Used by training (the per-epoch evaluation) and by every inference stage (predict, teacher outputs,
augmentation); it does not import the training loop.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from glueslim.batching import MODEL_INPUTS, sorted_batches
from glueslim.errors import UserError
from glueslim.losses import task_loss
from glueslim.metrics import split_metrics
from glueslim.progress import Progress
from glueslim.tasks import Task


def gpu_memory(device) -> str:
    """' (x of y GiB in use on <GPU>)' for an out-of-memory message; empty where it cannot be read."""
    try:
        free, total = torch.cuda.mem_get_info(device)
        return f" ({(total - free) / 2**30:.1f} of {total / 2**30:.1f} GiB in use on {torch.cuda.get_device_name(device)})"
    except Exception:  # noqa: BLE001 - a detail of the message only
        return ""


# the teacher's own labelling (teacher outputs, augmentation labels) may run under autocast: `inference_precision`
AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@torch.inference_mode()
def predict_logits(model, feats: list[dict], collator, batch_size: int, device, what: str = "predict",
                   precision: str = "fp32") -> torch.Tensor:
    """Logits for every example, in input order; `what` names the loop in its progress lines. `precision`
    "bf16"/"fp16" runs the model under torch.autocast in that dtype (logits returned in float32); "fp32", the
    default, runs it as it is, so its results stay exactly those of an fp32 model."""
    model.eval()
    dtype = AUTOCAST[precision]
    autocast = torch.autocast(torch.device(device).type, dtype=dtype) if dtype else nullcontext()
    batches = sorted_batches([len(f["input_ids"]) for f in feats], batch_size)
    out = torch.empty(len(feats), model.config.num_labels)
    with Progress(len(batches), what) as progress:
        for idx in batches:
            batch = collator([{k: v for k, v in feats[i].items() if k in MODEL_INPUTS} for i in idx])
            batch = {k: v.to(device) for k, v in batch.items()}
            try:
                with autocast:
                    out[idx] = model(**batch).logits.float().cpu()
            except torch.cuda.OutOfMemoryError as e:
                raise UserError(
                    f"GPU out of memory running the model on a batch of {len(idx)} sequences of "
                    f"{batch['input_ids'].shape[-1]} tokens{gpu_memory(device)}: lower eval_batch_size (now "
                    f"{batch_size}), e.g. to {max(1, batch_size // 2)} (finetune.eval_batch_size, or per task in "
                    "finetune.per_task.<task>), or max_seq_length") from e
            progress.update(1, len(idx))
    return out


def logits_to_predictions(task: Task, logits: torch.Tensor) -> list:
    if task.is_regression:
        return logits.squeeze(-1).tolist()
    return logits.argmax(-1).tolist()


def score_logits(task: Task, feats: list[dict], logits: torch.Tensor) -> dict:
    """Loss and metrics of `logits` against the labels of `feats` (the task's first evaluated split)."""
    labels = [f["labels"] for f in feats]
    target = torch.tensor(labels, dtype=torch.float if task.is_regression else torch.long)
    loss = task_loss(logits, target).item()
    metrics = split_metrics(task.name, task.eval_splits[0][1], labels, logits_to_predictions(task, logits))
    return {"loss": loss, "metrics": metrics}


def evaluate_split(model, task: Task, feats: list[dict], collator, batch_size: int, device) -> dict:
    """Loss and metrics on `feats`, in one process."""
    return score_logits(task, feats, predict_logits(model, feats, collator, batch_size, device))
