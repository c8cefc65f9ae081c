#!/usr/bin/env python
"""3D-GAN Studio: view, convert and benchmark 3D-aware generators.

Usage:
    python visualizer.py [PATH] [--script S.json [--exit]] [--device cpu|cuda] [--interop auto|cuda|pycuda|host]
                                                       open the app (default: the bundled model)
    python visualizer.py preview [PATH] [--out FILE.png]
    python visualizer.py convert IN.pkl OUT.safetensors
    python visualizer.py bench PATH|PRESET [--res R] [--neural-res r] [--frames N] [--device cpu|cuda]

PATH is one of our ``.safetensors`` checkpoints, an official EG3D ``network-snapshot-*.pkl``, or a
training run directory (the app follows its newest snapshot).
PRESET names a built-in architecture with random weights: ffhq512, afhq512, shapenet128, ref128, tiny.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

SUBCOMMANDS = ("app", "convert", "bench", "preview")


def _device(name: str):
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda requested but no CUDA device is available")
    return torch.device(name)


def cmd_convert(args: argparse.Namespace) -> int:
    from models.checkpoint import load_generator, save_generator

    G = load_generator(args.input)
    if Path(args.output).exists() and not args.force:
        raise SystemExit(f"error: {args.output}: exists (use --force to replace it)")
    save_generator(G, args.output, metadata={"converted_from": os.path.basename(args.input)})
    n = sum(p.numel() for p in G.state_dict().values())
    print(f"wrote {args.output}: {type(G).__name__}, {n / 1e6:.1f}M values, {G.img_resolution}px output")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from models.checkpoint import open_generator
    from renderers.bench import benchmark_generator

    device = _device(args.device)
    G = open_generator(args.path, device=device)
    if args.res is not None and args.res != G.img_resolution:
        raise SystemExit(f"error: {args.path} produces {G.img_resolution}px images; --res {args.res} does not match")
    torch.set_grad_enabled(False)
    result = benchmark_generator(G, neural_resolution=args.neural_res, frames=args.frames, warmup=args.warmup)
    print(f"{args.path}: {type(G).__name__}, {torch.get_num_threads()} CPU threads")
    print(result.report())
    if args.no_gl:
        return 0
    from app.bench import benchmark_app
    from app.interop import InteropError
    from app.window import WindowError

    try:
        app_result = benchmark_app(G, frames=args.frames, warmup=args.warmup, interop=args.interop,
                                   size=args.window, neural_resolution=args.neural_res)
    except (WindowError, InteropError) as e:
        print(f"app pipeline: not measured ({e}); --no-gl skips it")
        return 0
    print(app_result.report())
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    from app.script import ScriptError, ScriptPlayer, load_script
    from app.interop import InteropError
    from app.viewer import Visualizer
    from app.window import WindowError

    try:
        actions = load_script(args.script) if args.script else None
    except ScriptError as e:
        raise SystemExit(f"error: {e}")
    if args.device == "cuda":
        _device("cuda")
    width, height = (int(v) for v in args.size.lower().split("x"))
    try:
        viz = Visualizer(args.path, device=args.device, interop=args.interop, size=(width, height))
    except (WindowError, InteropError) as e:
        raise SystemExit(f"error: {e}")
    if actions is not None:
        viz.script = ScriptPlayer(viz, actions, exit_when_done=args.exit)
    status = viz.run(max_frames=args.max_frames)
    if viz.script is not None and viz.script.error:
        print(f"error: {viz.script.error}", file=sys.stderr)
        return 1
    return status


def cmd_preview(args: argparse.Namespace) -> int:
    from PIL import Image

    from app.model_source import resolve_source
    from models.checkpoint import open_generator
    from renderers.preview import render_preview

    device = _device(args.device)
    source = resolve_source(args.path)
    G = open_generator(source.load_path, device=device, seed=0)
    what = source.label
    grid = render_preview(G, seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(out)
    print(f"rendered {what}: seed {args.seed}, three yaws, RGB above depth -> {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="visualizer.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("app", help="open the app window (the default action)")
    p.add_argument("path", nargs="?", default=None, help="checkpoint, EG3D pickle or run directory")
    p.add_argument("--script", default=None, help="play a JSON session script")
    p.add_argument("--exit", action="store_true", help="exit when the script ends (status 1 if it failed)")
    p.add_argument("--device", default=None, choices=["cpu", "cuda"], help="default: cuda when available")
    p.add_argument("--interop", default="auto", choices=["auto", "cuda", "pycuda", "host"],
                   help="how frames reach the GL texture (auto: CUDA-GL interop when possible)")
    p.add_argument("--size", default="1400x860", help="window size WxH")
    p.add_argument("--max-frames", type=int, default=None, help="close after this many UI frames")
    p.set_defaults(func=cmd_app)

    p = sub.add_parser("convert", help="convert an EG3D .pkl (or our checkpoint) to .safetensors")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("bench", help="print frame-time medians and the per-stage split")
    p.add_argument("path", help="checkpoint path or preset name (random weights)")
    p.add_argument("--res", type=int, default=None, help="expected output resolution (checked)")
    p.add_argument("--neural-res", type=int, default=None, help="volume-rendering resolution (default: model's)")
    p.add_argument("--frames", type=int, default=10, help="timed frames")
    p.add_argument("--warmup", type=int, default=2, help="untimed frames first")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--interop", default="auto", choices=["auto", "cuda", "pycuda", "host"],
                   help="upload path for the app-pipeline figures")
    p.add_argument("--window", type=int, default=1024, help="hidden viewport size for the app-pipeline figures")
    p.add_argument("--no-gl", action="store_true", help="generator figures only (no window)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("preview", help="render a preview PNG (the default action)")
    p.add_argument("path", nargs="?", default=None)
    p.add_argument("--out", default="out/preview.png")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.set_defaults(func=cmd_preview)
    return parser


def main(argv: list[str] | None = None) -> int:
    from app.model_source import SourceError
    from models.errors import CheckpointError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["app", *argv]
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CheckpointError, SourceError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
