"""Batch tools behind ``visualizer.py images|video|mesh`` (``metrics``: ``training.evaluation``): no
window, no OpenGL.

Everything is rendered by the app's own code: ``GeneratorRenderer`` turns ``RenderArgs`` into
pixels, ``to_display_frame`` + ``frame_to_rgb`` make them look as the viewport shows them (depth
through the turbo colormap, normals as RGB), ``renderers.sequences`` supplies trajectories and
latent loops, ``renderers.video`` encodes, ``renderers.mesh`` extracts and exports. So a batch image
or video is what the app would show for the same settings.

Conventions shared by the commands:

* identities are integer seeds, conditioned on the frontal camera (as EG3D's tools and the app
  do), with truncation ``psi`` (and ``trunc_cutoff``: truncate only the first that many ws);
* outputs are checked before any work: an existing target is an error unless ``force`` (then it
  is replaced); every file is written to a temp name and renamed, so nothing is left half-written;
* batches start at a size estimated from free memory (printed) and halve on out-of-memory;
* bad input (seed lists, views, trajectories, metric names, data paths) raises ``BatchError``,
  whose one-line message the command line prints as ``error: ...`` with exit status 2.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.scene import SceneControls
from renderers.batching import DECODER_BYTES_PER_POINT, BatchSize, OutOfMemory, is_out_of_memory, suggest_batch
from renderers.display_frame import frame_to_rgb, to_display_frame
from renderers.render_args import CameraPose, DisplayArgs, LatentArgs, QualityArgs, RenderArgs
from renderers.renderer import GeneratorRenderer, RenderOutput

Log = Callable[[str], None]

VIEWS_YAW_RANGE = 0.4
"""``--views N`` spreads N yaws evenly over [-0.4, 0.4] radians at pitch 0."""
VIDEO_MODES = ("rgb", "depth", "normals", "side")
"""What a batch video can show (``side``: RGB and depth side by side)."""
DEFAULT_VIDEO_FRAMES = 120
DEFAULT_VIDEO_FPS = 30.0


class BatchError(Exception):
    """A one-line problem for the command line: ``error: <message>``, exit ``status``
    (2: bad input or refused output; 1: the work itself failed)."""

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status


# --- parsing ------------------------------------------------------------------------------------

def parse_seed_list(text: str) -> list[int]:
    """``renderers.sequences.parse_seeds`` with a ``BatchError`` for bad syntax."""
    from renderers.sequences import parse_seeds

    try:
        seeds = parse_seeds(text)
    except ValueError as e:
        raise BatchError(str(e)) from e
    if not seeds:
        raise BatchError(f"bad seed list {text!r}: no seeds")
    return seeds


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"

MAX_VIEWS = 360
"""Most views per seed (one per degree of a full turn)."""
MAX_GRID_CELLS = 64
"""Most identities in one video frame (8 x 8)."""


def check_psi(psi: float) -> float:
    """Truncation psi: finite, in [-2, 2] (1: none; 0: the average; beyond 1 extrapolates)."""
    if not (math.isfinite(psi) and -2.0 <= psi <= 2.0):
        raise BatchError(f"bad --trunc {psi}: truncation psi must be a finite number in [-2, 2]")
    return float(psi)


def check_height(height: int | None) -> int | None:
    """``--height``: None (native) or pixels in [MIN_HEIGHT, MAX_HEIGHT] (``renderers.images.check_height``)."""
    from renderers.images import check_height as check

    try:
        return check(height, "--height")
    except ValueError as e:
        raise BatchError(str(e)) from None


def parse_views(text: str) -> list[CameraPose]:
    """``N``: N yaws evenly spread over [-0.4, 0.4] rad at pitch 0 (one view: frontal);
    ``yaw:pitch,...``: explicit angles in radians."""
    text = str(text).replace(" ", "")
    if re.fullmatch(r"\d+", text):
        n = int(text)
        if not 1 <= n <= MAX_VIEWS:
            raise BatchError(f"bad views {text!r}: give 1 to {MAX_VIEWS} views")
        yaws = [0.0] if n == 1 else np.linspace(-VIEWS_YAW_RANGE, VIEWS_YAW_RANGE, n).tolist()
        return [CameraPose(yaw=float(y), pitch=0.0) for y in yaws]
    poses = []
    for part in text.split(","):
        m = re.fullmatch(rf"({_NUMBER}):({_NUMBER})", part)
        if not m:
            raise BatchError(f"bad views {text!r}: {part!r} is not yaw:pitch (radians); or give a count N")
        poses.append(CameraPose(yaw=float(m.group(1)), pitch=float(m.group(2))))
        if len(poses) > MAX_VIEWS or not all(math.isfinite(v) for v in (poses[-1].yaw, poses[-1].pitch)):
            raise BatchError(f"bad views {text!r}: give at most {MAX_VIEWS} finite yaw:pitch pairs")
    return poses


def parse_grid(text: str) -> tuple[int, int]:
    """'3x2' -> (3 columns, 2 rows)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise BatchError(f"bad grid {text!r}: expected WxH, e.g. 2x2")
    if int(m.group(1)) * int(m.group(2)) > MAX_GRID_CELLS:
        raise BatchError(f"bad grid {text!r}: at most {MAX_GRID_CELLS} cells (e.g. 8x8)")
    return int(m.group(1)), int(m.group(2))


def resolve_device(name: str | None) -> torch.device:
    """cpu or cuda (default: cuda when available); cuda without a device is a ``BatchError``."""
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise BatchError("--device cuda requested but no CUDA device is available (use --device cpu)")
    return torch.device(name)


def load_model(path: str | None, device: torch.device | str, release: str | None = None) -> tuple[torch.nn.Module, str]:
    """(generator in eval mode, label) for a checkpoint, an official file (``release``: its settings
    where the file cannot tell), a run directory (newest snapshot), a preset, or None (the bundled
    model). Raises SourceError / CheckpointError."""
    from models.checkpoint import open_generator
    from renderers.model_source import resolve_source

    source = resolve_source(path)
    G = open_generator(source.load_path, device=device, seed=0, release=release)
    return G.eval().requires_grad_(False), source.label


def check_targets(paths: Sequence[Path], force: bool) -> None:
    """Refuse (``BatchError``) if any target exists and ``force`` is off, before any work; a
    target that is a folder is refused even with ``force``."""
    for p in paths:
        if p.is_dir():
            raise BatchError(f"{p}: is a folder, not an output file name")
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        shown = ", ".join(str(p) for p in existing[:3]) + (f" and {len(existing) - 3} more" if len(existing) > 3 else "")
        raise BatchError(f"{shown}: exist{'s' if len(existing) == 1 else ''} (use --force to replace)")


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BatchError(f"{path}: cannot create folder: {e.strerror or e}") from e


def seed_request(seed: int, psi: float = 0.7, trunc_cutoff: int | None = None, mode: str = "rgb",
                 precision: str = "exact", scene: SceneControls | None = None) -> RenderArgs:
    """The request for an integer seed, conditioned on the frontal camera, at ``precision`` (``scene``: a
    compositional model's objects and background; None: its defaults)."""
    return RenderArgs(latent=LatentArgs(seed_x=float(seed), seed_y=0.0, psi=float(psi), trunc_cutoff=trunc_cutoff),
                      mode=mode, quality=QualityArgs(precision=precision),
                      scene=scene or SceneControls())  # type: ignore[arg-type]


def scene_controls(G, objects: int | None = None, specs: Sequence[str] = (),
                   background_degrees: float | None = None) -> SceneControls:
    """The batch tools' ``--objects N``, ``--object I[:t=X,Y,Z][:s=S|SX,SY,SZ][:r=DEG]`` (repeatable;
    what a spec leaves out keeps the object's default) and ``--bg-rotation DEG`` for a compositional
    model (GIRAFFE); nothing given: the model's defaults. Raises BatchError naming the bad setting."""
    if objects is None and not specs and background_degrees is None:
        return SceneControls()
    embedder = getattr(G, "embedder", None)
    if not getattr(embedder, "compositional", False):
        raise BatchError("--objects / --object / --bg-rotation: this model has no movable objects (GIRAFFE has)")
    defaults = embedder.default_controls()
    total = len(defaults.objects)
    count = total if objects is None else int(objects)
    if not 0 <= count <= total:
        raise BatchError(f"--objects {count}: the model has {total} object(s)")
    poses = list(defaults.objects[:count])
    for spec in specs:
        head, *parts = spec.split(":")
        try:
            index = int(head)
            changes = {}
            for part in parts:
                key, _, value = part.partition("=")
                numbers = tuple(float(v) for v in value.split(","))
                if key == "t" and len(numbers) == 3:
                    changes["translation"] = numbers
                elif key == "s" and len(numbers) in (1, 3):
                    changes["scale"] = numbers * 3 if len(numbers) == 1 else numbers
                elif key == "r" and len(numbers) == 1:
                    changes["rotation"] = math.radians(numbers[0])
                else:
                    raise ValueError(part)
        except ValueError as e:
            raise BatchError(f"--object {spec}: expected I[:t=X,Y,Z][:s=S or SX,SY,SZ][:r=DEG] ({e})") from None
        if not 0 <= index < count:
            raise BatchError(f"--object {spec}: object {index} is not shown (objects 0-{count - 1} of {total})")
        poses[index] = dataclasses.replace(poses[index], **changes)
    scene = SceneControls(tuple(poses), None if background_degrees is None else math.radians(background_degrees))
    try:
        RenderArgs(scene=scene).check()
    except ValueError as e:
        raise BatchError(f"scene settings: {e}") from None
    return scene


def _progress(total: int, desc: str, unit: str, enabled: bool):
    """A bar on a terminal; in a log, a line every few seconds (``renderers.progress``)."""
    from renderers.progress import progress_bar

    return progress_bar(total, desc, unit, enabled=enabled, leave=False)


def _start_batch(G, device, batch: int | None, log: Log, what: str = "batch") -> BatchSize:
    if batch is None:
        size, why = suggest_batch(G, device)
        log(why)
    else:
        if batch < 1:
            raise BatchError(f"--batch must be >= 1, got {batch}")
        size = int(batch)
    return BatchSize(size, log=log, what=what)


def _as_picture(out: RenderOutput, mode: str, display: DisplayArgs, size: int) -> np.ndarray:
    """One output shown as ``mode`` would show it (rgb, depth or normals), ``size`` pixels high."""
    view = dataclasses.replace(out, args=dataclasses.replace(out.args, mode=mode))
    return frame_to_rgb(to_display_frame(view), display, size)


# --- images -------------------------------------------------------------------------------------

def image_paths(out_dir: Path, seeds: Sequence[int], grid: bool) -> list[Path]:
    paths = [out_dir / f"seed{seed:04d}.png" for seed in seeds]
    return paths + [out_dir / "grid.png"] if grid else paths


def render_strip(renderer: GeneratorRenderer, request: RenderArgs, views: Sequence[CameraPose], *,
                 depth: bool = False, normals: bool = False, batcher: BatchSize | None = None,
                 display: DisplayArgs | None = None, height: int | None = None) -> np.ndarray:
    """[rows * R, len(views) * R, 3] uint8: the identity of ``request`` from every view; an RGB
    row, then (optionally) depth through the turbo colormap, then camera-space normals as RGB.
    ``height``: R, each view resampled by ``resize_to_height`` (None: the model's size)."""
    from renderers.images import resize_to_height

    display = display or DisplayArgs()
    size = int(renderer.G.img_resolution)
    batcher = batcher or BatchSize(1, log=None)
    base = request.copy()
    base.mode = "side" if depth else "rgb"

    def render(chunk: Sequence[CameraPose]) -> list[RenderOutput]:
        requests = []
        for pose in chunk:
            r = base.copy()
            r.view = pose
            requests.append(r)
        return renderer.render_batch(requests, normals=normals)

    rows: list[list[np.ndarray]] = [[] for _ in range(1 + depth + normals)]
    for out in batcher.map(list(views), render):
        pictures = [_as_picture(out, "rgb", display, size)]
        if depth:
            pictures.append(_as_picture(out, "depth", display, size))
        if normals:
            pictures.append(_as_picture(out, "normals", display, size))
        for row, picture in zip(rows, pictures):
            row.append(resize_to_height(picture, height))
    return np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)


def run_images(G, seeds: Sequence[int], views: Sequence[CameraPose], out_dir: str | os.PathLike, *,
               psi: float = 0.7, trunc_cutoff: int | None = None, depth: bool = False, normals: bool = False,
               grid: bool = False, force: bool = False, batch: int | None = None, progress: bool = True,
               log: Log = print, precision: str = "exact", scene: SceneControls | None = None,
               height: int | None = None) -> list[Path]:
    """Per-seed multi-view strips ``seedNNNN.png`` (and with ``grid`` a contact sheet ``grid.png``,
    the strips stacked) in ``out_dir``, rendered at ``precision``; ``scene``: see :func:`scene_controls`;
    ``height``: of each view's picture in pixels (None: the model's size). Returns the paths written."""
    from renderers.images import save_png

    height = check_height(height)
    out_dir = Path(out_dir)
    targets = image_paths(out_dir, seeds, grid)
    check_targets(targets, force)
    _make_dir(out_dir)
    renderer = GeneratorRenderer(G)
    lens = renderer.default_pose().fov_degrees
    views = [dataclasses.replace(v, fov_degrees=lens) for v in views]  # the model's lens
    batcher = _start_batch(G, renderer.device, batch, log)
    strips = []
    written = []
    with _progress(len(seeds), "images", "seed", progress) as bar:
        for seed, path in zip(seeds, targets):
            request = seed_request(seed, psi, trunc_cutoff, precision=precision, scene=scene)
            strip = render_strip(renderer, request, views, depth=depth, normals=normals, batcher=batcher,
                                 height=height)
            written.append(save_png(path, strip))
            if grid:
                strips.append(strip)
            bar.update(1)
    if grid:
        written.append(save_png(targets[-1], np.concatenate(strips, axis=0)))
    return written


# --- video --------------------------------------------------------------------------------------

def cell_keyframes(seeds: Sequence[int], cells: int) -> list[list[int]]:
    """The keyframe seeds of each grid cell.

    At most one seed per cell: each cell shows one fixed identity (cell c: ``seeds[c % n]``, so a
    short list repeats). More seeds than cells: the seeds are dealt round-robin, cell c getting
    seeds c, c + cells, c + 2 * cells, ..., wrapping around the list so that every cell has the
    same number of keyframes, ceil(n / cells); each cell then loops through its own keyframes.
    """
    n = len(seeds)
    if n == 0:
        raise BatchError("no seeds")
    if n <= cells:
        return [[seeds[c % n]] for c in range(cells)]
    k = math.ceil(n / cells)
    return [[seeds[(c + j * cells) % n] for j in range(k)] for c in range(cells)]


def load_camera_path(trajectory: str):
    """None for a named trajectory, else the ``CameraPath`` of the file; ``BatchError`` for an
    unknown name that is not a file, or a bad file."""
    from renderers.trajectories import TRAJECTORIES, CameraPath, CameraPathError

    if trajectory in TRAJECTORIES:
        return None
    if not Path(trajectory).is_file():
        raise BatchError(f"unknown trajectory {trajectory!r}: not one of {', '.join(TRAJECTORIES)} "
                         "and no such camera-path file")
    try:
        return CameraPath.load(trajectory)
    except CameraPathError as e:
        raise BatchError(str(e)) from e


def run_video(G, seeds: Sequence[int], out: str | os.PathLike, *, trajectory: str = "orbit",
              frames: int | None = None, fps: float | None = None, grid: tuple[int, int] = (1, 1),
              mode: str = "rgb", psi: float = 0.7, trunc_cutoff: int | None = None, force: bool = False,
              batch: int | None = None, progress: bool = True, log: Log = print, precision: str = "exact",
              scene: SceneControls | None = None, height: int | None = None):
    """Render and encode an H.264 video (``renderers.video.write_video``) at ``precision``; returns its
    ``VideoResult``. ``scene``: a compositional model's objects and background (:func:`scene_controls`).
    ``height``: of the whole frame in pixels, the tiled frame resampled by ``resize_to_height``
    (None: native; an odd size is padded by a row or column for the encoder).

    ``trajectory``: ``orbit`` (EG3D's yaw/pitch ellipse), ``yaw`` (a yaw sweep), ``circle`` (a full
    360-degree turn), or a camera-path JSON file saved by the app (its keyframe seeds, if any, move
    the identity of every cell along the path). ``frames`` defaults to 120 for the named
    trajectories and to the path's own duration x fps for a file; ``fps`` to 30 / the path's.
    ``grid`` (columns, rows) tiles cells of ``G.img_resolution`` pixels (side mode: twice as wide);
    identities per cell follow ``cell_keyframes``: one seed per cell is a fixed identity, more
    loop through a closed cubic curve in W through the cell's keyframe seeds over the video.
    """
    from renderers.images import resize_to_height
    from renderers.sequences import camera_path_frames, latent_loop_ws, render_frames
    from renderers.trajectories import trajectory_poses
    from renderers.video import write_video

    height = check_height(height)
    if mode not in VIDEO_MODES:
        raise BatchError(f"unknown video mode {mode!r}: choose one of {', '.join(VIDEO_MODES)}")
    if frames is not None and frames < 1:
        raise BatchError(f"--frames must be >= 1, got {frames}")
    if fps is not None and not (0 < fps < 1000):
        raise BatchError(f"--fps must be in (0, 1000), got {fps}")
    path_obj = load_camera_path(trajectory)
    n_frames = int(frames or (path_obj.n_frames if path_obj is not None else DEFAULT_VIDEO_FRAMES))
    rate = float(fps or (path_obj.fps if path_obj is not None else DEFAULT_VIDEO_FPS))
    cols, rows = grid
    cells = cols * rows
    keyframes = cell_keyframes(list(seeds), cells)
    looping = len(keyframes[0]) > 1
    if path_obj is not None and looping and any(k.seed is not None for k in path_obj.keyframes):
        raise BatchError(f"{trajectory}: the camera path names seeds, so give at most one seed per grid cell "
                         f"({len(seeds)} seeds for {cells} cells)")

    target = Path(out)
    check_targets([target], force)
    _make_dir(target.parent if str(target.parent) else Path("."))
    renderer = GeneratorRenderer(G, identities=cells + 1)
    batcher = _start_batch(G, renderer.device, batch, log)
    display = DisplayArgs()
    size = int(G.img_resolution)

    cell_streams = []
    for keys in keyframes:
        request = seed_request(keys[0], psi, trunc_cutoff, mode, precision, scene)
        ws = None
        if path_obj is not None:
            poses, ws = camera_path_frames(renderer, request, path_obj, n_frames)
        else:
            poses = trajectory_poses(trajectory, n_frames, renderer.default_pose())
        if looping:
            ws = latent_loop_ws(renderer, request, keys, n_frames)
        cell_streams.append(render_frames(renderer, request, display, poses, ws, size=size, batch=batcher))

    def tiled() -> Iterator[np.ndarray]:
        for cell_frames in zip(*cell_streams):
            frame = np.concatenate([np.concatenate(cell_frames[r * cols:(r + 1) * cols], axis=1) for r in range(rows)],
                                   axis=0)
            yield resize_to_height(frame, height)

    with _progress(n_frames, "video", "frame", progress) as bar:
        result = write_video(tiled(), target, rate, total=n_frames, progress=lambda done, total: bar.update(1))
    return result


# --- meshes -------------------------------------------------------------------------------------

def suggest_chunk(device: torch.device | str) -> tuple[int, str]:
    """Grid points per decoder call: a power of two using about a quarter of the free memory,
    between 2**12 and 2**18 on the CPU (2**21 on CUDA)."""
    from renderers.batching import free_memory_bytes

    device = torch.device(device)
    free = free_memory_bytes(device)
    cap = 2**21 if device.type == "cuda" else 2**18
    chunk = 2 ** int(math.floor(math.log2(max(free // 4 // DECODER_BYTES_PER_POINT, 1))))
    chunk = int(min(cap, max(2**12, chunk)))
    return chunk, (f"{chunk} grid points per decoder call (about {chunk * DECODER_BYTES_PER_POINT / 2**20:.0f} MiB, "
                   f"{free / 2**30:.1f} GiB free on {device.type}; halved automatically on out-of-memory)")


def mesh_paths(out_dir: Path, seeds: Sequence[int], fmt: str) -> list[Path]:
    return [out_dir / f"seed{seed:04d}.{fmt}" for seed in seeds]


def run_mesh(G, seeds: Sequence[int], out_dir: str | os.PathLike, *, res: int = 256, level: float | None = None,
             fmt: str = "ply", colors: bool = False, psi: float = 0.7, trunc_cutoff: int | None = None,
             force: bool = False, chunk: int | None = None, progress: bool = True,
             log: Log = print) -> list[tuple[Path, Any]]:
    """Per seed: sample the geometry field (``G.mesh_fields``) on a ``res``^3 grid over the model's
    box (in chunks of grid points that fit memory), clear EG3D's border layers where the model asks
    for it (``renderers.mesh.eg3d_border``), run
    marching cubes at ``level`` (None: ``GeneratorRenderer.surface_level`` of that identity, printed)
    and write ``seedNNNN.<fmt>`` (``mrc``: the density volume). Returns (path, mesh) pairs."""
    from renderers.mesh import MESH_FORMATS, save_identity_mesh

    fmt = fmt.lower()
    if fmt not in MESH_FORMATS:
        raise BatchError(f"unknown mesh format {fmt!r}: choose one of {', '.join(MESH_FORMATS)}")
    if res < 8:
        raise BatchError(f"--res must be at least 8, got {res}")
    out_dir = Path(out_dir)
    targets = mesh_paths(out_dir, seeds, fmt)
    check_targets(targets, force)
    _make_dir(out_dir)
    renderer = GeneratorRenderer(G)
    if chunk is None:
        chunk, why = suggest_chunk(renderer.device)
        log(why)
    elif chunk < 1:
        raise BatchError(f"--chunk must be >= 1, got {chunk}")
    chunker = BatchSize(chunk, log=log, what="chunk")
    results = []
    for i, (seed, path) in enumerate(zip(seeds, targets)):
        _, planes = renderer.identity_planes(seed_request(seed, psi, trunc_cutoff))
        border = renderer.mesh_border(planes, res)
        if i == 0 and border:
            log(f"border cleanup (EG3D's): {border[0]} voxel layers cleared on each side, {border[3]} at +y")
        iso = renderer.surface_level(planes) if level is None else float(level)
        while True:
            try:
                with _progress(res**3, f"seed {seed}", "pt", progress) as bar:
                    def advance(done: int, total: int, bar=bar) -> None:
                        bar.update(done - bar.n)

                    mesh = save_identity_mesh(renderer, planes, path, fmt, res, iso, colors,
                                              progress=advance, chunk=chunker.size)
                break
            except OutOfMemory:
                raise
            except ValueError as e:
                raise BatchError(f"seed {seed}: {e}", status=1) from e
            except Exception as e:  # noqa: BLE001 - only out-of-memory is retried
                if not is_out_of_memory(e):
                    raise
                chunker.halve(chunker.size, e)
        how = "automatic" if level is None else "given"
        what = "density volume" if fmt == "mrc" else f"{len(mesh.vertices)} vertices, {len(mesh.faces)} faces"
        log(f"seed {seed}: level {iso:.4g} ({how}) -> {path} ({what})")
        results.append((path, mesh))
    return results
