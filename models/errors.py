"""Errors raised while reading or writing generator checkpoints."""

from __future__ import annotations

import os
import re

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def one_line(text: object, limit: int = 400) -> str:
    """The first non-empty line of ``text``, terminal escapes removed, at most ``limit`` characters."""
    lines = [line.strip() for line in _ANSI.sub("", str(text)).splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


class CheckpointError(Exception):
    """A checkpoint could not be read or written.

    The message is always one line of the form ``<path>: <problem>`` so that the CLI and the app
    can show it as is (a multi-line problem keeps its first line).
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = one_line(problem)
        super().__init__(f"{self.path}: {self.problem}")


class UnsafePickleError(CheckpointError):
    """A pickle asked for a global that is not on the allow-list; nothing from it was executed."""
