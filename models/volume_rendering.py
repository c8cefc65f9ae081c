"""The volume renderer of the pipeline: a density activation and an integrator, each a registered kind.

* densities: raw decoder output (or an SDF) -> density per world unit;
* integrators: samples along rays -> composited features, depth and weights (``ops.compositing``).

:class:`VolumeRenderer` holds the one learnable parameter (StyleSDF's alpha, ``renderer.sdf_alpha``)
and applies both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from models.registry import ComponentConfig, Registry
from ops.compositing import (
    Composite,
    composite_constant_delta,
    composite_last_delta,
    composite_midpoint,
    density_from_sdf_laplace,
    density_from_sdf_sigmoid,
    density_relu,
    density_softplus,
    density_softplus_shifted,
)

DENSITIES: Registry = Registry("density")
INTEGRATORS: Registry = Registry("integrator")


# --- densities ----------------------------------------------------------------------------------

class Density:
    """A density activation. ``sdf``: it reads a signed distance (with a learnable alpha)."""

    sdf: ClassVar[bool] = False

    def __init__(self, config: ComponentConfig):
        self.config = config

    def __call__(self, raw: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        return type(self).activation(raw)


@DENSITIES.register("relu")
class ReLUDensity(Density):
    """max(raw, 0) (NeRF, pi-GAN, GRAF, GIRAFFE, VolumeGAN, StyleNeRF)."""

    activation = staticmethod(density_relu)

    @dataclass
    class Config(ComponentConfig):
        pass


@DENSITIES.register("softplus")
class SoftplusDensity(Density):
    """softplus(raw) (GRAM, EpiGRAF)."""

    activation = staticmethod(density_softplus)

    @dataclass
    class Config(ComponentConfig):
        pass


@DENSITIES.register("softplus_shifted")
class ShiftedSoftplusDensity(Density):
    """softplus(raw - 1) (EG3D)."""

    activation = staticmethod(density_softplus_shifted)

    @dataclass
    class Config(ComponentConfig):
        pass


class _SDFDensity(Density):
    sdf = True
    sdf_density: ClassVar[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]

    @dataclass
    class Config(ComponentConfig):
        alpha_init: float = 0.1
        """The learnable alpha (VolSDF beta) at initialisation."""
        per_world_unit: bool = True
        """Scale the density from per normalised unit to per world unit (x the coordinate scale); False:
        StyleSDF's code, whose density is per normalised unit (8.33x smaller at 2/0.24)."""
        alpha_as_is: bool = False
        """Use alpha as stored (StyleSDF's code); else |alpha| clamped to at least 1e-4."""
        alpha_max: float | None = None
        """Upper bound on |alpha| (None: none, as StyleSDF). A bound keeps the surface from widening
        into fog under the adversarial loss; alpha may still learn to be sharper."""

    def __call__(self, raw: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        return type(self).sdf_density(raw, alpha)


@DENSITIES.register("sdf_sigmoid")
class SDFSigmoidDensity(_SDFDensity):
    """StyleSDF: sigmoid(-d / alpha) / alpha."""

    sdf_density = staticmethod(density_from_sdf_sigmoid)

    @dataclass
    class Config(_SDFDensity.Config):
        pass


@DENSITIES.register("sdf_laplace")
class SDFLaplaceDensity(_SDFDensity):
    """VolSDF: the Laplace CDF of -d with scale beta, over beta."""

    sdf_density = staticmethod(density_from_sdf_laplace)

    @dataclass
    class Config(_SDFDensity.Config):
        pass


# --- integrators --------------------------------------------------------------------------------

class Integrator:
    """Compositing along rays. ``reads_raw``: it applies the density itself (EG3D's midpoint rule);
    ``unit_to_signed``: it already maps [0, 1] colour to [-1, 1] and returns normalised depth."""

    reads_raw: ClassVar[bool] = False
    unit_to_signed: ClassVar[bool] = False
    constant_interval: ClassVar[bool] = False

    def __init__(self, config: ComponentConfig):
        self.config = config

    def importance_weights(self, coarse: Composite) -> torch.Tensor:
        """[N, M, K', 1] weights the importance sampler reads from a coarse composite."""
        return coarse.weights[:, :, 1:]

    def output_depth(self, result: Composite, depths: torch.Tensor) -> torch.Tensor:
        """[N, M, 1] depth of a composite over samples at depths [N, M, K, 1]: the weight-normalised
        expected depth, clamped to the samples' range, empty rays at the far end (EG3D's
        ``MipRayMarcher2`` convention; the plain sum would put empty pixels in front of the camera)."""
        total = result.weights.sum(-2)
        lo, hi = depths.amin(dim=-2), depths.amax(dim=-2)
        depth = torch.where(total > 1e-6, result.depth / total.clamp_min(1e-6), hi)
        return torch.minimum(torch.maximum(depth, lo), hi)


@INTEGRATORS.register("midpoint")
class MidpointIntegrator(Integrator):
    """EG3D's ``MipRayMarcher2``: midpoints of sample pairs, colour to [-1, 1], normalised depth."""

    reads_raw = True
    unit_to_signed = True

    @dataclass
    class Config(ComponentConfig):
        pass

    def importance_weights(self, coarse: Composite) -> torch.Tensor:
        return coarse.weights

    def composite(self, rgb, value, depths, activation, white_background):
        return composite_midpoint(rgb, value, depths, activation=activation, white_background=white_background)


@INTEGRATORS.register("last_delta")
class LastDeltaIntegrator(Integrator):
    """NeRF / pi-GAN: intervals to the next sample, the last one 1e10."""

    @dataclass
    class Config(ComponentConfig):
        last_back: bool = False
        """The last sample takes the weight the ray has left (pi-GAN's ``last_back``; its releases render with it)."""
        depth_sum: bool = False
        """Depth is the plain sum of weight x depth (pi-GAN's ``depth_map``), not weight-normalised and clamped."""
        force_background: bool = False
        """The last weight is 1 - the sum of the others (StyleSDF's ``force_background``; equal to
        ``last_back`` up to round-off, computed as StyleSDF does)."""

    def composite(self, rgb, value, depths, activation, white_background):
        return composite_last_delta(rgb, value, depths, white_background=white_background,
                                    last_back=self.config.last_back, force_background=self.config.force_background)

    def output_depth(self, result: Composite, depths: torch.Tensor) -> torch.Tensor:
        return result.depth if self.config.depth_sum else super().output_depth(result, depths)


@INTEGRATORS.register("constant_delta")
class ConstantDeltaIntegrator(Integrator):
    """GRAM: one constant interval for every sample."""

    constant_interval = True

    @dataclass
    class Config(ComponentConfig):
        delta: float = 0.04
        """The interval (GRAM 0.04)."""
        depth_ratio: bool = False
        """Depth is GRAM's sum(w z) / sum(w), unclamped (rays with sum(w) = 0, NaN there, at their farthest point)."""

    def composite(self, rgb, value, depths, activation, white_background):
        return composite_constant_delta(rgb, value, depths, delta=self.config.delta, white_background=white_background)

    def output_depth(self, result: Composite, depths: torch.Tensor) -> torch.Tensor:
        if self.config.depth_ratio:
            total = result.weights.sum(-2)
            return torch.where(total > 0, result.depth / total, depths.amax(dim=-2))
        return super().output_depth(result, depths)


# --- the renderer -------------------------------------------------------------------------------

class VolumeRenderer(nn.Module):
    """Density activation (with StyleSDF's learnable alpha) and the integrator.

    Args:
        density, integrator: their configs.
        white_back: composite onto white.
        sdf_scale: the decoder's units per world unit (an SDF's density is scaled to per world unit).
    """

    def __init__(self, density: ComponentConfig, integrator: ComponentConfig, white_back: bool = False,
                 sdf_scale: float = 1.0):
        super().__init__()
        self.density_fn = DENSITIES.build(density)
        self.integrator = INTEGRATORS.build(integrator)
        self.sdf = self.density_fn.sdf
        self.white_back = bool(white_back)
        self.constant_delta = float(getattr(integrator, "delta", 0.04))
        if self.sdf:
            self.sdf_alpha = nn.Parameter(torch.tensor(float(density.alpha_init)))
            self.sdf_scale = float(sdf_scale)

    def activate(self, raw: torch.Tensor) -> torch.Tensor:
        """Density from a raw decoder output (not for SDF models)."""
        return self.density_fn(raw)

    def density(self, sdf: torch.Tensor) -> torch.Tensor:
        """Density per world unit from an SDF in the decoder's normalised units (alpha kept positive).

        The SDF, alpha and StyleSDF's sphere prior live in the units the decoder sees (world x
        ``sdf_scale``), so the density per normalised unit is scaled to per world unit, the unit
        of the ray intervals. With that, sigmoid(-d/alpha)/alpha puts the expected depth of an exact
        SDF exactly on its zero level (the optical depth is softplus(u/a), a = alpha/scale)."""
        config = self.density_fn.config
        alpha = self.sdf_alpha if config.alpha_as_is else self.sdf_alpha.abs().clamp_min(1e-4)
        if config.alpha_max is not None:
            alpha = alpha.clamp_max(config.alpha_max)
        density = self.density_fn(sdf, alpha)
        return density * self.sdf_scale if config.per_world_unit else density

    def to_density(self, raw: torch.Tensor) -> torch.Tensor:
        """Density from the decoder's raw output, whichever kind it is."""
        return self.density(raw) if self.sdf else self.activate(raw)

    def noisy(self, raw: torch.Tensor, std: float) -> torch.Tensor:
        return raw + torch.randn_like(raw) * std if self.training and std > 0 else raw

    def composite(self, rgb: torch.Tensor, raw: torch.Tensor, depths: torch.Tensor) -> Composite:
        """rgb [N, M, K, C], raw [N, M, K, 1] (density or SDF), depths [N, M, K, 1]."""
        if self.integrator.reads_raw:
            return self.integrator.composite(rgb, raw, depths, self.to_density, self.white_back)
        return self.integrator.composite(rgb, self.to_density(raw), depths, None, self.white_back)
