"""Counts, rate and ETA logged at a steady cadence by long-running steps."""

from __future__ import annotations

import logging
import threading
import time


class Progress:
    """Call ``advance(n)`` as work is done (from any thread); a line is logged at most every ``every`` seconds."""

    def __init__(self, logger: logging.Logger, what: str, total: int | None = None, every: float = 10.0):
        self.logger = logger
        self.what = what
        self.total = total
        self.every = every
        self.done = 0
        self.started = time.monotonic()
        self._last = self.started
        self._lock = threading.Lock()

    def advance(self, count: int = 1) -> None:
        with self._lock:
            self.done += count
            now = time.monotonic()
            due = now - self._last >= self.every
            if due:
                self._last = now
        if due:
            self.logger.info("%s", self.line(now))

    def rate(self, now: float | None = None) -> float:
        elapsed = (now or time.monotonic()) - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self, now: float | None = None) -> str:
        rate = self.rate(now)
        text = f"{self.what}: {self.done:,}"
        if self.total:
            text += f"/{self.total:,} ({100 * self.done / self.total:.1f}%)"
        text += f", {rate:,.0f}/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f", ETA {(self.total - self.done) / rate:,.0f}s"
        return text

    def finish(self) -> float:
        """Log the closing line and return the elapsed seconds."""
        elapsed = time.monotonic() - self.started
        self.logger.info("%s, done in %.1fs", self.line(), elapsed)
        return elapsed
