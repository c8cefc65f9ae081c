#!/usr/bin/env python
"""3D-GAN Studio trainer.

Usage:
    python train.py dataset synthetic --kind heads|objects --out OUT.zip --count N --res R [--seed S]

``dataset synthetic`` renders procedural 3D scenes (head-like shapes from FFHQ-like frontal
cameras, or car/chair-like objects from all around) into an EG3D-format zip: PNG images,
``dataset.json`` camera labels, and ground-truth depth and normals under ``geometry/``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def cmd_dataset_synthetic(args: argparse.Namespace) -> int:
    from models.errors import CheckpointError
    from training.synthetic import SPECS, write_synthetic_dataset

    out = Path(args.out)
    if args.kind not in SPECS:
        raise SystemExit(f"error: unknown --kind {args.kind!r}; expected one of {', '.join(sorted(SPECS))}")
    if args.count < 1 or args.res < 8:
        raise SystemExit("error: --count must be >= 1 and --res >= 8")
    if out.exists() and not args.force:
        raise SystemExit(f"error: {out}: exists (use --force to replace it)")
    if not out.parent.is_dir():
        raise SystemExit(f"error: {out}: folder {out.parent} does not exist")
    start = time.perf_counter()
    try:
        write_synthetic_dataset(out, args.kind, args.count, args.res, seed=args.seed, batch=args.batch,
                                geometry=not args.no_geometry)
    except CheckpointError as e:
        raise SystemExit(f"error: {e}")
    seconds = time.perf_counter() - start
    print(f"wrote {out}: {args.count} {args.kind} at {args.res}x{args.res}, seed {args.seed}, "
          f"{seconds:.1f} s ({args.count / seconds:.1f} img/s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
