"""Feature volumes: trilinear sampling over a bounding box (VolumeGAN's volume generator,
``FeatureVolume``, is in ``models/feature_volume.py``).

Axis convention. A volume is [N, C, D, H, W] and world axes map to grid axes as

* x -> W (last axis), y -> H, z -> D (first spatial axis),

the same order ``F.grid_sample`` uses for its (x, y, z) grid coordinates, so no permutation is
needed anywhere. Index (d, h, w) holds the feature at the point

    (xmin + w * (xmax - xmin) / (W - 1),  ymin + h * (ymax - ymin) / (H - 1),  zmin + d * ...),

i.e. the bounds are the centres of the corner voxels (``align_corners=True``). methods.md only
says VolumeGAN samples "trilinearly over fixed bounds", so this is our choice: with it, sampling
exactly at a voxel centre returns that voxel, and the whole box interpolates between stored
values only.

Points outside the box sample to exactly zero (``outside='zero'``, ours). ``grid_sample``'s zero
padding alone would not do this under ``align_corners=True``: a point half a voxel outside would
still see half of the border voxel. We mask explicitly so that "outside" has one meaning (the
closed box is inside). With ``outside='border'`` they read the nearest border voxels instead, as
VolumeGAN's own sampler computes them (:func:`_trilinear_border`, its float32 order).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

BoundsLike = torch.Tensor | Sequence[Sequence[float]]

VOLUMEGAN_FFHQ_BOUNDS: tuple[tuple[float, float, float], tuple[float, float, float]] = (
    (-0.1886, -0.1671, -0.1956),
    (0.1887, 0.1692, 0.1872),
)
"""VolumeGAN's fixed FFHQ box [[xmin, ymin, zmin], [xmax, ymax, zmax]] (methods.md §3.2)."""


def _bounds_tensor(bounds: BoundsLike, like: torch.Tensor) -> torch.Tensor:
    """[2, 3] bounds on ``like``'s device and dtype, checked to be a non-empty box."""
    b = torch.as_tensor(bounds, dtype=like.dtype, device=like.device)
    if b.shape != (2, 3):
        raise ValueError(f"bounds must be [[xmin, ymin, zmin], [xmax, ymax, zmax]], got shape {tuple(b.shape)}")
    if not bool((b[1] > b[0]).all()):
        raise ValueError(f"bounds must have min < max on every axis, got {b.tolist()}")
    return b


def normalize_to_bounds(points: torch.Tensor, bounds: BoundsLike) -> torch.Tensor:
    """Map world points to grid coordinates: the box [min, max] becomes [-1, 1] per axis.

    Args:
        points: [..., 3] world (x, y, z).
        bounds: [2, 3] box.

    Returns:
        [..., 3] in ``grid_sample``'s (x, y, z) order.
    """
    b = _bounds_tensor(bounds, points)
    return 2 * (points - b[0]) / (b[1] - b[0]) - 1


OUTSIDE_MODES: tuple[str, ...] = ("zero", "border")
"""What points outside the box sample: zero (ours), or the nearest border voxels (VolumeGAN's own
sampler clamps the corner indices)."""


def sample_feature_volume(volume: torch.Tensor, points: torch.Tensor, bounds: BoundsLike,
                          outside: str = "zero") -> torch.Tensor:
    """Trilinear features of points from a volume spanning ``bounds`` (zero outside the box, or with
    ``outside='border'`` the values of the nearest border voxels, as VolumeGAN's official sampler).

    See the module docstring for the axis and voxel-centre conventions.

    Args:
        volume: [N, C, D, H, W] features; x indexes W, y indexes H, z indexes D.
        points: [N, P, 3] world points.
        bounds: [2, 3] ``[[xmin, ymin, zmin], [xmax, ymax, zmax]]``: the centres of the corner voxels.

    Returns:
        [N, P, C].
    """
    if outside not in OUTSIDE_MODES:
        raise ValueError(f"outside must be one of {OUTSIDE_MODES}, got {outside!r}")
    n, c = volume.shape[:2]
    if points.ndim != 3 or points.shape[0] != n or points.shape[-1] != 3:
        raise ValueError(f"points must be [N={n}, P, 3], got {tuple(points.shape)}")
    if outside == "border":
        return _trilinear_border(volume, points, bounds)
    grid = normalize_to_bounds(points, bounds).to(volume.dtype)
    features = F.grid_sample(
        volume,
        grid[:, :, None, None, :],  # [N, P, 1, 1, 3]: P "depth" rows of one texel each
        mode="bilinear",  # trilinear for 5-D input
        padding_mode="zeros",
        align_corners=True,
    )  # [N, C, P, 1, 1]
    features = features.reshape(n, c, -1).transpose(1, 2)
    inside = (grid.abs() <= 1).all(dim=-1, keepdim=True)
    return features * inside.to(features.dtype)


def _trilinear_border(volume: torch.Tensor, points: torch.Tensor, bounds: BoundsLike) -> torch.Tensor:
    """VolumeGAN's own trilinear sampler, in its float32 order: corner weights from the unclamped corner
    coordinates, corner indices clamped to the volume (border clamping), the 8 corners summed in the order
    (z0, y0, x0), (z0, y0, x1), (z0, y1, x0), ... Same values as ``grid_sample(padding_mode='border',
    align_corners=True)`` to about 3e-7. points [N, P, 3] -> [N, P, C]."""
    b = _bounds_tensor(bounds, points)
    grid = ((points - b[0]) / (b[1] - b[0])) * 2 - 1
    n, c, depth, height, width = volume.shape
    ix = ((grid[..., 0] + 1) / 2) * (width - 1)
    iy = ((grid[..., 1] + 1) / 2) * (height - 1)
    iz = ((grid[..., 2] + 1) / 2) * (depth - 1)
    x0, y0, z0 = torch.floor(ix), torch.floor(iy), torch.floor(iz)
    x1, y1, z1 = x0 + 1, y0 + 1, z0 + 1
    flat = volume.reshape(n, c, -1)
    out = None
    for zc, wz in ((z0, z1 - iz), (z1, iz - z0)):
        for yc, wy in ((y0, y1 - iy), (y1, iy - y0)):
            for xc, wx in ((x0, x1 - ix), (x1, ix - x0)):
                weight = wx * wy * wz
                index = ((zc.clamp(0, depth - 1).long() * height + yc.clamp(0, height - 1).long()) * width
                         + xc.clamp(0, width - 1).long())
                value = torch.gather(flat, 2, index[:, None, :].expand(-1, c, -1)) * weight[:, None, :]
                out = value if out is None else out + value
    return out.transpose(1, 2)


def voxel_centres(resolution: Sequence[int], bounds: BoundsLike, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """World positions of every voxel of a [D, H, W] grid over ``bounds``.

    Returns:
        [D, H, W, 3] (x, y, z); entry [d, h, w] is where :func:`sample_feature_volume` reads voxel (d, h, w).
    """
    d, h, w = resolution
    b = torch.as_tensor(bounds, dtype=dtype)
    z = torch.linspace(float(b[0, 2]), float(b[1, 2]), d, dtype=dtype)
    y = torch.linspace(float(b[0, 1]), float(b[1, 1]), h, dtype=dtype)
    x = torch.linspace(float(b[0, 0]), float(b[1, 0]), w, dtype=dtype)
    zz, yy, xx = torch.meshgrid(z, y, x, indexing="ij")
    return torch.stack([xx, yy, zz], dim=-1)
