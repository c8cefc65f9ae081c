"""Progress for the command-line tools: a tqdm bar on a terminal, plain lines in a log.

When stderr is a terminal the usual bar is drawn. When it is not (a log file, a pipe, a job
scheduler), tqdm draws nothing, so a long video or a slow first training tick would be silent for
minutes; ``progress_bar`` then prints one line every ``PROGRESS_SECONDS`` (environment variable
``STUDIO_PROGRESS_SECONDS``, default 10) and one when the job ends:

    video: 12/60 frame (20%), 0.8 frame/s, about 1 min left
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

DEFAULT_SECONDS = 10.0


def progress_seconds() -> float:
    """Seconds between progress lines in logs (``STUDIO_PROGRESS_SECONDS``; default 10)."""
    try:
        value = float(os.environ.get("STUDIO_PROGRESS_SECONDS", DEFAULT_SECONDS))
    except ValueError:
        return DEFAULT_SECONDS
    return value if value >= 0 else DEFAULT_SECONDS


def is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(total: int | None, desc: str, unit: str = "it", enabled: bool = True, initial: int = 0,
                 file: TextIO | None = None, **tqdm_options: Any):
    """A tqdm bar on a terminal, ``LogProgress`` lines otherwise, nothing when not ``enabled``
    (all three: ``update``, ``set_postfix_str``, ``close``, and ``with``)."""
    from tqdm import tqdm

    stream = sys.stderr if file is None else file
    if not enabled:
        return tqdm(total=total, disable=True)
    if is_terminal(stream):
        return tqdm(total=total, desc=desc, unit=unit, initial=initial, file=stream, **tqdm_options)
    return LogProgress(total, desc, unit, initial=initial, file=stream)


class LogProgress:
    """One line per interval: done/total, percent, rate and time left; and a last line at the end."""

    def __init__(self, total: int | None, desc: str, unit: str = "it", initial: int = 0,
                 file: TextIO | None = None, interval: float | None = None):
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self.start_n = int(initial)
        self.file = file
        self.interval = progress_seconds() if interval is None else interval
        self.start = self.last = time.monotonic()
        self.postfix = ""
        self.closed = False
        self.lines = 0

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._print(now)

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.n > self.start_n:
            self._print(time.monotonic(), final=True)

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def line(self, now: float | None = None, final: bool = False) -> str:
        now = time.monotonic() if now is None else now
        elapsed = max(now - self.start, 1e-9)
        rate = (self.n - self.start_n) / elapsed
        parts = [f"{self.desc}: {self.n}" + (f"/{self.total}" if self.total else "") + f" {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        parts.append(f"{rate:.3g} {self.unit}/s")
        if final:
            parts.append(f"done in {_duration(elapsed)}")
        elif self.total and rate > 0:
            parts.append(f"about {_duration((self.total - self.n) / rate)} left")
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts)

    def _print(self, now: float, final: bool = False) -> None:
        self.lines += 1
        print(self.line(now, final), file=self.file or sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
