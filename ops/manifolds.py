"""GRAM's radiance manifolds: ray-isosurface intersections of a scalar field, and GRAM's levels.

GRAM evaluates a scalar field s(x) (its manifold predictor) at K fixed samples along each ray
and replaces volume samples by the points where the ray crosses L level sets s = l. Those points
are then shaded and composited with a constant interval
(:func:`ops.compositing.composite_constant_delta`, delta = :data:`GRAM_DELTA`, the ``valid``
mask zeroing the alpha of missed levels).

Index naming. GRAM's formula (methods.md §3.3) names the two ends of a sample interval
``l`` and ``h``. In GRAM's code these are the lower and higher *sample index* (l = k, the end
nearer the camera; h = k + 1, the farther end), not the lower and higher *value*: the crossing
test s_{k+1} <= l <= s_k reads s_h <= level <= s_l. This matters only for the degenerate branch,
which returns x_h = x_{k+1}. Below we write ``near`` for k and ``far`` for k + 1.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

GRAM_FFHQ_NUM_MANIFOLDS = 24
"""FFHQ: 23 isosurfaces plus one background plane (methods.md §3.3)."""
GRAM_FFHQ_LEVELS_START = 23.0
GRAM_FFHQ_LEVELS_END = 8.0
"""Official ``levels_end``; Carver's default is 3 (methods.md §5: reproduce each explicitly)."""
GRAM_CARLA_NUM_MANIFOLDS = 48
GRAM_CARLA_LEVELS_START = 35.0
GRAM_CARLA_LEVELS_END = 5.0
"""CARLA: 48 levels from 35 to 5 and no background plane."""
GRAM_BACKGROUND_Z = -0.12
"""World z of GRAM's fixed background plane (FFHQ)."""
GRAM_DELTA = 0.04
"""Constant compositing interval of every manifold; the background plane gets GRAM_BACKGROUND_DELTA."""
GRAM_BACKGROUND_DELTA = 1e10
GRAM_MIN_VALUE_GAP = 0.05
"""Below this |s_far - s_near| the interpolation is skipped and the far sample is used."""


class ManifoldIntersections(NamedTuple):
    """Ray-manifold intersection points, sorted by distance to the ray origin."""

    points: torch.Tensor
    """[N, R, L, 3] world points."""
    valid: torch.Tensor
    """[N, R, L] bool; False where the ray does not cross that level (composite with alpha 0)."""
    depth: torch.Tensor
    """[N, R, L] Euclidean distance from the ray origin, ascending along L."""


def gram_levels(
    start: float = GRAM_FFHQ_LEVELS_START,
    end: float = GRAM_FFHQ_LEVELS_END,
    num_manifolds: int = GRAM_FFHQ_NUM_MANIFOLDS,
    *,
    background: bool = True,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """GRAM's level values: ``linspace(start, end, n)``, with n = num_manifolds - 1 when one
    manifold is the background plane (FFHQ: 23 levels from 23 down to 8) else num_manifolds
    (CARLA: 48 levels from 35 down to 5, ``background=False``).

    Returns:
        [n] levels in the given (here descending) order; the intersections are sorted by depth
        afterwards, so the order only fixes which output slot a level starts in.
    """
    count = num_manifolds - 1 if background else num_manifolds
    return torch.linspace(start, end, count, device=device)


def sort_by_depth(
    points: torch.Tensor, valid: torch.Tensor, depth: torch.Tensor
) -> tuple[ManifoldIntersections, torch.Tensor]:
    """Sort intersections along L by depth (stable: equal depths keep their order).

    Use it again after appending the background plane to the level intersections.

    Args:
        points: [N, R, L, 3]; valid: [N, R, L] bool; depth: [N, R, L].

    Returns:
        The sorted intersections and the permutation [N, R, L] (sorted slot j came from slot
        order[..., j]), e.g. to find where the background plane went.
    """
    depth, order = torch.sort(depth, dim=-1, stable=True)
    points = torch.gather(points, -2, order[..., None].expand(-1, -1, -1, 3))
    valid = torch.gather(valid, -1, order)
    return ManifoldIntersections(points, valid, depth), order


def ray_manifold_intersections(
    points: torch.Tensor,
    values: torch.Tensor,
    levels: torch.Tensor,
    origins: torch.Tensor,
    *,
    min_value_gap: float = GRAM_MIN_VALUE_GAP,
    sort: bool = True,
) -> ManifoldIntersections:
    """Where each ray first crosses each level set of a scalar field, sorted by depth (``sort``,
    else in the order of ``levels``).

    For level l, an interval (k, k + 1) is a crossing when s_{k+1} <= l <= s_k (the field
    descends through l; ascending crossings are ignored). The first crossing along the ray is
    used. Its point is the root of s interpolated linearly between the two samples; when
    |s_{k+1} - s_k| <= ``min_value_gap`` the far sample x_{k+1} is used instead (the division
    would be ill-conditioned). A level with no crossing is ``valid = False``; its point is the
    last sample x_{K-1}, which is where GRAM's own fallback lands, is finite for the decoder,
    and sorts behind every real crossing.

    Memory: a [N, R, L, K - 1] boolean crossing table.

    Args:
        points: [N, R, K, 3] samples, ordered from the camera outwards.
        values: [N, R, K] field values s at the samples.
        levels: [L] level values.
        origins: [N, R, 3] ray origins (depth = distance to these).
        min_value_gap: degenerate-interval threshold (GRAM: 0.05, in units of s).

    Returns:
        :class:`ManifoldIntersections`; points are differentiable w.r.t. ``points`` and
        ``values`` (GRAM trains its manifold predictor through them). GRAM computes the depth
        without gradient; detach it if that matters.
    """
    n, r, k, _ = points.shape
    if values.shape != (n, r, k):
        raise ValueError(f"values must be [N, R, K] = {(n, r, k)}, got {tuple(values.shape)}")
    if k < 2:
        raise ValueError("need at least two samples per ray")
    levels = levels.to(device=values.device, dtype=values.dtype)
    num_levels = levels.shape[0]
    lv = levels.view(1, 1, num_levels, 1)

    s_near = values[:, :, None, :-1]  # [N, R, 1, K-1]
    s_far = values[:, :, None, 1:]
    crossing = (s_far <= lv) & (lv <= s_near)  # [N, R, L, K-1]
    found = crossing.any(dim=-1)  # [N, R, L]
    # argmax returns the first maximal index, i.e. the first crossing along the ray. Missed
    # levels take the last interval so that their "far" sample is x_{K-1}.
    first = torch.where(found, crossing.to(torch.uint8).argmax(dim=-1), torch.full_like(found, k - 2, dtype=torch.long))

    x_near = torch.gather(points, 2, first[..., None].expand(-1, -1, -1, 3))  # [N, R, L, 3]
    x_far = torch.gather(points, 2, (first + 1)[..., None].expand(-1, -1, -1, 3))
    s_n = torch.gather(values, 2, first)  # [N, R, L]
    s_f = torch.gather(values, 2, first + 1)
    level = levels.view(1, 1, num_levels)

    # Linear root. Along x(t) = x_near + t (x_far - x_near), t in [0, 1], the interpolated field
    # is s(t) = s_near + t (s_far - s_near); s(t) = level gives t = (s_near - level) / (s_near - s_far)
    # and x = [(s_far - level) x_near + (level - s_near) x_far] / (s_far - s_near), which is
    # methods.md's [(s_h - l) x_l + (l - s_l) x_h] / (s_h - s_l) with l = near, h = far.
    # Both weights lie in [0, 1] at a crossing, so the point stays on the segment.
    gap = s_f - s_n
    usable = found & (gap.abs() > min_value_gap)
    safe_gap = torch.where(usable, gap, torch.ones_like(gap))  # keeps gradients finite on the other branch
    root = ((s_f - level)[..., None] * x_near + (level - s_n)[..., None] * x_far) / safe_gap[..., None]
    hits = torch.where(usable[..., None], root, x_far)

    depth = torch.linalg.vector_norm(hits - origins[:, :, None, :], dim=-1)
    return sort_by_depth(hits, found, depth)[0] if sort else ManifoldIntersections(hits, found, depth)


def ray_plane_z_intersection(
    origins: torch.Tensor, directions: torch.Tensor, z: float = GRAM_BACKGROUND_Z
) -> torch.Tensor:
    """Points where rays meet the plane ``world z = z`` (GRAM's background plane), analytically.

    Rays parallel to the plane give non-finite points; GRAM's cameras always face the plane.

    Args:
        origins, directions: [N, R, 3] (directions need not be normalised).

    Returns:
        [N, R, 1, 3], ready to append to the level intersections along L.
    """
    t = (z - origins[..., 2:3]) / directions[..., 2:3]
    return (origins + t * directions)[:, :, None, :]
