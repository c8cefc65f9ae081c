"""GRAM ray-manifold intersections against analytic level sets, and GRAM's levels."""

from __future__ import annotations

import math

import pytest
import torch

from ops.compositing import composite_constant_delta
from ops.manifolds import (
    GRAM_BACKGROUND_Z,
    gram_levels,
    ray_manifold_intersections,
    ray_plane_z_intersection,
    sort_by_depth,
)

DTYPE = torch.float64
CAMERA = torch.tensor([0.0, 0.0, 3.0], dtype=DTYPE)


def _rays(num_rays: int, max_offset: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """[1, R, 3] origins at CAMERA and unit directions aimed at random points of the z = 0 disc
    of radius ``max_offset`` (so the ray passes the origin at distance <= max_offset)."""
    g = torch.Generator().manual_seed(seed)
    radius = max_offset * torch.rand(num_rays, generator=g, dtype=DTYPE).sqrt()
    angle = 2 * math.pi * torch.rand(num_rays, generator=g, dtype=DTYPE)
    target = torch.stack([radius * angle.cos(), radius * angle.sin(), torch.zeros_like(radius)], -1)
    directions = target - CAMERA
    directions = directions / directions.norm(dim=-1, keepdim=True)
    return CAMERA.expand(1, num_rays, 3), directions[None]


def _samples(origins: torch.Tensor, directions: torch.Tensor, near: float, far: float, k: int) -> torch.Tensor:
    """[N, R, K, 3] evenly spaced points from ``near`` to ``far`` along each ray."""
    t = torch.linspace(near, far, k, dtype=DTYPE).view(1, 1, k, 1)
    return origins[:, :, None] + t * directions[:, :, None]


# Fields scaled by 10 so |s_{k+1} - s_k| stays above GRAM's 0.05 degenerate threshold at the
# sample spacings used here (GRAM's own levels are 8..23, a similar scale).
SCALE = 10.0


def test_plane_levels_are_hit_exactly_and_sorted_by_depth() -> None:
    # s = SCALE * z decreases along rays travelling towards -z; level l is the plane z = l / SCALE.
    origins, directions = _rays(64, 0.8)
    points = _samples(origins, directions, 1.5, 4.5, 65)
    values = SCALE * points[..., 2]
    plane_z = torch.tensor([0.0, 0.9, -0.7, 0.35], dtype=DTYPE)  # unsorted on purpose
    result = ray_manifold_intersections(points, values, SCALE * plane_z, origins)

    assert result.points.shape == (1, 64, 4, 3) and result.valid.shape == result.depth.shape == (1, 64, 4)
    assert result.valid.all()
    # A linear field is interpolated exactly: only float64 round-off remains.
    nearest_first = plane_z.sort(descending=True).values  # the camera is above, so high z is near
    assert torch.allclose(result.points[..., 2], nearest_first.expand(1, 64, 4), rtol=0, atol=1e-12)
    t = (nearest_first.view(1, 1, 4) - origins[..., 2:3]) / directions[..., 2:3]
    expected = origins[:, :, None] + t[..., None] * directions[:, :, None]
    assert torch.allclose(result.points, expected, rtol=0, atol=1e-12)
    assert torch.allclose(result.depth, t, rtol=0, atol=1e-12)
    assert (result.depth[..., 1:] >= result.depth[..., :-1]).all()


def _sphere_bound(h: float, radius: float, max_offset: float) -> tuple[float, float]:
    """Error bounds for s = |x| (times SCALE) on the level sphere of this radius, sample spacing h.

    Along a unit-speed ray, s(t) = sqrt((t - t0)^2 + b^2) with b the ray's distance from the
    centre, so s'' = b^2 / s^3 <= 1 / s. Linear interpolation on an interval of length h is off
    by at most h^2 / 8 * max s''. At the linear root x*, s(x*) - r equals that interpolation
    error, and s >= r - h on the bracketing interval (|s'| <= 1), so

        |(|x*| - r)| <= h^2 / (8 (r - h)).

    The root moves along the ray by that residual divided by |s'| = sqrt(1 - b^2 / s^2) >=
    sqrt(1 - b^2 / (r - h)^2) on the near side, giving the position bound.
    """
    residual = h**2 / (8 * (radius - h))
    slope = math.sqrt(1 - max_offset**2 / (radius - h) ** 2)
    return residual, residual / slope


def _sphere_intersections(k: int, radii: torch.Tensor, max_offset: float):
    origins, directions = _rays(256, max_offset, seed=3)
    near, far = 1.0, 5.0
    points = _samples(origins, directions, near, far, k)
    values = SCALE * points.norm(dim=-1)
    result = ray_manifold_intersections(points, values, SCALE * radii, origins)
    return result, origins, directions, (far - near) / (k - 1)


def test_sphere_levels_land_within_the_linear_interpolation_bound() -> None:
    radii = torch.tensor([0.6, 1.0, 1.4], dtype=DTYPE)
    max_offset = 0.3  # every ray passes within 0.3 of the centre, so it crosses all three spheres
    result, origins, directions, h = _sphere_intersections(129, radii, max_offset)
    assert result.valid.all()

    # Sorted by depth: the largest sphere is met first.
    radius = radii.sort(descending=True).values.view(1, 1, 3)
    residual = (result.points.norm(dim=-1) - radius).abs()

    # Analytic near-side (entry) intersection: t = t0 - sqrt(r^2 - b^2).
    t0 = -(origins * directions).sum(-1, keepdim=True)
    b2 = (origins + t0 * directions).square().sum(-1, keepdim=True)
    t_entry = t0 - (radius**2 - b2).sqrt()
    entry = origins[:, :, None] + t_entry[..., None] * directions[:, :, None]
    position_error = (result.points - entry).norm(dim=-1)

    for j, r in enumerate(radius[0, 0].tolist()):
        residual_bound, position_bound = _sphere_bound(h, r, max_offset)
        assert residual[..., j].max() <= residual_bound
        assert position_error[..., j].max() <= position_bound
    # The error is really O(h^2): roughly a quarter with half the spacing.
    finer, *_ = _sphere_intersections(257, radii, max_offset)
    finer_error = (finer.points - entry).norm(dim=-1)
    ratio = position_error.max() / finer_error.max()
    assert 2.5 < ratio < 6.0


def test_the_near_side_of_a_sphere_is_chosen_not_the_far_side() -> None:
    # s = |x| falls through r where the ray enters the sphere and rises through it where it
    # leaves; only the descending (near, entry) crossing counts.
    radii = torch.tensor([1.0], dtype=DTYPE)
    result, origins, directions, _ = _sphere_intersections(129, radii, 0.3)
    to_centre = -origins[:, :, None]  # the centre is the origin
    # Entry points lie on the camera's side of the sphere's centre along the ray.
    along = ((result.points - origins[:, :, None]) * directions[:, :, None]).sum(-1)
    centre_along = (to_centre * directions[:, :, None]).sum(-1)
    assert (along < centre_along).all()
    assert (result.depth < CAMERA.norm()).all()


def test_first_of_several_crossings_is_chosen() -> None:
    x = torch.arange(6, dtype=DTYPE)
    points = torch.stack([x, torch.zeros_like(x), torch.zeros_like(x)], -1).view(1, 1, 6, 3)
    values = torch.tensor([3.0, 1.0, 3.0, 1.0, 3.0, 1.0], dtype=DTYPE).view(1, 1, 6)
    origins = torch.tensor([[[-1.0, 0.0, 0.0]]], dtype=DTYPE)
    result = ray_manifold_intersections(points, values, torch.tensor([2.0, 1.5], dtype=DTYPE), origins)
    # Descending crossings of 2 lie in intervals (0,1), (2,3), (4,5): the first one, midway.
    # Level 1.5 in the same first interval, three quarters of the way.
    assert result.valid.all()
    assert torch.allclose(result.points[0, 0, :, 0], torch.tensor([0.5, 0.75], dtype=DTYPE))
    assert torch.allclose(result.depth[0, 0], torch.tensor([1.5, 1.75], dtype=DTYPE))


def test_sample_on_the_level_counts_as_a_crossing() -> None:
    x = torch.arange(3, dtype=DTYPE)
    points = torch.stack([x, torch.zeros_like(x), torch.zeros_like(x)], -1).view(1, 1, 3, 3)
    values = torch.tensor([2.0, 1.0, 0.0], dtype=DTYPE).view(1, 1, 3)
    levels = torch.tensor([1.0, 2.0, 0.0], dtype=DTYPE)
    result = ray_manifold_intersections(points, values, levels, torch.zeros(1, 1, 3, dtype=DTYPE))
    assert result.valid.all()
    assert torch.allclose(result.points[0, 0, :, 0], torch.tensor([0.0, 1.0, 2.0], dtype=DTYPE))


def test_missed_levels_are_invalid_and_sorted_last() -> None:
    # Plane levels beyond the sampled segment, and a sphere the rays pass by.
    origins, directions = _rays(16, 0.8)
    points = _samples(origins, directions, 1.5, 4.5, 65)
    values = SCALE * points[..., 2]
    levels = SCALE * torch.tensor([-5.0, 0.0, 5.0], dtype=DTYPE)  # z = -5 too far, z = 5 behind the camera
    result = ray_manifold_intersections(points, values, levels, origins)
    assert result.valid[..., 0].all()
    assert not result.valid[..., 1:].any()
    # Missed levels sit at the last sample (finite, behind every hit).
    assert torch.allclose(result.points[..., 1:, :], points[:, :, -1:, :].expand(-1, -1, 2, -1))
    assert (result.depth[..., 1:] >= result.depth[..., :1]).all()

    sphere_values = SCALE * points.norm(dim=-1)
    missed = ray_manifold_intersections(points, sphere_values, SCALE * torch.tensor([0.5], dtype=DTYPE), origins)
    b = (origins - (origins * directions).sum(-1, keepdim=True) * directions).norm(dim=-1)
    hit = missed.valid[..., 0]
    # Rays passing farther than 0.5 from the centre never cross; rays well inside always do (a
    # ray just grazing the sphere may slip between two samples, so the test leaves a margin).
    assert not hit[b > 0.5].any() and hit[b < 0.4].all()
    assert (b > 0.5).any() and (b < 0.4).any()


def test_small_value_gap_returns_the_far_sample() -> None:
    # GRAM's h is the higher sample index (x_{k+1}); with |s_h - s_l| <= 0.05 it is used as is.
    x = torch.arange(4, dtype=DTYPE)
    points = torch.stack([x, torch.zeros_like(x), torch.zeros_like(x)], -1).view(1, 1, 4, 3)
    values = torch.tensor([1.0, 0.52, 0.49, 0.0], dtype=DTYPE).view(1, 1, 4)
    origins = torch.tensor([[[-1.0, 0.0, 0.0]]], dtype=DTYPE)
    result = ray_manifold_intersections(points, values, torch.tensor([0.5, 0.25], dtype=DTYPE), origins)
    assert result.valid.all()
    # Level 0.5 crosses in (1, 2), gap 0.03 -> x_2. Level 0.25 crosses in (2, 3), gap 0.49 ->
    # interpolated: 2 + (0.49 - 0.25) / 0.49.
    assert torch.allclose(result.points[0, 0, :, 0], torch.tensor([2.0, 2 + 0.24 / 0.49], dtype=DTYPE))
    # A larger gap threshold turns the second level degenerate too.
    levels = torch.tensor([0.5, 0.25], dtype=DTYPE)
    wide = ray_manifold_intersections(points, values, levels, origins, min_value_gap=0.5)
    assert torch.allclose(wide.points[0, 0, :, 0], torch.tensor([2.0, 3.0], dtype=DTYPE))


def test_gradients_are_finite_through_every_branch() -> None:
    x = torch.arange(4, dtype=DTYPE)
    points = torch.stack([x, torch.zeros_like(x), torch.zeros_like(x)], -1).view(1, 1, 4, 3).requires_grad_()
    values = torch.tensor([0.2, 0.5, 0.5, 0.0], dtype=DTYPE).view(1, 1, 4).requires_grad_()
    # 0.3: interpolated in (2, 3); 0.5: first crossing is (1, 2) with a zero gap; 9: missed.
    levels = torch.tensor([0.3, 0.5, 9.0], dtype=DTYPE)
    result = ray_manifold_intersections(points, values, levels, torch.full((1, 1, 3), -1.0, dtype=DTYPE))
    assert result.valid.tolist() == [[[True, True, False]]]
    assert torch.allclose(result.points[0, 0, :, 0], torch.tensor([2.0, 2.4, 3.0], dtype=DTYPE))
    result.points.sum().backward()
    assert torch.isfinite(values.grad).all() and torch.isfinite(points.grad).all()
    # The interpolated point x = 2 + (0.5 - 0.3) / (0.5 - s_3) moves with the field values.
    assert values.grad[0, 0, 3].item() == pytest.approx(0.2 / 0.5**2)


def test_gram_levels() -> None:
    levels = gram_levels()
    assert levels.shape == (23,)
    assert levels[0].item() == 23.0 and levels[-1].item() == 8.0
    assert torch.allclose(levels.diff(), torch.full((22,), -15 / 22))
    carla = gram_levels(35.0, 5.0, 48, background=False)
    assert carla.shape == (48,) and carla[0].item() == 35.0 and carla[-1].item() == 5.0
    assert gram_levels(end=3.0)[-1].item() == 3.0  # Carver's levels_end


def test_background_plane_sorts_with_the_levels_and_composites() -> None:
    origins, directions = _rays(8, 0.1)
    points = _samples(origins, directions, 2.0, 4.0, 64)
    values = SCALE * points[..., 2]
    levels = SCALE * torch.tensor([0.2, -0.5, 0.5], dtype=DTYPE)  # z = -0.5 lies behind the plane
    hits = ray_manifold_intersections(points, values, levels, origins)
    back = ray_plane_z_intersection(origins, directions)
    assert torch.allclose(back[..., 2], torch.full((1, 8, 1), GRAM_BACKGROUND_Z, dtype=DTYPE))

    all_points = torch.cat([hits.points, back], dim=-2)
    all_valid = torch.cat([hits.valid, torch.ones_like(hits.valid[..., :1])], dim=-1)
    all_depth = torch.cat([hits.depth, (back[:, :, 0] - origins).norm(dim=-1, keepdim=True)], dim=-1)
    merged, order = sort_by_depth(all_points, all_valid, all_depth)
    assert (order == 3).nonzero()[:, -1].eq(2).all()  # the plane lands between z = 0.2 and z = -0.5
    assert (merged.depth.diff(dim=-1) >= 0).all()

    # The valid mask plugs into GRAM's constant-delta compositing (alpha 0 where missed).
    sigma = torch.ones(1, 8, 4, 1, dtype=DTYPE)
    colour = torch.rand(1, 8, 4, 3, dtype=DTYPE)
    invalid = merged.valid.clone()
    invalid[..., 0] = False
    out = composite_constant_delta(colour, sigma, merged.depth[..., None], delta=0.04, valid=invalid[..., None])
    assert out.weights[..., 0, 0].eq(0).all()
