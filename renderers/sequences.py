"""Frame sequences for videos: camera trajectories, keyframe camera paths and latent interpolation.

Shared by the app's recorder and the batch ``video`` command: both turn a base ``RenderArgs`` plus
a sequence of poses (and optionally per-frame ws) into RGB frames through ``GeneratorRenderer``
and ``frame_to_rgb``, so a video shows exactly what the viewport shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from renderers.batching import BatchSize
from renderers.display_frame import frame_to_rgb, to_display_frame
from renderers.render_args import CameraPose, DisplayArgs, LatentArgs, RenderArgs
from renderers.renderer import GeneratorRenderer
from renderers.trajectories import CameraPath, interpolate_latents

VIDEO_MODES = ("rgb", "depth", "side", "normals", "raw")


_SEED_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


MAX_SEED = 2**32 - 1
"""Largest seed (numpy's and torch's generators take 32-bit seeds the same way everywhere)."""
MAX_SEEDS = 100_000
"""Most seeds one command renders (a typo such as 0-1000000000 is refused before any work)."""


def parse_seeds(text: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]. ValueError names the part that is not a seed or a range a-b, a seed
    above ``MAX_SEED``, or a list longer than ``MAX_SEEDS``."""
    seeds: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        m = _SEED_RANGE.match(part)
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise ValueError(f"bad seed list {text!r}: {part!r} is not a seed or an increasing range a-b")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi > MAX_SEED:
            raise ValueError(f"bad seed list {text!r}: seeds go from 0 to {MAX_SEED}")
        if len(seeds) + hi - lo + 1 > MAX_SEEDS:
            raise ValueError(f"bad seed list {text!r}: more than {MAX_SEEDS} seeds")
        seeds.extend(range(lo, hi + 1))
    return seeds


def seeds_ws(renderer: GeneratorRenderer, args: RenderArgs, seeds: Sequence[tuple[float, float]]) -> torch.Tensor:
    """[K, num_ws, w_dim] ws of each (seed_x, seed_y) under the request's truncation, mixing and
    conditioning camera."""
    cond = args.view if args.cond_follows_view else args.cond
    keys = []
    for sx, sy in seeds:
        latent = LatentArgs(**{**args.latent.__dict__, "seed_x": float(sx), "seed_y": float(sy)})
        keys.append(renderer.latent_ws(latent, cond)[0])
    return torch.stack(keys)


def latent_loop_ws(renderer: GeneratorRenderer, args: RenderArgs, seeds: Sequence[int], n_frames: int) -> torch.Tensor:
    """[n_frames, num_ws, w_dim]: a closed cubic curve in W through the seeds (EG3D's videos)."""
    keys = seeds_ws(renderer, args, [(float(s), 0.0) for s in seeds])
    return interpolate_latents(keys, n_frames, loop=True)


def camera_path_frames(renderer: GeneratorRenderer, args: RenderArgs, path: CameraPath,
                       n_frames: int | None = None) -> tuple[list[CameraPose], torch.Tensor | None]:
    """Poses of a keyframe path and, when any keyframe names a seed, per-frame ws blended with the
    path's own spline weights (keyframes without a seed use the request's identity)."""
    opts = renderer.G.rendering_kwargs
    radius, pivot = float(opts["avg_camera_radius"]), tuple(float(v) for v in opts["avg_camera_pivot"])
    times = path.frame_times(n_frames)
    poses = [path.pose_at(t, radius, pivot) for t in times]
    if all(k.seed is None for k in path.keyframes):
        return poses, None
    current = (args.latent.seed_x, args.latent.seed_y)
    keys = seeds_ws(renderer, args, [k.seed if k.seed is not None else current for k in path.keyframes])
    ws = torch.stack([sum(w * keys[i] for i, w in path.blend_weights_at(t)) for t in times])
    return poses, ws


def render_frames(renderer: GeneratorRenderer, args: RenderArgs, display: DisplayArgs, poses: Sequence[CameraPose],
                  ws: torch.Tensor | None = None, size: int | None = None,
                  batch: int | BatchSize = 1) -> Iterator[np.ndarray]:
    """[H, W, 3] uint8 frames: the request rendered from each pose (with ws[i] when given).

    ``size``: the frames' height (``frame_to_rgb``; default: the larger of the rendered images).
    ``batch``: frames per generator call, or a shared ``BatchSize`` that halves on out-of-memory.
    """
    if args.mode not in VIDEO_MODES:
        raise ValueError(f"videos can show {', '.join(VIDEO_MODES)}; not {args.mode!r}")
    batcher = batch if isinstance(batch, BatchSize) else BatchSize(int(batch), log=None)

    def render(indices: Sequence[int]) -> list[np.ndarray]:
        requests = []
        for i in indices:
            request = args.copy()
            request.view = poses[i]
            requests.append(request)
        chunk_ws = None if ws is None else ws[indices[0]:indices[-1] + 1]
        return [frame_to_rgb(to_display_frame(out), display, size)
                for out in renderer.render_batch(requests, ws=chunk_ws)]

    yield from batcher.map(range(len(poses)), render)
