"""Progress of a long loop that a user can follow: one log line every N seconds, a live bar on a terminal.

Every long job (the training loop, general distillation, augmentation, teacher outputs, predict, the
profiling sweep) counts its steps through one `Progress`. When stderr is not a terminal (a workflow job,
whose stderr is its log file) it logs, at most once every `GLUESLIM_PROGRESS_SECONDS` seconds (default 30;
0 turns the lines off), one line:

    epoch 2/3: step 120/400 (30%), 85.2 examples/s, elapsed 0:01:30, ETA 0:03:30

and, when it logged at least one such line, a last one at `close()`. On a terminal it shows a tqdm bar
instead. `update` only adds to counters and reads the clock: it never synchronises a GPU and draws no
random numbers, so progress reporting cannot change a result.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Callable

log = logging.getLogger("glueslim.progress")

ENV = "GLUESLIM_PROGRESS_SECONDS"
DEFAULT_SECONDS = 30.0


def cadence(env: dict | None = None) -> float:
    """Seconds between progress lines, from $GLUESLIM_PROGRESS_SECONDS (default 30; 0: no lines)."""
    raw = (os.environ if env is None else env).get(ENV, "")
    if not raw.strip():
        return DEFAULT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        log.warning("%s=%r is not a number of seconds >= 0; using %g", ENV, raw, DEFAULT_SECONDS)
        return DEFAULT_SECONDS
    return value


def clock_text(seconds: float) -> str:
    """0:01:30 for 90 s; hours grow past 24 (100:00:00)."""
    s = max(0, int(round(seconds)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """Counts `total` steps of a loop named `what`; `update(steps, items)` after each step.

    `unit` names the items (examples, sentences, points) whose rate is shown; `enabled=False` (e.g. every
    process but the first of a data-parallel run) makes every call a no-op. `clock`, `every`, `logger` and
    `bar` exist for tests; `bar=None` picks tqdm exactly when stderr is a terminal.
    """

    def __init__(self, total: int, what: str, unit: str = "examples", *, enabled: bool = True,
                 every: float | None = None, clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger | None = None, bar: bool | None = None):
        self.total, self.what, self.unit = int(total), what, unit
        self.enabled = enabled
        self.every = cadence() if every is None else every
        self.clock, self.log = clock, logger or log
        self.steps = self.items = 0
        self.lines = 0  # progress lines logged so far
        self.start = self.last = clock()
        self._bar = None
        if enabled and (sys.stderr.isatty() if bar is None else bar):
            from tqdm.auto import tqdm  # a dependency of transformers

            self._bar = tqdm(total=self.total, desc=what, unit="step", file=sys.stderr, dynamic_ncols=True,
                             leave=False)

    def update(self, steps: int = 1, items: int = 0) -> None:
        if not self.enabled:
            return
        self.steps += steps
        self.items += items
        if self._bar is not None:
            self._bar.update(steps)
            return
        if self.every <= 0:
            return
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self.lines += 1
            self.log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        """`what: step s/total (p%), r unit/s, elapsed h:mm:ss, ETA h:mm:ss` at time `now`."""
        elapsed = (self.clock() if now is None else now) - self.start
        parts = [f"step {self.steps}/{self.total}" + (f" ({100 * self.steps / self.total:.0f}%)" if self.total else "")]
        if self.items and elapsed > 0:
            parts.append(f"{self.items / elapsed:.1f} {self.unit}/s")
        parts.append(f"elapsed {clock_text(elapsed)}")
        if 0 < self.steps < self.total:
            parts.append(f"ETA {clock_text(elapsed / self.steps * (self.total - self.steps))}")
        return f"{self.what}: " + ", ".join(parts)

    def close(self, done: bool = True) -> None:
        """Ends the bar; logs a final line when the loop finished (`done`) and was long enough to have
        logged progress lines."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.lines and done:
            self.log.info("%s (done)", self.line())

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(done=exc_type is None)
