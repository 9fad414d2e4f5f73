"""The GLUE tasks: one registry that every stage reads (names, labels, splits, metrics)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    name: str  # the id used in config, wildcards and file names ("sst2")
    glue_dir: str  # folder in the original GLUE layout ("SST-2")
    hub_config: str  # config name of nyu-mll/glue on the Hugging Face hub
    label_names: tuple[str, ...]  # empty for regression
    metrics: tuple[str, ...]  # metric keys, in report order
    # normalized split name -> file name in the original layout
    splits: tuple[tuple[str, str], ...]
    # dev splits that are evaluated and reported: (split, prediction file stem)
    eval_splits: tuple[tuple[str, str], ...]
    labelled: bool = True  # False for the diagnostic set (test only)

    @property
    def is_regression(self) -> bool:
        return not self.label_names

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.label_names)

    @property
    def split_files(self) -> dict[str, str]:
        return dict(self.splits)


def _std(name, glue_dir, hub, labels, metrics):
    return Task(
        name, glue_dir, hub, labels, metrics,
        splits=(("train", "train.tsv"), ("validation", "dev.tsv"), ("test", "test.tsv")),
        eval_splits=(("validation", name),),
    )


ENTAIL = ("entailment", "not_entailment")
TASKS: dict[str, Task] = {t.name: t for t in [
    _std("cola", "CoLA", "cola", ("unacceptable", "acceptable"), ("mcc",)),
    _std("sst2", "SST-2", "sst2", ("negative", "positive"), ("accuracy",)),
    _std("mrpc", "MRPC", "mrpc", ("not_equivalent", "equivalent"), ("f1", "accuracy")),
    _std("stsb", "STS-B", "stsb", (), ("pearson", "spearman")),
    _std("qqp", "QQP", "qqp", ("not_duplicate", "duplicate"), ("f1", "accuracy")),
    Task(
        "mnli", "MNLI", "mnli", ("entailment", "neutral", "contradiction"),
        ("matched_accuracy", "mismatched_accuracy"),
        splits=(
            ("train", "train.tsv"),
            ("validation_matched", "dev_matched.tsv"),
            ("validation_mismatched", "dev_mismatched.tsv"),
            ("test_matched", "test_matched.tsv"),
            ("test_mismatched", "test_mismatched.tsv"),
        ),
        eval_splits=(("validation_matched", "mnli_matched"), ("validation_mismatched", "mnli_mismatched")),
    ),
    _std("qnli", "QNLI", "qnli", ENTAIL, ("accuracy",)),
    _std("rte", "RTE", "rte", ENTAIL, ("accuracy",)),
    _std("wnli", "WNLI", "wnli", ("not_entailment", "entailment"), ("accuracy",)),
    Task(
        "ax", "diagnostic", "ax", ("entailment", "neutral", "contradiction"), (),
        splits=(("test", "diagnostic.tsv"),), eval_splits=(), labelled=False,
    ),
]}

# Rows in the official GLUE files (header excluded), used to catch truncated downloads.
OFFICIAL_ROWS: dict[tuple[str, str], int] = {
    ("cola", "train"): 8551, ("cola", "validation"): 1043, ("cola", "test"): 1063,
    ("sst2", "train"): 67349, ("sst2", "validation"): 872, ("sst2", "test"): 1821,
    ("mrpc", "train"): 3668, ("mrpc", "validation"): 408, ("mrpc", "test"): 1725,
    ("stsb", "train"): 5749, ("stsb", "validation"): 1500, ("stsb", "test"): 1379,
    ("qqp", "train"): 363846, ("qqp", "validation"): 40430, ("qqp", "test"): 390965,
    ("mnli", "train"): 392702, ("mnli", "validation_matched"): 9815,
    ("mnli", "validation_mismatched"): 9832, ("mnli", "test_matched"): 9796,
    ("mnli", "test_mismatched"): 9847,
    ("qnli", "train"): 104743, ("qnli", "validation"): 5463, ("qnli", "test"): 5463,
    ("rte", "train"): 2490, ("rte", "validation"): 277, ("rte", "test"): 3000,
    ("wnli", "train"): 635, ("wnli", "validation"): 71, ("wnli", "test"): 146,
    ("ax", "test"): 1104,
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown GLUE task {name!r}; expected one of {', '.join(TASKS)}") from None


def task_mean(task: str, metrics: dict[str, float]) -> float:
    """A task's single score: the mean of its metrics (MRPC/QQP F1 and acc, STS-B r and rho, MNLI m/mm)."""
    keys = get_task(task).metrics
    return sum(metrics[k] for k in keys) / len(keys)


def glue_score(task_scores: dict[str, float], exclude: tuple[str, ...] = ()) -> float | None:
    """Mean over tasks of each task's mean metric; None when no task is left."""
    vals = [v for t, v in task_scores.items() if t not in exclude]
    return sum(vals) / len(vals) if vals else None
