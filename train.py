#!/usr/bin/env python
"""3D-GAN Studio trainer.

Usage:
    python train.py dataset synthetic --kind heads|objects --out OUT.zip --count N --res R [--seed S]
    python train.py dataset folder --source DIR --out OUT.zip [--res R] [--mirror] [--force]
    python train.py fit --data PATH --cfg eg3d|pigan|graf|giraffe|volumegan|stylenerf|stylesdf|gram|epigraf[-tiny]
                        --outdir DIR [options]
    python train.py fit ... --cfg pigan --embedder volume --decoder siren        (ablation: swap components)
    python train.py fit ... --cfg stylesdf --stage 2 --init STAGE1_RUN_OR_SNAPSHOT
    torchrun --nproc_per_node=8 train.py fit --gpus 8 ...          (data parallel, one node)
    python train.py bench --cfg NAME [--gpus N] [--batch B] [--amp bf16|fp16|off]
    python train.py monitor RUN_DIR

``dataset synthetic`` renders procedural 3D scenes (head-like shapes from FFHQ-like frontal
cameras, or car/chair-like objects from all around) into an EG3D-format zip: PNG images,
``dataset.json`` camera labels, and ground-truth depth and normals under ``geometry/``.

``dataset folder`` checks a folder of images with an EG3D ``dataset.json`` and packs it into an
EG3D-format zip, optionally resized to R and with left-right mirrored copies (mirrored cameras).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def fail(message: object) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def output_problem(out: Path, force: bool) -> str | None:
    """Why ``out`` cannot be written (exists without --force, or no such folder), else None."""
    if out.exists() and not force:
        return f"{out}: exists (use --force to replace it)"
    if not out.parent.is_dir():
        return f"{out}: folder {out.parent} does not exist"
    return None


def cmd_dataset_synthetic(args: argparse.Namespace) -> int:
    from models.errors import CheckpointError
    from training.synthetic import SPECS, write_synthetic_dataset

    out = Path(args.out)
    if args.kind not in SPECS:
        return fail(f"unknown --kind {args.kind!r}; expected one of {', '.join(sorted(SPECS))}")
    if args.count < 1 or args.res < 8:
        return fail("--count must be >= 1 and --res >= 8")
    if problem := output_problem(out, args.force):
        return fail(problem)
    start = time.perf_counter()
    try:
        write_synthetic_dataset(out, args.kind, args.count, args.res, seed=args.seed, batch=args.batch,
                                geometry=not args.no_geometry)
    except CheckpointError as e:
        return fail(e)
    seconds = time.perf_counter() - start
    print(f"wrote {out}: {args.count} {args.kind} at {args.res}x{args.res}, seed {args.seed}, "
          f"{seconds:.1f} s ({args.count / seconds:.1f} img/s)")
    return 0


def cmd_dataset_folder(args: argparse.Namespace) -> int:
    from models.errors import CheckpointError
    from training.dataset import DatasetError
    from training.dataset_tool import write_folder_dataset

    out = Path(args.out)
    if args.res is not None and args.res < 1:
        return fail("--res must be >= 1")
    if problem := output_problem(out, args.force):
        return fail(problem)
    start = time.perf_counter()
    try:
        summary = write_folder_dataset(args.source_path, out, resolution=args.res, mirror=args.mirror)
    except (DatasetError, CheckpointError) as e:
        return fail(e)
    seconds = time.perf_counter() - start
    mirrored = f" ({summary.count // 2} + {summary.count // 2} mirrored)" if summary.mirrored else ""
    print(f"wrote {out}: {summary.count} images{mirrored} at {summary.resolution}x{summary.resolution}, "
          f"{seconds:.1f} s")
    return 0


def resolve_train_config(args: argparse.Namespace):
    """Preset + command-line options + ``--set`` overrides -> TrainConfig."""
    from models.pipeline_config import SWAPPABLE
    from training.config import apply_overrides
    from training.presets import apply_components, train_preset, with_stage

    config = train_preset(args.cfg)
    # Ablations and stages first: they may replace the recipe that the options below adjust.
    config = apply_components(config, {name: getattr(args, name, None) for name in SWAPPABLE})
    if getattr(args, "stage", None) is not None:
        config = with_stage(config, int(args.stage))
    for name, value in (("batch", args.batch), ("batch_gpu", args.batch_gpu), ("gpus", args.gpus),
                        ("seed", args.seed), ("amp", args.amp)):
        if value is not None:
            setattr(config, name, value)
    if getattr(args, "gamma", None) is not None:
        config.loss.r1_gamma = args.gamma
    if getattr(args, "neural_res", None) is not None:
        if hasattr(config.loss, "neural_rendering_resolution_initial"):
            config.loss.neural_rendering_resolution_initial = args.neural_res
        config.generator.neural_rendering_resolution = args.neural_res
    return apply_overrides(config, args.set or [])


def resolve_snapshot(path: str) -> str:
    """A snapshot file, or a run directory's newest snapshot."""
    from training import run_dir as rundir

    p = Path(path)
    if p.is_dir():
        latest = rundir.read_latest(p)
        if latest is None:
            raise ValueError(f"{p}: run directory has no complete snapshot")
        return str(p / latest["snapshot"])
    return str(p)


def check_device(name: str | None) -> None:
    """ValueError (a one-line exit 2) for --device cuda without a CUDA device."""
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but no CUDA device is available (use --device cpu)")


def cmd_fit(args: argparse.Namespace) -> int:
    import torch

    from models.errors import CheckpointError
    from training.dataset import DatasetError
    from training.distributed import init_distributed, shutdown
    from training.loop import TrainingInterrupted, fit

    try:
        config = resolve_train_config(args)
        config.data, config.outdir = args.data, args.outdir
        if args.init:
            config.init = resolve_snapshot(args.init)
        for name, value in (("kimg", args.kimg), ("tick_kimg", args.tick), ("snap", args.snap),
                            ("metric_images", args.metric_images), ("workers", args.workers),
                            ("inception", args.inception)):
            if value is not None:
                setattr(config, name, value)
        if args.metrics is not None:
            config.metrics = [m for m in args.metrics.split(",") if m and m != "none"]
        config.validate()
        check_device(args.device)
        ctx = init_distributed(config.gpus, args.device)
        command = " ".join(["python train.py"] + (args.argv or []))
        run_dir = fit(config, ctx, resume=args.resume, command=command, progress=not args.no_progress,
                      changes=args.set or [])
    except (DatasetError, CheckpointError, ValueError) as e:
        return fail(e)
    except torch.OutOfMemoryError as e:
        return fail(f"out of memory: {str(e).splitlines()[0]} (try a smaller --batch-gpu)")
    except TrainingInterrupted as e:
        print(f"\n{e}", file=sys.stderr)
        return 130
    finally:
        shutdown()
    if ctx.is_main:
        print(f"done: {run_dir}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from training.bench import benchmark_training, format_result
    from training.distributed import init_distributed, shutdown

    try:
        config = resolve_train_config(args)
        config.validate()
        check_device(args.device)
        ctx = init_distributed(config.gpus, args.device)
        result = benchmark_training(config, ctx, steps=args.steps, warmup=args.warmup)
    except ValueError as e:
        return fail(e)
    finally:
        shutdown()
    if ctx.is_main:
        print(format_result(config, ctx, result))
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    from training.monitor import main as monitor_main

    return monitor_main(args.monitor_args)


def add_train_options(p: argparse.ArgumentParser) -> None:
    from models.pipeline_config import component_choices
    from training.presets import TRAIN_PRESETS

    p.add_argument("--cfg", default="tiny", choices=TRAIN_PRESETS, metavar="CFG",
                   help="preset: eg3d (= ffhq512), shapenet128, pigan, graf, giraffe, volumegan, stylenerf, "
                        "stylesdf, gram or epigraf; '-tiny' variants for CPU; tiny = eg3d-tiny")
    for component, kinds in component_choices().items():
        p.add_argument(f"--{component}", choices=kinds, help=f"ablation: replace the preset's {component}")
    p.add_argument("--stage", type=int, choices=[1, 2], help="StyleSDF stage (2: start from a stage-1 snapshot via --init)")
    p.add_argument("--batch", type=int, help="total batch size over all GPUs")
    p.add_argument("--batch-gpu", type=int, help="images per forward pass per GPU (gradient accumulation)")
    p.add_argument("--gpus", type=int, help="number of processes; launch with torchrun when > 1")
    p.add_argument("--seed", type=int, help="random seed of the run (initial weights, data order)")
    p.add_argument("--amp", choices=["bf16", "fp16", "off"], help="mixed precision on CUDA")
    p.add_argument("--gamma", type=float, help="R1 weight")
    p.add_argument("--neural-res", type=int, help="neural rendering resolution")
    p.add_argument("--device", choices=["cuda", "cpu"], help="default: cuda when available")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any config field, e.g. loss.blur_fade_kimg=100 (repeatable)")


FIT_DEFAULTS = {
    "batch": "batch", "batch_gpu": "batch_gpu", "gpus": "gpus", "seed": "seed", "amp": "amp",
    "gamma": "loss.r1_gamma", "neural_res": "generator.neural_rendering_resolution", "kimg": "kimg",
    "tick": "tick_kimg", "snap": "snap", "metrics": "metrics", "metric_images": "metric_images",
    "workers": "workers", "inception": "inception",
}
"""fit option -> the TrainConfig field it sets (its default comes from the preset)."""
FIXED_DEFAULTS = {
    "resume": "a new run", "init": "none (random initialisation)", "device": "cuda when available",
    "set": "none", "stage": "the preset's (1)",
}


def describe_fit_defaults(p: argparse.ArgumentParser) -> None:
    """Append every option's default to its help, as EG3D's train.py does: the preset's values,
    shown for the default preset, or what happens without the option."""
    from models.pipeline_config import SWAPPABLE
    from training.presets import train_preset

    preset = p.get_default("cfg")
    config = train_preset(preset)
    for action in p._actions:
        if action.dest == "help" or not action.option_strings or "default" in (action.help or ""):
            continue
        if action.dest in FIT_DEFAULTS:
            value: object = config
            for part in FIT_DEFAULTS[action.dest].split("."):
                value = getattr(value, part)
            shown = ",".join(value) if isinstance(value, list) else value
            if action.dest == "batch_gpu" and value is None:
                shown = "the whole batch at once"
            elif value is None:
                shown = "none"
            note = f"default: the preset's; {preset}: {shown}"
        elif action.dest in SWAPPABLE:
            note = "default: the preset's own"
        elif action.dest in FIXED_DEFAULTS:
            note = f"default: {FIXED_DEFAULTS[action.dest]}"
        elif action.dest == "cfg":
            note = f"default: {preset}"
        else:
            continue
        action.help = f"{action.help} ({note})" if action.help else f"{note[0].upper()}{note[1:]}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    dataset = sub.add_parser("dataset", help="make training datasets").add_subparsers(dest="source", required=True)

    p = dataset.add_parser("synthetic", help="render a procedural multi-view dataset with ground truth")
    p.add_argument("--kind", required=True, help="heads or objects")
    p.add_argument("--out", required=True, help="output .zip")
    p.add_argument("--count", type=int, required=True, help="number of images")
    p.add_argument("--res", type=int, default=64, help="image resolution")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=16, help="images rendered together")
    p.add_argument("--no-geometry", action="store_true", help="omit ground-truth depth and normals")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=cmd_dataset_synthetic)

    p = dataset.add_parser("folder", help="pack a folder of images + EG3D dataset.json into a training zip")
    # dest differs from "source", which the `dataset` subcommand choice already uses.
    p.add_argument("--source", dest="source_path", required=True, help="folder (or zip) with images and dataset.json")
    p.add_argument("--out", required=True, help="output .zip")
    p.add_argument("--res", type=int, default=None, help="resize square images to this resolution")
    p.add_argument("--mirror", action="store_true", help="add left-right flipped copies with mirrored cameras")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=cmd_dataset_folder)

    p = sub.add_parser("fit", help="train a generator")
    p.add_argument("--data", required=True, help="EG3D zip or folder with dataset.json")
    p.add_argument("--outdir", required=True, help="folder for numbered run directories")
    add_train_options(p)
    p.add_argument("--kimg", type=float, help="training length in thousands of images")
    p.add_argument("--tick", type=float, help="log interval in kimg")
    p.add_argument("--snap", type=int, help="snapshot interval in ticks")
    p.add_argument("--resume", help="'auto' (newest run under --outdir, if any), a run directory or a training-state file; "
                   "a resumed run keeps its saved settings except the length, logging and data options and "
                   "what --set changes")
    p.add_argument("--metrics", help="comma-separated metrics at each snapshot (swd) or 'none'")
    p.add_argument("--metric-images", type=int, help="images per metric evaluation")
    p.add_argument("--inception", help="TorchScript Inception feature network for fid/kid (we cannot ship it)")
    p.add_argument("--workers", type=int, help="data-loading processes per GPU")
    p.add_argument("--init", help="generator snapshot or run directory whose matching weights initialise G (StyleSDF stage 2)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar or progress lines, only a line per tick (default: a bar on a terminal; in a "
                        "log, a progress line every STUDIO_PROGRESS_SECONDS, default 10)")
    p.set_defaults(func=cmd_fit)
    describe_fit_defaults(p)

    p = sub.add_parser("bench", help="training throughput (img/s, peak memory) of a preset on random data")
    add_train_options(p)
    p.add_argument("--steps", type=int, help="timed steps (default: one full lazy-regularisation cycle)")
    p.add_argument("--warmup", type=int, default=2)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("monitor", help="live window following a training run", add_help=False)
    p.add_argument("monitor_args", nargs=argparse.REMAINDER, help="RUN_DIR [--interval S] [--screenshot PNG]")
    p.set_defaults(func=cmd_monitor)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["monitor"]:  # its own parser, --help included (argparse's REMAINDER would refuse it)
        return cmd_monitor(argparse.Namespace(monitor_args=argv[1:]))
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
