"""Choosing depths along rays: stratified, importance (inverse CDF) and ray-box bounds.

Plain-torch reference implementations. Shapes follow EG3D: rays are [N, M] (batch, rays) and
depths are [N, M, K, 1] (K samples per ray).
"""

from __future__ import annotations

import torch


def linspace_tensor(start: torch.Tensor, stop: torch.Tensor, num: int) -> torch.Tensor:
    """Element-wise linspace: [num, *start.shape] from ``start`` to ``stop`` (inclusive)."""
    steps = torch.arange(num, dtype=torch.float32, device=start.device) / (num - 1)
    steps = steps.reshape(num, *([1] * start.ndim))
    return start[None] + steps * (stop - start)[None]


def stratified_depths(
    num_batch: int,
    num_rays: int,
    ray_start: float | torch.Tensor,
    ray_end: float | torch.Tensor,
    num_samples: int,
    *,
    jitter: bool,
    disparity_space: bool = False,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Evenly spaced depths, optionally jittered forward by U(0, 1) of one spacing (EG3D).

    Args:
        num_batch, num_rays: N and M.
        ray_start, ray_end: scalars, or [N, M, 1] per-ray bounds (e.g. from :func:`ray_box_bounds`).
        num_samples: K.
        jitter: stratified jitter (training); off gives ``linspace(start, end, K)`` (evaluation).
        disparity_space: space samples evenly in inverse depth instead (scalar bounds only).

    Returns:
        [N, M, K, 1] depths, sorted along K.
    """
    def noise(like: torch.Tensor) -> torch.Tensor:
        if not jitter:
            return torch.zeros_like(like)
        return torch.rand(like.shape, dtype=like.dtype, device=like.device, generator=generator)

    if disparity_space:
        t = torch.linspace(0, 1, num_samples, device=device).reshape(1, 1, num_samples, 1).repeat(num_batch, num_rays, 1, 1)
        t = t + noise(t) * (1 / (num_samples - 1))
        return 1.0 / (1.0 / ray_start * (1.0 - t) + 1.0 / ray_end * t)
    if isinstance(ray_start, torch.Tensor):
        depths = linspace_tensor(ray_start, ray_end, num_samples).permute(1, 2, 0, 3)
        delta = (ray_end - ray_start) / (num_samples - 1)
        return depths + noise(depths) * delta[..., None]
    depths = torch.linspace(ray_start, ray_end, num_samples, device=device).reshape(1, 1, num_samples, 1)
    depths = depths.repeat(num_batch, num_rays, 1, 1)
    delta = (ray_end - ray_start) / (num_samples - 1)
    return depths + noise(depths) * delta


def sample_pdf(
    bins: torch.Tensor,
    weights: torch.Tensor,
    num_samples: int,
    *,
    deterministic: bool,
    eps: float = 1e-5,
    generator: torch.Generator | None = None,
    right: bool = True,
) -> torch.Tensor:
    """Inverse-CDF sampling of a piecewise-constant PDF.

    Args:
        bins: [R, B + 1] bin edges (B = number of weights).
        weights: [R, B] non-negative bin weights.
        num_samples: S.
        deterministic: use ``u = linspace(0, 1, S)`` instead of U(0, 1) draws.
        right: ``searchsorted``'s tie rule (pi-GAN's ``sample_pdf`` uses the default, False).

    Returns:
        [R, S] samples inside the bins.
    """
    num_rays, num_bins = weights.shape
    weights = weights + eps  # keeps the CDF strictly increasing
    pdf = weights / torch.sum(weights, -1, keepdim=True)
    cdf = torch.cumsum(pdf, -1)
    cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf], -1)
    if deterministic:
        u = torch.linspace(0, 1, num_samples, device=bins.device).expand(num_rays, num_samples)
    else:
        u = torch.rand(num_rays, num_samples, device=bins.device, generator=generator)
    u = u.contiguous()

    above = torch.searchsorted(cdf, u, right=right)
    below = torch.clamp_min(above - 1, 0)
    above = torch.clamp_max(above, num_bins)
    idx = torch.stack([below, above], -1).view(num_rays, 2 * num_samples)
    cdf_g = torch.gather(cdf, 1, idx).view(num_rays, num_samples, 2)
    bins_g = torch.gather(bins, 1, idx).view(num_rays, num_samples, 2)

    denom = cdf_g[..., 1] - cdf_g[..., 0]
    denom = torch.where(denom < eps, torch.ones_like(denom), denom)  # empty bin: never chosen
    return bins_g[..., 0] + (u - cdf_g[..., 0]) / denom * (bins_g[..., 1] - bins_g[..., 0])


def importance_depths(
    depths: torch.Tensor,
    weights: torch.Tensor,
    num_samples: int,
    *,
    deterministic: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """EG3D's fine-pass depths from coarse midpoint weights.

    The weights are smoothed (max-pool 2, avg-pool 2, + 0.01) so that narrow peaks still attract
    samples to their neighbours, then sampled between coarse-interval midpoints.

    Args:
        depths: [N, M, K, 1] coarse depths.
        weights: [N, M, K - 1, 1] compositing weights of the K - 1 intervals.
        num_samples: S.

    Returns:
        [N, M, S, 1] depths (no gradient).
    """
    with torch.no_grad():
        n, m, k, _ = depths.shape
        depths = depths.reshape(n * m, k)
        weights = weights.reshape(n * m, -1)
        weights = torch.nn.functional.max_pool1d(weights.unsqueeze(1).float(), 2, 1, padding=1)
        weights = torch.nn.functional.avg_pool1d(weights, 2, 1).squeeze(1)
        weights = weights + 0.01
        mids = 0.5 * (depths[:, :-1] + depths[:, 1:])
        fine = sample_pdf(mids, weights[:, 1:-1], num_samples, deterministic=deterministic, generator=generator)
    return fine.detach().reshape(n, m, num_samples, 1)


def plain_importance_depths(
    depths: torch.Tensor,
    weights: torch.Tensor,
    num_samples: int,
    *,
    deterministic: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """pi-GAN's fine-pass depths: ``sample_pdf`` on the raw coarse weights of the inner samples.

    The K coarse weights get + 1e-5, the pdf over the K - 1 midpoints of the coarse depths is read
    from weights[1:-1] (``sample_pdf`` adds its own 1e-5), and ``searchsorted`` uses right=False.

    Args:
        depths: [N, M, K, 1] coarse depths.
        weights: [N, M, K, 1] compositing weights of the K coarse samples.
        num_samples: S.

    Returns:
        [N, M, S, 1] depths (no gradient).
    """
    with torch.no_grad():
        n, m, k, _ = depths.shape
        depths = depths.reshape(n * m, k)
        weights = weights.reshape(n * m, k) + 1e-5
        mids = 0.5 * (depths[:, :-1] + depths[:, 1:])
        fine = sample_pdf(mids, weights[:, 1:-1], num_samples, deterministic=deterministic, generator=generator,
                          right=False)
    return fine.detach().reshape(n, m, num_samples, 1)


def ray_box_bounds(
    origins: torch.Tensor, directions: torch.Tensor, box_side_length: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Entry and exit distances of rays through the axis-aligned cube of this side, at the origin.

    Slab method. Rays that miss get ``near = -1, far = -2`` as in EG3D.

    Args:
        origins, directions: [..., 3].

    Returns:
        near [..., 1], far [..., 1], hit [..., 1] (bool).
    """
    half = box_side_length / 2
    origins, directions = origins.detach(), directions.detach()
    inv = 1.0 / directions
    t0 = (-half - origins) * inv
    t1 = (half - origins) * inv
    near = torch.minimum(t0, t1).amax(dim=-1, keepdim=True)
    far = torch.maximum(t0, t1).amin(dim=-1, keepdim=True)
    hit = far >= near
    near = torch.where(hit, near, torch.full_like(near, -1.0))
    far = torch.where(hit, far, torch.full_like(far, -2.0))
    return near, far, hit


def auto_ray_bounds(
    origins: torch.Tensor, directions: torch.Tensor, box_side_length: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-ray [N, M, 1] depth bounds from the bounding box ('auto' ray range).

    Rays that miss the box get EG3D's fill-in: start = the smallest start among hits, end = the
    largest *start* among hits (official behaviour, kept for output parity). Missed rays only see
    empty space, so the exact interval does not change the image.
    """
    near, far, hit = ray_box_bounds(origins, directions, box_side_length)
    if bool(hit.any()):
        near = torch.where(hit, near, near[hit].min())
        far = torch.where(hit, far, near[hit].max())
    return near, far


def ray_samples(origins: torch.Tensor, directions: torch.Tensor, depths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Points at depths [N, M, K, 1] along rays (origins, directions [N, M, 3]), flattened for a
    decoder: points [N, M * K, 3] and each point's ray direction [N, M * K, 3]."""
    n, _, k, _ = depths.shape
    points = (origins.unsqueeze(-2) + depths * directions.unsqueeze(-2)).reshape(n, -1, 3)
    return points, directions.unsqueeze(-2).expand(-1, -1, k, -1).reshape(n, -1, 3)


def merge_sorted_samples(depths1, colors1, densities1, depths2, colors2, densities2):
    """Concatenate two sample sets along K and sort everything by depth.

    Args:
        depths*: [N, M, K*, 1]; colors*: [N, M, K*, C]; densities*: [N, M, K*, 1].

    Returns:
        (depths, colors, densities) with K1 + K2 samples, sorted by depth.
    """
    depths = torch.cat([depths1, depths2], dim=-2)
    colors = torch.cat([colors1, colors2], dim=-2)
    densities = torch.cat([densities1, densities2], dim=-2)
    _, idx = torch.sort(depths, dim=-2)
    depths = torch.gather(depths, -2, idx)
    colors = torch.gather(colors, -2, idx.expand(-1, -1, -1, colors.shape[-1]))
    densities = torch.gather(densities, -2, idx.expand(-1, -1, -1, 1))
    return depths, colors, densities
