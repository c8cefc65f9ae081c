"""Point embedders of the modular pipeline: world points -> per-point features.

Every embedder has the same two-step contract, so the generator treats them alike:

* ``scene(ws) -> Tensor | None``: the per-identity representation built once from the ws
  (tri-planes [N, 3, C, H, W], a feature volume [N, C, D, H, W], or None when the points are
  encoded directly). The viewer caches it, so orbiting a model re-runs only ``forward``.
* ``forward(scene, points [N, M, 3]) -> [N, M, out_features]``.

The GRAM and GIRAFFE embedders add ray-level steps (manifold intersection; per-object frames),
used by ``models.pipeline.PipelineGenerator``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.feature_volume import FeatureVolume
from models.pipeline_config import EmbedderConfig
from models.stylegan2 import SynthesisNetwork
from ops.feature_volume import sample_feature_volume
from ops.manifolds import gram_levels
from ops.siren import positional_encoding
from ops.triplane import plane_axes, sample_triplane


def encoded_size(num_frequencies: int, dims: int = 3) -> int:
    """Width of ``positional_encoding`` of ``dims`` values with the input included."""
    return dims * (1 + 2 * num_frequencies)


class CoordinateEmbedder(nn.Module):
    """points x scale, optionally NeRF-encoded (pi-GAN, StyleSDF: raw; GRAF, StyleNeRF: PE(10))."""

    num_ws = 0

    def __init__(self, config: EmbedderConfig):
        super().__init__()
        self.scale = float(config.coordinate_scale)
        self.frequencies = int(config.pe_frequencies)
        self.out_features = encoded_size(self.frequencies) if self.frequencies else 3

    def scene(self, ws: torch.Tensor, **_) -> None:
        return None

    def forward(self, scene: torch.Tensor | None, points: torch.Tensor) -> torch.Tensor:
        """[N, M, 3] -> [N, M, out_features]."""
        x = points * self.scale
        return positional_encoding(x, self.frequencies) if self.frequencies else x


class TriplaneEmbedder(nn.Module):
    """Tri-planes from a StyleGAN2 synthesis network (EG3D, EpiGRAF), averaged over the planes."""

    def __init__(self, config: EmbedderConfig, w_dim: int, box_side: float):
        super().__init__()
        self.channels = int(config.triplane_channels)
        self.box_side = float(box_side)
        self.align_corners = bool(config.triplane_align_corners)
        self.backbone = SynthesisNetwork(w_dim, config.triplane_resolution, 3 * self.channels,
                                         channel_base=config.channel_base, channel_max=config.channel_max,
                                         num_fp16_res=0, conv_clamp=None, fused_modconv_default="inference_only")
        self.num_ws = self.backbone.num_ws
        self.out_features = self.channels
        self.register_buffer("axes", plane_axes(config.triplane_axes), persistent=False)

    def scene(self, ws: torch.Tensor, noise_mode: str = "const", update_emas: bool = False) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> planes [N, 3, C, H, W]."""
        planes = self.backbone(ws, noise_mode=noise_mode, update_emas=update_emas)
        return planes.view(len(planes), 3, self.channels, planes.shape[-2], planes.shape[-1])

    def forward(self, planes: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        return sample_triplane(self.axes, planes, points, box_warp=self.box_side,
                               align_corners=self.align_corners).mean(1)


class VolumeEmbedder(nn.Module):
    """VolumeGAN: trilinear features of a generated 3D volume, concatenated with PE(xyz)."""

    num_ws = 1

    def __init__(self, config: EmbedderConfig, w_dim: int):
        super().__init__()
        self.volume = FeatureVolume(w_dim, resolution=config.volume_resolution, base_channels=config.volume_base_channels,
                                    out_channels=config.volume_channels)
        self.register_buffer("bounds", torch.tensor(config.volume_bounds, dtype=torch.float32), persistent=False)
        self.scale = float(config.coordinate_scale)
        self.frequencies = int(config.pe_frequencies)
        self.out_features = config.volume_channels + encoded_size(self.frequencies)

    def scene(self, ws: torch.Tensor, **_) -> torch.Tensor:
        """ws [N, 1, w_dim] -> volume [N, C, D, H, W]."""
        return self.volume(ws[:, 0])

    def forward(self, volume: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        features = sample_feature_volume(volume, points, self.bounds)
        return torch.cat([features, positional_encoding(points * self.scale, self.frequencies)], dim=-1)


class ManifoldEmbedder(nn.Module):
    """GRAM: a scalar field s(x) whose level sets are the radiance manifolds; the decoder is
    evaluated at ray-manifold intersections (``ops.manifolds``), at coordinates x scale."""

    num_ws = 0

    def __init__(self, config: EmbedderConfig):
        super().__init__()
        self.scale = float(config.coordinate_scale)
        self.register_buffer("center", torch.tensor(config.manifold_center, dtype=torch.float32), persistent=False)
        self.register_buffer("levels", gram_levels(config.levels_start, config.levels_end, config.num_manifolds,
                                                   background=config.background_plane), persistent=False)
        self.background_plane = bool(config.background_plane)
        dims = [3] + [config.manifold_hidden] * config.manifold_layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.out = nn.Linear(dims[-1], 1)
        with torch.no_grad():  # GRAM's geometric init: s(x) starts as a scaled distance from the centre
            for layer in self.hidden:
                nn.init.normal_(layer.weight, 0.0, math.sqrt(2 / layer.out_features))
                nn.init.zeros_(layer.bias)
            self.out.weight.fill_(10 * math.sqrt(math.pi / dims[-1]))
            self.out.bias.zero_()
        self.out_features = 3

    def scene(self, ws: torch.Tensor, **_) -> None:
        return None

    def field(self, points: torch.Tensor) -> torch.Tensor:
        """s(x): [..., 3] -> [...]."""
        x = points * self.scale - self.center
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.out(x)[..., 0]

    def forward(self, scene: None, points: torch.Tensor) -> torch.Tensor:
        return points * self.scale


class CompositionEmbedder(nn.Module):
    """GIRAFFE: each object sees points in its own box frame ((x - t) / scale, PE), the background
    sees world points (PE); ``forward`` returns the object frame, ``background`` the other."""

    num_ws = 0

    def __init__(self, config: EmbedderConfig):
        super().__init__()
        self.scale = float(config.coordinate_scale)
        self.object_scale = float(config.object_scale)
        self.frequencies = int(config.pe_frequencies)
        self.num_objects = int(config.num_objects)
        self.has_background = bool(config.background)
        self.out_features = encoded_size(self.frequencies)

    def scene(self, ws: torch.Tensor, **_) -> None:
        return None

    def forward(self, scene: None, points: torch.Tensor) -> torch.Tensor:
        """Object-frame encoding (objects share the origin-centred box: translation 0 at inference)."""
        return positional_encoding(points * (self.scale / self.object_scale), self.frequencies)

    def background(self, points: torch.Tensor) -> torch.Tensor:
        return positional_encoding(points * self.scale, self.frequencies)


def build_embedder(config: EmbedderConfig, w_dim: int, box_side: float) -> nn.Module:
    if config.kind == "coordinate":
        return CoordinateEmbedder(config)
    if config.kind == "triplane":
        return TriplaneEmbedder(config, w_dim, box_side)
    if config.kind == "volume":
        return VolumeEmbedder(config, w_dim)
    if config.kind == "manifold":
        return ManifoldEmbedder(config)
    if config.kind == "composition":
        return CompositionEmbedder(config)
    raise ValueError(f"unknown embedder {config.kind!r}")
