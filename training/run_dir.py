"""The run directory: numbered folders, file names, the ``latest`` marker and crash-safe logs.

Layout of ``OUTDIR/<00000>-<desc>/``::

    training_options.json                    resolved TrainConfig
    log.jsonl                                one JSON object per tick
    metrics.jsonl                            one JSON object per metric evaluation
    events.out.tfevents.*                    TensorBoard
    reals.png, samples-<kimg>.png            sample grids (fixed seeds, several views, depth)
    network-snapshot-<kimg>.safetensors      G_ema, readable by models.load_generator
    training-state-<kimg>.pt                 everything needed to resume
    latest                                   JSON naming the newest complete state, written last

Every file is written atomically (temp file + rename); ``latest`` is replaced only after the files
it names are complete, so a reader never follows it to a half-written file.

This module imports no torch, so the training monitor can use it and start quickly.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

# Re-exported (explicit "as" form): the readers' side of the snapshot names lives with the model
# source, which the app and the batch tools use too; it is torch-free, like this module.
from renderers.model_source import SNAPSHOT_PATTERN as SNAPSHOT_PATTERN
from renderers.model_source import list_snapshots as list_snapshots

LATEST = "latest"
LOG = "log.jsonl"
METRICS_LOG = "metrics.jsonl"
OPTIONS = "training_options.json"
RUN_DIR_PATTERN = re.compile(r"^(\d{5})-")
REALS = "reals.png"
SAMPLES_PATTERN = re.compile(r"^samples-(\d+(?:\.\d+)?)\.png$")
"""Sample grid file names; group 1 is the kimg."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    from models.checkpoint import atomic_write_bytes as write  # lazy: keeps this module torch-free

    write(path, data)


def kimg_tag(nimg: int) -> str:
    """File-name tag for a training position: kimg with 3 decimals, zero padded ("000004.000")."""
    return f"{nimg / 1000:010.3f}"


def snapshot_name(nimg: int) -> str:
    return f"network-snapshot-{kimg_tag(nimg)}.safetensors"


def state_name(nimg: int) -> str:
    return f"training-state-{kimg_tag(nimg)}.pt"


def samples_name(nimg: int) -> str:
    return f"samples-{kimg_tag(nimg)}.png"


def write_json(path: Path, data: Any) -> None:
    """Atomically replace ``path`` with pretty JSON."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def create_run_dir(outdir: Path, desc: str) -> Path:
    """Make ``outdir/<next id>-<desc>``; ids continue after the largest existing one."""
    outdir.mkdir(parents=True, exist_ok=True)
    ids = [int(m.group(1)) for p in outdir.iterdir() if p.is_dir() and (m := RUN_DIR_PATTERN.match(p.name))]
    run_dir = outdir / f"{max(ids, default=-1) + 1:05d}-{desc}"
    run_dir.mkdir()
    return run_dir


def read_latest(run_dir: Path) -> dict[str, Any] | None:
    """The ``latest`` marker of a run, or None when it has no complete state yet."""
    try:
        record = json.loads((run_dir / LATEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not (run_dir / str(record.get("state", ""))).is_file():
        return None
    return record


def write_latest(run_dir: Path, record: dict[str, Any]) -> None:
    write_json(run_dir / LATEST, record)


def find_resumable_run(outdir: Path, cfg: str | None = None) -> Path | None:
    """The newest numbered run under ``outdir`` that has a complete training state (and, when
    ``cfg`` is given, was started from that preset, so another experiment is never picked up)."""
    if not outdir.is_dir():
        return None
    runs = sorted((p for p in outdir.iterdir() if p.is_dir() and RUN_DIR_PATTERN.match(p.name)), reverse=True)
    for run in runs:
        if read_latest(run) is None:
            continue
        if cfg is not None:
            try:
                if json.loads((run / OPTIONS).read_text()).get("cfg") != cfg:
                    continue
            except (OSError, ValueError):
                continue
        return run
    return None


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and fsync, so a crash loses at most the line being written."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Complete lines of a JSONL file (a torn last line from a crash is ignored)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").split("\n")[:-1]:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def rewind_jsonl(path: Path, max_kimg: float) -> None:
    """On resume: drop rows logged after the state we resume from (and any torn line)."""
    if not path.exists():
        return
    rows = [r for r in read_jsonl(path) if float(r.get("kimg", 0)) <= max_kimg + 1e-9]
    atomic_write_bytes(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())


def remove_stale_temps(run_dir: Path) -> list[str]:
    """Delete temp files left by a process killed mid-write (``.<name>.<random>.tmp``)."""
    removed = []
    for p in run_dir.glob(".*.tmp"):
        p.unlink(missing_ok=True)
        removed.append(p.name)
    return removed
