"""Errors raised while reading or writing generator checkpoints."""

from __future__ import annotations

import os


class CheckpointError(Exception):
    """A checkpoint could not be read or written.

    The message is always one line of the form ``<path>: <problem>`` so that the CLI and the app
    can show it as is.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class UnsafePickleError(CheckpointError):
    """A pickle asked for a global that is not on the allow-list; nothing from it was executed."""
