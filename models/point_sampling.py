"""Point samplers of the pipeline: depths along each ray, their training jitter, and patch rays.

The point sampler is a registered component (one kind today, 'stratified'); its jitter and its
patch sampler are named variants looked up here (``PERTURBATIONS``, ``PATCH_SAMPLERS``), so new
variants are one more entry, never a new branch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from models.registry import ComponentConfig, Registry
from ops.compositing import Composite
from ops.patch_sampling import PatchParams, sample_epigraf_patches, sample_graf_patches
from ops.ray_sampling import auto_ray_bounds, importance_depths, plain_importance_depths, stratified_depths

POINT_SAMPLERS: Registry = Registry("point sampler")
PATCH_SAMPLERS: Registry = Registry("patch sampler")


Bounds = tuple[int, int, float | torch.Tensor, float | torch.Tensor, int, bool, torch.device]
"""(N, M, near, far, K, disparity_space, device) of a stratified sampling."""


def _spacing(depths: torch.Tensor) -> torch.Tensor:
    return depths[:, :, 1:2] - depths[:, :, 0:1]


def _no_jitter(n, m, start, end, count, disparity, device) -> torch.Tensor:
    return stratified_depths(n, m, start, end, count, jitter=False, disparity_space=disparity, device=device)


def _forward_uniform(n, m, start, end, count, disparity, device) -> torch.Tensor:
    # EG3D's RaySampler: forward by U(0, 1) of one interval, its own arithmetic
    return stratified_depths(n, m, start, end, count, jitter=True, disparity_space=disparity, device=device)


def _centred_uniform(n, m, start, end, count, disparity, device) -> torch.Tensor:
    depths = _no_jitter(n, m, start, end, count, disparity, device)
    return depths + (torch.rand_like(depths) - 0.5) * _spacing(depths)  # pi-GAN: +-half a spacing


def _ray_offset(n, m, start, end, count, disparity, device) -> torch.Tensor:
    depths = _no_jitter(n, m, start, end, count, disparity, device)
    return depths + torch.rand_like(depths[:, :, :1]) * _spacing(depths)  # StyleSDF: one offset per ray


def _midpoint_bins(n, m, start, end, count, disparity, device) -> torch.Tensor:
    # NeRF (GRAF's nerf-pytorch, EpiGRAF): uniform within the bin bounded by the neighbouring midpoints
    # (the end bins by near, far)
    depths = _no_jitter(n, m, start, end, count, disparity, device)
    mids = 0.5 * (depths[:, :, 1:] + depths[:, :, :-1])
    upper, lower = torch.cat([mids, depths[:, :, -1:]], 2), torch.cat([depths[:, :, :1], mids], 2)
    return lower + (upper - lower) * torch.rand_like(depths)


def _lerp_depths(n, m, start, end, count, device) -> torch.Tensor:
    """[N, M, K, 1] depths ``near (1 - s) + far s``, s = linspace(0, 1, K): nerf-pytorch's float32 arithmetic."""
    s = torch.linspace(0.0, 1.0, count, device=device)
    depths = start * (1.0 - s) + end * s  # [K] or, from per-ray bounds [N, M, 1], [N, M, K]
    return depths.expand(n, m, count).unsqueeze(-1)


PERTURBATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "none": _no_jitter, "uniform": _forward_uniform, "self_uniform": _centred_uniform, "offset": _ray_offset,
    "midpoint_bins": _midpoint_bins,
}
"""Jittered stratified depths [N, M, K, 1] (training), by name: ``f(N, M, near, far, K, disparity_space, device)``."""


def _smoothed_importance(depths, coarse: Composite, integrator, count: int, deterministic: bool) -> torch.Tensor:
    # EG3D: max-pool/avg-pool smoothed weights + 0.01 (the integrator says which weights it has)
    return importance_depths(depths, integrator.importance_weights(coarse), count, deterministic=deterministic)


def _plain_importance(depths, coarse: Composite, integrator, count: int, deterministic: bool) -> torch.Tensor:
    # pi-GAN, VolumeGAN, StyleNeRF, EpiGRAF: the raw coarse weights[1:-1] + 1e-5 over the midpoints
    return plain_importance_depths(depths, coarse.weights, count, deterministic=deterministic)


IMPORTANCE_SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {"smoothed": _smoothed_importance, "plain": _plain_importance}
"""Fine depths [N, M, S, 1] from the coarse pass, by name: ``f(depths, coarse, integrator, S, deterministic)``."""


@POINT_SAMPLERS.register("stratified")
class StratifiedPointSampler:
    """Evenly spaced depths between the ray bounds, jittered in training; importance samples are
    drawn by the generator from the coarse weights."""

    @dataclass
    class Config(ComponentConfig):
        near: float | str = 0.88
        """Near ray distance, or 'auto' for the ray-box intersection with ``box_side``."""
        far: float | str = 1.12
        """Far ray distance, or 'auto'."""
        num_coarse: int = 12
        """Stratified samples per ray (GRAM: samples fed to the manifold predictor)."""
        num_fine: int = 12
        """Importance samples per ray from the coarse weights (0: none)."""
        perturb: str = "self_uniform"
        """Training jitter (``PERTURBATIONS``): 'none', 'uniform' (forward U(0,1) of a spacing, EG3D),
        'self_uniform' (+-half a spacing, pi-GAN), 'offset' (one random shift per ray, StyleSDF) or
        'midpoint_bins' (uniform between the neighbouring midpoints: nerf-pytorch's GRAF, GIRAFFE, EpiGRAF's
        ``perturb_points``)."""
        box_side: float = 0.24
        """Side of the cube, centred at the pivot, that holds the scene ('auto' bounds, meshes)."""
        patch: str = "none"
        """Patch-wise training (``PATCH_SAMPLERS``): 'none', 'graf' (scale/offset grid) or 'epigraf' (Beta scales)."""
        patch_size: int = 32
        """Rays per patch side in patch-wise training."""
        disparity_space: bool = False
        """Space the samples evenly in inverse depth (EG3D's ``disparity_space_sampling``; fixed bounds only)."""
        offset_grid: bool = False
        """Samples at near + (far - near) k / K, k = 0..K-1 (StyleSDF's offset sampling grid: the far end is
        never sampled); else k / (K - 1)."""
        depth_along_axis: bool = False
        """near, far and the samples are depths along the camera's optical axis (StyleSDF's unnormalised
        rays with camera z = -1), not distances along each ray; needs the cameras (``render_neural``)."""
        radius_max: float | None = None
        """The largest camera radius of a radius range: each ray's near and far move by -(radius_max - |origin|)
        (GRAF's celebA, celebA_hq and cub releases); None: fixed bounds."""
        lerp_grid: bool = False
        """Unjittered depths are computed as near (1 - s) + far s, s = linspace(0, 1, K) (nerf-pytorch's
        arithmetic, GRAF: the same depths to round-off, which its infinite last interval amplifies); not with
        ``disparity_space`` or ``offset_grid``."""
        unit_grid: bool = False
        """Evaluation depths are near + linspace(0, 1, K) (far - near) (GRAF's and GIRAFFE's arithmetic: the
        same depths as linspace(near, far, K) up to round-off, which GIRAFFE's box masks amplify)."""
        importance: str = "smoothed"
        """Importance sampler (``IMPORTANCE_SAMPLERS``): 'smoothed' (EG3D's pooled weights + 0.01) or 'plain'
        (pi-GAN's ``sample_pdf`` on the raw weights[1:-1] + 1e-5, searchsorted right=False)."""

    def __init__(self, config: Config):
        if config.perturb not in PERTURBATIONS:
            raise ValueError(f"points.perturb {config.perturb!r} is not one of {', '.join(PERTURBATIONS)}")
        if config.importance not in IMPORTANCE_SAMPLERS:
            raise ValueError(f"points.importance {config.importance!r} is not one of {', '.join(IMPORTANCE_SAMPLERS)}")
        PATCH_SAMPLERS.get(config.patch)
        self.config = config

    @staticmethod
    def tiny(config: Config, num_coarse: int) -> Config:
        return config.replace(num_coarse=min(config.num_coarse, num_coarse), num_fine=min(config.num_fine, 6),
                              patch_size=min(config.patch_size, 16))

    def depths(self, origins: torch.Tensor, directions: torch.Tensor, count: int, near: float | str, far: float | str,
               box_side: float, jitter: bool) -> torch.Tensor:
        """[N, M, K, 1] sample depths between the ray bounds (fixed or 'auto'), jittered if ``jitter``."""
        n, m, _ = origins.shape
        if near == "auto" or far == "auto":
            start, end = auto_ray_bounds(origins, directions, float(box_side))
        else:
            start, end = float(near), float(far)
        if self.config.radius_max is not None:
            shift = float(self.config.radius_max) - origins.norm(dim=-1, keepdim=True)  # [N, M, 1]
            start, end = start - shift, end - shift
        if self.config.offset_grid and count >= 1:
            end = start + (end - start) * (count - 1) / count
        if jitter and count >= 2:
            return PERTURBATIONS[self.config.perturb](n, m, start, end, count, self.config.disparity_space,
                                                      origins.device)
        if self.config.lerp_grid and count >= 2:
            return _lerp_depths(n, m, start, end, count, origins.device)
        if self.config.unit_grid and not self.config.disparity_space and count >= 2 and not isinstance(start, torch.Tensor):
            grid = torch.linspace(0, 1, count, device=origins.device) * (end - start) + start
            return grid.reshape(1, 1, count, 1).repeat(n, m, 1, 1)
        return _no_jitter(n, m, start, end, count, self.config.disparity_space, origins.device)

    def importance(self, depths: torch.Tensor, coarse: Composite, integrator, count: int,
                   deterministic: bool) -> torch.Tensor:
        """[N, M, count, 1] importance depths from coarse depths [N, M, K, 1] and their composite."""
        return IMPORTANCE_SAMPLERS[self.config.importance](depths, coarse, integrator, count, deterministic)


# --- patch samplers (patch-wise training) ---------------------------------------------------------

class PatchSampler:
    """Which part of the image a training fake renders. ``crops``: D sees patches of ``patch_size``."""

    crops: ClassVar[bool] = True

    @dataclass
    class Config(ComponentConfig):
        pass

    def __init__(self, patch_size: int, image_resolution: int):
        self.patch_size, self.image_resolution = int(patch_size), int(image_resolution)

    def sample(self, n: int, cur_nimg: float, device) -> PatchParams | None:
        raise NotImplementedError


@PATCH_SAMPLERS.register("none")
class FullImages(PatchSampler):
    """The whole image (no patches)."""

    crops = False

    @dataclass
    class Config(ComponentConfig):
        pass

    def sample(self, n: int, cur_nimg: float, device) -> None:
        return None


@PATCH_SAMPLERS.register("graf")
class GrafPatches(PatchSampler):
    """GRAF: a scaled, offset grid of rays, the scale annealed with the iteration (batch 8)."""

    @dataclass
    class Config(ComponentConfig):
        pass

    def sample(self, n: int, cur_nimg: float, device) -> PatchParams:
        return sample_graf_patches(n, self.patch_size, self.image_resolution, iteration=int(cur_nimg // 8),
                                   min_scale=self.patch_size / self.image_resolution, device=device)


@PATCH_SAMPLERS.register("epigraf")
class EpigrafPatches(PatchSampler):
    """EpiGRAF: Beta-distributed scales annealed over kimg, shared within groups of 4."""

    @dataclass
    class Config(ComponentConfig):
        pass

    def sample(self, n: int, cur_nimg: float, device) -> PatchParams:
        return sample_epigraf_patches(n, min_scale=self.patch_size / self.image_resolution, kimg=cur_nimg / 1e3,
                                      group_size=min(4, n), device=device)
