"""Volume compositing: integrators against closed forms, and the density activations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ops.compositing import (
    DENSITY_ACTIVATIONS,
    combine_fields,
    composite_constant_delta,
    composite_last_delta,
    composite_midpoint,
    density_from_sdf_laplace,
    density_from_sdf_sigmoid,
    density_relu,
    density_softplus,
    density_softplus_shifted,
)


def _depths(start: float, end: float, k: int, n: int = 1, m: int = 1) -> torch.Tensor:
    """[n, m, k, 1] evenly spaced depths."""
    return torch.linspace(start, end, k, dtype=torch.float64).reshape(1, 1, k, 1).expand(n, m, k, 1).clone()


# --- midpoint (EG3D) --------------------------------------------------------------------------

@pytest.mark.parametrize("sigma", [0.3, 2.0, 8.0])
def test_midpoint_constant_medium_matches_closed_form(sigma: float) -> None:
    a, b, k = 2.0, 3.0, 101
    length, spacing = b - a, (b - a) / (k - 1)
    depths = _depths(a, b, k)
    # EG3D applies softplus(x - 1) after averaging, so this raw value gives density sigma.
    raw = torch.full_like(depths, 1.0 + math.log(math.expm1(sigma)))
    colour = torch.full((1, 1, k, 3), 0.25, dtype=torch.float64)
    result = composite_midpoint(colour, raw, depths)

    opacity = 1 - math.exp(-sigma * length)
    # The product of per-interval transmittances telescopes, so only round-off (and the 1e-10
    # guard per interval) separates the discrete opacity from 1 - exp(-sigma L).
    assert result.weights.sum().item() == pytest.approx(opacity, abs=1e-8)
    assert result.weights.shape == (1, 1, k - 1, 1)
    # Colour c in [0, 1] composites to c * opacity, then maps to [-1, 1].
    assert torch.allclose(result.features, torch.full((1, 1, 3), 2 * 0.25 * opacity - 1, dtype=torch.float64))

    # Expected depth of an exponential termination truncated to [a, b], normalised by opacity.
    expected = a + 1 / sigma - length * math.exp(-sigma * length) / opacity
    # The integrator puts each interval's weight at its midpoint; the exact conditional mean
    # inside an interval of constant sigma is t_i + delta/2 - sigma delta^2 / 12 + O(sigma^3 delta^4),
    # so the quadrature error is at most sigma delta^2 / 12 (plus float64 round-off).
    tolerance = sigma * spacing**2 / 12 * 1.01 + 1e-12
    assert abs(result.depth.item() - expected) <= tolerance


def test_midpoint_white_background_and_empty_rays() -> None:
    k = 16
    depths = _depths(2.25, 3.3, k, m=2)
    colour = torch.full((1, 2, k, 3), 0.2, dtype=torch.float64)
    raw = torch.full_like(depths, -40.0)  # softplus(-41) ~ 1.6e-18: empty space
    raw[:, 1] = 1000.0  # second ray: sigma * delta ~ 70, opaque from the first interval
    white = composite_midpoint(colour, raw, depths, white_background=True)
    black = composite_midpoint(colour, raw, depths, white_background=False)
    # Empty ray: white is 1 after mapping to [-1, 1]; without it the ray is -1.
    assert torch.allclose(white.features[0, 0], torch.ones(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(black.features[0, 0], -torch.ones(3, dtype=torch.float64), atol=1e-12)
    # Opaque ray: background never shows, colour 0.2 -> -0.6.
    assert torch.allclose(white.features[0, 1], torch.full((3,), -0.6, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(black.features[0, 1], white.features[0, 1])
    # Opaque from the first interval: depth is that interval's midpoint.
    assert white.depth[0, 1].item() == pytest.approx(0.5 * (2.25 + 2.25 + 1.05 / (k - 1)), abs=1e-9)
    # Fully empty ray: depth is 0 / 0 in principle; EG3D maps it to +inf and clamps to the far end.
    zero = composite_midpoint(colour, torch.full_like(depths, -1e4), depths)
    assert torch.all(zero.depth == 3.3)


@pytest.mark.parametrize("integrator", ["midpoint", "last_delta", "constant_delta"])
def test_weights_are_nonnegative_and_sum_to_at_most_one(integrator: str) -> None:
    g = torch.Generator().manual_seed(0)
    n, m, k = 2, 64, 24
    depths = torch.sort(torch.rand(n, m, k, 1, generator=g, dtype=torch.float64) * 2 + 1, dim=2).values
    raw = torch.randn(n, m, k, 1, generator=g, dtype=torch.float64) * 4
    colour = torch.rand(n, m, k, 3, generator=g, dtype=torch.float64)
    if integrator == "midpoint":
        result = composite_midpoint(colour, raw, depths)
    elif integrator == "last_delta":
        result = composite_last_delta(colour, F.softplus(raw), depths, last_delta=0.1)
    else:
        result = composite_constant_delta(colour, F.softplus(raw), depths, delta=0.04)
    totals = result.weights.sum(dim=2)
    assert torch.all(result.weights >= 0)
    # The sum telescopes to 1 - T_end; EG3D's +1e-10 in every transmittance factor can lift it
    # above 1 by at most k * 1e-10.
    assert torch.all(totals <= 1 + k * 1e-10)
    assert totals.max() > 0.5  # not trivially empty
    # Composited colour of [0, 1] inputs stays inside the convex hull scaled by the opacity.
    features = result.features if integrator != "midpoint" else (result.features + 1) / 2
    assert torch.all(features >= -1e-12) and torch.all(features <= totals + 1e-12)


# --- last delta (NeRF / pi-GAN / StyleSDF) ----------------------------------------------------

@pytest.mark.parametrize("entry", [2.3021, 2.5, 2.77])
def test_last_delta_opaque_slab_depth_at_entry(entry: float) -> None:
    k = 96
    depths = _depths(2.0, 3.0, k)
    spacing = 1.0 / (k - 1)
    exit_ = entry + 0.1
    inside = (depths >= entry) & (depths <= exit_)
    densities = torch.where(inside, torch.full_like(depths, 1e4), torch.zeros_like(depths))
    result = composite_last_delta(torch.ones(1, 1, k, 1, dtype=torch.float64), densities, depths)
    # sigma * delta = 1e4 / 95 >> 1: the first sample inside the slab takes all the weight, and
    # that sample lies in [entry, entry + spacing). (Sums exceed 1 by <= k * 1e-10: EG3D's guard.)
    assert result.weights.sum().item() == pytest.approx(1.0, abs=k * 1e-10)
    assert result.weights.max().item() == pytest.approx(1.0, abs=k * 1e-10)
    assert entry <= result.depth.item() < entry + spacing
    assert result.features.item() == pytest.approx(1.0, abs=k * 1e-10)


def test_last_delta_last_sample_is_infinite() -> None:
    depths = _depths(1.0, 2.0, 5)
    densities = torch.zeros_like(depths)
    densities[..., -1, :] = 1e-6  # faint, but its interval is 1e10 long
    result = composite_last_delta(torch.ones(1, 1, 5, 1, dtype=torch.float64), densities, depths)
    # 1e-6 * 1e10 >> 1, so the last sample is opaque (up to the 1e-10 guards: 4e-10 here).
    assert result.weights[0, 0, -1, 0].item() == pytest.approx(1.0, abs=1e-9)
    assert result.depth.item() == pytest.approx(2.0)
    short = composite_last_delta(torch.ones(1, 1, 5, 1, dtype=torch.float64), densities, depths, last_delta=1.0)
    assert short.weights.sum().item() == pytest.approx(1e-6, rel=1e-5)


# --- constant delta (GRAM) --------------------------------------------------------------------

def test_constant_delta_valid_mask_zeroes_contributions() -> None:
    k, delta = 4, 0.04
    depths = _depths(0.9, 1.1, k)
    densities = torch.tensor([50.0, 0.0, 25.0, 10.0], dtype=torch.float64).reshape(1, 1, k, 1)
    colour = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    colour = colour.reshape(1, 1, k, 3)
    valid = torch.tensor([False, True, True, True]).reshape(1, 1, k, 1)
    masked = composite_constant_delta(colour, densities, depths, delta=delta, valid=valid)
    # By hand: the first (invalid) surface is skipped; alpha_i = 1 - exp(-sigma_i * delta).
    a2, a3 = 1 - math.exp(-25 * delta), 1 - math.exp(-10 * delta)
    w = [0.0, 0.0, a2, (1 - a2) * a3]
    assert torch.allclose(masked.weights[0, 0, :, 0], torch.tensor(w, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(masked.features[0, 0], torch.tensor([0.0, w[2], w[3]], dtype=torch.float64), atol=1e-9)
    expected_depth = w[2] * depths[0, 0, 2, 0] + w[3] * depths[0, 0, 3, 0]
    assert masked.depth.item() == pytest.approx(expected_depth.item(), abs=1e-9)
    # Without the mask the first surface dominates.
    unmasked = composite_constant_delta(colour, densities, depths, delta=delta)
    assert unmasked.weights[0, 0, 0, 0].item() == pytest.approx(1 - math.exp(-50 * delta), abs=1e-9)
    white = composite_constant_delta(colour, densities, depths, delta=delta, valid=valid, white_background=True)
    assert torch.allclose(white.features - masked.features, (1 - sum(w)) * torch.ones(1, 1, 3, dtype=torch.float64))


# --- GIRAFFE composition ----------------------------------------------------------------------

def test_combine_fields_by_hand() -> None:
    densities = torch.tensor([[2.0, 0.0, 1.0], [6.0, 0.0, 0.0]]).reshape(2, 1, 1, 3, 1)  # [F, N, M, K, 1]
    features = torch.tensor(
        [[[1.0, 0.0], [5.0, 5.0], [0.2, 0.4]], [[0.0, 1.0], [7.0, 7.0], [9.0, 9.0]]]
    ).reshape(2, 1, 1, 3, 2)
    feature, density = combine_fields(features, densities)
    assert density.shape == (1, 1, 3, 1) and feature.shape == (1, 1, 3, 2)
    assert torch.allclose(density[0, 0, :, 0], torch.tensor([8.0, 0.0, 1.0]))
    # Sample 0: (2 * (1, 0) + 6 * (0, 1)) / 8. Sample 1: no density anywhere -> 0, not NaN.
    # Sample 2: only field 0 has density, so its feature passes through unchanged.
    expected = torch.tensor([[0.25, 0.75], [0.0, 0.0], [0.2, 0.4]])
    assert torch.allclose(feature[0, 0], expected)


# --- density activations ----------------------------------------------------------------------

def test_raw_density_activations() -> None:
    x = torch.tensor([-3.0, -0.5, 0.0, 1.0, 4.0], dtype=torch.float64)
    assert torch.equal(density_relu(x), torch.tensor([0.0, 0.0, 0.0, 1.0, 4.0], dtype=torch.float64))
    softplus = torch.tensor([math.log1p(math.exp(v)) for v in x.tolist()], dtype=torch.float64)
    assert torch.allclose(density_softplus(x), softplus)
    shifted = torch.tensor([math.log1p(math.exp(v - 1)) for v in x.tolist()], dtype=torch.float64)
    assert torch.allclose(density_softplus_shifted(x), shifted)
    assert density_softplus_shifted(torch.tensor(1.0)).item() == pytest.approx(math.log(2))
    assert set(DENSITY_ACTIVATIONS) == {"relu", "softplus", "softplus_shifted"}
    assert DENSITY_ACTIVATIONS["softplus_shifted"] is density_softplus_shifted


@pytest.mark.parametrize("alpha", [0.1, 0.01])
def test_sdf_sigmoid_density_integrates_to_a_step(alpha: float) -> None:
    # A ray crossing a plane head-on: sdf = -s for position s along the ray.
    s = torch.linspace(-40 * alpha, 40 * alpha, 8001, dtype=torch.float64)
    sigma = density_from_sdf_sigmoid(-s, alpha)
    assert sigma[4000].item() == pytest.approx(1 / (2 * alpha))  # half the inside value at d = 0
    assert sigma[-1].item() == pytest.approx(1 / alpha, rel=1e-12)
    optical = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumulative_trapezoid(sigma, s)])
    # Closed form: the antiderivative of sigmoid(s / alpha) / alpha is softplus(s / alpha).
    assert torch.allclose(optical, F.softplus(s / alpha) - F.softplus(s[:1] / alpha), atol=1e-6)
    # So the opacity 1 - exp(-tau) is exactly sigmoid(s / alpha): a step of width ~alpha.
    opacity = 1 - torch.exp(-optical)
    assert torch.allclose(opacity, torch.sigmoid(s / alpha), atol=1e-6)
    assert opacity[s < -10 * alpha].max() < 1e-4 and opacity[s > 10 * alpha].min() > 1 - 1e-4


def test_laplace_density_cdf_symmetry() -> None:
    beta = 0.05
    d = torch.linspace(-1.0, 1.0, 201, dtype=torch.float64)
    sigma = density_from_sdf_laplace(d, beta)
    # beta * sigma is the Laplace CDF of -d: Psi(s) + Psi(-s) = 1 and Psi(0) = 1/2.
    assert torch.allclose(sigma + sigma.flip(0), torch.full_like(d, 1 / beta), atol=1e-12)
    assert density_from_sdf_laplace(torch.tensor(0.0), beta).item() == pytest.approx(0.5 / beta)
    outside = d > 0
    assert torch.allclose(sigma[outside], 0.5 * torch.exp(-d[outside] / beta) / beta)
    assert torch.all(sigma[1:] <= sigma[:-1])  # decreasing with the signed distance
    assert sigma[0].item() == pytest.approx(1 / beta, rel=1e-8) and sigma[-1].item() < 1e-7
