#!/usr/bin/env python
"""3D-GAN Studio: view, convert and benchmark 3D-aware generators.

Usage:
    python visualizer.py [PATH] [--script S.json [--exit]] [--device cpu|cuda] [--interop auto|cuda|pycuda|host]
                                                       open the app (default: the bundled model)
    python visualizer.py preview [PATH] [--out FILE.png]
    python visualizer.py convert IN.pkl OUT.safetensors
    python visualizer.py bench PATH|PRESET [--res R] [--neural-res r] [--frames N] [--device cpu|cuda]
    python visualizer.py images [PATH] --seeds 0-7,12 --views N|yaw:pitch,... --out DIR [--depth] [--normals] [--grid]
                                [--height H]
    python visualizer.py video [PATH] --seeds 0-3 --trajectory orbit|yaw|circle|FILE.json --frames N --fps F
                               --grid WxH --mode rgb|depth|normals|side [--height H] --out X.mp4
    python visualizer.py mesh [PATH] --seeds 0-3 --res 256|512 [--level L] --format ply|obj|glb|mrc [--color] --out DIR
    python visualizer.py metrics [PATH] --data DATA --metrics swd,reprojection,... --num N [--out results.jsonl]

PATH is one of our ``.safetensors`` checkpoints, an official EG3D ``network-snapshot-*.pkl``, or a
training run directory (the app follows its newest snapshot).
PRESET names a built-in architecture with random weights: ffhq512, afhq512, shapenet128, ref128, tiny.
The batch commands (images, video, mesh, metrics) take the same PATH (default: the bundled model),
never open a window, refuse to overwrite outputs without --force, and say `error: ...` (exit 2) on
bad input. `visualizer.py COMMAND --help` describes each.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

SUBCOMMANDS = ("app", "convert", "bench", "preview", "images", "video", "mesh", "metrics")


def _device(name: str):
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda requested but no CUDA device is available")
    return torch.device(name)


def cmd_convert(args: argparse.Namespace) -> int:
    from models.checkpoint import load_generator, save_generator

    G = load_generator(args.input, release=args.release)
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
    result = benchmark_generator(G, neural_resolution=args.neural_res, frames=args.frames, warmup=args.warmup,
                                 precision=args.precision)
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
    from app.interop import InteropError
    from app.script import ScriptError, ScriptPlayer, load_script
    from app.viewer import Visualizer
    from app.window import WindowError

    try:
        actions = load_script(args.script) if args.script else None
    except ScriptError as e:
        raise SystemExit(f"error: {e}") from None
    if args.device == "cuda":
        _device("cuda")
    window_size = None
    if args.size is not None:
        size = re.fullmatch(r"\s*(\d{1,5})\s*[xX]\s*(\d{1,5})\s*", args.size)
        if not size or not all(200 <= int(v) <= 16384 for v in size.groups()):
            print(f"error: bad --size {args.size!r}: expected WxH in pixels, each 200 to 16384, e.g. 1400x860",
                  file=sys.stderr)
            return 2
        window_size = tuple(int(v) for v in size.groups())
    from app.settings import default_settings_path

    # A session script is reproducible: without an explicit --settings it neither reads nor writes them.
    if args.settings is not None:
        settings_path = None if args.settings.lower() == "none" else Path(args.settings).expanduser()
    else:
        settings_path = None if args.script else default_settings_path()
    try:
        viz = Visualizer(args.path, device=args.device, interop=args.interop, size=window_size,
                         release=args.release, settings_path=settings_path, precision=args.precision)
    except (WindowError, InteropError) as e:
        raise SystemExit(f"error: {e}") from None
    if actions is not None:
        viz.script = ScriptPlayer(viz, actions, exit_when_done=args.exit)
    status = viz.run(max_frames=args.max_frames)
    if viz.script is not None and viz.script.errors:
        for error in viz.script.errors:  # every failed action, one line each
            print(f"error: {error}", file=sys.stderr)
        return 1
    return status


def cmd_preview(args: argparse.Namespace) -> int:
    from PIL import Image

    from models.checkpoint import open_generator
    from renderers.model_source import resolve_source
    from renderers.preview import render_preview

    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"error: {out} exists (use --force to replace it)", file=sys.stderr)
        return 2
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"error: {out}: cannot create folder {out.parent}: {e.strerror or e}", file=sys.stderr)
        return 2
    device = _device(args.device)
    source = resolve_source(args.path)
    G = open_generator(source.load_path, device=device, seed=0, release=args.release)
    what = source.label
    scene = _scene(G, args)
    try:
        grid = render_preview(G, seed=args.seed, scene=scene)
    except (RuntimeError, ValueError, ArithmeticError, IndexError) as e:  # a config no check caught
        from models.errors import one_line

        print(f"error: {source.load_path}: cannot render this model: {type(e).__name__}: {one_line(e, 200)}",
              file=sys.stderr)
        return 2
    try:
        Image.fromarray(grid).save(out)
    except OSError as e:
        print(f"error: {out}: cannot write: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"rendered {what}: seed {args.seed}, three yaws, RGB above depth -> {out}")
    return 0


def _scene(G, args: argparse.Namespace):
    """The scene options of a compositional model (``renderers.batch.scene_controls``)."""
    from renderers.batch import scene_controls

    return scene_controls(G, args.objects, args.object or (), args.bg_rotation)


def _batch_model(args: argparse.Namespace):
    from renderers.batch import load_model, resolve_device

    device = resolve_device(args.device)
    from renderers.batch import BatchError

    G, label = load_model(args.path, device, release=getattr(args, "release", None))
    if getattr(args, "class_index", None) is not None:
        if not getattr(G, "num_classes", 0):
            raise BatchError(f"--class {args.class_index}: {label} is not class-conditional")
        try:
            G.set_class(args.class_index)
        except ValueError as e:
            raise BatchError(f"--class: {e}") from None
    print(f"model: {label} ({G.img_resolution}px) on {device.type}")
    return G, device


def cmd_images(args: argparse.Namespace) -> int:
    from renderers.batch import (
        check_height,
        check_psi,
        check_targets,
        image_paths,
        parse_seed_list,
        parse_views,
        run_images,
    )

    seeds, views = parse_seed_list(args.seeds), parse_views(args.views)
    check_psi(args.trunc)
    check_height(args.height)
    check_targets(image_paths(Path(args.out), seeds, args.grid), args.force)
    G, _ = _batch_model(args)
    paths = run_images(G, seeds, views, args.out, psi=args.trunc, trunc_cutoff=args.trunc_cutoff, depth=args.depth,
                       normals=args.normals, grid=args.grid, force=args.force, batch=args.batch,
                       precision=args.precision, scene=_scene(G, args), height=args.height)
    rows = "RGB" + (" + depth" if args.depth else "") + (" + normals" if args.normals else "")
    print(f"wrote {len(seeds)} strip(s) of {len(views)} view(s) ({rows}) to {args.out}"
          + (f", contact sheet {paths[-1]}" if args.grid else ""))
    return 0


def cmd_video(args: argparse.Namespace) -> int:
    from renderers.batch import (
        check_height,
        check_psi,
        check_targets,
        load_camera_path,
        parse_grid,
        parse_seed_list,
        run_video,
    )

    seeds, grid = parse_seed_list(args.seeds), parse_grid(args.grid)
    check_psi(args.trunc)
    check_height(args.height)
    load_camera_path(args.trajectory)
    check_targets([Path(args.out)], args.force)
    G, _ = _batch_model(args)
    result = run_video(G, seeds, args.out, trajectory=args.trajectory, frames=args.frames, fps=args.fps, grid=grid,
                       mode=args.mode, psi=args.trunc, trunc_cutoff=args.trunc_cutoff, force=args.force,
                       batch=args.batch, precision=args.precision, scene=_scene(G, args), height=args.height)
    print(f"wrote {result.path}: {result.frames} frames in {result.seconds:.1f} s")
    return 0


def cmd_mesh(args: argparse.Namespace) -> int:
    from renderers.batch import check_psi, check_targets, mesh_paths, parse_seed_list, run_mesh

    seeds = parse_seed_list(args.seeds)
    check_psi(args.trunc)
    check_targets(mesh_paths(Path(args.out), seeds, args.format), args.force)
    G, _ = _batch_model(args)
    results = run_mesh(G, seeds, args.out, res=args.res, level=args.level, fmt=args.format, colors=args.color,
                       psi=args.trunc, trunc_cutoff=args.trunc_cutoff, force=args.force, chunk=args.chunk)
    print(f"wrote {len(results)} file(s) to {args.out}")
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    from training.evaluation import check_metrics_input, run_metrics

    names = [n for n in args.metrics.replace(" ", "").split(",") if n]
    check_metrics_input(args.data, names)  # bad names or data fail before the model loads
    if args.out:
        folder = Path(args.out).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            print(f"error: {args.out}: cannot create folder {folder}: {e.strerror or e}", file=sys.stderr)
            return 2
        if not os.access(folder, os.W_OK):
            print(f"error: {args.out}: folder {folder} is not writable", file=sys.stderr)
            return 2
    G, device = _batch_model(args)
    run_metrics(G, args.path or "bundled default model", args.data, names, args.num, seed=args.seed, out=args.out,
                inception=args.inception, device=device, batch=args.batch)
    return 0


def _batch_arguments(p: argparse.ArgumentParser, seeds_default: str = "0") -> None:
    p.add_argument("path", nargs="?", default=None,
                   help="our .safetensors checkpoint, an official EG3D .pkl, a training run folder (newest "
                        "snapshot) or preset:NAME; default: the bundled model")
    p.add_argument("--seeds", default=seeds_default, help=f"seed list, e.g. 0-7,12 (default {seeds_default})")
    p.add_argument("--trunc", type=float, default=0.7, help="truncation psi (default 0.7; 1 = none)")
    p.add_argument("--trunc-cutoff", type=int, default=None, metavar="K",
                   help="truncate only the first K ws (default: all)")
    p.add_argument("--class", dest="class_index", type=int, default=None, metavar="K",
                   help="class of a class-conditional model (EpiGRAF's Megascans releases; default 0)")
    p.add_argument("--device", default=None, choices=["cpu", "cuda"], help="default: cuda when available")
    p.add_argument("--force", action="store_true", help="replace existing outputs (checked before any work)")
    p.add_argument("--release", default=None, choices=release_names(), metavar="NAME",
                   help="settings of an official release the file cannot tell apart (e.g. pigan-cats; "
                        "default: recognised from the file)")


def precisions() -> tuple[str, ...]:
    from models.precision import PRECISIONS

    return PRECISIONS


def _precision_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", default="exact", choices=precisions(), metavar="MODE",
                   help="exact: fp32, as the official code; fast: bf16 convolutions (the backbone "
                        "and super-resolution; README 'Performance' gives its error) (default exact)")


def _scene_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--objects", type=int, default=None, metavar="N",
                   help="compositional models (GIRAFFE): show the first N objects (default: all)")
    p.add_argument("--object", action="append", default=None, metavar="SPEC",
                   help="compositional models: I[:t=X,Y,Z][:s=S or SX,SY,SZ][:r=DEG], object I's translation, "
                        "scale and rotation about the up axis in degrees; repeatable; what is left out keeps its "
                        "default")
    p.add_argument("--bg-rotation", type=float, default=None, metavar="DEG",
                   help="compositional models: background rotation about the up axis in degrees")


class _OneLineErrors(argparse.ArgumentParser):
    """Bad arguments give one line (``error: PROG: ...``, exit 2), not the usage block; --help has it."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message}\n")


def release_names() -> tuple[str, ...]:
    from models.releases import release_names as names

    return names()


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(prog="visualizer.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", parser_class=_OneLineErrors)

    p = sub.add_parser("app", help="open the app window (the default action)")
    p.add_argument("path", nargs="?", default=None, help="checkpoint, EG3D pickle or run directory")
    p.add_argument("--script", default=None, help="play a JSON session script")
    p.add_argument("--exit", action="store_true", help="exit when the script ends (status 1 if it failed)")
    p.add_argument("--device", default=None, choices=["cpu", "cuda"], help="default: cuda when available")
    p.add_argument("--interop", default="auto", choices=["auto", "cuda", "pycuda", "host"],
                   help="how frames reach the GL texture (auto: CUDA-GL interop when possible)")
    p.add_argument("--size", default=None, help="window size WxH (default: as last time, else 1400x860)")
    p.add_argument("--settings", default=None, metavar="PATH",
                   help="settings file read at start and written at exit (recent files, window and panel layout, "
                        "UI scale, camera, quality; default: settings.json in ~/.config/3dgan-studio, or none "
                        "with --script; 'none': no settings file)")
    p.add_argument("--release", default=None, choices=release_names(), metavar="NAME",
                   help="settings of an official release the file cannot tell apart (default: recognised)")
    p.add_argument("--max-frames", type=int, default=None, help="close after this many UI frames")
    p.add_argument("--precision", default=None, choices=precisions(), metavar="MODE",
                   help="starting precision of the Quality panel (default: fast on the CPU, exact on CUDA)")
    p.set_defaults(func=cmd_app)

    p = sub.add_parser("convert", help="convert an EG3D .pkl, a pi-GAN or GRAM generator.pth, a VolumeGAN .pth "
                       "(or our checkpoint) to .safetensors")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--release", default=None,
                   help="official release whose render settings to use where the file does not store them "
                        "(models/releases.py: pigan-celeba, pigan-cats, pigan-carla, gram-ffhq, gram-cats, "
                        "gram-carla, volumegan-ffhq256; default: identified from the file)")
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
    _precision_argument(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("preview", help="render a preview PNG: one seed from three yaws, depth below")
    p.add_argument("path", nargs="?", default=None)
    p.add_argument("--out", default="out/preview.png")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--release", default=None, choices=release_names(), metavar="NAME",
                   help="settings of an official release the file cannot tell apart (default: recognised)")
    _scene_arguments(p)
    p.set_defaults(func=cmd_preview)

    p = sub.add_parser("images", help="per-seed multi-view image strips (PNG), optionally a contact sheet",
                       description="Render each seed from several views into DIR/seedNNNN.png: an RGB row, then "
                                   "optional depth (turbo colormap) and normals (RGB) rows, as the app shows them.")
    _batch_arguments(p)
    p.add_argument("--views", default="3",
                   help="N: N yaws evenly spread over [-0.4, 0.4] rad at pitch 0 (1: frontal); or an explicit "
                        "list yaw:pitch,... in radians (default 3)")
    p.add_argument("--depth", action="store_true", help="add a depth row (turbo colormap, near = warm)")
    p.add_argument("--normals", action="store_true", help="add a normals row (camera-space normal as RGB)")
    p.add_argument("--grid", action="store_true", help="also write DIR/grid.png: every seed's strip, stacked")
    p.add_argument("--batch", type=int, default=None, help="views per generator call (default: sized to memory)")
    p.add_argument("--height", type=int, default=None, metavar="H",
                   help="each view's picture H pixels high, Lanczos-resampled (default: the model's size)")
    p.add_argument("--out", default="out/images", metavar="DIR", help="output folder (default out/images)")
    _precision_argument(p)
    _scene_arguments(p)
    p.set_defaults(func=cmd_images)

    p = sub.add_parser("video", help="H.264 mp4 of a camera trajectory and/or a latent loop, optionally a grid",
                       description="Camera: orbit (EG3D's yaw/pitch ellipse), yaw (a yaw sweep), circle (a full 360 "
                                   "degrees) or a camera-path JSON saved by the app. Identity: with one seed per grid "
                                   "cell each cell is fixed; with more seeds than cells they are dealt round-robin to "
                                   "the cells and each cell loops through its own seeds on a closed cubic curve in W.")
    _batch_arguments(p)
    p.add_argument("--trajectory", default="orbit", help="orbit, yaw, circle or FILE.json (default orbit)")
    p.add_argument("--frames", type=int, default=None, help="frames (default 120; a camera path: its own length)")
    p.add_argument("--fps", type=float, default=None, help="frames per second (default 30; a camera path: its own)")
    p.add_argument("--grid", default="1x1", metavar="WxH", help="cells across x down (default 1x1)")
    p.add_argument("--mode", default="rgb", choices=["rgb", "depth", "normals", "side"],
                   help="what each cell shows (side: RGB and depth side by side)")
    p.add_argument("--batch", type=int, default=None, help="frames per generator call (default: sized to memory)")
    p.add_argument("--height", type=int, default=None, metavar="H",
                   help="frames H pixels high, width to match, Lanczos-resampled (default: native, the cells' "
                        "size times the grid)")
    p.add_argument("--out", default="out/video.mp4", metavar="X.mp4", help="output video (default out/video.mp4)")
    _precision_argument(p)
    _scene_arguments(p)
    p.set_defaults(func=cmd_video)

    p = sub.add_parser("mesh", help="marching-cubes meshes (ply/obj/glb) or density volumes (mrc) per seed",
                       description="Sample the density on a RES^3 grid over the tri-plane box in chunks, clear EG3D's "
                                   "border (int(30*RES/256) voxel layers on every side, int(38*RES/256) at +y: removes "
                                   "floaters at the box walls), then marching cubes; meshes are closed at the box. "
                                   "mrc writes the density volume (for ChimeraX) instead.")
    _batch_arguments(p)
    p.add_argument("--res", type=int, default=256, help="grid samples per axis (256 or 512 typical; default 256)")
    p.add_argument("--level", type=float, default=None,
                   help="density iso level (EG3D uses 10); default automatic: the median density at the surface "
                        "the frontal view renders, printed per seed")
    p.add_argument("--format", default="ply", choices=["ply", "obj", "glb", "mrc"], help="default ply")
    p.add_argument("--color", action="store_true", help="vertex colours from the generator's radiance at the surface")
    p.add_argument("--chunk", type=int, default=None, help="grid points per decoder call (default: sized to memory)")
    p.add_argument("--out", default="out/meshes", metavar="DIR", help="output folder (default out/meshes)")
    p.set_defaults(func=cmd_mesh)

    p = sub.add_parser("metrics", help="quality metrics of a generator against a dataset",
                       description="Evaluate metrics (training/evaluation.py) and print them; --out appends a JSON "
                                   "line {model, data, seed, num, metrics}.")
    p.add_argument("path", nargs="?", default=None, help="checkpoint, EG3D pickle, run folder or preset:NAME")
    p.add_argument("--data", default=None, help="dataset (zip or folder) to compare against")
    p.add_argument("--metrics", required=True, help="comma-separated metric names")
    p.add_argument("--num", type=int, required=True, help="number of generated images")
    p.add_argument("--out", default=None, metavar="results.jsonl", help="append the results here")
    p.add_argument("--inception", default=None, metavar="PATH", help="Inception weights file")
    p.add_argument("--seed", type=int, default=0, help="random seed of the generated samples")
    p.add_argument("--batch", type=int, default=8, help="images per generator call")
    p.add_argument("--device", default=None, choices=["cpu", "cuda"], help="default: cuda when available")
    p.set_defaults(func=cmd_metrics)
    return parser


def main(argv: list[str] | None = None) -> int:
    from models.errors import CheckpointError
    from ops.cpu_memory import keep_freed_memory
    from renderers.batch import BatchError
    from renderers.batching import OutOfMemory
    from renderers.mesh import MeshExportError
    from renderers.model_source import SourceError
    from renderers.video import VideoError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["app", *argv]
    args = build_parser().parse_args(argv)
    keep_freed_memory()  # before the first frame's tensors: no mmap/munmap of activations per frame
    try:
        return args.func(args)
    except (CheckpointError, SourceError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BatchError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.status
    except (VideoError, MeshExportError, OutOfMemory) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
