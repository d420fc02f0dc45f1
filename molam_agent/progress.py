"""Progress lines for long steps (backup, download, copy), shown under ``molam-agent -v``.

A step creates one ``Progress`` and calls ``advance`` as it goes; a line is logged at INFO
at most every ``interval_s`` seconds and once at the end, so a step over millions of rows or
thousands of files prints a handful of lines, not one per item::

    molam-agent: INFO download: 12.0/48.3 MiB (25%)
    molam-agent: INFO backup files: 3,200 files
    molam-agent: INFO copy wp_molam_orders: done in 0.4 s

Without ``-v`` the logger is at WARNING and nothing is formatted (``advance`` costs one
comparison).
"""

from __future__ import annotations

import contextlib
import logging
import time

log = logging.getLogger("molam_agent.progress")


class Progress:
    """Counts units done in one step and logs a progress line now and then."""

    def __init__(self, step: str, total: int | None = None, unit: str = "bytes", interval_s: float = 1.0):
        self.step = step
        self.total = total
        self.unit = unit
        self.done = 0
        self.interval_s = interval_s
        self._enabled = log.isEnabledFor(logging.INFO)
        self._next = time.monotonic() + interval_s
        self._started = time.monotonic()

    def advance(self, n: int = 1) -> None:
        """Record ``n`` more units done; log a line when the interval has passed."""
        self.done += n
        if self._enabled and time.monotonic() >= self._next:
            self._next = time.monotonic() + self.interval_s
            log.info("%s: %s", self.step, self._line())

    def tar_filter(self, info):  # tarfile.TarInfo -> tarfile.TarInfo
        """``tarfile.add(..., filter=meter.tar_filter)``: counts regular files (or their bytes)."""
        if info.isfile():
            self.advance(info.size if self.unit == "bytes" else 1)
        return info

    def finish(self) -> None:
        """Log the final line of the step."""
        if self._enabled:
            seconds = time.monotonic() - self._started
            log.info("%s: %s done in %.1f s", self.step, self._amount(self.done), seconds)

    def _amount(self, n: int) -> str:
        if self.unit == "bytes":
            return f"{n / (1 << 20):.1f} MiB"
        return f"{n:,} {self.unit}"

    def _line(self) -> str:
        if not self.total:
            return self._amount(self.done)
        if self.unit == "bytes":
            text = f"{self.done / (1 << 20):.1f}/{self.total / (1 << 20):.1f} MiB"
        else:
            text = f"{self.done:,}/{self.total:,} {self.unit}"
        return f"{text} ({min(100, self.done * 100 // self.total)}%)"


@contextlib.contextmanager
def timed(step: str):
    """One line when a step that reports no progress of its own (a table copy) ends."""
    started = time.monotonic()
    yield
    log.info("%s: done in %.1f s", step, time.monotonic() - started)


def progress(step: str, total: int | None = None, unit: str = "bytes") -> Progress:
    """The hook the flows call: ``p = progress("backup", total=n, unit="rows")``."""
    return Progress(step, total, unit)
