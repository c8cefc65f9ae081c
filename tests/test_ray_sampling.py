"""Depth sampling along rays: stratified, inverse-CDF (importance) and ray-box bounds."""

from __future__ import annotations

import math

import pytest
import torch

from ops.ray_sampling import (
    auto_ray_bounds,
    importance_depths,
    ray_box_bounds,
    sample_pdf,
    stratified_depths,
)

# --- stratified -------------------------------------------------------------------------------

def test_stratified_eval_is_exact_linspace() -> None:
    depths = stratified_depths(2, 5, 2.25, 3.3, 12, jitter=False)
    assert depths.shape == (2, 5, 12, 1)
    expected = torch.linspace(2.25, 3.3, 12).reshape(1, 1, 12, 1).expand(2, 5, 12, 1)
    # The EG3D fixtures use these depths bit for bit, so equality is exact.
    assert torch.equal(depths, expected)


def test_stratified_jitter_stays_in_its_stratum() -> None:
    start, end, k = 2.25, 3.3, 12
    delta = (end - start) / (k - 1)
    g = torch.Generator().manual_seed(1)
    a = stratified_depths(3, 50, start, end, k, jitter=True, generator=g)
    b = stratified_depths(3, 50, start, end, k, jitter=True, generator=g)
    base = torch.linspace(start, end, k).reshape(1, 1, k, 1)
    offset = a - base
    # Forward jitter of U(0, 1) * delta (EG3D), so every sample stays in [d_i, d_i + delta).
    assert offset.min() >= 0 and offset.max() < delta + 1e-6
    # Each stratum is used: offsets spread over most of the interval.
    assert offset.max() > 0.9 * delta and offset.min() < 0.1 * delta
    assert torch.all(a[:, :, 1:] >= a[:, :, :-1])
    assert not torch.equal(a, b)
    again = stratified_depths(3, 50, start, end, k, jitter=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, again)


def test_stratified_tensor_bounds() -> None:
    near = torch.tensor([[[1.0], [2.0], [0.5]]])  # [N=1, M=3, 1]
    far = torch.tensor([[[2.0], [4.0], [0.6]]])
    depths = stratified_depths(1, 3, near, far, 5, jitter=False)
    assert depths.shape == (1, 3, 5, 1)
    for ray in range(3):
        expected = torch.linspace(near[0, ray, 0].item(), far[0, ray, 0].item(), 5)
        assert torch.allclose(depths[0, ray, :, 0], expected, atol=1e-6)
    jittered = stratified_depths(1, 3, near, far, 5, jitter=True, generator=torch.Generator().manual_seed(0))
    delta = (far - near) / 4
    offset = jittered - depths
    assert torch.all(offset >= 0) and torch.all(offset < delta[..., None] + 1e-6)


def test_stratified_disparity_space() -> None:
    near, far, k = 0.5, 4.0, 9
    depths = stratified_depths(1, 2, near, far, k, jitter=False, disparity_space=True)
    inverse = 1.0 / depths[0, 0, :, 0]
    assert inverse[0].item() == pytest.approx(1 / near, rel=1e-6)
    assert inverse[-1].item() == pytest.approx(1 / far, rel=1e-6)
    assert torch.allclose(inverse, torch.linspace(1 / near, 1 / far, k), atol=1e-5)
    # Even in disparity means dense near the camera.
    gaps = depths[0, 0, 1:, 0] - depths[0, 0, :-1, 0]
    assert torch.all(gaps[1:] > gaps[:-1])


# --- inverse-CDF sampling ---------------------------------------------------------------------

def test_sample_pdf_uniform_is_evenly_spaced() -> None:
    bins = torch.linspace(1.0, 3.0, 9).expand(4, 9)
    samples = sample_pdf(bins, torch.ones(4, 8), 17, deterministic=True)
    # Uniform pdf: the CDF is linear, so u = linspace(0, 1) maps to linspace(1, 3).
    assert torch.allclose(samples, torch.linspace(1.0, 3.0, 17).expand(4, 17), atol=1e-5)


def test_sample_pdf_one_hot_lands_in_the_bin() -> None:
    bins = torch.linspace(0.0, 1.0, 11)[None]
    weights = torch.zeros(1, 10)
    weights[0, 6] = 1.0
    lo, hi = bins[0, 6].item(), bins[0, 7].item()
    samples = sample_pdf(bins, weights, 33, deterministic=True)[0]
    interior = samples[1:-1]
    assert torch.all(interior >= lo - 1e-6) and torch.all(interior <= hi + 1e-6)
    # Evenly through the bin, as the CDF is linear inside it.
    assert torch.allclose(interior[1:] - interior[:-1], torch.full((30,), (hi - lo) / 32), atol=1e-4)
    # u = 0 and u = 1 fall in the eps-weighted end bins and map to the outer edges, as in EG3D.
    assert samples[0].item() == pytest.approx(0.0, abs=1e-6)
    assert samples[-1].item() == pytest.approx(1.0, abs=1e-6)
    random = sample_pdf(bins, weights, 1000, deterministic=False, generator=torch.Generator().manual_seed(0))
    assert torch.all(random >= lo) and torch.all(random <= hi)


def test_sample_pdf_random_matches_pdf() -> None:
    weights = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    bins = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]])
    n = 20000
    samples = sample_pdf(bins, weights, n, deterministic=False, generator=torch.Generator().manual_seed(0))[0]
    assert samples.min() >= 0 and samples.max() <= 4
    # Two sub-bins per bin also checks that samples are uniform inside each bin.
    counts = torch.histc(samples, bins=8, min=0.0, max=4.0)
    expected = (weights[0] / weights.sum()).repeat_interleave(2) / 2 * n
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    # 7 degrees of freedom: the 99.9% quantile of chi-square(7) is 24.3 (seed fixed, so no flake).
    assert chi2 < 24.3, chi2
    # A sampler ignoring the weights (uniform draws) gives chi2 ~ 5800 here.


def test_importance_depths_shape_and_peak() -> None:
    n, m, k, s = 2, 3, 48, 48
    depths = stratified_depths(n, m, 2.25, 3.3, k, jitter=False)
    spacing = (3.3 - 2.25) / (k - 1)
    peak = 20
    weights = torch.zeros(n, m, k - 1, 1)
    weights[:, :, peak] = 1.0
    fine = importance_depths(depths, weights, s, deterministic=True)
    assert fine.shape == (n, m, s, 1)
    assert not fine.requires_grad
    assert torch.all(fine[:, :, 1:] >= fine[:, :, :-1])  # inverse CDF of sorted u is sorted
    centre = 0.5 * (depths[0, 0, peak, 0] + depths[0, 0, peak + 1, 0])
    near_peak = ((fine - centre).abs() <= 2 * spacing).float().mean().item()
    # Smoothing (max-pool 2, avg-pool 2) spreads the peak over 3 bins of mass 0.5 + 1 + 0.5 and
    # the +0.01 floor adds 0.01 to each of the k - 3 bins: 2.03 / 2.45 = 0.83 lands there.
    expected_fraction = (2 + 3 * 0.01) / (2 + (k - 3) * 0.01)
    assert near_peak >= expected_fraction - 2 / s  # deterministic u: off by at most ~1 sample per edge
    assert near_peak > 0.75


# --- ray-box bounds ---------------------------------------------------------------------------

def test_ray_box_axis_aligned() -> None:
    origins = torch.tensor([[0.0, 0.0, -3.0], [0.2, -4.0, 0.3], [0.0, 0.0, 0.0]])
    directions = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    near, far, hit = ray_box_bounds(origins, directions, box_side_length=2.0)
    assert near.shape == far.shape == hit.shape == (3, 1)
    assert hit.all()
    assert torch.allclose(near[:, 0], torch.tensor([2.0, 3.0, -1.0]))
    assert torch.allclose(far[:, 0], torch.tensor([4.0, 5.0, 1.0]))  # origin inside: near < 0


def test_ray_box_diagonal_and_misses() -> None:
    s2 = math.sqrt(2.0)
    origins = torch.tensor([[-2.0, -1.5, 0.0], [-3.0, 0.0, 0.0], [-2.0, 3.0, 0.0]])
    directions = torch.tensor([[1 / s2, 1 / s2, 0.0], [1 / s2, 1 / s2, 0.0], [1.0, 0.0, 0.0]])
    near, far, hit = ray_box_bounds(origins, directions, box_side_length=2.0)
    # Ray 0 (parameter s along (1, 1, 0)): x in [-1, 1] for s in [1, 3], y for s in [0.5, 2.5];
    # it enters through x = -1 at s = 1 and leaves through y = 1 at s = 2.5, and t = s * sqrt(2).
    assert hit[0].item()
    assert near[0].item() == pytest.approx(s2, abs=1e-5)
    assert far[0].item() == pytest.approx(2.5 * s2, abs=1e-5)
    # Ray 1: x slab for s in [2, 4], y slab for s in [-1, 1]: disjoint, a miss. Ray 2 passes at y = 3.
    assert not hit[1].item() and not hit[2].item()
    assert torch.equal(near[1:, 0], torch.tensor([-1.0, -1.0]))
    assert torch.equal(far[1:, 0], torch.tensor([-2.0, -2.0]))


def test_auto_ray_bounds_fills_misses() -> None:
    origins = torch.tensor([[[0.0, 0.0, -3.0], [0.5, 0.0, -2.5], [5.0, 5.0, -3.0]]])  # [N=1, M=3, 3]
    directions = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]])
    near, far = auto_ray_bounds(origins, directions, box_side_length=2.0)
    assert near.shape == far.shape == (1, 3, 1)
    assert torch.allclose(near[0, :2, 0], torch.tensor([2.0, 1.5]))
    assert torch.allclose(far[0, :2, 0], torch.tensor([4.0, 3.5]))
    # EG3D's rule for misses: start = min of the hits' starts, end = max of the hits' starts.
    assert near[0, 2, 0].item() == pytest.approx(1.5)
    assert far[0, 2, 0].item() == pytest.approx(2.0)
    assert torch.all(far > near)
    # With no hits at all the miss markers are kept.
    near_none, far_none = auto_ray_bounds(origins[:, 2:], directions[:, 2:], 2.0)
    assert near_none.item() == -1.0 and far_none.item() == -2.0
