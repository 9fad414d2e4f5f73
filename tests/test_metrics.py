import math

import pytest

from glueslim.metrics import classification_metrics, regression_metrics, task_metrics
from glueslim.tasks import glue_score, task_mean


def test_matthews_correlation_by_hand():
    y = [1, 1, 1, 0, 0, 0, 1, 0]
    p = [1, 1, 0, 0, 0, 1, 1, 0]
    tp, tn, fp, fn = 3, 3, 1, 1
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert classification_metrics("cola", y, p) == pytest.approx({"mcc": mcc})


def test_f1_and_accuracy_by_hand():
    y = [1, 1, 1, 1, 0, 0]
    p = [1, 1, 0, 0, 1, 0]
    # tp 2, fp 1, fn 2 -> precision 2/3, recall 1/2, F1 = 2*(2/3*1/2)/(2/3+1/2) = 4/7
    got = classification_metrics("mrpc", y, p)
    assert got["f1"] == pytest.approx(4 / 7)
    assert got["accuracy"] == pytest.approx(3 / 6)
    assert classification_metrics("sst2", y, p) == {"accuracy": pytest.approx(0.5)}


def test_pearson_and_spearman_by_hand():
    y = [0.0, 1.0, 2.0, 3.0]
    p = [0.0, 2.0, 1.0, 3.0]
    # pearson: both centred [-1.5,-0.5,0.5,1.5] vs [-1.5,0.5,-0.5,1.5] -> 4/5
    # spearman: ranks are the values themselves -> same 0.8
    got = regression_metrics(y, p)
    assert got["pearson"] == pytest.approx(0.8)
    assert got["spearman"] == pytest.approx(0.8)
    assert regression_metrics(y, [1.0] * 4) == {"pearson": 0.0, "spearman": 0.0}


def test_mnli_combines_matched_and_mismatched():
    m = task_metrics("mnli", {"mnli_matched": {"accuracy": 0.8}, "mnli_mismatched": {"accuracy": 0.7}})
    assert m == {"matched_accuracy": 0.8, "mismatched_accuracy": 0.7}
    assert task_mean("mnli", m) == pytest.approx(0.75)


def test_glue_score_averages_task_means_with_and_without_wnli():
    scores = {
        "cola": task_mean("cola", {"mcc": 0.5}),
        "mrpc": task_mean("mrpc", {"f1": 0.9, "accuracy": 0.8}),  # 0.85
        "stsb": task_mean("stsb", {"pearson": 0.88, "spearman": 0.86}),  # 0.87
        "wnli": task_mean("wnli", {"accuracy": 0.56}),
    }
    assert scores["mrpc"] == pytest.approx(0.85)
    assert glue_score(scores) == pytest.approx((0.5 + 0.85 + 0.87 + 0.56) / 4)
    assert glue_score(scores, exclude=("wnli",)) == pytest.approx((0.5 + 0.85 + 0.87) / 3)
    assert glue_score({"wnli": 0.5}, exclude=("wnli",)) is None
