"""Patch sampling: exact agreement with full-image rays and pixels, sampler ranges and statistics."""

from __future__ import annotations

import math

import pytest
import torch

from ops.camera import generate_rays, intrinsics_from_focal, orbit_pose, pixel_centers, project_points
from ops.patch_sampling import (
    EPIGRAF_MIN_SCALE,
    PatchParams,
    crop_real_patches,
    epigraf_beta,
    epigraf_scale_mean,
    graf_min_scale,
    patch_intrinsics,
    patch_pixel_coords,
    patch_rays,
    sample_epigraf_patches,
    sample_graf_patches,
)


def _cameras(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    yaw = torch.linspace(-0.4, 0.4, n)
    pitch = torch.linspace(0.2, -0.2, n)
    cam2world = orbit_pose(yaw, pitch)
    k = intrinsics_from_focal(4.2647).expand(n, 3, 3).clone()
    k[-1, 0, 1] = 0.05  # one camera with skew
    k[-1, 0, 2] = 0.47
    return cam2world, k


def _quadrant() -> PatchParams:
    """Top-right quadrant (u in [0.5, 1], v in [0, 0.5]) of a 2K image."""
    return PatchParams(torch.tensor([0.5]), torch.tensor([[0.5, 0.0]]))


@pytest.mark.parametrize("k", [8, 7])
def test_full_image_patch_equals_generate_rays_exactly(k):
    cam2world, intr = _cameras(3)
    params = PatchParams.full_image(3)
    assert torch.equal(patch_pixel_coords(params, k), pixel_centers(k).expand(3, -1, -1))
    assert torch.equal(patch_intrinsics(intr, params), intr)
    origins, dirs = patch_rays(cam2world, intr, params, k)
    ref_o, ref_d = generate_rays(cam2world, intr, k)
    assert torch.equal(origins, ref_o)
    assert torch.equal(dirs, ref_d)


def test_patch_intrinsics_accepts_shared_matrix():
    params = PatchParams(torch.tensor([0.5, 0.25]), torch.tensor([[0.1, 0.2], [0.0, 0.75]]))
    k = intrinsics_from_focal(2.0)
    out = patch_intrinsics(k, params)
    assert out.shape == (2, 3, 3)
    assert torch.allclose(out[1], torch.tensor([[8.0, 0, 2.0], [0, 8.0, -1.0], [0, 0, 1]]))


def test_half_scale_patch_covers_top_right_quadrant_pixel_centres():
    k = 8  # power of two: every coordinate is exact in float32
    coords = patch_pixel_coords(_quadrant(), k)[0]
    full = pixel_centers(2 * k).reshape(2 * k, 2 * k, 2)
    expected = full[:k, k:].reshape(-1, 2)  # rows 0..K-1 (top), columns K..2K-1 (right)
    assert torch.equal(coords, expected)
    k = 5  # not a power of two: equal up to float32 rounding
    coords = patch_pixel_coords(_quadrant(), k)[0]
    expected = pixel_centers(2 * k).reshape(2 * k, 2 * k, 2)[:k, k:].reshape(-1, 2)
    assert torch.allclose(coords, expected, atol=1e-7, rtol=0)


def test_quadrant_patch_rays_match_full_render_quadrant():
    k = 8
    cam2world, intr = _cameras(2)
    params = PatchParams(torch.full((2,), 0.5), torch.tensor([[0.5, 0.0], [0.5, 0.0]]))
    origins, dirs = patch_rays(cam2world, intr, params, k)
    ref_o, ref_d = generate_rays(cam2world, intr, 2 * k)
    ref_d = ref_d.reshape(2, 2 * k, 2 * k, 3)[:, :k, k:].reshape(2, -1, 3)
    assert torch.equal(origins, ref_o[:, : k * k])
    assert torch.allclose(dirs, ref_d, atol=1e-6, rtol=0)


def test_patch_rays_project_back_to_patch_coords():
    k = 6
    cam2world, intr = _cameras(3)
    params = sample_epigraf_patches(3, torch.Generator().manual_seed(3), beta=0.8)
    origins, dirs = patch_rays(cam2world, intr, params, k)
    uv, z = project_points(origins + 2.7 * dirs, cam2world, intr)
    assert bool((z > 0).all())
    assert torch.allclose(uv, patch_pixel_coords(params, k), atol=2e-6, rtol=0)


def test_crop_full_image_returns_image():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 8, 8, generator=gen)
    out = crop_real_patches(images, PatchParams.full_image(2), 8)
    assert torch.equal(out, images)
    images = torch.rand(1, 3, 7, 7, generator=gen)
    out = crop_real_patches(images, PatchParams.full_image(1), 7)
    assert torch.allclose(out, images, atol=1e-6, rtol=0)


def test_crop_half_scale_returns_exact_quadrant():
    k = 8
    images = torch.rand(1, 3, 2 * k, 2 * k, generator=torch.Generator().manual_seed(1))
    out = crop_real_patches(images, _quadrant(), k)
    assert torch.equal(out, images[:, :, :k, k:])
    lower_left = PatchParams(torch.tensor([0.5]), torch.tensor([[0.0, 0.5]]))
    assert torch.equal(crop_real_patches(images, lower_left, k), images[:, :, k:, :k])


def test_crop_finer_than_image_replicates_border():
    # K = 2H at s = 1: the outermost samples lie between the edge pixel centres and the image
    # edge; they must read the edge pixels, not blend with zero padding.
    images = torch.full((1, 2, 8, 8), 0.75)
    out = crop_real_patches(images, PatchParams.full_image(1), 16)
    assert torch.equal(out, torch.full((1, 2, 16, 16), 0.75))


def test_crop_interpolates_bilinearly_between_pixels():
    # A linear ramp along u is reproduced exactly at any sub-pixel position inside the centres.
    h = 16
    ramp = torch.arange(h, dtype=torch.float32).expand(1, 1, h, h).contiguous()
    params = PatchParams(torch.tensor([0.3]), torch.tensor([[0.37, 0.2]]))
    out = crop_real_patches(ramp, params, 5)
    u = patch_pixel_coords(params, 5)[0, :, 0].reshape(5, 5)
    assert torch.allclose(out[0, 0], u * h - 0.5, atol=1e-4)


def _check_inside(params: PatchParams, low: float, high: float) -> None:
    s, o = params.scale, params.offset
    assert bool((s >= low - 1e-6).all()) and bool((s <= high + 1e-6).all())
    assert bool((o >= 0).all())
    assert bool((o + s[:, None] <= 1 + 1e-6).all())
    params.check()


def test_graf_sampler_range_determinism_and_containment():
    p1 = sample_graf_patches(4000, 32, 128, torch.Generator().manual_seed(7))
    p2 = sample_graf_patches(4000, 32, 128, torch.Generator().manual_seed(7))
    assert torch.equal(p1.scale, p2.scale) and torch.equal(p1.offset, p2.offset)
    p3 = sample_graf_patches(4000, 32, 128, torch.Generator().manual_seed(8))
    assert not torch.equal(p1.scale, p3.scale)
    _check_inside(p1, 0.25, 1.0)
    early = sample_graf_patches(2000, 32, 128, torch.Generator().manual_seed(9), iteration=0)
    _check_inside(early, 0.9, 1.0)
    assert early.scale.min() < 0.91


def test_graf_scale_and_offset_statistics():
    n = 20000
    p = sample_graf_patches(n, 32, 128, torch.Generator().manual_seed(11))
    s = p.scale.double()
    # U(0.25, 1): mean 0.625, var 0.75^2 / 12; 5 standard errors.
    assert abs(s.mean().item() - 0.625) < 5 * math.sqrt(0.75**2 / 12 / n)
    assert abs(s.var().item() - 0.75**2 / 12) < 0.002
    # o / (1 - s) ~ U(0, 1) independently of s.
    t = p.offset.double() / (1 - s[:, None])
    assert abs(t.mean().item() - 0.5) < 5 * math.sqrt(1 / 12 / (2 * n))
    assert abs(t[:, 0].var().item() - 1 / 12) < 0.003


def test_graf_annealing_schedule():
    assert graf_min_scale(0) == 0.9
    assert graf_min_scale(14999) == 0.9  # k = 42: exp(-0.105) = 0.9003 is clamped to 0.9
    assert graf_min_scale(15000) == pytest.approx(math.exp(-45 * 0.0025))
    assert graf_min_scale(100000) == pytest.approx(math.exp(-300 * 0.0025))
    assert graf_min_scale(184999) > 0.25 and graf_min_scale(185000) == 0.25
    assert graf_min_scale(10**7) == 0.25
    assert graf_min_scale(10**7, min_scale=0.125, anneal_rate=0.0019) == 0.125
    mid = sample_graf_patches(1000, 32, 128, torch.Generator().manual_seed(2), iteration=100000)
    _check_inside(mid, math.exp(-0.75), 1.0)


def test_epigraf_beta_schedule_endpoints():
    assert epigraf_beta(0) == pytest.approx(0.001)
    assert epigraf_beta(5000) == pytest.approx(0.001 + 0.799 / 2)
    assert epigraf_beta(10000) == pytest.approx(0.8)
    assert epigraf_beta(50000) == pytest.approx(0.8)
    assert EPIGRAF_MIN_SCALE == 0.125


@pytest.mark.parametrize("beta", [0.8, 0.3])
def test_epigraf_scale_statistics_match_beta(beta):
    n = 20000
    p = sample_epigraf_patches(n, torch.Generator().manual_seed(5), beta=beta)
    _check_inside(p, EPIGRAF_MIN_SCALE, 1.0)
    x = (p.scale.double() - EPIGRAF_MIN_SCALE) / (1 - EPIGRAF_MIN_SCALE)
    var = beta / ((1 + beta) ** 2 * (2 + beta))  # Beta(1, b) variance
    assert abs(x.mean().item() - 1 / (1 + beta)) < 5 * math.sqrt(var / n)
    assert abs(p.scale.double().mean().item() - epigraf_scale_mean(beta)) < 5 * math.sqrt(var / n)
    # CDF of Beta(1, b): P(X <= 0.5) = 1 - 0.5^b.
    frac = (x <= 0.5).double().mean().item()
    q = 1 - 0.5**beta
    assert abs(frac - q) < 5 * math.sqrt(q * (1 - q) / n)


def test_epigraf_annealing_start_is_mostly_full_views():
    p0 = sample_epigraf_patches(5000, torch.Generator().manual_seed(6), kimg=0)
    # beta = 0.001: P(X <= 0.99) = 1 - 0.01^0.001 = 0.0046.
    assert (p0.scale < 0.99).double().mean().item() < 0.01
    assert p0.scale.mean().item() > 0.99
    p_end = sample_epigraf_patches(5000, torch.Generator().manual_seed(6), kimg=20000)
    p_default = sample_epigraf_patches(5000, torch.Generator().manual_seed(6))
    assert torch.equal(p_end.scale, p_default.scale)
    assert abs(p_end.scale.mean().item() - epigraf_scale_mean(0.8)) < 0.01


def test_epigraf_determinism_and_containment():
    a = sample_epigraf_patches(1000, torch.Generator().manual_seed(4), beta=0.5)
    b = sample_epigraf_patches(1000, torch.Generator().manual_seed(4), beta=0.5)
    assert torch.equal(a.scale, b.scale) and torch.equal(a.offset, b.offset)
    _check_inside(a, EPIGRAF_MIN_SCALE, 1.0)
    t = a.offset.double() / (1 - a.scale.double()[:, None])
    assert abs(t.mean().item() - 0.5) < 0.03


def test_group_sharing_follows_minibatch_std_grouping():
    p = sample_epigraf_patches(8, torch.Generator().manual_seed(1), beta=0.8, group_size=4)
    # Groups of 4 with stride 2: samples i and i + 2 share (s, o).
    assert torch.equal(p.scale[0::2], p.scale[0].expand(4))
    assert torch.equal(p.offset[1::2], p.offset[1].expand(4, 2))
    assert p.scale[0] != p.scale[1]
    g = sample_graf_patches(6, 32, 128, torch.Generator().manual_seed(1), group_size=3)
    assert torch.equal(g.scale[0::2], g.scale[0].expand(3))
    with pytest.raises(ValueError):
        sample_graf_patches(6, 32, 128, group_size=4)


def test_invalid_params_are_rejected():
    with pytest.raises(ValueError):
        PatchParams(torch.ones(2), torch.zeros(3, 2))
    with pytest.raises(ValueError):
        PatchParams(torch.tensor([0.5]), torch.tensor([[0.6, 0.0]])).check()
    with pytest.raises(ValueError):
        sample_graf_patches(2, 64, 32)
    with pytest.raises(ValueError):
        sample_epigraf_patches(2, beta=0.0)
