#!/usr/bin/env python
"""3D-GAN Studio: view, convert and benchmark 3D-aware generators.

Usage:
    python visualizer.py [PATH] [--out FILE.png]      preview a generator (default: built-in model)
    python visualizer.py convert IN.pkl OUT.safetensors
    python visualizer.py bench PATH|PRESET [--res R] [--neural-res r] [--frames N] [--device cpu|cuda]

PATH is one of our ``.safetensors`` checkpoints or an official EG3D ``network-snapshot-*.pkl``.
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

SUBCOMMANDS = ("convert", "bench", "preview")

DEFAULT_MODEL = REPO_ROOT / "assets" / "default_generator.safetensors"
"""The bundled default model (made by the trainer); until it exists a fresh tiny one stands in."""


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
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from PIL import Image

    from models.checkpoint import load_generator, open_generator
    from renderers.preview import render_preview

    device = _device(args.device)
    if args.path:
        G = load_generator(args.path, device=device)
        what = args.path
    elif DEFAULT_MODEL.exists():
        G = load_generator(DEFAULT_MODEL, device=device)
        what = f"bundled default model {DEFAULT_MODEL.name}"
    else:
        G = open_generator("preset:tiny", device=device, seed=0)
        what = "a freshly initialised tiny EG3D generator (no bundled model yet: untrained, expect noise)"
    grid = render_preview(G, seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(out)
    print(f"rendered {what}: seed {args.seed}, three yaws, RGB above depth -> {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="visualizer.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")

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
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("preview", help="render a preview PNG (the default action)")
    p.add_argument("path", nargs="?", default=None)
    p.add_argument("--out", default="out/preview.png")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.set_defaults(func=cmd_preview)
    return parser


def main(argv: list[str] | None = None) -> int:
    from models.errors import CheckpointError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["preview", *argv]
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
