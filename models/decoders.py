"""Feature decoders (point features -> density and colour/feature) of the non-EG3D presets.

Sources are the "Decoder" rows of ``docs/methods.md`` (shared copy: ``/work/shared/docs/methods.md``)
§2 and §3.2-3.8; pi-GAN's own decoder is :class:`ops.siren.SirenFiLMDecoder`.

* :class:`ModulatedMLPDecoder`: VolumeGAN (§3.2: 4 modulated 1x1 convs of width 256, LReLU, one w
  per layer, linear density head and linear 512-d feature head; input = 32-ch volume feature + 63-d
  PE = 95) and StyleNeRF's foreground (§3.8: 8 modulated FC of width 128, LReLU, PE(10), feature 256).
* :class:`NeRFMLPDecoder`: GRAF (§3.6: 8 x 256 ReLU, skip at 4, PE 10/4, z_shape = z_app = 128,
  RGB out) and GIRAFFE's object field (§3.7: hidden 128, skip at 4, z_shape = z_app = 256,
  feature out 256).
* :class:`GramSirenDecoder`: GRAM's ``GramRF`` (§3.3).
* :class:`StyleSDFSirenDecoder`: StyleSDF's ``SirenGenerator`` (§3.4).

All decoders take batched point sets, N identities x M points, and return raw heads unless the
method's decoder itself applies the activation (GRAM's widened sigmoid, StyleSDF's RGB sigmoid);
density activations live in the renderer (methods.md §4 note 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn as nn

from models.discriminator import Conv2dLayer
from models.registry import ComponentConfig, Registry
from models.siren import FiLMSiren, SirenFiLMDecoder
from models.stylegan2 import FullyConnectedLayer
from ops.siren import (
    PIGAN_BOX_SIDE,
    PIGAN_DEPTH,
    PIGAN_WIDTH,
    check_film_params,
    encoded_size,
    film_frequencies,
    positional_encoding,
    siren_init_,
)
from ops.stylegan2 import bias_act, modulated_conv2d, modulated_matmul
from ops.stylenerf import pi_positional_encoding

GRAM_RGB_WIDEN = 1e-3  # rgb = sigmoid * (1 + 2 eps) - eps, methods.md §3.3 "RGB: sigmoid·(1 + 2·1e-3) − 1e-3"
STYLESDF_BOX_SIDE = 0.24  # far - near = 2 x 0.12; points x 2/(far - near), methods.md §3.4
STYLESDF_BETA_SCALE = 0.25  # FiLM beta = 0.25 Linear(w), methods.md §3.4


def _check_points(name: str, x: torch.Tensor, n: int | None, features: int) -> None:
    if x.ndim != 3 or x.shape[-1] != features or (n is not None and x.shape[0] != n):
        want = ["N" if n is None else n, "M", features]
        raise ValueError(f"{name} must be {want}, got {list(x.shape)}")


def _check_ws(ws: torch.Tensor, n: int, num_ws: int, w_dim: int) -> None:
    if tuple(ws.shape) != (n, num_ws, w_dim):
        raise ValueError(f"ws must be {[n, num_ws, w_dim]}, got {list(ws.shape)}")


# --- EG3D / EpiGRAF ---------------------------------------------------------------------------

OSG_ACTIVATIONS = {"softplus": nn.Softplus, "lrelu": lambda: nn.LeakyReLU(0.2)}
"""Hidden activation of the OSG decoder: 'softplus' (EG3D) or 'lrelu' (EpiGRAF)."""


class OSGDecoder(nn.Module):
    """EG3D's small MLP: averaged tri-plane feature -> (raw sigma, 32-channel feature in [0, 1])."""

    def __init__(self, n_features: int, hidden_dim: int = 64, output_dim: int = 32, lr_multiplier: float = 1.0,
                 activation: str = "softplus"):
        """``activation``: 'softplus' (EG3D) or 'lrelu' (EpiGRAF's variant of this decoder)."""
        super().__init__()
        self.hidden_dim = hidden_dim
        self.net = nn.Sequential(
            FullyConnectedLayer(n_features, hidden_dim, lr_multiplier=lr_multiplier),
            OSG_ACTIVATIONS[activation](),
            FullyConnectedLayer(hidden_dim, 1 + output_dim, lr_multiplier=lr_multiplier),
        )

    def forward(self, sampled_features: torch.Tensor, ray_directions: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """sampled_features [N, P, M, C] -> {'rgb': [N, M, 32], 'sigma': [N, M, 1]} (sigma raw)."""
        del ray_directions  # the OSG decoder is view-independent
        x = sampled_features.mean(1)
        n, m, c = x.shape
        x = self.net(x.reshape(n * m, c)).view(n, m, -1)
        rgb = torch.sigmoid(x[..., 1:]) * (1 + 2 * 0.001) - 0.001  # MipNeRF's widened sigmoid
        return {"rgb": rgb, "sigma": x[..., 0:1]}


# --- VolumeGAN / StyleNeRF -------------------------------------------------------------------

class ModulatedLinear(nn.Module):
    """StyleGAN2 modulated, demodulated 1x1 convolution + bias + LeakyReLU(0.2) x sqrt(2).

    Same parameterisation as :class:`models.stylegan2.SynthesisLayer` (affine with bias 1,
    N(0, 1) weight, zero bias) with a 1x1 kernel and no noise; points run along the height axis.
    """

    def __init__(self, in_features: int, out_features: int, w_dim: int, activation: str = "lrelu",
                 fused: bool = True) -> None:
        super().__init__()
        self.fused = fused
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.affine = FullyConnectedLayer(w_dim, in_features, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_features, in_features, 1, 1]))
        self.bias = nn.Parameter(torch.zeros([out_features]))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x [N, in, M, 1] (channels first), w [N, w_dim] -> [N, out, M, 1]."""
        styles = self.affine(w)
        x = modulated_conv2d(x, self.weight, styles, demodulate=True, fused=self.fused)
        return bias_act(x, self.bias.to(x.dtype), act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class ModulatedMLPDecoder(nn.Module):
    """VolumeGAN / StyleNeRF decoder: ``num_layers`` modulated FC layers, one w each, then two linear heads.

    Defaults are VolumeGAN's (§3.2); StyleNeRF's foreground is ``hidden=128, num_layers=8,
    out_features=256`` (§3.8). Heads are equalized-lr linear layers (zero bias).
    """

    def __init__(self, in_features: int, w_dim: int, hidden: int = 256, num_layers: int = 4, out_features: int = 512,
                 fused: bool = True) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.in_features = in_features
        self.w_dim = w_dim
        self.hidden = hidden
        self.num_layers = num_layers
        self.out_features = out_features
        self.fused = fused
        self.layers = nn.ModuleList(
            ModulatedLinear(in_features if i == 0 else hidden, hidden, w_dim, fused=fused) for i in range(num_layers)
        )
        self.sigma_head = FullyConnectedLayer(hidden, 1)
        self.rgb_head = FullyConnectedLayer(hidden, out_features)

    @property
    def num_ws(self) -> int:
        """One w per modulated layer."""
        return self.num_layers

    def forward(self, features: torch.Tensor, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """
        Args:
            features: [N, M, in_features] point features (e.g. volume feature ++ PE(xyz)).
            ws: [N, num_ws, w_dim]; layer i uses ``ws[:, i]``.

        Returns:
            ``sigma`` [N, M, 1] and ``rgb`` [N, M, out_features], both raw.
        """
        _check_points("features", features, None, self.in_features)
        n, m = features.shape[:2]
        _check_ws(ws, n, self.num_ws, self.w_dim)
        # Channels first with points on the height axis, so a 1x1 modulated conv is a per-point FC.
        x = features.transpose(1, 2).unsqueeze(-1)
        for i, layer in enumerate(self.layers):
            x = layer(x, ws[:, i])
        h = x.squeeze(-1).transpose(1, 2).reshape(n * m, self.hidden)
        if not self.fused:  # the official order: the heads read a contiguous [points, hidden] matrix
            h = h.contiguous()
        sigma = self.sigma_head(h).reshape(n, m, 1)
        rgb = self.rgb_head(h).reshape(n, m, self.out_features)
        return {"sigma": sigma, "rgb": rgb}


# --- GRAF / GIRAFFE --------------------------------------------------------------------------

class NeRFMLPDecoder(nn.Module):
    """GRAF / GIRAFFE conditional NeRF MLP (methods.md §3.6, §3.7).

    ``input = [PE(x), z_shape]`` -> ``num_layers`` ReLU FC of width ``hidden``; the output of layer
    index ``skip`` (0-based, NeRF's ``skips=[4]``: after 5 layers) is concatenated as
    ``[input, h]`` before the next layer. ``sigma = Linear(h)``; colour branch
    ``Linear(h)`` (no activation) ++ ``[PE(d), z_app]`` -> ReLU FC(``view_hidden``) -> ``out_features``.
    Layers keep PyTorch's default init (NeRF / GRAF do not re-initialise).

    ``view_hidden`` defaults to ``hidden // 2`` (NeRF / GRAF); GIRAFFE keeps ``hidden`` there.
    """

    def __init__(
        self,
        point_features: int,
        dir_features: int,
        z_shape_dim: int,
        z_app_dim: int,
        hidden: int = 256,
        num_layers: int = 8,
        skip: int = 4,
        out_features: int = 3,
        *,
        view_hidden: int | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= skip < num_layers - 1:
            raise ValueError(f"skip must be in [0, num_layers - 2] = [0, {num_layers - 2}], got {skip}")
        self.point_features = point_features
        self.dir_features = dir_features
        self.z_shape_dim = z_shape_dim
        self.z_app_dim = z_app_dim
        self.hidden = hidden
        self.skip = skip
        self.out_features = out_features
        view_hidden = hidden // 2 if view_hidden is None else view_hidden
        in_dim = point_features + z_shape_dim
        self.layers = nn.ModuleList(
            nn.Linear(in_dim if i == 0 else hidden + (in_dim if i == skip + 1 else 0), hidden) for i in range(num_layers)
        )
        self.sigma_head = nn.Linear(hidden, 1)
        self.feature_linear = nn.Linear(hidden, hidden)
        self.view_linear = nn.Linear(hidden + dir_features + z_app_dim, view_hidden)
        self.rgb_head = nn.Linear(view_hidden, out_features)

    def forward(
        self,
        point_features: torch.Tensor,
        dir_features: torch.Tensor,
        z_shape: torch.Tensor,
        z_app: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            point_features: [N, M, point_features], already positionally encoded.
            dir_features: [N, M, dir_features], already encoded.
            z_shape: [N, z_shape_dim].
            z_app: [N, z_app_dim].

        Returns:
            ``sigma`` [N, M, 1] and ``rgb`` [N, M, out_features], both raw.
        """
        _check_points("point_features", point_features, None, self.point_features)
        n, m = point_features.shape[:2]
        _check_points("dir_features", dir_features, n, self.dir_features)
        if dir_features.shape[1] != m:
            raise ValueError(f"dir_features must have M = {m} points, got {dir_features.shape[1]}")
        if tuple(z_shape.shape) != (n, self.z_shape_dim) or tuple(z_app.shape) != (n, self.z_app_dim):
            raise ValueError(
                f"z_shape/z_app must be {[n, self.z_shape_dim]} and {[n, self.z_app_dim]}, "
                f"got {list(z_shape.shape)} and {list(z_app.shape)}"
            )
        inputs = torch.cat([point_features, z_shape.unsqueeze(1).expand(n, m, -1)], dim=-1)
        h = inputs
        for i, layer in enumerate(self.layers):
            h = torch.relu(layer(h))
            if i == self.skip:
                h = torch.cat([inputs, h], dim=-1)
        sigma = self.sigma_head(h)
        view_in = torch.cat([self.feature_linear(h), dir_features, z_app.unsqueeze(1).expand(n, m, -1)], dim=-1)
        rgb = self.rgb_head(torch.relu(self.view_linear(view_in)))
        return {"sigma": sigma, "rgb": rgb}


# --- GRAM ------------------------------------------------------------------------------------

class GramSirenDecoder(nn.Module):
    """GRAM's ``GramRF`` radiance decoder (methods.md §3.3).

    points x 2/box_side -> ``depth`` FiLM-SIREN layers h_0..h_{depth-1}. Every layer but the first
    has a linear sigma head and a linear RGB head (``depth - 1`` of each); sigma is the sum of the
    sigma heads. RGB sums ``rgb_head[i-1](h_i)`` for ``i < depth - 1`` and, for the last layer,
    ``rgb_head[-1](FiLMSiren(cat([direction, h])))``. ``rgb = sigmoid(sum) (1 + 2e-3) - 1e-3``;
    sigma is raw (the renderer applies softplus). Init: ``frequency_init(25)`` everywhere, first
    layer ``U(-1/n, 1/n)``. FiLM slices: ``depth + 1``, the last for the colour layer.
    """

    def __init__(self, width: int = PIGAN_WIDTH, depth: int = PIGAN_DEPTH, box_side: float = PIGAN_BOX_SIDE) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be >= 2 (layer 0 has no heads), got {depth}")
        self.width = width
        self.depth = depth
        self.coordinate_scale = 2.0 / box_side
        self.layers = nn.ModuleList(FiLMSiren(3 if i == 0 else width, width, is_first=(i == 0)) for i in range(depth))
        self.sigma_heads = nn.ModuleList(siren_init_(nn.Linear(width, 1)) for _ in range(depth - 1))
        self.rgb_heads = nn.ModuleList(siren_init_(nn.Linear(width, 3)) for _ in range(depth - 1))
        self.color_film = FiLMSiren(3 + width, width)

    @property
    def num_film_layers(self) -> int:
        """How many (frequency, phase) slices the decoder consumes: ``depth + 1``."""
        return self.depth + 1

    def forward(
        self,
        points: torch.Tensor,
        directions: torch.Tensor,
        frequencies: torch.Tensor,
        phases: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            points: [N, M, 3] world points (manifold intersections).
            directions: [N, M, 3] ray directions (not renormalised here).
            frequencies: [N, depth + 1, width] **raw** mapper output (``15 f + 30`` applied here).
            phases: [N, depth + 1, width].

        Returns:
            ``sigma`` [N, M, 1] raw and ``rgb`` [N, M, 3] in (-1e-3, 1 + 1e-3).
        """
        check_film_params(frequencies, phases, (points.shape[0], self.num_film_layers, self.width))
        _check_points("points", points, None, 3)
        _check_points("directions", directions, points.shape[0], 3)
        freq = film_frequencies(frequencies)
        x = points * self.coordinate_scale
        sigma = 0
        rgb = 0
        for i, layer in enumerate(self.layers):
            x = layer(x, freq[:, i], phases[:, i])
            if i == 0:
                continue
            sigma = sigma + self.sigma_heads[i - 1](x)
            if i == self.depth - 1:
                # Only the last RGB head sees the view direction.
                color = self.color_film(torch.cat([directions, x], dim=-1), freq[:, -1], phases[:, -1])
                rgb = rgb + self.rgb_heads[i - 1](color)
            else:
                rgb = rgb + self.rgb_heads[i - 1](x)
        rgb = torch.sigmoid(rgb) * (1 + 2 * GRAM_RGB_WIDEN) - GRAM_RGB_WIDEN
        return {"sigma": sigma, "rgb": rgb}


# --- StyleSDF --------------------------------------------------------------------------------

class StyleFiLMSiren(nn.Module):
    """FiLM-SIREN layer whose FiLM comes from w: ``sin(gamma (W x + b) + beta)``.

    ``gamma = 15 Linear_g(w) + 30`` and ``beta = 0.25 Linear_b(w)`` (methods.md §3.4). methods.md
    gives no init for the two affine layers; we follow StyleSDF's code (``[S] volume_renderer.py``):
    Kaiming-normal fan-in weights with LReLU(0.2) gain, x 0.25, and PyTorch's default bias.
    """

    def __init__(self, in_features: int, out_features: int, w_dim: int, is_first: bool = False) -> None:
        super().__init__()
        self.film = FiLMSiren(in_features, out_features, is_first=is_first)
        self.gamma = nn.Linear(w_dim, out_features)
        self.beta = nn.Linear(w_dim, out_features)
        with torch.no_grad():
            for affine in (self.gamma, self.beta):
                nn.init.kaiming_normal_(affine.weight, a=0.2, mode="fan_in", nonlinearity="leaky_relu")
                affine.weight.mul_(0.25)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x [N, M, in], w [N, w_dim] -> [N, M, out]."""
        return self.film(x, film_frequencies(self.gamma(w)), STYLESDF_BETA_SCALE * self.beta(w))


class StyleSDFSirenDecoder(nn.Module):
    """StyleSDF's ``SirenGenerator`` (methods.md §3.4): SDF, view-dependent RGB and a feature.

    points x coordinate_scale -> ``depth`` :class:`StyleFiLMSiren` layers (layer i uses
    ``ws[:, i]``) -> h; ``sdf = Linear(h)``; ``v = StyleFiLMSiren(cat([h, direction]), ws[:, -1])``;
    ``rgb = sigmoid(Linear(v))``; ``feature = v`` when ``feature_dim == width`` (StyleSDF outputs
    the view activation itself, 256 = width), else ``Linear(v)`` to ``feature_dim`` (raw). Linear
    heads use ``frequency_init(25)``; the first FiLM layer ``U(-1/n, 1/n)``. Passing the same w
    for every layer reproduces StyleSDF, which feeds one w to all layers.
    """

    def __init__(
        self,
        w_dim: int = 256,
        width: int = PIGAN_WIDTH,
        depth: int = PIGAN_DEPTH,
        feature_dim: int = 256,
        coordinate_scale: float = 2.0 / STYLESDF_BOX_SIDE,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.w_dim = w_dim
        self.width = width
        self.depth = depth
        self.feature_dim = feature_dim
        self.coordinate_scale = coordinate_scale
        self.layers = nn.ModuleList(
            StyleFiLMSiren(3 if i == 0 else width, width, w_dim, is_first=(i == 0)) for i in range(depth)
        )
        self.sdf_head = siren_init_(nn.Linear(width, 1))
        self.view_film = StyleFiLMSiren(width + 3, width, w_dim)
        self.rgb_head = siren_init_(nn.Linear(width, 3))
        self.feature_head = None if feature_dim == width else siren_init_(nn.Linear(width, feature_dim))

    @property
    def num_ws(self) -> int:
        """One w per FiLM layer plus one for the view layer: ``depth + 1``."""
        return self.depth + 1

    def forward(self, points: torch.Tensor, directions: torch.Tensor, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """
        Args:
            points: [N, M, 3] world points (differentiable: the eikonal loss takes d sdf / d points).
            directions: [N, M, 3] normalised view directions (not renormalised here).
            ws: [N, depth + 1, w_dim].

        Returns:
            ``sdf`` [N, M, 1], ``rgb`` [N, M, 3] in (0, 1) and ``feature`` [N, M, feature_dim].
        """
        _check_points("points", points, None, 3)
        _check_points("directions", directions, points.shape[0], 3)
        _check_ws(ws, points.shape[0], self.num_ws, self.w_dim)
        x = points * self.coordinate_scale
        for i, layer in enumerate(self.layers):
            x = layer(x, ws[:, i])
        sdf = self.sdf_head(x)
        v = self.view_film(torch.cat([x, directions], dim=-1), ws[:, -1])
        rgb = torch.sigmoid(self.rgb_head(v))
        feature = v if self.feature_head is None else self.feature_head(v)
        return {"sdf": sdf, "rgb": rgb, "feature": feature}


__all__ = [
    "GramSirenDecoder",
    "ModulatedLinear",
    "ModulatedMLPDecoder",
    "NeRFMLPDecoder",
    "StyleFiLMSiren",
    "StyleSDFSirenDecoder",
]


# --- registered decoder components -----------------------------------------------------------
#
# One call shape for every kind: (features [N, M, C], directions [N, M, 3], ws slice, codes)
# -> {'rgb' [N, M, channels], 'raw' [N, M, 1] (raw density, or the SDF when ``outputs_sdf``)}.
# Each wraps its network as ``.net``, so parameter names are ``decoder.net.*``.

DECODERS: Registry = Registry("decoder")


class Decoder(nn.Module):
    """Facts every decoder kind declares."""

    needs_ws: ClassVar[str | None] = None
    """The ws it reads from the mapping: 'stylegan', 'film', 'z' (its codes), or None."""
    reads_coordinates: ClassVar[bool] = False
    """It reads raw 3-d coordinates, so it needs an embedder that gives them."""
    outputs_sdf: ClassVar[bool] = False
    """'raw' is a signed distance (needs an SDF density)."""
    coordinate_alternative: ClassVar[str | None] = None
    """The kind that replaces this one on an embedder without coordinates (ablation swaps)."""
    preferred_density: ClassVar[str] = "softplus"
    """The density a swap to this decoder brings when the old one does not fit (SDF or not)."""
    reset_on_swap: ClassVar[tuple[str, ...]] = ()
    """Fields a swap to this kind sets to its defaults instead of keeping the old decoder's."""
    unit_range: bool = True
    """The colour is in [0, 1] (it becomes [-1, 1] after compositing)."""
    num_ws: int = 0
    """ws this decoder reads."""
    channels: int = 3
    """Channels of 'rgb' (colour or feature) composited along rays."""
    codes_per_field: int = 0
    """z entries one field of this decoder reads (shape + appearance codes)."""

    @classmethod
    def film_width(cls, config: ComponentConfig) -> int:
        """Width of the FiLM layers a 'film' mapping drives (0 for other kinds)."""
        return 0

    @classmethod
    def codes_dim(cls, config: ComponentConfig) -> int:
        """z entries one field of this decoder reads (shape + appearance codes; 0 if none)."""
        return 0

    def codes(self, z: torch.Tensor, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(shape, appearance) codes of the field whose codes start at ``offset`` in z."""
        return None


@DECODERS.register("osg")
class OSGFieldDecoder(Decoder):
    """EG3D's (and EpiGRAF's) small MLP on tri-plane features (view-independent)."""

    @dataclass
    class Config(ComponentConfig):
        hidden: int = 64
        """Hidden width."""
        out_features: int = 32
        """Colour/feature channels (EG3D 32, EpiGRAF 3)."""
        activation: str = "softplus"
        """Hidden activation: 'softplus' (EG3D) or 'lrelu' (EpiGRAF)."""
        lr_multiplier: float = 1.0
        """Learning-rate multiplier of the two layers (EG3D's ``decoder_lr_mul``)."""

    reset_on_swap = ("hidden",)

    def __init__(self, config: Config, in_features: int, w_dim: int):
        super().__init__()
        self.net = OSGDecoder(in_features, hidden_dim=config.hidden, output_dim=config.out_features,
                              activation=config.activation, lr_multiplier=config.lr_multiplier)
        self.channels = config.out_features

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(hidden=16, out_features=config.out_features if config.out_features == 3 else 16)

    def forward(self, features, directions, ws, codes=None):
        out = self.net(features.unsqueeze(1), directions)
        return {"rgb": out["rgb"], "raw": out["sigma"]}


@DECODERS.register("osg_sdf")
class OSGSDFFieldDecoder(OSGFieldDecoder):
    """EG3D's small MLP on tri-plane features with its density channel read as a signed distance in
    world units (an SDF head on tri-planes, as StyleSDF reads its SIREN's output). With an SDF
    density and the eikonal term the tri-planes hold a surface instead of fog; the preset that
    uses it (``eg3d-sdf-tiny``) is ours, not an official EG3D configuration."""

    outputs_sdf = True
    preferred_density = "sdf_sigmoid"

    @dataclass
    class Config(OSGFieldDecoder.Config):
        pass


@DECODERS.register("epigraf_mlp")
class EpiGRAFMLPDecoder(Decoder):
    """EpiGRAF's tri-plane MLP (``TriPlaneMLP`` without view conditioning): equalized-lr FCs, leaky
    ReLU(0.2) x sqrt(2) between them, the last linear; outputs [colour, raw sigma] (sigma last) with
    the colour linear (no sigmoid, not remapped to [-1, 1])."""

    unit_range = False

    @dataclass
    class Config(ComponentConfig):
        hidden: int = 64
        """Hidden width (``tri_plane.mlp.hid_dim``)."""
        layers: int = 2
        """Fully connected layers (``tri_plane.mlp.n_layers``, at least 2)."""
        out_features: int = 3
        """Colour channels."""

    reset_on_swap = ("hidden",)

    def __init__(self, config: Config, in_features: int, w_dim: int):
        super().__init__()
        if config.layers < 2:
            raise ValueError(f"the EpiGRAF MLP needs at least 2 layers, got {config.layers}")
        dims = [in_features] + [config.hidden] * (config.layers - 1) + [config.out_features + 1]
        self.net = nn.Sequential(*(FullyConnectedLayer(a, b, activation="lrelu" if i < len(dims) - 2 else "linear")
                                   for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))))
        self.channels = config.out_features

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(hidden=16)

    def forward(self, features, directions, ws, codes=None):
        n, m, c = features.shape
        x = self.net(features.reshape(n * m, c)).view(n, m, -1)
        return {"rgb": x[..., :-1], "raw": x[..., -1:]}


class _FiLMDecoder(Decoder):
    needs_ws = "film"

    @dataclass
    class Config(ComponentConfig):
        hidden: int = 256
        """FiLM-SIREN width."""
        layers: int = 8
        """FiLM-SIREN layers."""

    @classmethod
    def film_width(cls, config: Config) -> int:
        return config.hidden

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(hidden=16, layers=min(config.layers, 3))

    def forward(self, features, directions, ws, codes=None):
        frequencies, phases = ws.chunk(2, dim=-1)
        out = self.net(features, directions, frequencies, phases)
        return {"rgb": out["rgb"], "raw": out["sigma"]}


@DECODERS.register("siren")
class SirenDecoder(_FiLMDecoder):
    """pi-GAN's FiLM-SIREN (reads any point features)."""

    @dataclass
    class Config(_FiLMDecoder.Config):
        pass

    def __init__(self, config: Config, in_features: int, w_dim: int):
        super().__init__()
        self.net = SirenFiLMDecoder(width=config.hidden, depth=config.layers, in_features=in_features, box_side=2.0)
        self.num_ws = self.net.num_film_layers


def _need_coordinates(kind: str, in_features: int) -> None:
    if in_features != 3:
        raise ValueError(f"decoder {kind!r} reads 3-d coordinates; this embedder gives {in_features} features "
                         "(use the 'coordinate' or 'manifold' embedder, or the 'siren' decoder)")


@DECODERS.register("gram_siren")
class GramSirenFieldDecoder(_FiLMDecoder):
    """GRAM's GramRF (summed per-layer heads) on coordinates."""

    reads_coordinates = True
    coordinate_alternative = "siren"

    @dataclass
    class Config(_FiLMDecoder.Config):
        pass

    def __init__(self, config: Config, in_features: int, w_dim: int):
        super().__init__()
        _need_coordinates(self.kind, in_features)
        self.net = GramSirenDecoder(width=config.hidden, depth=config.layers, box_side=2.0)
        self.num_ws = self.net.num_film_layers


@DECODERS.register("sdf_siren")
class SDFSirenFieldDecoder(Decoder):
    """StyleSDF's SIREN: an SDF, RGB and a feature vector composited beside it."""

    needs_ws = "stylegan"
    reads_coordinates = True
    outputs_sdf = True
    preferred_density = "sdf_sigmoid"

    @dataclass
    class Config(ComponentConfig):
        hidden: int = 256
        """Width."""
        layers: int = 8
        """FiLM-SIREN layers."""
        feature_dim: int = 256
        """Feature channels composited beside RGB."""

    def __init__(self, config: Config, in_features: int, w_dim: int):
        super().__init__()
        _need_coordinates(self.kind, in_features)
        self.net = StyleSDFSirenDecoder(w_dim=w_dim, width=config.hidden, depth=config.layers,
                                        feature_dim=config.feature_dim, coordinate_scale=1.0)
        self.num_ws = self.net.num_ws
        self.channels = 3 + config.feature_dim

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(hidden=16, layers=min(config.layers, 3), feature_dim=8)

    def forward(self, features, directions, ws, codes=None):
        out = self.net(features, directions, ws)
        return {"rgb": torch.cat([out["rgb"], out["feature"]], dim=-1), "raw": out["sdf"]}


@DECODERS.register("modulated_mlp")
class ModulatedMLPFieldDecoder(Decoder):
    """VolumeGAN's / StyleNeRF's style-modulated MLP with a feature head."""

    needs_ws = "stylegan"
    unit_range = False

    @dataclass
    class Config(ComponentConfig):
        hidden: int = 256
        """Hidden width."""
        layers: int = 4
        """Modulated layers."""
        out_features: int = 512
        """Feature channels."""
        fused_modulation: bool = True
        """Fold the styles into the weights (one grouped conv); False scales the activations around a shared
        conv and feeds the heads a contiguous matrix, the official VolumeGAN order of operations (same maths,
        other float32 round-off)."""

    def __init__(self, config: Config, in_features: int, w_dim: int):
        super().__init__()
        self.net = ModulatedMLPDecoder(in_features, w_dim, hidden=config.hidden, num_layers=config.layers,
                                       out_features=config.out_features, fused=config.fused_modulation)
        self.num_ws = self.net.num_ws
        self.channels = config.out_features

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(hidden=16, layers=min(config.layers, 3),
                              out_features=config.out_features if config.out_features == 3 else 16)

    def forward(self, features, directions, ws, codes=None):
        out = self.net(features, ws)
        return {"rgb": out["rgb"], "raw": out["sigma"]}


@DECODERS.register("nerf_mlp")
class NeRFMLPFieldDecoder(Decoder):
    """GRAF's / GIRAFFE's NeRF MLP conditioned on shape and appearance codes read from z."""

    needs_ws = "z"

    @dataclass
    class Config(ComponentConfig):
        hidden: int = 256
        """Hidden width."""
        layers: int = 8
        """Hidden layers."""
        skip: int = 4
        """Skip connection after this layer."""
        out_features: int = 3
        """Colour (3: sigmoid RGB) or feature channels."""
        z_shape_dim: int = 128
        """Shape code size (read from z)."""
        z_app_dim: int = 128
        """Appearance code size."""
        dir_frequencies: int = 0
        """Positional-encoding frequencies of the view direction."""
        view_directions: bool = True
        """The colour branch reads PE(view direction); False: only [feature, z_app] (GRAF's ``use_viewdirs``
        off, its cub_64 release)."""

    def __init__(self, config: Config, in_features: int, w_dim: int):
        super().__init__()
        self.dir_frequencies = int(config.dir_frequencies)
        self.view_directions = bool(config.view_directions)
        self.shape_dim, self.app_dim = int(config.z_shape_dim), int(config.z_app_dim)
        self.codes_per_field = self.shape_dim + self.app_dim
        dir_features = encoded_size(self.dir_frequencies) if self.view_directions else 0
        self.net = NeRFMLPDecoder(in_features, dir_features, config.z_shape_dim, config.z_app_dim,
                                  hidden=config.hidden, num_layers=config.layers,
                                  skip=max(min(config.skip, config.layers - 2), 0), out_features=config.out_features)
        self.channels = config.out_features
        self.unit_range = config.out_features == 3

    @classmethod
    def codes_dim(cls, config: Config) -> int:
        return config.z_shape_dim + config.z_app_dim

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(hidden=16, layers=min(config.layers, 3), skip=1, z_shape_dim=8, z_app_dim=8,
                              out_features=config.out_features if config.out_features == 3 else 16,
                              dir_frequencies=min(config.dir_frequencies, 2))

    def codes(self, z: torch.Tensor, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        split = offset + self.shape_dim
        return z[:, offset:split], z[:, split:split + self.app_dim]

    def forward(self, features, directions, ws, codes=None):
        z_shape, z_app = codes
        seen = positional_encoding(directions, self.dir_frequencies) if self.view_directions else directions[..., :0]
        out = self.net(features, seen, z_shape, z_app)
        rgb = torch.sigmoid(out["rgb"]) if self.unit_range else out["rgb"]
        return {"rgb": rgb, "raw": out["sigma"]}


@DECODERS.register("giraffe_mlp")
class GiraffeFieldDecoder(Decoder):
    """GIRAFFE's own field network (``im2scene/giraffe/models/decoder.py``), parameters named as there.

    Reads raw points p [N, M, 3] (the object's box frame, or the rotated world for the background):
    with ``e = PE_L(p / downscale)`` (``sin/cos(2^k pi x)``, no raw input),
    ``h = ReLU(fc_in(e) + fc_z(z_shape))``, then ``h = ReLU(blocks.i(h))`` for the ``blocks - 1``
    blocks, adding ``fc_z_skips.j(z_shape) + fc_p_skips.j(e)`` (no activation) after block ``s - 1``
    for each skip s; ``sigma = sigma_out(h)`` (raw);
    ``feature = feat_out(ReLU(feat_view(h) + fc_z_view(z_app) + fc_view(PE_Ld(d / |d| / downscale))))``.
    """

    needs_ws = "z"
    reads_coordinates = True
    preferred_density = "relu"

    @dataclass
    class Config(ComponentConfig):
        hidden: int = 128
        """Hidden width (``hidden_size``)."""
        blocks: int = 8
        """``n_blocks``: ``fc_in`` plus ``blocks - 1`` hidden layers."""
        skips: tuple[int, ...] = (4,)
        """Skip additions after these blocks (``skips``; the background has none)."""
        out_features: int = 256
        """Feature channels (``rgb_out_dim``)."""
        z_shape_dim: int = 256
        """Shape code size."""
        z_app_dim: int = 256
        """Appearance code size."""
        pe_frequencies: int = 10
        """Positional-encoding frequencies of points (``n_freq_posenc``)."""
        dir_frequencies: int = 4
        """Positional-encoding frequencies of view directions (``n_freq_posenc_views``)."""
        downscale: float = 2.0
        """Points and unit directions are divided by this before encoding (``downscale_p_by``; background 12)."""
        sigma_bias_init: float | None = None
        """Initial ``sigma_out`` bias (None: PyTorch's default draw, as GIRAFFE; the ``-tiny`` reduction
        starts at 1 so that an untrained CPU-size model has density to show)."""

        def __post_init__(self):
            self.skips = tuple(int(s) for s in self.skips)

    def __init__(self, config: Config, in_features: int = 3, w_dim: int = 0):
        super().__init__()
        c = config
        if c.blocks < 1 or any(not 0 < s < c.blocks - 1 for s in c.skips):
            raise ValueError(f"decoder skips {list(c.skips)} must lie in [1, blocks - 2] = [1, {c.blocks - 2}]")
        self.shape_dim, self.app_dim = int(c.z_shape_dim), int(c.z_app_dim)
        self.codes_per_field = self.shape_dim + self.app_dim
        self.frequencies, self.dir_frequencies = int(c.pe_frequencies), int(c.dir_frequencies)
        self.downscale, self.skips = float(c.downscale), tuple(c.skips)
        self.channels, self.unit_range = int(c.out_features), False
        points, views, h = 6 * self.frequencies, 6 * self.dir_frequencies, c.hidden  # sin and cos of 3 values each
        self.fc_in = nn.Linear(points, h)
        self.fc_z = nn.Linear(self.shape_dim, h)
        self.blocks = nn.ModuleList(nn.Linear(h, h) for _ in range(c.blocks - 1))
        self.fc_z_skips = nn.ModuleList(nn.Linear(self.shape_dim, h) for _ in self.skips)
        self.fc_p_skips = nn.ModuleList(nn.Linear(points, h) for _ in self.skips)
        self.sigma_out = nn.Linear(h, 1)
        self.fc_z_view = nn.Linear(self.app_dim, h)
        self.feat_view = nn.Linear(h, h)
        self.fc_view = nn.Linear(views, h)
        self.feat_out = nn.Linear(h, c.out_features)
        if c.sigma_bias_init is not None:
            nn.init.constant_(self.sigma_out.bias, float(c.sigma_bias_init))

    @classmethod
    def codes_dim(cls, config: Config) -> int:
        return config.z_shape_dim + config.z_app_dim

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(hidden=16, blocks=min(config.blocks, 4), skips=(2,) if config.skips else (),
                              z_shape_dim=8, z_app_dim=8, out_features=16, pe_frequencies=min(config.pe_frequencies, 4),
                              dir_frequencies=min(config.dir_frequencies, 2), sigma_bias_init=1.0)

    def codes(self, z: torch.Tensor, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        split = offset + self.shape_dim
        return z[:, offset:split], z[:, split:split + self.app_dim]

    def encode(self, x: torch.Tensor, frequencies: int) -> torch.Tensor:
        return positional_encoding(x / self.downscale, frequencies, include_input=False, factor=math.pi)

    def forward(self, points, directions, ws=None, codes=None):
        """points, directions [N, M, 3] (directions need not be unit), codes ([N, z_shape], [N, z_app])
        -> {'rgb': features [N, M, out_features], 'raw': sigma [N, M, 1]}."""
        z_shape, z_app = codes
        e = self.encode(points, self.frequencies)
        h = torch.relu(self.fc_in(e) + self.fc_z(z_shape).unsqueeze(1))
        for i, layer in enumerate(self.blocks):
            h = torch.relu(layer(h))
            if i + 1 in self.skips:
                j = self.skips.index(i + 1)
                h = h + self.fc_z_skips[j](z_shape).unsqueeze(1)
                h = h + self.fc_p_skips[j](e)
        sigma = self.sigma_out(h)
        f = self.feat_view(h) + self.fc_z_view(z_app).unsqueeze(1)
        d = directions / torch.linalg.vector_norm(directions, dim=-1, keepdim=True)
        f = torch.relu(f + self.fc_view(self.encode(d, self.dir_frequencies)))
        return {"rgb": self.feat_out(f), "raw": sigma}


# --- StyleNeRF -------------------------------------------------------------------------------

class PointModulatedLayer(nn.Module):
    """StyleNeRF's modulated 1x1 layer on points (``Style2Layer``: demodulated, LReLU 0.2 x sqrt 2; or,
    with ``demodulate=False``, its ``ToRGBLayer`` heads: styles x 1/sqrt(in), linear), computed as one
    batched matrix product (``modulated_matmul``) so that the densities, which steer the importance
    samples, do not depend on the thread count. x [N, in, M], w [N, w_dim] -> [N, out, M]."""

    def __init__(self, in_features: int, out_features: int, w_dim: int, demodulate: bool = True):
        super().__init__()
        self.demodulate = demodulate
        self.affine = FullyConnectedLayer(w_dim, in_features, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_features, in_features, 1, 1]))
        self.bias = nn.Parameter(torch.zeros([out_features]))
        self.style_gain = 1.0 if demodulate else 1 / np.sqrt(in_features)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)
        if not self.demodulate:
            styles = styles * self.style_gain
        x = modulated_matmul(x, self.weight, styles, demodulate=self.demodulate)
        return bias_act(x, self.bias.to(x.dtype), act="lrelu" if self.demodulate else "linear")


class PointConv2dLayer(Conv2dLayer):
    """An equalized-lr 1x1 ``Conv2dLayer`` (same parameters) on points [N, in, M] -> [N, out, M], as a matrix
    product (StyleNeRF's ``to_rgb``)."""

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        w = (self.weight * self.weight_gain).reshape(self.weight.shape[0], -1)
        return bias_act(torch.matmul(w.to(x.dtype), x), self.bias.to(x.dtype), act=self.activation,
                        gain=self.act_gain * gain)


class StyleNeRFForeground(nn.Module):
    """StyleNeRF's foreground ``NeRFBlock``: ``fc_in`` and ``blocks`` (modulated, demodulated 1x1 layers,
    one w each, LReLU 0.2 x sqrt 2), then ``sigma_out`` and ``feat_out`` (modulated 1x1 toRGB layers, styles
    x 1/sqrt(in), no demodulation) on the last hidden layer and an equalized 1x1 ``to_rgb`` on the feature.

    features [N, M, in] (PE of the point), ws [N, layers + 2, w_dim] -> {'sigma' [N, M, 1] raw,
    'rgb' [N, M, 3 + out_features]: [to_rgb(feat), feat]}.
    """

    def __init__(self, in_features: int, w_dim: int, hidden: int, num_layers: int, out_features: int):
        super().__init__()
        self.in_features, self.w_dim, self.hidden, self.out_features = in_features, w_dim, hidden, out_features
        self.fc_in = PointModulatedLayer(in_features, hidden, w_dim)
        self.blocks = nn.ModuleList(PointModulatedLayer(hidden, hidden, w_dim) for _ in range(num_layers - 1))
        self.sigma_out = PointModulatedLayer(hidden, 1, w_dim, demodulate=False)
        self.feat_out = PointModulatedLayer(hidden, out_features, w_dim, demodulate=False)
        self.to_rgb = PointConv2dLayer(out_features, 3, kernel_size=1)
        self.num_ws = num_layers + 2

    def forward(self, features: torch.Tensor, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        _check_points("features", features, None, self.in_features)
        n, m = features.shape[:2]
        _check_ws(ws, n, self.num_ws, self.w_dim)
        x = self.fc_in(features.transpose(1, 2), ws[:, 0])  # channels first: [N, C, M]
        for i, block in enumerate(self.blocks):
            x = block(x, ws[:, i + 1])
        sigma = self.sigma_out(x, ws[:, -2])
        feat = self.feat_out(x, ws[:, -1])
        out = torch.cat([self.to_rgb(feat), feat], 1)
        return {"sigma": sigma.transpose(1, 2), "rgb": out.transpose(1, 2)}


class NeRFPlusPlusBackground(nn.Module):
    """StyleNeRF's NeRF++ background field (``bg_nerf``): ``[PE(p4), z_bg]`` -> ``fc_in`` and ``blocks``
    (plain linear + ReLU) -> linear ``sigma_out`` / ``feat_out`` heads -> equalized 1x1 ``to_rgb``.

    p4 [N, M, 4] (unit-sphere point, inverse radius), z_bg [N, z_dim] -> {'sigma' [N, M, 1] raw,
    'rgb' [N, M, 3 + out_features]}.
    """

    def __init__(self, frequencies: int, z_dim: int, hidden: int, num_layers: int, out_features: int):
        super().__init__()
        self.frequencies, self.z_dim = frequencies, z_dim
        self.fc_in = nn.Linear(8 * frequencies + z_dim, hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(num_layers - 1))
        self.sigma_out = nn.Linear(hidden, 1)
        self.feat_out = nn.Linear(hidden, out_features)
        self.to_rgb = PointConv2dLayer(out_features, 3, kernel_size=1)

    def forward(self, p4: torch.Tensor, z_bg: torch.Tensor) -> dict[str, torch.Tensor]:
        n, m = p4.shape[:2]
        if tuple(z_bg.shape) != (n, self.z_dim):
            raise ValueError(f"z_bg must be {[n, self.z_dim]}, got {list(z_bg.shape)}")
        x = torch.cat([pi_positional_encoding(p4, self.frequencies), z_bg[:, None].expand(n, m, -1)], -1)
        x = torch.relu(self.fc_in(x))
        for block in self.blocks:
            x = torch.relu(block(x))
        feat = self.feat_out(x)
        rgb = self.to_rgb(feat.transpose(1, 2)).transpose(1, 2)
        return {"sigma": self.sigma_out(x), "rgb": torch.cat([rgb, feat], -1)}


@DECODERS.register("stylenerf_mlp")
class StyleNeRFFieldDecoder(Decoder):
    """StyleNeRF's foreground MLP (:class:`StyleNeRFForeground`): style-modulated sigma and feature heads
    and a separate ``to_rgb``; the composited channels are [rgb, feature]."""

    needs_ws = "stylegan"
    unit_range = False

    @dataclass
    class Config(ComponentConfig):
        hidden: int = 128
        """Hidden width."""
        layers: int = 8
        """Modulated hidden layers (``fc_in`` and ``n_blocks - 1`` blocks)."""
        out_features: int = 64
        """Feature channels (``rgb_out_dim``); 3 RGB channels come before them."""

    def __init__(self, config: Config, in_features: int, w_dim: int):
        super().__init__()
        self.net = StyleNeRFForeground(in_features, w_dim, config.hidden, config.layers, config.out_features)
        self.num_ws = self.net.num_ws
        self.channels = 3 + config.out_features

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(hidden=16, layers=min(config.layers, 3), out_features=16)

    def forward(self, features, directions, ws, codes=None):
        out = self.net(features, ws)
        return {"rgb": out["rgb"], "raw": out["sigma"]}


@DECODERS.register("nerfpp_background")
class NeRFPlusPlusBackgroundDecoder(Decoder):
    """StyleNeRF's NeRF++ background (:class:`NeRFPlusPlusBackground`) on inverted-sphere points [N, M, 4];
    its code is the per-image background code (``codes``), not from z or ws. Only an embedder that renders
    a background (``stylenerf``) builds it."""

    unit_range = False

    @dataclass
    class Config(ComponentConfig):
        hidden: int = 64
        """Hidden width."""
        layers: int = 4
        """Hidden layers (``fc_in`` and ``n_blocks - 1`` blocks)."""
        out_features: int = 64
        """Feature channels (3 RGB channels come before them)."""
        z_dim: int = 32
        """Per-image background code size."""
        pe_frequencies: int = 10
        """Frequencies of the encoding of the 4-d points."""

    def __init__(self, config: Config, in_features: int = 0, w_dim: int = 0):
        super().__init__()
        self.net = NeRFPlusPlusBackground(config.pe_frequencies, config.z_dim, config.hidden, config.layers,
                                          config.out_features)
        self.channels = 3 + config.out_features

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(hidden=8, layers=2, out_features=16, z_dim=4, pe_frequencies=4)

    def forward(self, features, directions, ws, codes=None):
        out = self.net(features, codes)
        return {"rgb": out["rgb"], "raw": out["sigma"]}
