"""SIGKILL trials: ``python -m tests.kill_trials [--kills N] [--seed S] [--kimg K]``.

Trains a tiny EG3D run on synthetic heads (made here) once without interruption, then again while
killing the trainer with SIGKILL N times, resuming with ``--resume auto`` after each kill. Half of the
kills land at a random moment, half while a snapshot, state or ``latest`` file is being written (the
moment its temp file appears). After each kill every file in the run directory is checked: each
network snapshot must load with ``load_generator``, each training state with ``load_training_state``,
``latest`` must parse and name files that exist, and no run directory may be added. Prints the kills,
the corrupt files, the progress lost per kill (kimg trained but not in ``latest``, and in snapshot
intervals), and whether the final snapshot equals the uninterrupted run's (max abs difference).
Exit status 1 if any file was corrupt, more than one snapshot interval was lost, or the final
weights differ. ``tests/test_training.py`` runs N = 3.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCH = 4
SNAP_TICKS = 2
TICK_KIMG = 0.008
"""A logged tick every 2 steps of 4 images, a snapshot every 2 ticks: snapshot interval 0.016 kimg."""
FAST = ("generator.points.num_coarse=6", "generator.points.num_fine=6", "generator.neural_rendering_resolution=16",
        "loss.neural_rendering_resolution_initial=16")
"""The suite's fast tiny-EG3D settings (tests/test_training.py)."""


def fit_command(data: Path, outdir: Path, kimg: float, resume: bool) -> list[str]:
    cmd = [sys.executable, str(ROOT / "train.py"), "fit", "--data", str(data), "--outdir", str(outdir),
           "--cfg", "tiny", "--batch", str(BATCH), "--kimg", str(kimg), "--tick", str(TICK_KIMG),
           "--snap", str(SNAP_TICKS), "--metrics", "none", "--workers", "1", "--device", "cpu", "--no-progress"]
    for item in FAST:
        cmd += ["--set", item]
    return cmd + (["--resume", "auto"] if resume else [])


WRITES = (".network-snapshot-", ".training-state-", ".latest.")
"""Temp-file prefixes of the writes a kill mid-write aims at (``models.checkpoint.atomic_output``)."""


@dataclass
class Report:
    kills: int = 0
    kills_during_writes: int = 0
    corrupt: list[str] = field(default_factory=list)
    lost_kimg: list[float] = field(default_factory=list)
    final_difference: float = float("inf")
    run_directories: int = 0
    """Run directories with a snapshot (a kill before the first snapshot leaves an empty one behind,
    and ``--resume auto`` then starts afresh: nothing had been saved)."""
    abandoned: int = 0
    """Run directories killed before their first snapshot."""
    leftover_partials: int = 0
    """Temp files of killed writes still in the finished run directory."""

    @property
    def worst_lost_intervals(self) -> float:
        return max(self.lost_kimg, default=0.0) / (TICK_KIMG * SNAP_TICKS)


def check_run(run: Path) -> tuple[list[str], float]:
    """(corrupt files, kimg recorded in ``latest``) of a run directory after a kill."""
    from models import load_generator
    from models.errors import CheckpointError
    from training.loop import load_training_state

    corrupt = []
    for path in sorted(run.glob("network-snapshot-*.safetensors")):
        try:
            load_generator(path)
        except CheckpointError as e:
            corrupt.append(str(e))
    for path in sorted(run.glob("training-state-*.pt")):
        try:
            load_training_state(path)
        except CheckpointError as e:
            corrupt.append(str(e))
    latest_kimg = 0.0
    marker = run / "latest"
    if marker.exists():
        try:
            latest = json.loads(marker.read_text())
            for key in ("state", "snapshot"):
                if not (run / latest[key]).is_file():
                    corrupt.append(f"{marker}: names {latest[key]}, which does not exist")
            latest_kimg = float(latest["kimg"])
        except (ValueError, KeyError, TypeError) as e:
            corrupt.append(f"{marker}: unreadable: {e}")
    return corrupt, latest_kimg


def trained_kimg(run: Path) -> float:
    """The last kimg the trainer logged at a tick (progress made, saved in a snapshot or not)."""
    log = run / "log.jsonl"
    if not log.exists():
        return 0.0
    rows = [line for line in log.read_text().splitlines() if line.strip()]
    for line in reversed(rows):
        try:
            return float(json.loads(line)["kimg"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by the kill
    return 0.0


def kill_once(cmd: list[str], outdir: Path, rng: random.Random, during_write: bool, env: dict) -> bool:
    """Start the trainer and SIGKILL it at a random moment of its training (0-8 s after it has written its
    options, once a snapshot exists) or the moment a temp file of a snapshot, state or ``latest`` write
    appears. False if it finished first."""
    started = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    delay, kill_at = rng.uniform(0.0, 8.0), None
    try:
        while proc.poll() is None:
            if during_write:
                if any(p.name.endswith(".tmp") and p.name.startswith(WRITES) for p in outdir.glob("0*/.*")):
                    proc.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.0005)
                continue
            if kill_at is None and any(p.stat().st_mtime >= started for p in outdir.glob("0*/training_options.json")) \
                    and any(outdir.glob("0*/latest")):  # training, with something to resume from
                kill_at = time.monotonic() + delay
            if kill_at is not None and time.monotonic() >= kill_at:
                proc.send_signal(signal.SIGKILL)
                break
            if time.time() - started > 600:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        status = proc.wait()
    return status == -signal.SIGKILL


def run_trials(kills: int, seed: int, kimg: float, folder: Path, log=print) -> Report:
    from safetensors.torch import load_file

    from training.synthetic import write_synthetic_dataset

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    data = folder / "heads64.zip"
    write_synthetic_dataset(data, "heads", 24, 64, seed=3, geometry=False)
    reference = subprocess.run(fit_command(data, folder / "reference", kimg, False), env=env, capture_output=True,
                               text=True, timeout=1800)
    if reference.returncode != 0:
        raise RuntimeError(f"the uninterrupted run failed: {reference.stderr[-2000:]}")
    rng = random.Random(seed)
    outdir = folder / "killed"
    report = Report()
    attempts = 0
    while report.kills < kills and attempts < 4 * kills:
        attempts += 1
        during_write = report.kills % 2 == 1
        runs = sorted(outdir.glob("0*"))
        cmd = fit_command(data, outdir, kimg, resume=bool(runs))
        if not kill_once(cmd, outdir, rng, during_write, env):
            break  # the run finished before this kill: a shorter run than the kills asked for
        report.kills += 1
        report.kills_during_writes += during_write
        runs = sorted(outdir.glob("0*"))
        corrupt, saved, lost = [], 0.0, 0.0  # killed before it made its run directory: nothing to check
        if runs:
            corrupt, saved = check_run(runs[-1])
            lost = max(0.0, trained_kimg(runs[-1]) - saved)
        report.corrupt += corrupt
        report.lost_kimg.append(lost)
        log(f"kill {report.kills} ({'during a write' if during_write else 'random moment'}): latest at {saved:.3f} "
            f"kimg, lost {lost:.3f} kimg, {len(corrupt)} corrupt files")
    finish = subprocess.run(fit_command(data, outdir, kimg, resume=True), env=env, capture_output=True, text=True,
                            timeout=1800)
    if finish.returncode != 0:
        raise RuntimeError(f"the final resume failed: {finish.stderr[-2000:]}")
    runs = sorted(outdir.glob("0*"))
    report.run_directories = sum(1 for run in runs if (run / "latest").exists())
    report.abandoned = len(runs) - report.run_directories
    finished = [run for run in runs if (run / "latest").exists()][-1]
    report.leftover_partials = sum(1 for p in finished.glob(".*.tmp"))
    final = f"network-snapshot-{kimg:010.3f}.safetensors"
    a = load_file(next((folder / "reference").glob("0*")) / final)
    b = load_file(finished / final)
    report.final_difference = max((a[k].float() - b[k].float()).abs().max().item() for k in a) if a.keys() == b.keys() \
        else float("inf")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kimg", type=float, default=0.32, help="run length (a snapshot every 0.016 kimg)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kills-") as folder:
        report = run_trials(args.kills, args.seed, args.kimg, Path(folder))
    ok = (not report.corrupt and report.worst_lost_intervals <= 1.0 and report.final_difference <= 1e-5
          and report.run_directories == 1 and report.leftover_partials == 0)
    print(f"kills: {report.kills} ({report.kills_during_writes} during writes)")
    print(f"corrupt files: {len(report.corrupt)}")
    for line in report.corrupt[:10]:
        print(f"  {line}")
    print(f"progress lost per kill: max {max(report.lost_kimg, default=0):.3f} kimg "
          f"({report.worst_lost_intervals:.2f} snapshot intervals), mean "
          f"{sum(report.lost_kimg) / max(1, len(report.lost_kimg)):.3f} kimg")
    print(f"run directories with snapshots: {report.run_directories} (+{report.abandoned} killed before their first "
          f"snapshot); partial files left in the finished run: {report.leftover_partials}")
    print(f"final snapshot vs uninterrupted run: max abs difference {report.final_difference:.3g} "
          f"({'matches' if report.final_difference <= 1e-5 else 'DIFFERS'})")
    print(f"{time.perf_counter() - start:.0f} s; {'ok' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
