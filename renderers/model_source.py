"""Where a model comes from: a checkpoint file, a training run to follow, or the bundled default.

A run directory is followed: the newest complete ``network-snapshot-*.safetensors`` is loaded, and
``RunFollower.poll`` reports a newer one as soon as the trainer renames it into place (snapshots
are written atomically, so a listed file is always complete).

Used by the app and the batch tools alike. This module imports no torch: the snapshot names it
reads (:data:`SNAPSHOT_PATTERN`, :func:`list_snapshots`) are also the trainer's run-directory
convention (``training.run_dir``), which the training monitor reads without torch.
"""

from __future__ import annotations

import json
import os
import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO_ROOT / "assets" / "default_generator.safetensors"
"""The bundled default model (made by the trainer); if it is missing a fresh tiny one stands in."""
ZOO_DIR = REPO_ROOT / "assets" / "zoo"
"""The bundled model zoo: one CPU-trained model per method (``training.zoo`` writes them)."""
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


@dataclass(frozen=True)
class BundledModel:
    """A model shipped under ``assets/zoo``."""

    method: str
    """The method it was trained with (its ``zoo`` metadata)."""
    path: Path
    """The checkpoint file."""
    metadata: dict[str, str]
    """Its header metadata (training commands, kimg, SWD, geometry figures)."""

    @property
    def label(self) -> str:
        """One line for a list: method, kimg and SWD at the end (and at initialisation)."""
        kimg, swd, swd_init = (self.metadata.get(k) for k in ("kimg", "swd", "swd_init"))
        detail = ", ".join(part for part in (f"{float(kimg):g} kimg" if _is_number(kimg) else "",
                                            f"SWD {swd_init} -> {swd}" if swd and swd_init else "") if part)
        return f"{self.method} ({detail})" if detail else self.method


MAX_HEADER_BYTES = 1 << 24
"""Largest safetensors header read when listing bundled models."""


def read_safetensors_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file, read from its JSON header without torch.

    Raises:
        ValueError: the file is not a safetensors file (one line naming the problem).
    """
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: too short for a safetensors header")
        (size,) = struct.unpack("<Q", head)
        if size > MAX_HEADER_BYTES:
            raise ValueError(f"{path}: safetensors header of {size} bytes is larger than {MAX_HEADER_BYTES}")
        raw = f.read(size)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: unreadable safetensors header ({type(e).__name__})") from None
    metadata = header.get("__metadata__", {}) if isinstance(header, dict) else {}
    return {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}


def bundled_models(folder: Path | None = None) -> list[BundledModel]:
    """The zoo's models (default :data:`ZOO_DIR`) by method name; unreadable files are skipped."""
    folder = Path(folder) if folder is not None else ZOO_DIR
    found = []
    for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        try:
            metadata = read_safetensors_metadata(path)
        except (OSError, ValueError):
            continue
        found.append(BundledModel(metadata.get("zoo") or metadata.get("method") or path.stem, path, metadata))
    return sorted(found, key=lambda m: (m.method, m.path.name))


def _is_number(text: str | None) -> bool:
    try:
        float(text or "")
    except ValueError:
        return False
    return True
