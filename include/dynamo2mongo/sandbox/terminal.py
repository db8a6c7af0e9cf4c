"""What the sandbox prints while ``airflow dags test`` runs: each task's start and end and the long
tasks' progress lines, read from the Airflow log as it is written (the full log stays in the file)."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")
_END = re.compile(r"\[DAG TEST\] end task task_id=(\S+) map_index=(-?\d+)")
_STATE = re.compile(r"new_state=(\w+)")
# structlog's console lines: "<time> [info     ] <event>   [<logger>] loc=progress.py:50"
_PROGRESS = re.compile(r"^\S+ \[\w+\s*\] (.*?)\s+\[[\w.]+\] loc=progress\.py")
_RUN_END = re.compile(r"DagRun Finished: dag_id=(\S+), .*?state=(\w+)")


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 data file``, ``2 data files``."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


class LogFollower:
    """Turns Airflow log lines into the terminal's lines: a task's start, its end with its state
    (a sensor's repeated reschedules are printed once), and progress lines."""

    def __init__(self, out: Callable[[str], None] = lambda line: print(line, flush=True)):
        self.out = out
        self.state: str | None = None
        self.started: dict[tuple[str, str], float] = {}
        self.printed: dict[tuple[str, str], str] = {}

    def _label(self, task: str, index: str) -> str:
        return task if index == "-1" else f"{task}[{index}]"

    def feed(self, line: str) -> None:
        if match := _STATE.search(line):
            self.state = match[1]
        if match := _START.search(line):
            key = (match[1], match[2])
            self.state = None
            self.started.setdefault(key, time.monotonic())
            if key not in self.printed:
                self.printed[key] = "running"
                self.out(f"  {time.strftime('%H:%M:%S')} {self._label(*key)}: started")
        elif match := _END.search(line):
            key = (match[1], match[2])
            state = self.state or "ended"
            if self.printed.get(key) != state:
                self.printed[key] = state
                took = time.monotonic() - self.started.get(key, time.monotonic())
                when = "" if state in ("up_for_reschedule", "deferred") else f" after {took:.1f} s"
                self.out(f"  {time.strftime('%H:%M:%S')} {self._label(*key)}: {state}{when}")
        elif match := _PROGRESS.search(line):
            self.out(f"      {match[1]}")
        elif match := _RUN_END.search(line):
            self.out(f"  {time.strftime('%H:%M:%S')} run of {match[1]}: {match[2]}")


@contextlib.contextmanager
def follow(log: Path, follower: LogFollower | None = None, every: float = 0.5) -> Iterator[LogFollower]:
    """Print from ``log``'s new lines while the block runs (and what it wrote last, at its end)."""
    follower = follower or LogFollower()
    stop = threading.Event()
    offset = log.stat().st_size if log.exists() else 0

    def run() -> None:
        nonlocal offset
        pending = ""
        while True:
            finished = stop.is_set()
            if log.exists():
                with log.open(errors="replace") as handle:
                    handle.seek(offset)
                    chunk = handle.read()
                    offset = handle.tell()
                pending += chunk
                *lines, pending = pending.split("\n")
                for line in lines:
                    follower.feed(line)
            if finished:
                return
            stop.wait(every)

    thread = threading.Thread(target=run, name="log-follower", daemon=True)
    thread.start()
    try:
        yield follower
    finally:
        stop.set()
        thread.join(10)
