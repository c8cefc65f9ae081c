"""The model zoo: one small generator per method, trained on the CPU on the synthetic heads.

Each entry is a ``train.py fit`` command: a ``-tiny`` preset with the widths, samples and batch set
by ``--set`` overrides, so it can be re-run by hand. ``python -m training.zoo build METHOD`` makes
the data (one data seed for every method, at the entry's resolution), trains, evaluates the last
snapshot and writes ``assets/zoo/<method>.safetensors`` with its provenance in the file's metadata:
the data and fit commands, kimg, wall time, SWD at initialisation and at the end (the run's own
``metrics.jsonl``: 256 images against the training data, the same options both times), and the
reprojection and geometry figures on 256 identities (``training.evaluation``). The app's Model panel
lists these files (``renderers.model_source.bundled_models``).

Usage:
    python -m training.zoo list
    python -m training.zoo build METHOD [--work DIR] [--threads N] [--force]
    python -m training.zoo package METHOD RUN [--work DIR] [--threads N] [--note TEXT]

METHOD ``default`` is the bundled default model (:data:`DEFAULT`, ``assets/default_generator.safetensors``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from renderers.model_source import DEFAULT_MODEL, REPO_ROOT, ZOO_DIR

DATA_SEED = 0
"""Data seed of every zoo model's training set."""
DATA_COUNT = 4000
"""Images in each training set."""
METRIC_IMAGES = 256
"""Images per SWD evaluation during training (at initialisation and at each snapshot)."""
GEOMETRY_IDENTITIES = 256
"""Identities for the reprojection and geometry figures of the final model."""
EVAL_DATA_SEED = 1
"""Data seed of the set those figures are measured against (not the training set)."""


def _heads_command(out: Path, count: int, resolution: int, seed: int) -> list[str]:
    """``train.py dataset synthetic`` for ``count`` heads at ``resolution`` into ``out``."""
    return ["train.py", "dataset", "synthetic", "--kind", "heads", "--out", str(out), "--count", str(count),
            "--res", str(resolution), "--seed", str(seed)]


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model: how it is trained."""

    method: str
    """Method name (``models.methods``); the file is ``assets/zoo/<method>.safetensors``."""
    cfg: str
    """Training preset (``--cfg``)."""
    resolution: int
    """Image size of the training data (the preset's output size)."""
    kimg: float
    """Training length."""
    batch: int = 8
    """Batch size."""
    overrides: tuple[str, ...] = ()
    """``--set KEY=VALUE`` overrides of the preset (widths, samples)."""
    why: str = ""
    """How and why the entry differs from its ``-tiny`` preset."""
    snap: int = 1
    """Snapshot (and SWD) interval in ticks of 1 kimg."""
    then: tuple[str, ...] = ()
    """``--set`` overrides of a second stretch: the run resumes at ``kimg`` with them (``train.py fit
    --resume``) and trains ``then_kimg`` more (e.g. EG3D's higher neural resolution at the end)."""
    then_kimg: float = 0.0
    """Length of that stretch."""

    @property
    def total_kimg(self) -> float:
        """Training length over both stretches."""
        return self.kimg + (self.then_kimg if self.then else 0.0)

    def data_path(self, work: Path) -> Path:
        return work / f"heads{self.resolution}.zip"

    def data_command(self, work: Path) -> list[str]:
        return _heads_command(self.data_path(work), DATA_COUNT, self.resolution, DATA_SEED)

    def eval_data_path(self, work: Path) -> Path:
        return work / f"heads{self.resolution}-eval.zip"

    def eval_data_command(self, work: Path) -> list[str]:
        return _heads_command(self.eval_data_path(work), GEOMETRY_IDENTITIES, self.resolution, EVAL_DATA_SEED)

    def fit_command(self, work: Path, kimg: float | None = None, then: tuple[str, ...] = ()) -> list[str]:
        """``train.py fit`` to ``kimg`` (default: the first stretch's end), resuming the entry's run
        if there is one, with ``then`` added to the overrides."""
        command = ["train.py", "fit", "--data", str(self.data_path(work)), "--cfg", self.cfg,
                   "--outdir", str(work / "runs" / self.method), "--kimg", f"{kimg or self.kimg:g}",
                   "--batch", str(self.batch), "--tick", "1", "--snap", str(self.snap), "--metrics", "swd",
                   "--metric-images", str(METRIC_IMAGES), "--device", "cpu", "--no-progress", "--resume", "auto"]
        for item in (*self.overrides, *then):
            command += ["--set", item]
        return command

    def fit_commands(self, work: Path) -> list[list[str]]:
        """The training commands, one per stretch."""
        first = self.fit_command(work)
        return [first, self.fit_command(work, self.total_kimg, self.then)] if self.then else [first]


ENTRIES: tuple[ZooEntry, ...] = (
    ZooEntry("pigan", "pigan-tiny", 32, 12, overrides=(
        "generator.decoder.hidden=32", "generator.mapping.hidden=64", "discriminator.channel_max=32",
        "optim.g_lr=0.0002"),
        why="FiLM-SIREN 3x32 (tiny: 3x16), mapping 64 wide, D up to 32 channels, batch 8; G's learning rate 2e-4 "
            "as D's (official 6e-5: D won within 3 kimg and SWD went 252 -> 179 -> 241, grey fog)"),
    ZooEntry("graf", "graf-tiny", 32, 40, overrides=(
        "generator.decoder.hidden=64", "generator.decoder.layers=4", "generator.decoder.z_shape_dim=32",
        "generator.decoder.z_app_dim=32", "generator.mapping.z_dim=64", "discriminator.ndf=16",
        "discriminator.channel_max=64"),
        why="NeRF MLP 4x64 with 32+32 codes (tiny: 3x16, 8+8), D 16 -> 64 channels, batch 8 (a 3x32 MLP with the "
            "tiny D stalled at SWD 174 -> 100-105 from 97 to 116 kimg)"),
    ZooEntry("giraffe", "giraffe-tiny", 32, 80, overrides=(
        "generator.decoder.hidden=64", "generator.decoder.out_features=32", "generator.embedder.background_hidden=32",
        "generator.decoder.z_shape_dim=32", "generator.decoder.z_app_dim=32", "generator.embedder.background_z_dim=8",
        "generator.mapping.z_dim=80", "discriminator.ndf=16", "discriminator.channel_max=64"),
        why="object MLP 64 wide with 32 features and 32+32 codes (tiny: 16/16, 8+8), background 32 wide with 8+8 "
            "codes (tiny: 8, 4+4), D 16 -> 64 channels, batch 8 (the tiny preset plateaued at SWD 199 -> 150-160 from "
            "8 to 20 kimg; with 8+8 codes SWD 171 -> 82-91 from 46 to 85 kimg, ratio 0.53 at the end)"),
    ZooEntry("volumegan", "volumegan-tiny", 32, 20, why="the tiny preset, batch 8"),
    ZooEntry("stylenerf", "stylenerf-tiny", 32, 15, why="the tiny preset, batch 8"),
    ZooEntry("stylesdf", "stylesdf-tiny", 32, 15, overrides=(
        "generator.img_resolution=32", "generator.neural_rendering_resolution=32", "discriminator.img_resolution=32",
        "generator.decoder.hidden=32", "generator.points.num_coarse=16", "discriminator.channel_max=32",
        "optim.g_lr=0.0002"),
        why="stage 1 at 32 px (tiny: 16), SDF SIREN 3x32 (tiny: 3x16), 16 samples per ray (tiny: 8), D up to 32 "
            "channels, batch 8; G's learning rate 2e-4 as D's (official 2e-5: in 15 kimg the geometry stayed the "
            "initial sphere and SWD rose 204 -> 281 by 5 kimg)"),
    ZooEntry("gram", "gram-tiny", 32, 16, overrides=(
        "generator.decoder.hidden=64", "generator.decoder.layers=4", "generator.mapping.hidden=64",
        "generator.embedder.hidden=32", "generator.points.num_coarse=24", "discriminator.channel_max=64",
        "optim.g_lr=0.0002"),
        why="radiance field 4x64 (tiny: 3x16), manifold predictor 32 wide, 24 samples, D up to 64 channels, batch 8; "
            "G's learning rate 2e-4 as D's (official 2e-5: SWD 190 -> 120 -> 138 by 7 kimg, flat colour)"),
    ZooEntry("epigraf", "epigraf-tiny", 32, 15, why="the tiny preset, batch 8"),
    ZooEntry("eg3d", "eg3d-tiny", 64, 6, why="the tiny EG3D network, batch 8 (as the earlier default model), 6 kimg"),
)
"""The zoo, in the methods' display order."""

ZOO = {entry.method: entry for entry in ENTRIES}

DEFAULT = ZooEntry(
    "default", "eg3d-sdf-tiny", 64, 44, snap=4,
    then=("loss.neural_rendering_resolution_final=64", "loss.neural_rendering_resolution_fade_kimg=44",
          "generator.density.alpha_max=0.0125"), then_kimg=8,
    why="the bundled default model (make demo): the tiny EG3D network with an SDF head (training/methods/eg3d.py, "
        "eg3d-sdf-tiny), chosen for its geometry: the tri-plane EG3D learns the heads fastest of the nine on the CPU "
        "(SWD 33.6 in 44 kimg, the earlier default) but its density is fog (geometry/within10 0.009); StyleSDF's SIREN "
        "SDF gives a surface by construction but learned slowly at 32 px (zoo: SWD 86 at 15 kimg, within10 0.114). "
        "The SDF head keeps EG3D's backbone, dual discriminator and recipe, with StyleSDF's sphere initialisation, "
        "minimal-surface term and forced background, and an eikonal weight of 1.0; after 44 kimg it goes on for 8 "
        "more at neural resolution 64 (the one-pixel foreground erosion of the reprojection metric leaves too few "
        "pixels at 32: the synthetic heads themselves score 37% valid at 32 and 43% at 64) with the sigmoid width "
        "bounded at 0.0125 instead of 0.03 (a sharper surface: depth and field normals agree more often)")
"""The bundled default model, ``assets/default_generator.safetensors`` (``build default``)."""


def _run(command: list[str], threads: int, log) -> None:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    log("$ python " + shlex.join(command))
    subprocess.run([sys.executable, *command], cwd=REPO_ROOT, env=env, check=True)


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_dir_of(entry: ZooEntry, work: Path) -> Path:
    """The (single) run directory of an entry under ``work``."""
    runs = sorted(p for p in (work / "runs" / entry.method).glob("0*") if p.is_dir())
    if not runs:
        raise FileNotFoundError(f"no run of {entry.method} under {work / 'runs' / entry.method}")
    return runs[-1]


def swd_history(run: Path) -> list[tuple[float, float]]:
    """(kimg, swd) of every evaluation of a run, in order (kimg 0 is the initialisation)."""
    return [(float(r["kimg"]), float(r["results"]["swd"])) for r in _read_jsonl(run / "metrics.jsonl")
            if r.get("metric") == "swd"]


def build(entry: ZooEntry, work: Path, threads: int = 2, force: bool = False, log=print) -> Path:
    """Train ``entry`` (resuming a stopped run), evaluate it and write its zoo file; returns the path."""
    out = output_path(entry)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists (use --force to replace it)")
    work.mkdir(parents=True, exist_ok=True)
    if not entry.data_path(work).exists():
        _run(entry.data_command(work), threads, log)
    for command in entry.fit_commands(work):
        _run(command, threads, log)
    return package(entry, work, run_dir_of(entry, work), threads, log)


def output_path(entry: ZooEntry) -> Path:
    """Where an entry's model ships: ``assets/zoo/<method>.safetensors``, or the default model."""
    return DEFAULT_MODEL if entry is DEFAULT else ZOO_DIR / f"{entry.method}.safetensors"


def package(entry: ZooEntry, work: Path, run: Path, threads: int = 2, log=print, note: str = "") -> Path:
    """Evaluate the newest snapshot of ``run`` (trained by ``entry``'s command on ``work``'s data)
    and write it with its provenance to :func:`output_path`; returns the path. ``note``: how the run
    was actually made where that differs from the entry's command (kept as ``note`` in the metadata)."""
    import torch

    from models import load_generator
    from models.checkpoint import save_generator
    from renderers.model_source import list_snapshots, read_safetensors_metadata
    from training.evaluation import evaluate

    out = output_path(entry)
    eval_data = entry.eval_data_path(work)
    if not eval_data.exists():
        _run(entry.eval_data_command(work), threads, log)
    history = swd_history(run)
    if not history or history[0][0] != 0.0:
        raise RuntimeError(f"{run}: no SWD at initialisation in metrics.jsonl")
    kimg, snapshot = list_snapshots(run)[0]
    # The trainer's own clock (ticks summed, restored on resume), stored in the snapshot it evaluated.
    seconds = read_safetensors_metadata(snapshot).get("train_seconds")
    if seconds is None:
        raise RuntimeError(f"{snapshot}: no train_seconds in its metadata")
    seconds = float(seconds)
    G = load_generator(str(snapshot), device="cpu")
    log(f"evaluating {snapshot.name} on {GEOMETRY_IDENTITIES} identities ...")
    torch.set_num_threads(threads)
    figures = evaluate(G, str(eval_data), ["swd", "reprojection", "geometry"], GEOMETRY_IDENTITIES, seed=0,
                       device="cpu", progress=False)
    swd_init, swd_end = history[0][1], history[-1][1]
    metadata = {
        "zoo": entry.method,
        "cfg": entry.cfg,
        "kimg": f"{kimg:.3f}",
        "data": f"{entry.data_path(work).name} ({DATA_COUNT} synthetic heads, {entry.resolution}x{entry.resolution})",
        "data_seed": str(DATA_SEED),
        "data_command": "python " + shlex.join(_relative(entry.data_command(work), work)),
        "command": " && ".join("python " + shlex.join(_relative(c, work)) for c in entry.fit_commands(work)),
        "train_seconds": f"{seconds:.0f}",
        "wall_time": f"{seconds:.0f} s training ({seconds / 60:.0f} min) to {kimg:g} kimg",
        "trained_on": f"{threads} CPU threads ({platform.processor() or platform.machine()}), batch {entry.batch}",
        "swd_init": f"{swd_init:.1f}",
        "swd": f"{swd_end:.1f}",
        "swd_ratio": f"{swd_end / swd_init:.3f}",
        "swd_metric": f"SWD x1e3 of {METRIC_IMAGES} generated images against the training data (train.py fit "
                      "--metrics swd), at kimg 0 and at the last snapshot",
        "swd_history": json.dumps([[k, round(v, 1)] for k, v in history]),
        "eval_data_command": "python " + shlex.join(_relative(entry.eval_data_command(work), work)),
        "eval": json.dumps({k: round(v, 4) for k, v in figures.items()}),
        "why": entry.why,
        "run": run.name,
    }
    if note:
        metadata["note"] = note
    if entry is DEFAULT:
        metadata["default"] = metadata.pop("zoo")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_generator(G, out, metadata)
    log(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB): SWD {swd_init:.1f} -> {swd_end:.1f} "
        f"(x{swd_end / swd_init:.2f}), {kimg:g} kimg in {seconds / 60:.1f} min; "
        + ", ".join(f"{k} {v:.3g}" for k, v in figures.items()))
    return out


def _relative(command: list[str], work: Path) -> list[str]:
    """A command with the work folder's paths made relative to it (the metadata reads like the README)."""
    prefix = str(work) + os.sep
    return [part[len(prefix):] if part.startswith(prefix) else part for part in command]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.zoo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="print each entry's commands")
    p = sub.add_parser("build", help="train one entry and write its zoo file")
    p.add_argument("method", choices=[*sorted(ZOO), "default"], help="a zoo entry, or 'default': the bundled default model")
    p.add_argument("--work", type=Path, default=Path("zoo-work"), help="data and runs folder (default zoo-work)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    p.add_argument("--force", action="store_true", help="replace an existing zoo file")
    p = sub.add_parser("package", help="evaluate a finished or stopped run of an entry and write its file")
    p.add_argument("method", choices=[*sorted(ZOO), "default"])
    p.add_argument("run", type=Path, help="the run directory (its newest snapshot is shipped)")
    p.add_argument("--work", type=Path, default=Path("zoo-work"), help="data folder (default zoo-work)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    p.add_argument("--note", default="", help="how the run differed from the entry's command, if it did")
    args = parser.parse_args(argv)
    if args.command == "list":
        for entry in (*ENTRIES, DEFAULT):
            print(f"# {entry.method}: {entry.why}")
            print("python " + shlex.join(entry.data_command(Path("."))))
            for command in entry.fit_commands(Path(".")):
                print("python " + shlex.join(command))
        return 0
    entry = DEFAULT if args.method == "default" else ZOO[args.method]
    try:
        if args.command == "package":
            package(entry, args.work.resolve(), args.run.resolve(), threads=args.threads, note=args.note)
        else:
            build(entry, args.work.resolve(), threads=args.threads, force=args.force)
    except (FileExistsError, FileNotFoundError, RuntimeError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
