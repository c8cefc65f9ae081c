"""Metrics of a 3D-aware generator's views and geometry.

``reprojection`` (3D consistency; the reprojection error RE of arXiv 2306.12423):
    Each identity (seeds ``seed .. seed + num - 1``, conditioned on the frontal camera, truncation
    ``options.truncation_psi``) is rendered at yaw -0.4, -0.2, 0, 0.2, 0.4 rad, pitch 0, the
    model's average camera radius and pivot and the metric focal (below). For each adjacent pair
    (A, B), in both directions, every pixel of A's raw neural image (``image_raw``, which shares
    the depth's r x r pixel grid) is lifted to a world point with A's depth (distance along the
    ray), projected into B and compared with B's raw image sampled there bilinearly. A pixel counts
    when
      * it is foreground in A and the bilinear neighbours it samples in B are foreground in B
        (at least 99 % of the bilinear weight, ``FOREGROUND_WEIGHT``),
      * it lands inside B's image (between B's outermost pixel centres) in front of the camera,
      * it is not occluded in B: its distance to B's camera is within 1 % (``DEPTH_TOLERANCE``)
        of B's depth bilinearly sampled at the landing point.
    RE is the mean absolute difference over those pixels and the 3 channels, pooled over all pairs
    and identities, on the 0..255 scale (raw images clamped to [-1, 1], then ``(x + 1) * 127.5``).
    ``reprojection/valid`` is the fraction of A-pixels that counted; RE is NaN when none did.

``geometry`` (is the geometry a surface?):
    At yaw -0.4, 0, 0.4 (same cameras otherwise) the camera-space normals of the depth map
    (``ops.normals.normals_from_depth``, the renderer's default) are compared with those of the
    density gradient at each pixel's expected surface point
    (``GeneratorRenderer.density_normals``). ``geometry`` is the mean angle between them in degrees
    over foreground pixels (pooled), ``geometry/within10`` the fraction of those under 10 degrees.
    On a clean surface both are ~0 / ~1; foggy or layered density scores high / low.

Foreground (``foreground_mask``): pixels whose depth is at most the midpoint of the image's depth
range (min + max) / 2 - the subject in front of a background shell - eroded by one pixel so that
finite differences and bilinear look-ups stay on one surface.

``swd-depth`` and ``swd-normals`` (datasets with ground-truth geometry, e.g. ``train.py dataset
synthetic`` zips): multi-scale SWD (``training.metrics``) between ground-truth maps of
``num_images`` dataset items and maps the generator renders from those items' camera labels
(seeded random z, at neural resolution r). Fixed encodings, as float images in [-1, 1] (SWD's
float convention; i.e. the 8-bit images below mapped by ``u / 127.5 - 1``):
    * normals: the camera-space (OpenCV) unit normal n as the colour ``n * 0.5 + 0.5`` -> 3
      channels. Fakes: normals of the rendered depth map; ground truth: world normals rotated by
      the label's cam2world.
    * depth: ``clip((d - near) / (far - near), 0, 1)`` replicated to 3 channels, with near/far the
      generator's ``ray_start``/``ray_end`` when numeric, else the dataset's geometry range.
    The ground truth's background (no surface) becomes a backdrop at ``far`` facing the camera
    (depth 1, normal (0, 0, -1)), the generators' rendered background shell; it is filled in
    before resizing to r with area averaging (then normals are renormalised).

The metric focal length (all view metrics): ``options.focal``, else the model's own lens when it
has one (pipeline methods), else the dataset's median focal when there is a dataset, else FFHQ's
4.2647 (the default camera of the model and the app).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ops.camera import FFHQ_FOCAL, focal_to_fov, fov_to_focal, project_points, unpack_label
from ops.normals import normals_from_depth, unproject_depth, world_to_camera_normals
from training.metrics import (
    SWD_MIN_RESOLUTION,
    SWD_PATCHES_PER_IMAGE,
    GeneratorLike,
    ImageLabelDatasetLike,
    MetricOptions,
    _camera_label,
    real_indices,
    swd_descriptors,
    swd_from_descriptors,
)

REPROJECTION_YAWS = (-0.4, -0.2, 0.0, 0.2, 0.4)
"""Yaws (radians, pitch 0) of the reprojection views; adjacent ones are compared."""

GEOMETRY_YAWS = (-0.4, 0.0, 0.4)
"""Yaws of the geometry-agreement views."""

DEPTH_TOLERANCE = 0.01
"""A reprojected point is visible in B if its distance to B's camera is within this fraction of B's depth."""

FOREGROUND_WEIGHT = 0.99
"""A reprojected point lands on B's foreground if B's foreground pixels carry at least this much of
its bilinear weight (all of it up to round-off: a point on a pixel centre still picks up ~1e-6)."""

ANGLE_THRESHOLD_DEGREES = 10.0
"""``geometry/within10``: normals closer than this count as agreeing."""


# --- shared pieces ------------------------------------------------------------------------------

def foreground_mask(depth: torch.Tensor) -> torch.Tensor:
    """[N, 1, H, W] depth -> bool [N, 1, H, W]: depth <= the image's (min + max) / 2, eroded by one
    pixel (3 x 3; pixels beyond the border count as foreground)."""
    flat = depth.flatten(1)
    mid = (flat.min(dim=1).values + flat.max(dim=1).values) * 0.5
    mask = depth <= mid[:, None, None, None]
    background = F.max_pool2d((~mask).float(), 3, stride=1, padding=1)
    return background == 0


def metric_focal(dataset: ImageLabelDatasetLike | None, options: MetricOptions, G: Any = None) -> float:
    """Focal length of the view metrics' cameras (see the module docstring)."""
    if options.focal is not None:
        return float(options.focal)
    fov = (getattr(G, "rendering_kwargs", None) or {}).get("avg_camera_fov")
    if fov is not None:  # pipeline models carry their own lens, and their world differs from the data's
        return fov_to_focal(float(fov))
    labels = getattr(dataset, "labels", None) if dataset is not None else None
    if labels is not None and np.asarray(labels).ndim == 2 and np.asarray(labels).shape[1] == 25 and len(labels):
        from training.dataset import dataset_focal

        return dataset_focal(labels)
    return FFHQ_FOCAL


def _view_args(seed: int, yaw: float, focal: float, psi: float, mode: str):
    from renderers.render_args import CameraPose, LatentArgs, RenderArgs

    fov = focal_to_fov(focal)
    return RenderArgs(latent=LatentArgs(seed_x=float(seed), psi=float(psi), noise_mode="const"),
                      view=CameraPose(yaw=float(yaw), fov_degrees=fov), cond=CameraPose(fov_degrees=fov),
                      mode=mode, normals_source="depth")


def _progress(iterable, total: int, desc: str, enabled: bool, unit: str = "id"):
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled, leave=False)


def _to_255(images: torch.Tensor) -> torch.Tensor:
    return (images.clamp(-1.0, 1.0) + 1.0) * 127.5


# --- reprojection -------------------------------------------------------------------------------

def reprojection_errors(image_a: torch.Tensor, depth_a: torch.Tensor, label_a: torch.Tensor,
                        image_b: torch.Tensor, depth_b: torch.Tensor, label_b: torch.Tensor,
                        tolerance: float = DEPTH_TOLERANCE) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel reprojection error of views A into views B (N pairs at once).

    Args:
        image_a, image_b: [N, 3, H, W] images in [-1, 1] on the depth's pixel grid.
        depth_a, depth_b: [N, 1, H, W] distance along the unit ray.
        label_a, label_b: [N, 25] camera labels.
        tolerance: relative depth agreement for the occlusion test.

    Returns:
        error [N, H, W]: mean over channels of |A - B sampled at A's reprojection|, 0..255 scale;
        valid [N, H, W] bool: the pixels that count (see the module docstring).
    """
    n, _, h, w = depth_a.shape
    c2w_a, k_a = unpack_label(label_a.float())
    c2w_b, k_b = unpack_label(label_b.float())
    points = unproject_depth(depth_a.float(), c2w_a, k_a)  # [N, H, W, 3]
    uv, z = project_points(points.reshape(n, -1, 3), c2w_b, k_b)
    uv, z = uv.reshape(n, h, w, 2), z.reshape(n, h, w)
    finite = torch.isfinite(uv).all(dim=-1) & (z > 0)
    grid = torch.where(finite[..., None], uv * 2.0 - 1.0, torch.zeros_like(uv))

    def sample(x: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)

    px = uv[..., 0] * w - 0.5  # pixel-centre coordinates: 0 .. W - 1 spans the outermost centres
    py = uv[..., 1] * h - 0.5
    inside = finite & (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    depth_at = sample(depth_b)[:, 0]
    distance = (points - c2w_b[:, None, None, :3, 3]).norm(dim=-1)
    visible = (distance - depth_at).abs() <= tolerance * depth_at.abs()
    fg_b = sample(foreground_mask(depth_b).float())[:, 0] >= FOREGROUND_WEIGHT
    valid = foreground_mask(depth_a)[:, 0] & inside & visible & fg_b
    error = (_to_255(image_a.float()) - _to_255(sample(image_b))).abs().mean(dim=1)
    return torch.where(valid, error, torch.zeros_like(error)), valid


def view_pairs(count: int) -> tuple[list[int], list[int]]:
    """Source and target indices of the adjacent pairs of ``count`` views, both directions."""
    a, b = list(range(count - 1)), list(range(1, count))
    return a + b, b + a


@torch.no_grad()
def reprojection_metric(G: GeneratorLike, dataset: ImageLabelDatasetLike | None,
                        options: MetricOptions) -> dict[str, float]:
    """``{"reprojection": RE (0..255), "reprojection/valid": fraction}`` over ``options.num_images``
    identities (see the module docstring)."""
    from renderers.renderer import GeneratorRenderer

    if options.num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {options.num_images}")
    renderer = GeneratorRenderer(G)
    focal = metric_focal(dataset, options, G)
    src, dst = view_pairs(len(REPROJECTION_YAWS))
    error_sum, valid_count, pixel_count = 0.0, 0, 0
    for i in _progress(range(options.num_images), options.num_images, "reprojection", options.progress):
        outs = [renderer.render(_view_args(options.seed + i, yaw, focal, options.truncation_psi, "raw"))
                for yaw in REPROJECTION_YAWS]
        images = torch.stack([o.image_raw for o in outs])
        depths = torch.stack([o.depth for o in outs])
        labels = torch.cat([o.camera for o in outs])
        error, valid = reprojection_errors(images[src], depths[src], labels[src],
                                           images[dst], depths[dst], labels[dst])
        error_sum += float(error.sum(dtype=torch.float64))
        valid_count += int(valid.sum())
        pixel_count += valid.numel()
    re = error_sum / valid_count if valid_count else math.nan
    return {"reprojection": re, "reprojection/valid": valid_count / pixel_count}


# --- geometry agreement -------------------------------------------------------------------------

def normal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angles in degrees between unit normal maps [N, 3, H, W] -> [N, H, W]."""
    cos = (F.normalize(a.float(), dim=1) * F.normalize(b.float(), dim=1)).sum(dim=1)
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))


@torch.no_grad()
def geometry_metric(G: GeneratorLike, dataset: ImageLabelDatasetLike | None,
                    options: MetricOptions) -> dict[str, float]:
    """``{"geometry": mean angle (degrees), "geometry/within10": fraction}``: density-gradient vs
    depth-map normals over foreground pixels of ``options.num_images`` identities."""
    from renderers.renderer import GeneratorRenderer

    if options.num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {options.num_images}")
    renderer = GeneratorRenderer(G)
    focal = metric_focal(dataset, options, G)
    angle_sum, within, count = 0.0, 0, 0
    for i in _progress(range(options.num_images), options.num_images, "geometry", options.progress):
        for yaw in GEOMETRY_YAWS:
            args = _view_args(options.seed + i, yaw, focal, options.truncation_psi, "normals")
            out = renderer.render(args)  # depth-map normals, camera space
            _, planes = renderer.identity_planes(args)
            density = renderer.density_normals(planes, out.camera, out.depth)
            angles = normal_angles(out.normals[None], density[None])[0][foreground_mask(out.depth[None])[0, 0]]
            angle_sum += float(angles.sum(dtype=torch.float64))
            within += int((angles < ANGLE_THRESHOLD_DEGREES).sum())
            count += angles.numel()
    if count == 0:
        return {"geometry": math.nan, "geometry/within10": math.nan}
    return {"geometry": angle_sum / count, "geometry/within10": within / count}


# --- SWD on depth and normal maps ---------------------------------------------------------------

def encode_depth_image(depth: torch.Tensor, near: float, far: float) -> torch.Tensor:
    """[N, 1, H, W] ray distance -> [N, 3, H, W] in [-1, 1]: ``clip((d - near) / (far - near), 0, 1)``
    replicated to 3 channels, as a float image (value v -> 2 v - 1)."""
    x = ((depth.float() - near) / (far - near)).clamp(0.0, 1.0)
    return (x * 2.0 - 1.0).expand(-1, 3, -1, -1).contiguous()


def encode_normal_image(normals: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] camera-space unit normals -> the colour ``n * 0.5 + 0.5`` as a float image in
    [-1, 1] (which is n itself, clipped)."""
    return normals.float().clamp(-1.0, 1.0)


class GroundTruthGeometry:
    """Ground-truth depth and normals of a dataset's items (``geometry/*.npz`` of synthetic data).

    Raises:
        ValueError (``training.dataset.DatasetError``): naming the data when it has none.
    """

    def __init__(self, dataset: ImageLabelDatasetLike):
        import json

        from training.dataset import DATASET_JSON, DatasetError, DatasetSource
        from training.synthetic import geometry_member

        path = getattr(dataset, "path", None)
        names = getattr(dataset, "image_names", None)
        if path is None or names is None:
            raise ValueError("swd-depth and swd-normals need a dataset read from a zip or folder "
                             "(training.dataset.ImageLabelDataset)")
        self.source = DatasetSource(path)
        meta = json.loads(self.source.read(DATASET_JSON)) if DATASET_JSON in self.source.files else {}
        self.meta = meta.get("geometry") if isinstance(meta, dict) else None
        self.members = [geometry_member(name) for name in names]
        files = set(self.source.files)
        missing = [m for m in self.members if m not in files]
        if not isinstance(self.meta, dict) or "depth" not in self.meta or missing:
            raise DatasetError(path, "has no ground-truth depth and normals (geometry/*.npz and a \"geometry\" "
                               f"entry in {DATASET_JSON}, as `train.py dataset synthetic` writes); swd-depth and "
                               "swd-normals need them")
        space = self.meta.get("normals", {}).get("space", "world")
        if space != "world":
            raise DatasetError(path, f"ground-truth normals are in {space!r} space; expected world space",
                               DATASET_JSON)
        self.near = float(self.meta["depth"]["near"])
        self.far = float(self.meta["depth"]["far"])

    def read(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """depth [1, H, W], world normals [3, H, W], mask [1, H, W] of item ``index``."""
        from training.synthetic import decode_geometry

        depth, normals, mask = decode_geometry(self.source.read(self.members[index]), self.meta)
        return (torch.from_numpy(depth)[None], torch.from_numpy(normals).permute(2, 0, 1),
                torch.from_numpy(mask)[None])


def ground_truth_maps(depth: torch.Tensor, normals_world: torch.Tensor, mask: torch.Tensor, label: torch.Tensor,
                      far: float, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground truth of a batch in the metric's conventions, at ``resolution``.

    Args:
        depth [N, 1, H, W], normals_world [N, 3, H, W], mask [N, 1, H, W] bool, label [N, 25].

    Returns:
        depth [N, 1, r, r] (background = ``far``), camera-space unit normals [N, 3, r, r]
        (background = (0, 0, -1), facing the camera); area-resized, normals renormalised.
    """
    cam2world, _ = unpack_label(label.float())
    normals = world_to_camera_normals(normals_world.float(), cam2world)
    facing = torch.tensor([0.0, 0.0, -1.0], device=normals.device).view(1, 3, 1, 1).expand_as(normals)
    normals = torch.where(mask, normals, facing)
    depth = torch.where(mask, depth.float(), torch.full_like(depth, far, dtype=torch.float32))
    if depth.shape[-1] != resolution or depth.shape[-2] != resolution:
        depth = F.interpolate(depth, size=(resolution, resolution), mode="area")
        normals = F.interpolate(normals, size=(resolution, resolution), mode="area")
    return depth, F.normalize(normals, dim=1)


def rendered_maps(G: GeneratorLike, z: torch.Tensor, label: torch.Tensor, resolution: int,
                  truncation_psi: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth [N, 1, r, r] and camera-space depth-map normals [N, 3, r, r] of latents z from cameras label."""
    ws = G.mapping(z, label, truncation_psi=truncation_psi)
    planes = G.planes(ws, noise_mode="const")
    _, depth = G.render_neural(planes, label, resolution)
    cam2world, intrinsics = unpack_label(label)
    normals = world_to_camera_normals(normals_from_depth(depth, cam2world, intrinsics), cam2world)
    return depth, normals


def depth_range(G: GeneratorLike, truth: GroundTruthGeometry) -> tuple[float, float]:
    """(near, far) of the depth encoding: the generator's ray range when numeric, else the data's."""
    opts = getattr(G, "rendering_kwargs", {}) or {}
    start, end = opts.get("ray_start"), opts.get("ray_end")
    if isinstance(start, (int, float)) and isinstance(end, (int, float)) and end > start:
        return float(start), float(end)
    return truth.near, truth.far


@torch.no_grad()
def geometry_swd_metrics(G: GeneratorLike, dataset: ImageLabelDatasetLike, options: MetricOptions,
                         which: Sequence[str] = ("swd-depth", "swd-normals")) -> dict[str, float]:
    """SWD between ground-truth and rendered depth and/or normal maps (see the module docstring).

    Returns ``{"swd-depth": mean, "swd-depth/16": ..., ...}`` and/or the same for ``swd-normals``
    (x1e3 per level, as ``training.metrics``'s SWD).
    """
    unknown = set(which) - {"swd-depth", "swd-normals"}
    if unknown or not which:
        raise ValueError(f"which must name swd-depth and/or swd-normals, got {list(which)}")
    if options.num_images < 1 or options.batch < 1:
        raise ValueError(f"num_images and batch must be positive, got {options.num_images} and {options.batch}")
    if len(dataset) == 0:
        raise ValueError("the dataset is empty")
    truth = GroundTruthGeometry(dataset)
    near, far = depth_range(G, truth)
    resolution = int(G.neural_rendering_resolution)
    device = options.device
    gen = torch.Generator().manual_seed(options.seed + 1)
    maps: dict[str, list[torch.Tensor]] = {key: [] for key in ("real-depth", "fake-depth", "real-normals", "fake-normals")}
    indices = real_indices(len(dataset), options)
    batches = indices.split(options.batch)
    for batch_indices in _progress(batches, len(batches), "+".join(which), options.progress, "batch"):
        items = [truth.read(int(i)) for i in batch_indices]
        label = torch.stack([_camera_label(dataset, int(i)) for i in batch_indices]).to(device)
        depth, normals = ground_truth_maps(torch.stack([t[0] for t in items]).to(device),
                                           torch.stack([t[1] for t in items]).to(device),
                                           torch.stack([t[2] for t in items]).to(device), label, far, resolution)
        z = torch.randn(len(batch_indices), G.z_dim, generator=gen).to(device)
        fake_depth, fake_normals = rendered_maps(G, z, label, resolution, options.truncation_psi)
        maps["real-depth"].append(encode_depth_image(depth, near, far).cpu())
        maps["fake-depth"].append(encode_depth_image(fake_depth, near, far).cpu())
        maps["real-normals"].append(encode_normal_image(normals).cpu())
        maps["fake-normals"].append(encode_normal_image(fake_normals).cpu())
    out: dict[str, float] = {}
    describe = dict(patches_per_image=SWD_PATCHES_PER_IMAGE, seed=options.seed, min_resolution=SWD_MIN_RESOLUTION)
    for name in which:
        kind = name.split("-", 1)[1]
        reals = swd_descriptors(iter(maps[f"real-{kind}"]), **describe)
        fakes = swd_descriptors(iter(maps[f"fake-{kind}"]), **describe)
        out.update(swd_from_descriptors(reals, fakes, seed=options.seed).as_metrics(name))
    return out
