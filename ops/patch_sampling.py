"""Patch-wise ray sampling (GRAF, EpiGRAF): a K x K grid of rays over a square sub-window.

Conventions
-----------
* Normalised image coordinates are those of :mod:`ops.camera`: ``u`` right, ``v`` down, the
  whole image spans ``[0, 1]^2`` and pixel ``i`` of an R-pixel side has its centre at
  ``(i + 0.5) / R``.
* A patch is :class:`PatchParams` ``(scale [N], offset [N, 2])``: ``scale`` s in (0, 1] is the
  patch side as a fraction of the image side, ``offset`` o = (o_u, o_v) is the patch's top-left
  corner, each component in [0, 1 - s]; the patch covers ``[o_u, o_u + s] x [o_v, o_v + s]``.
  This is EpiGRAF's (s, o) exactly: methods.md section 3.9 maps grid coordinates c in [-1, 1] to
  ``c' = (c + 1) s - 1 + 2 o``, i.e. (c' + 1) / 2 = o + s (c + 1) / 2, an image window of side s
  whose corner is o `[EP] src/training/training_utils.py`. GRAF (methods.md section 3.6) scales a
  centred [-1, 1] grid by s and shifts it by a "random shift bounded by 1 - s" in the same [-1, 1]
  units; its centre shift d corresponds to ``o = (1 - s) / 2 + d / 2``, so d in [-(1 - s), 1 - s]
  is o in [0, 1 - s]. (That the bound is in [-1, 1] grid units is our reading: the text does not
  name the unit.)
* Sample points sit at the *pixel centres of the patch*: ``u = o_u + s (j + 0.5) / K``,
  ``v = o_v + s (i + 0.5) / K`` for row i and column j, in raster (row-major) order. At s = 1,
  o = 0 these are exactly :func:`ops.camera.pixel_centers`, so a full-image "patch" is a full
  EG3D render. The sources instead place the K samples on the window's corners (``linspace(-1,
  1, K)`` grids, real patches read with ``align_corners=True``); we keep EG3D's pixel-centre
  convention throughout, and read real patches with ``align_corners=False`` at the same points,
  so real and fake patches still sample identical image locations.
* A patch is just a cropped pinhole camera: with A = [[s, 0, o_u], [0, s, o_v], [0, 0, 1]] mapping
  patch coordinates to image coordinates, the patch's normalised intrinsics are ``A^-1 K``
  (:func:`patch_intrinsics`), and its rays are :func:`ops.camera.generate_rays` at resolution K
  with those intrinsics. No second ray-lifting code path exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ops.camera import PIXEL_GRIDS, generate_rays

# --- GRAF (methods.md section 3.6, `[GF] graf/transforms.py`, FlexGridRaySampler) --------------
GRAF_PATCH_SIZE = 32
"""GRAF renders 32 x 32 ray patches (``N_samples`` 1024)."""
GRAF_MIN_SCALE = 0.25
"""Floor of GRAF's annealed lower scale bound (CelebA-HQ config: 0.125)."""
GRAF_ANNEAL_RATE = 0.0025
"""GRAF's scale-annealing rate in ``exp(-k * rate)`` (CelebA-HQ config: 0.0019)."""
GRAF_MAX_START_SCALE = 0.9
"""The lower bound never exceeds 0.9: ``s_min = min(0.9, max(min_scale, exp(-k * rate)))``."""

# --- EpiGRAF (methods.md section 3.9, `[EP] configs/training/patch_beta.yaml`, `loss.py`) ------
EPIGRAF_PATCH_SIZE = 64
"""EpiGRAF renders 64 x 64 patches of a 512 x 512 frame."""
EPIGRAF_MIN_SCALE = 64 / 512
"""s_min = patch resolution / image resolution = 64 / 512."""
EPIGRAF_BETA_START = 0.001
"""Beta(1, beta) shape at the start of training (mass near s = 1: mostly full views)."""
EPIGRAF_BETA_END = 0.8
"""Beta(1, beta) shape at the end of the annealing."""
EPIGRAF_BETA_ANNEAL_KIMG = 10000.0
"""beta goes linearly from 0.001 to 0.8 over 10000 kimg, then stays at 0.8."""


@dataclass(frozen=True)
class PatchParams:
    """N square patches in normalised image coordinates (see the module docstring).

    Attributes:
        scale: [N] patch side as a fraction of the image side, in (0, 1].
        offset: [N, 2] top-left corner (o_u, o_v), each in [0, 1 - scale].
    """

    scale: torch.Tensor
    offset: torch.Tensor

    def __post_init__(self) -> None:
        if self.scale.ndim != 1 or self.offset.shape != (self.scale.shape[0], 2):
            raise ValueError(f"PatchParams wants scale [N] and offset [N, 2], got "
                             f"{list(self.scale.shape)} and {list(self.offset.shape)}")

    def __len__(self) -> int:
        return self.scale.shape[0]

    @classmethod
    def full_image(cls, n: int, device: torch.device | str | None = None) -> PatchParams:
        """N patches that are the whole image (s = 1, o = 0)."""
        return cls(torch.ones(n, device=device), torch.zeros(n, 2, device=device))

    def to(self, device: torch.device | str) -> PatchParams:
        return PatchParams(self.scale.to(device), self.offset.to(device))

    def as_tensor(self) -> torch.Tensor:
        """[N, 3] rows (s, o_u, o_v): the order EpiGRAF's discriminator conditions on."""
        return torch.cat([self.scale[:, None], self.offset], dim=1)

    def check(self, tol: float = 1e-6) -> None:
        """Raise ValueError unless 0 < s <= 1 and every patch lies inside the image."""
        s, o = self.scale, self.offset
        if bool((s <= 0).any()) or bool((s > 1 + tol).any()):
            raise ValueError("patch scale must lie in (0, 1]")
        if bool((o < -tol).any()) or bool((o + s[:, None] > 1 + tol).any()):
            raise ValueError("patch offset must lie in [0, 1 - scale]")


def patch_pixel_coords(params: PatchParams, patch_size: int, grid: str = "centers") -> torch.Tensor:
    """Normalised (u, v) of each patch's K x K sample points (patch pixel centres).

    Args:
        params: N patches.
        patch_size: K.
        grid: the model's pixel grid (``ops.camera.PIXEL_GRIDS``; EpiGRAF's is 'corners').

    Returns:
        [N, K * K, 2] in raster order; ``o + s * pixel_centers(K)`` (or the corners grid), which is
        exactly that grid at s = 1, o = 0.
    """
    base = PIXEL_GRIDS[grid](patch_size, device=params.scale.device)  # [K*K, 2]
    scale = params.scale.to(base.dtype)[:, None, None]
    return params.offset.to(base.dtype)[:, None, :] + scale * base[None]


def patch_intrinsics(intrinsics: torch.Tensor, params: PatchParams) -> torch.Tensor:
    """Normalised intrinsics of the camera that sees only the patch: ``A^-1 K``.

    With u_image = o + s u_patch: fx, fy and the skew are divided by s, and the principal point
    becomes (c - o) / s. At s = 1, o = 0 the result equals the input bit for bit.

    Args:
        intrinsics: [N, 3, 3] or [3, 3] normalised by the full image size.
        params: N patches.

    Returns:
        [N, 3, 3].
    """
    n = len(params)
    k = intrinsics.expand(n, 3, 3) if intrinsics.ndim == 2 else intrinsics
    s = params.scale.to(k)[:, None]
    o = params.offset.to(k)
    out = k.clone()
    out[:, 0:2, 0:2] = k[:, 0:2, 0:2] / s[:, :, None]  # fx, skew, (0), fy
    out[:, 0:2, 2] = (k[:, 0:2, 2] - o) / s  # cx, cy
    return out


def patch_rays(
    cam2world: torch.Tensor, intrinsics: torch.Tensor, params: PatchParams, patch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """World rays through each patch's K x K sample points.

    :func:`ops.camera.generate_rays` at resolution K with :func:`patch_intrinsics`, so at s = 1,
    o = 0 the rays equal ``generate_rays(cam2world, intrinsics, K)`` exactly, and for any patch
    a point on ray m projects (:func:`ops.camera.project_points`, original intrinsics) to
    ``patch_pixel_coords(params, K)[:, m]``.

    Args:
        cam2world: [N, 4, 4].
        intrinsics: [N, 3, 3] or [3, 3] normalised by the full image size.
        params: N patches.
        patch_size: K.

    Returns:
        origins [N, K * K, 3] and unit directions [N, K * K, 3], raster order.
    """
    if cam2world.shape[0] != len(params):
        raise ValueError(f"{cam2world.shape[0]} cameras but {len(params)} patches")
    return generate_rays(cam2world, patch_intrinsics(intrinsics, params), patch_size)


GRID_ALIGN_CORNERS: dict[str, bool] = {"centers": False, "corners": True, "integers": False}
"""``grid_sample``'s ``align_corners`` that reads an image's pixels at the normalised (u, v) of each pixel grid
(with the half-pixel shift of :data:`GRID_READ_SHIFT`)."""
GRID_READ_SHIFT: dict[str, float] = {"centers": 0.0, "corners": 0.0, "integers": 0.5}
"""Pixels added to (u, v) x size before reading: GRAF's 'integers' image holds the ray through integer
coordinate i in pixel i, so u = i / W must read pixel i, which ``align_corners=False`` keeps at (i + 0.5) / W."""


def crop_real_patches(
    images: torch.Tensor, params: PatchParams, patch_size: int, mode: str = "bilinear", grid: str = "centers"
) -> torch.Tensor:
    """Resample real images at the patch sample points, so D compares like with like.

    ``grid_sample`` with ``align_corners=False``: normalised u maps to grid x = 2u - 1, whose
    pixel position is u * W - 0.5, so a patch pixel centre that coincides with an image pixel
    centre reads that pixel exactly. Points between the outermost pixel centres and the image
    edge (only when a patch is sampled more finely than the image) use border padding. As in
    GRAF and EpiGRAF there is no low-pass prefilter: a large patch drawn at K < s * H samples
    the image point-wise, just as the rendered patch does.

    Args:
        images: [N, C, H, W] floating point.
        params: N patches.
        patch_size: K.
        mode: ``grid_sample`` interpolation ("bilinear", or "nearest"/"bicubic").
        grid: the model's pixel grid; 'corners' (EpiGRAF: u = i / (W - 1), ``align_corners=True`` as its
            ``extract_patches``) reads the image at the points the corner-aligned rays see.

    Returns:
        [N, C, K, K].
    """
    if images.ndim != 4 or images.shape[0] != len(params):
        raise ValueError(f"images must be [N, C, H, W] with N = {len(params)}, got {list(images.shape)}")
    if not images.is_floating_point():
        raise TypeError("crop_real_patches needs floating-point images")
    uv = patch_pixel_coords(params.to(images.device), patch_size, grid)
    shift = GRID_READ_SHIFT[grid]
    if shift:
        sizes = torch.tensor([images.shape[-1], images.shape[-2]], dtype=uv.dtype, device=uv.device)
        uv = uv + shift / sizes
    points = (uv * 2 - 1).to(images.dtype).reshape(len(params), patch_size, patch_size, 2)
    return F.grid_sample(images, points, mode=mode, padding_mode="border", align_corners=GRID_ALIGN_CORNERS[grid])


# --------------------------------------------------------------------------- samplers


def _group_count(n: int, group_size: int | None) -> int:
    """Number of independent draws when patches are shared within minibatch-std groups."""
    if group_size is None:
        return n
    g = min(group_size, n)
    if g < 1 or n % g:
        raise ValueError(f"batch {n} must be divisible by the group size {g}")
    return n // g


def _share(values: torch.Tensor, n: int) -> torch.Tensor:
    # Sample i gets draw i % (N / G): the grouping of models.discriminator.MinibatchStdLayer.
    reps = n // values.shape[0]
    return values.repeat(reps, *([1] * (values.ndim - 1)))


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, device) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=device, dtype=torch.float64)


def _offsets(scale: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Each component ~ U(0, 1 - s), so the patch stays inside the image."""
    u = _uniform((scale.shape[0], 2), generator, scale.device)
    return u * (1.0 - scale)[:, None]


def graf_min_scale(
    iteration: int,
    min_scale: float = GRAF_MIN_SCALE,
    anneal_rate: float = GRAF_ANNEAL_RATE,
    max_start: float = GRAF_MAX_START_SCALE,
) -> float:
    """GRAF's annealed lower scale bound at a training iteration (methods.md section 3.6).

    ``s_min = min(0.9, max(min_scale, exp(-k * rate)))`` with ``k = (iteration // 1000) * 3``:
    0.9 until exp(-k rate) falls below it (iteration 15000 at the default rate), then decaying
    to the floor ``min_scale`` (0.25 from iteration 185000 at the defaults, *computed*).
    """
    k = (int(iteration) // 1000) * 3
    return min(max_start, max(min_scale, math.exp(-k * anneal_rate)))


def sample_graf_patches(
    n: int,
    patch_size: int,
    image_res: int,
    generator: torch.Generator | None = None,
    *,
    iteration: int | None = None,
    min_scale: float = GRAF_MIN_SCALE,
    max_scale: float = 1.0,
    anneal_rate: float = GRAF_ANNEAL_RATE,
    group_size: int | None = None,
    device: torch.device | str | None = None,
) -> PatchParams:
    """GRAF's ``FlexGridRaySampler`` scale and shift (methods.md section 3.6).

    s ~ U(s_lo, max_scale) with s_lo = :func:`graf_min_scale` (iteration) when an iteration is
    given (annealing), else ``min_scale`` (the fully annealed range); each offset component
    ~ U(0, 1 - s), which is GRAF's symmetric shift bounded by 1 - s (module docstring).

    Args:
        n: number of patches.
        patch_size: K (GRAF: 32); with image_res only checked (K <= image_res). In GRAF's configs
            min_scale happens to equal K / image_res (32/128 = 0.25, 32/256 = 0.125, *computed*)
            but the source sets it separately, so we do too.
        image_res: full image side in pixels.
        generator: torch.Generator for reproducible draws (on ``device``).
        iteration: training iteration for the annealed lower bound, or None.
        min_scale: floor of the lower bound (0.25; GRAF's CelebA-HQ config: 0.125).
        max_scale: upper bound (GRAF: 1).
        anneal_rate: 0.0025 (CelebA-HQ config: 0.0019).
        group_size: share one (s, o) within minibatch-std groups (sample i gets draw
            i % (n / G), as :class:`models.discriminator.MinibatchStdLayer` groups); None draws
            each sample independently. methods.md does not say how GRAF batches its draws.

    Returns:
        PatchParams with float32 tensors on ``device``.
    """
    if not 0 < patch_size <= image_res:
        raise ValueError(f"patch size {patch_size} must be in [1, image_res={image_res}]")
    low = graf_min_scale(iteration, min_scale, anneal_rate) if iteration is not None else min_scale
    if not 0 < low <= max_scale <= 1:
        raise ValueError(f"need 0 < min scale {low} <= max scale {max_scale} <= 1")
    m = _group_count(n, group_size)
    scale = low + (max_scale - low) * _uniform((m,), generator, device)
    offset = _offsets(scale, generator)
    return PatchParams(_share(scale, n).float(), _share(offset, n).float())


def epigraf_beta(
    kimg: float,
    start: float = EPIGRAF_BETA_START,
    end: float = EPIGRAF_BETA_END,
    anneal_kimg: float = EPIGRAF_BETA_ANNEAL_KIMG,
) -> float:
    """EpiGRAF's Beta(1, beta) shape: linear from 0.001 to 0.8 over 10000 kimg, then constant."""
    t = min(max(float(kimg) / anneal_kimg, 0.0), 1.0) if anneal_kimg > 0 else 1.0
    return start + (end - start) * t


def epigraf_scale_mean(beta: float, min_scale: float = EPIGRAF_MIN_SCALE, max_scale: float = 1.0) -> float:
    """E[s] = s_min + (s_max - s_min) / (1 + beta), since Beta(1, beta) has mean 1 / (1 + beta)."""
    return min_scale + (max_scale - min_scale) / (1.0 + beta)


def sample_epigraf_patches(
    n: int,
    generator: torch.Generator | None = None,
    *,
    min_scale: float = EPIGRAF_MIN_SCALE,
    max_scale: float = 1.0,
    beta: float | None = None,
    kimg: float | None = None,
    group_size: int | None = None,
    device: torch.device | str | None = None,
) -> PatchParams:
    """EpiGRAF's patch scales and offsets (methods.md section 3.9).

    s = s_min + (s_max - s_min) * X with X ~ Beta(1, beta) (EpiGRAF: s_max = 1); each offset
    component ~ U(0, 1 - s). X is drawn by inverting its CDF 1 - (1 - x)^beta,
    ``X = 1 - (1 - U)^(1 / beta)``, so a torch.Generator makes it reproducible.

    Args:
        n: number of patches.
        generator: torch.Generator for reproducible draws (on ``device``).
        min_scale: s_min = 64 / 512 (patch resolution / image resolution).
        max_scale: 1.
        beta: the Beta(1, beta) shape; if None it comes from :func:`epigraf_beta` (kimg), and
            with neither given the fully annealed 0.8.
        kimg: thousands of real images shown so far, for the annealed beta.
        group_size: share one (s, o) within minibatch-std groups, as methods.md says EpiGRAF
            does (sample i gets draw i % (n / G), the grouping of
            :class:`models.discriminator.MinibatchStdLayer`); None draws independently.

    Returns:
        PatchParams with float32 tensors on ``device``.
    """
    if beta is None:
        beta = epigraf_beta(kimg) if kimg is not None else EPIGRAF_BETA_END
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    if not 0 < min_scale <= max_scale <= 1:
        raise ValueError(f"need 0 < min_scale {min_scale} <= max_scale {max_scale} <= 1")
    m = _group_count(n, group_size)
    u = _uniform((m,), generator, device)
    x = -torch.expm1(torch.log1p(-u) / beta)  # 1 - (1 - u)^(1/beta), accurate for tiny beta
    scale = min_scale + (max_scale - min_scale) * x
    offset = _offsets(scale, generator)
    return PatchParams(_share(scale, n).float(), _share(offset, n).float())
