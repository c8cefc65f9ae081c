"""Volume compositing: density activations and integrators of the nine seed methods.

Plain-torch references. Samples are laid out as [N, M, K, C]: batch, rays, samples per ray,
channels; depths and densities have C = 1. All integrators return

* ``features`` [N, M, C]: composited colour or feature,
* ``depth`` [N, M, 1]: expected ray distance,
* ``weights`` [N, M, K', 1]: per-interval weights (K' = K - 1 for midpoint integration, else K).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F


class Composite(NamedTuple):
    """Result of compositing samples along rays."""

    features: torch.Tensor
    """[N, M, C] composited colour/feature."""
    depth: torch.Tensor
    """[N, M, 1] expected depth (ray distance)."""
    weights: torch.Tensor
    """[N, M, K', 1] per-sample weights."""


# --- density activations ----------------------------------------------------------------------

def density_relu(raw: torch.Tensor) -> torch.Tensor:
    """ReLU density (VolumeGAN, pi-GAN, GRAF, GIRAFFE, StyleNeRF)."""
    return F.relu(raw)


def density_softplus(raw: torch.Tensor) -> torch.Tensor:
    """Softplus density (GRAM, EpiGRAF)."""
    return F.softplus(raw)


def density_softplus_shifted(raw: torch.Tensor) -> torch.Tensor:
    """softplus(x - 1) (EG3D / MipNeRF): the shift starts training nearly empty."""
    return F.softplus(raw - 1)


def density_from_sdf_sigmoid(sdf: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """StyleSDF: sigma = sigmoid(-d / alpha) / alpha. Smaller alpha gives a sharper surface."""
    return torch.sigmoid(-sdf / alpha) / alpha


def density_from_sdf_laplace(sdf: torch.Tensor, beta: torch.Tensor | float) -> torch.Tensor:
    """VolSDF: sigma = (1 / beta) * LaplaceCDF(-d; 0, beta), the StyleNeRF option."""
    s = -sdf
    half_exp = 0.5 * torch.exp(-s.abs() / beta)
    cdf = torch.where(s <= 0, half_exp, 1 - half_exp)
    return cdf / beta


DENSITY_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": density_relu,
    "softplus": density_softplus,
    "softplus_shifted": density_softplus_shifted,
}
"""Density activations that take only the raw value, by config name."""


# --- integrators ------------------------------------------------------------------------------

def _transmittance_weights(alpha: torch.Tensor) -> torch.Tensor:
    # w_i = alpha_i * prod_{j<i} (1 - alpha_j); the 1e-10 keeps cumprod differentiable at alpha = 1.
    shifted = torch.cat([torch.ones_like(alpha[:, :, :1]), 1 - alpha + 1e-10], -2)
    return alpha * torch.cumprod(shifted, -2)[:, :, :-1]


def composite_midpoint(
    features: torch.Tensor,
    raw_densities: torch.Tensor,
    depths: torch.Tensor,
    *,
    activation: Callable[[torch.Tensor], torch.Tensor] = density_softplus_shifted,
    white_background: bool = False,
) -> Composite:
    """EG3D's ``MipRayMarcher2``: integrate over intervals between consecutive samples.

    Feature, raw density and depth are averaged at interval midpoints; the density activation is
    applied *after* averaging. The depth is the weight-normalised mean, clamped to the sample
    range. Features are mapped from [0, 1] to [-1, 1] at the end.

    Args:
        features: [N, M, K, C] in [0, 1].
        raw_densities: [N, M, K, 1] before activation.
        depths: [N, M, K, 1], sorted along K.
    """
    deltas = depths[:, :, 1:] - depths[:, :, :-1]
    features_mid = (features[:, :, :-1] + features[:, :, 1:]) / 2
    densities_mid = (raw_densities[:, :, :-1] + raw_densities[:, :, 1:]) / 2
    depths_mid = (depths[:, :, :-1] + depths[:, :, 1:]) / 2
    densities_mid = activation(densities_mid)

    alpha = 1 - torch.exp(-densities_mid * deltas)
    weights = _transmittance_weights(alpha)

    composite = torch.sum(weights * features_mid, -2)
    weight_total = weights.sum(2)
    depth = torch.sum(weights * depths_mid, -2) / weight_total
    depth = torch.nan_to_num(depth, float("inf"))
    depth = torch.clamp(depth, torch.min(depths), torch.max(depths))
    if white_background:
        composite = composite + 1 - weight_total
    return Composite(composite * 2 - 1, depth, weights)


def composite_last_delta(
    features: torch.Tensor,
    densities: torch.Tensor,
    depths: torch.Tensor,
    *,
    last_delta: float = 1e10,
    white_background: bool = False,
    last_back: bool = False,
    force_background: bool = False,
    delta_scale: torch.Tensor | None = None,
) -> Composite:
    """NeRF / pi-GAN quadrature: each sample owns the interval to the next; the last one is infinite.

    ``last_back``: the last sample also takes the weight the ray has left (1 - sum of the weights),
    pi-GAN's ``last_back``; ``white_background`` then sees the total before that (pi-GAN's order).
    ``force_background``: StyleSDF's form of it, the last weight replaced by 1 - the sum of the others.

    Args:
        features: [N, M, K, C].
        densities: [N, M, K, 1], already activated (non-negative).
        depths: [N, M, K, 1], sorted along K.
        delta_scale: [N, M, 1] or None; every interval (the last one too) is multiplied by it
            (GRAF / GIRAFFE: depths along the optical axis times the ray's length).

    Returns:
        Composite with K weights; features are not rescaled.
    """
    deltas = depths[:, :, 1:] - depths[:, :, :-1]
    deltas = torch.cat([deltas, torch.full_like(deltas[:, :, :1], last_delta)], -2)
    if delta_scale is not None:
        deltas = deltas * delta_scale.unsqueeze(-2)
    alpha = 1 - torch.exp(-deltas * densities)
    weights = _transmittance_weights(alpha)
    weight_total = weights.sum(2)
    if last_back:
        weights = torch.cat([weights[:, :, :-1], weights[:, :, -1:] + (1 - weight_total)[:, :, None]], -2)
    if force_background:
        weights = torch.cat([weights[:, :, :-1], 1 - weights[:, :, :-1].sum(2, keepdim=True)], -2)
    composite = torch.sum(weights * features, -2)
    depth = torch.sum(weights * depths, -2)
    if white_background:
        composite = composite + 1 - weight_total
    return Composite(composite, depth, weights)


def composite_constant_delta(
    features: torch.Tensor,
    densities: torch.Tensor,
    depths: torch.Tensor,
    *,
    delta: float,
    valid: torch.Tensor | None = None,
    white_background: bool = False,
) -> Composite:
    """GRAM's manifold compositing: every surface point gets the same interval ``delta``.

    Args:
        features: [N, M, K, C] at the K ray-manifold intersections (sorted by depth).
        densities: [N, M, K, 1] activated densities.
        depths: [N, M, K, 1].
        delta: constant interval length (GRAM: 0.04).
        valid: optional [N, M, K, 1] bool; samples where the ray missed a manifold contribute 0.
    """
    alpha = 1 - torch.exp(-densities * delta)
    if valid is not None:
        alpha = alpha * valid.to(alpha.dtype)
    weights = _transmittance_weights(alpha)
    weight_total = weights.sum(2)
    composite = torch.sum(weights * features, -2)
    depth = torch.sum(weights * depths, -2)
    if white_background:
        composite = composite + 1 - weight_total
    return Composite(composite, depth, weights)


def combine_fields(
    features: torch.Tensor, densities: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """GIRAFFE's composition operator for several fields sampled at the same points.

    Args:
        features: [F, N, M, K, C] per-field features.
        densities: [F, N, M, K, 1] per-field activated densities.

    Returns:
        Summed density [N, M, K, 1] and density-weighted mean feature [N, M, K, C].
    """
    total = densities.sum(0)
    weighted = (features * densities).sum(0) / total.clamp_min(1e-8)
    return weighted, total
