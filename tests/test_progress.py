"""glueslim.progress: a line every N seconds of a fake clock, never per step; ETA and rate; env cadence."""

from __future__ import annotations

import logging

import pytest

from glueslim.progress import ENV, Progress, cadence, clock_text


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "glueslim.progress"]


def test_logs_on_the_time_cadence_not_per_step(caplog):
    caplog.set_level(logging.INFO, logger="glueslim.progress")
    clock = FakeClock()
    p = Progress(100, "epoch 1/3", every=30, clock=clock, bar=False)
    for _ in range(10):  # 10 steps in 10 s: no line yet
        clock.t += 1
        p.update(1, 32)
    assert lines(caplog) == []
    for _ in range(20):  # 30 steps in 30 s: exactly one line, at the 30th second
        clock.t += 1
        p.update(1, 32)
    assert lines(caplog) == [
        "epoch 1/3: step 30/100 (30%), 32.0 examples/s, elapsed 0:00:30, ETA 0:01:10"]
    for _ in range(29):  # 29 s more: still one line
        clock.t += 1
        p.update(1, 32)
    assert len(lines(caplog)) == 1
    clock.t += 1
    p.update(1, 32)
    assert lines(caplog)[-1] == "epoch 1/3: step 60/100 (60%), 32.0 examples/s, elapsed 0:01:00, ETA 0:00:40"
    for _ in range(40):
        p.update(1, 32)  # no time passes: no line
    p.close()
    assert lines(caplog)[-1] == "epoch 1/3: step 100/100 (100%), 53.3 examples/s, elapsed 0:01:00 (done)"
    assert len(lines(caplog)) == 3


def test_a_short_loop_logs_nothing_and_a_failed_one_does_not_say_done(caplog):
    caplog.set_level(logging.INFO, logger="glueslim.progress")
    clock = FakeClock()
    with Progress(5, "predict", every=30, clock=clock, bar=False) as p:
        for _ in range(5):
            clock.t += 1
            p.update(1, 8)
    assert lines(caplog) == []  # 5 s: no progress line, and no final line either

    with pytest.raises(RuntimeError):
        with Progress(5, "predict", every=1, clock=clock, bar=False) as p:
            clock.t += 2
            p.update(1, 8)
            raise RuntimeError("boom")
    assert lines(caplog) == ["predict: step 1/5 (20%), 4.0 examples/s, elapsed 0:00:02, ETA 0:00:08"]


def test_disabled_and_zero_cadence_log_nothing(caplog):
    caplog.set_level(logging.INFO, logger="glueslim.progress")
    clock = FakeClock()
    for p in (Progress(10, "off", every=30, clock=clock, bar=False, enabled=False),
              Progress(10, "zero", every=0, clock=clock, bar=False)):
        for _ in range(10):
            clock.t += 100
            p.update(1, 1)
        p.close()
    assert lines(caplog) == []


def test_progress_draws_no_random_numbers():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    expected = torch.rand(1).item()
    torch.manual_seed(0)
    clock = FakeClock()
    p = Progress(3, "y", every=0.5, clock=clock, bar=False)
    for _ in range(3):
        clock.t += 1
        p.update(1, 4)  # logs each time: every code path of update runs
    p.close()
    assert p.lines == 3
    assert torch.rand(1).item() == expected


def test_bar_on_a_terminal_replaces_the_lines(caplog, capsys):
    caplog.set_level(logging.INFO, logger="glueslim.progress")
    clock = FakeClock()
    p = Progress(4, "train", every=1, clock=clock, bar=True)
    for _ in range(4):
        clock.t += 10
        p.update(1, 2)
    p.close()
    assert lines(caplog) == []
    assert "train" in capsys.readouterr().err  # tqdm drew on stderr


@pytest.mark.parametrize("raw, expected", [("", 30.0), ("5", 5.0), ("0", 0.0), ("2.5", 2.5)])
def test_cadence_from_the_environment(raw, expected):
    assert cadence({ENV: raw}) == expected


@pytest.mark.parametrize("raw", ["soon", "-1", "nan", "inf"])
def test_a_bad_cadence_warns_naming_the_variable_and_keeps_the_default(raw, caplog):
    caplog.set_level(logging.WARNING, logger="glueslim.progress")
    assert cadence({ENV: raw}) == 30.0
    assert ENV in caplog.text and repr(raw) in caplog.text


def test_clock_text():
    assert clock_text(0) == "0:00:00"
    assert clock_text(90) == "0:01:30"
    assert clock_text(360000) == "100:00:00"
