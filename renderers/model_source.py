"""Where a model comes from: a checkpoint file, a training run to follow, or the bundled default.

A run directory is followed: the newest complete ``network-snapshot-*.safetensors`` is loaded, and
``RunFollower.poll`` reports a newer one as soon as the trainer renames it into place (snapshots
are written atomically, so a listed file is always complete).

Used by the app and the batch tools alike. This module imports no torch: the snapshot names it
reads (:data:`SNAPSHOT_PATTERN`, :func:`list_snapshots`) are also the trainer's run-directory
convention (``training.run_dir``), which the training monitor reads without torch.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO_ROOT / "assets" / "default_generator.safetensors"
"""The bundled default model (made by the trainer); if it is missing a fresh tiny one stands in."""
STAND_IN = "preset:tiny"
CHECKPOINT_SUFFIXES = (".safetensors", ".pkl")
SNAPSHOT_PATTERN = re.compile(r"^network-snapshot-(\d+(?:\.\d+)?)\.safetensors$")
"""Network snapshot file names (``training.run_dir.snapshot_name``); group 1 is the kimg."""


def list_snapshots(run_dir: Path) -> list[tuple[float, Path]]:
    """(kimg, path) of every generator snapshot in a run directory, newest first.

    Snapshots appear by atomic rename, so every listed file is complete.
    """
    try:
        names = os.listdir(run_dir)
    except OSError:
        return []
    found = [(float(m.group(1)), Path(run_dir) / name) for name in names if (m := SNAPSHOT_PATTERN.match(name))]
    return sorted(found, key=lambda item: item[0], reverse=True)


@dataclass
class ModelSource:
    """A resolved model location."""

    kind: str
    """file, run or preset."""
    load_path: str
    """What to hand to ``models.checkpoint.open_generator``."""
    run_dir: Path | None = None
    """Run directory being followed (kind run)."""
    kimg: float | None = None
    """Snapshot kimg (kind run)."""
    label: str = ""
    """Human description."""


class SourceError(Exception):
    """The path names nothing loadable (the message says why)."""


def resolve_source(path: str | None) -> ModelSource:
    """Map a user path ('' or None: the default model) to what to load."""
    if not path:
        if DEFAULT_MODEL.exists():
            return ModelSource("file", str(DEFAULT_MODEL), label=f"bundled default model ({DEFAULT_MODEL.name})")
        return ModelSource("preset", STAND_IN, label="fresh tiny generator (untrained: no bundled model found)")
    if path.startswith("preset:"):
        return ModelSource("preset", path, label=f"{path} (random weights)")
    p = Path(path).expanduser()
    if p.is_dir():
        snapshots = list_snapshots(p)
        if not snapshots:
            raise SourceError(f"{p}: no network-snapshot-*.safetensors in this folder (yet?)")
        kimg, newest = snapshots[0]
        return ModelSource("run", str(newest), run_dir=p, kimg=kimg, label=f"{p.name} @ {kimg:g} kimg")
    if not p.exists():
        raise SourceError(f"{p}: no such file or folder")
    return ModelSource("file", str(p), label=p.name)


class RunFollower:
    """Polls a run directory (at most every ``interval`` seconds) for a newer snapshot."""

    def __init__(self, run_dir: Path, loaded_kimg: float | None, interval: float = 1.0):
        self.run_dir = Path(run_dir)
        self.loaded_kimg = loaded_kimg
        self.newest_kimg = loaded_kimg
        self.interval = interval
        self._last_poll = -1e9

    def poll(self, now: float | None = None) -> ModelSource | None:
        """A source for the newest snapshot if it is newer than the loaded one, else None."""
        now = time.monotonic() if now is None else now
        if now - self._last_poll < self.interval:
            return None
        self._last_poll = now
        snapshots = list_snapshots(self.run_dir)
        if not snapshots:
            return None
        kimg, newest = snapshots[0]
        self.newest_kimg = kimg
        if self.loaded_kimg is not None and kimg <= self.loaded_kimg:
            return None
        return ModelSource("run", str(newest), run_dir=self.run_dir, kimg=kimg,
                           label=f"{self.run_dir.name} @ {kimg:g} kimg")
