"""Point embedders of the modular pipeline: world points -> per-point features.

Every embedder has the same two-step contract, so the generator treats them alike:

* ``scene(ws) -> Tensor | None``: the per-identity representation built once from the ws
  (tri-planes [N, 3, C, H, W], a feature volume [N, C, D, H, W], or None when the points are
  encoded directly). The viewer caches it, so orbiting a model re-runs only ``forward``.
* ``forward(scene, points [N, M, 3]) -> [N, M, out_features]``.
* ``decode(fields, scene, points, directions)``: every field at the points, through the decoder
  (GIRAFFE composes several fields here).

GRAM's embedder also renders its rays itself (ray-manifold intersections, ``renders_rays``) and
gives its own mesh field. Facts the config reads are class attributes (``gives_coordinates``,
``needs_constant_interval``, ``needs_codes``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from models.decoders import DECODERS
from models.feature_volume import FeatureVolume
from models.mappings import MAPPINGS
from models.registry import ComponentConfig, Registry
from models.scene import MeshFields, ObjectPose, RenderOptions, Scene, SceneControls
from models.stylegan2 import SynthesisNetwork
from ops.camera import generate_rays, unpack_label
from ops.compositing import Composite, combine_fields, composite_constant_delta, composite_last_delta
from ops.feature_volume import OUTSIDE_MODES, sample_feature_volume
from ops.manifolds import (
    GRAM_BACKGROUND_DELTA,
    GRAM_BACKGROUND_Z,
    gram_levels,
    ray_manifold_intersections,
    ray_plane_z_intersection,
    sort_by_depth,
)
from ops.ray_sampling import sample_pdf
from ops.siren import encoded_size, positional_encoding
from ops.stylenerf import (
    axis_depths,
    inverse_sphere_points,
    pi_positional_encoding,
    ray_points,
    stylenerf_rays,
    to_stylenerf_world,
    volume_weights,
)
from ops.triplane import plane_axes, sample_triplane_mean

Generator = Any  # models.pipeline.PipelineGenerator (which imports this module)

EMBEDDERS: Registry = Registry("embedder")


@dataclass
class Fields:
    """What ``Embedder.decode`` evaluates: the decoder, the ws slice it reads and z (for codes)."""

    decoder: nn.Module
    ws: torch.Tensor
    z: torch.Tensor
    extra: nn.Module | None = None
    """A second decoder the embedder asked for (GIRAFFE's background), or None."""


class Embedder(nn.Module):
    """Facts every embedder kind declares, and the default field evaluation."""

    num_ws: int = 0
    """ws this embedder reads."""
    shares_first_ws: bool = False
    """It reads the first w of the decoder instead of ws of its own (VolumeGAN: the feature volume and the
    first modulated layer share ``wp[:, 0]``); its ``num_ws`` is then 0."""
    out_features: int = 3
    """Features per point handed to the decoder."""
    coordinate_scale: float = 1.0
    """World points are multiplied by this before encoding (the decoder's units per world unit)."""
    mesh_border_cleanup: bool = False
    """Meshes clear the border layers of the density grid (EG3D)."""
    gives_coordinates: ClassVar[bool] = False
    """Its features are 3-d coordinates (decoders that read coordinates need this)."""
    needs_constant_interval: ClassVar[bool] = False
    """It composites surface hits with a constant interval (GRAM: the 'constant_delta' integrator)."""
    needs_codes: ClassVar[bool] = False
    """Its fields read codes from z (GIRAFFE's objects: a decoder with ``needs_ws == 'z'``)."""
    renders_rays: ClassVar[bool] = False
    """It renders rays itself (:meth:`render_rays`) instead of sampling depths for the decoder."""
    renders_cameras: ClassVar[bool] = False
    """It renders whole cameras itself (``render_cameras(G, scene, c, resolution, options)``: its own
    rays, samples and background; StyleNeRF)."""
    tiny_num_coarse: ClassVar[int] = 8
    """Coarse samples per ray of the ``-tiny`` reduction."""

    def scene(self, ws: torch.Tensor, **_) -> torch.Tensor | None:
        return None

    def decode(self, fields: Fields, scene: Scene, points: torch.Tensor, directions: torch.Tensor,
               activate=None, options: Any = None) -> dict[str, torch.Tensor]:
        """The field at points [N, M, 3]: {'rgb' [N, M, C], 'raw' [N, M, 1]}; ``options``: the call's
        ``RenderOptions`` (GIRAFFE's boxes)."""
        return fields.decoder(self(scene.features, points), directions, fields.ws, fields.decoder.codes(fields.z))

    @classmethod
    def extra_decoder(cls, config: ComponentConfig, decoder: ComponentConfig) -> ComponentConfig | None:
        """Config of a second decoder this embedder needs (GIRAFFE's background), or None."""
        return None

    @classmethod
    def codes_needed(cls, config: ComponentConfig, codes_per_field: int) -> int:
        """z entries the fields read when each field reads ``codes_per_field``."""
        return codes_per_field

    @classmethod
    def on_swap_in(cls, config: Any) -> None:
        """Couplings a swap to this embedder brings (edits the PipelineConfig in place)."""

    def mesh_fields(self, G: Generator, scene: Scene, color) -> MeshFields | None:
        """The mesh field if this embedder defines its own geometry (GRAM), else None."""
        return None


@EMBEDDERS.register("coordinate")
class CoordinateEmbedder(Embedder):
    """points x scale, optionally NeRF-encoded (pi-GAN, StyleSDF: raw; GRAF, StyleNeRF: PE(10))."""

    gives_coordinates = True

    @dataclass
    class Config(ComponentConfig):
        coordinate_scale: float = 1.0
        """Points are multiplied by this before encoding (pi-GAN: 2/0.24)."""
        pe_frequencies: int = 0
        """NeRF positional-encoding frequencies of xyz (0: raw scaled coordinates)."""
        world_axes: tuple[int, int, int] = (0, 1, 2)
        """Our world axes in the order the decoder reads them, for points and view directions alike:
        (2, 0, 1) is GRAF's z-up world (our +z, the frontal camera, is its +x; our up +y its +z)."""

        def __post_init__(self):
            self.world_axes = tuple(int(a) for a in self.world_axes)  # JSON gives a list
            if sorted(self.world_axes) != [0, 1, 2]:
                raise ValueError(f"embedder.world_axes must be a permutation of (0, 1, 2), got {self.world_axes}")

    def __init__(self, config: Config, w_dim: int = 0, box_side: float = 1.0):
        super().__init__()
        self.coordinate_scale = float(config.coordinate_scale)
        self.frequencies = int(config.pe_frequencies)
        self.out_features = encoded_size(self.frequencies) if self.frequencies else 3
        axes = list(config.world_axes)
        self.world_axes = None if axes == [0, 1, 2] else axes  # a permutation: exact, no arithmetic

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(pe_frequencies=min(config.pe_frequencies, 4))

    def forward(self, scene: torch.Tensor | None, points: torch.Tensor) -> torch.Tensor:
        """[N, M, 3] -> [N, M, out_features]."""
        x = (points if self.world_axes is None else points[..., self.world_axes]) * self.coordinate_scale
        return positional_encoding(x, self.frequencies) if self.frequencies else x

    def decode(self, fields: Fields, scene: Scene, points: torch.Tensor, directions: torch.Tensor,
               activate=None, options: Any = None) -> dict[str, torch.Tensor]:
        directions = directions if self.world_axes is None else directions[..., self.world_axes]
        return super().decode(fields, scene, points, directions, activate, options)


@EMBEDDERS.register("triplane")
class TriplaneEmbedder(Embedder):
    """Tri-planes from a StyleGAN2 synthesis network (EG3D, EpiGRAF), averaged over the planes."""

    @dataclass
    class Config(ComponentConfig):
        resolution: int = 256
        """Tri-plane side in texels."""
        channels: int = 32
        """Channels per plane."""
        axes: str = "corrected"
        """'corrected', 'official' (EG3D's duplicated xz plane) or 'epigraf' (third plane at (y, z))."""
        align_corners: bool = False
        """grid_sample corner alignment (EpiGRAF: True)."""
        divide_coordinates: bool = False
        """Points are divided by half the box side (EpiGRAF's ``coords / cube_scale``) instead of multiplied
        by 2 / box side (EG3D); the same up to float32 round-off."""
        channel_base: int = 32768
        """Backbone width: channels at res r = min(channel_base // r, channel_max)."""
        channel_max: int = 512
        """Backbone channel cap."""
        num_fp16_res: int = 0
        """Backbone blocks (from the top) that run in fp16 on CUDA."""
        conv_clamp: float | None = None
        """Clamp on backbone conv outputs (usually 256 when fp16 is on)."""
        fused_modconv_default: bool | str = "inference_only"
        """Grouped modulated convolution: True, False or 'inference_only' (fused in eval mode)."""
        mesh_border_cleanup: bool = False
        """Clear the border layers of the density grid before meshing (EG3D's extraction)."""

    def __init__(self, config: Config, w_dim: int, box_side: float):
        super().__init__()
        self.channels = int(config.channels)
        self.box_side = float(box_side)
        self.align_corners = bool(config.align_corners)
        self.divide_coordinates = bool(config.divide_coordinates)
        self.mesh_border_cleanup = bool(config.mesh_border_cleanup)
        self.backbone = SynthesisNetwork(w_dim, config.resolution, 3 * self.channels,
                                         channel_base=config.channel_base, channel_max=config.channel_max,
                                         num_fp16_res=config.num_fp16_res, conv_clamp=config.conv_clamp,
                                         fused_modconv_default=config.fused_modconv_default)
        self.num_ws = self.backbone.num_ws
        self.out_features = self.channels
        self.register_buffer("axes", plane_axes(config.axes), persistent=False)

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(resolution=32, channels=8, channel_base=1024, channel_max=32)

    def scene(self, ws: torch.Tensor, noise_mode: str = "const", update_emas: bool = False) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> planes [N, 3, C, H, W]."""
        planes = self.backbone(ws, noise_mode=noise_mode, update_emas=update_emas)
        return planes.view(len(planes), 3, self.channels, planes.shape[-2], planes.shape[-1])

    def forward(self, planes: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        return sample_triplane_mean(self.axes, planes, points, box_warp=self.box_side,
                                    align_corners=self.align_corners, divide=self.divide_coordinates)


VOLUMEGAN_FFHQ_BOUNDS = ((-0.1886, -0.1671, -0.1956), (0.1887, 0.1692, 0.1872))
"""(min, max) corners of VolumeGAN's FFHQ feature volume (methods.md §3.2)."""


@EMBEDDERS.register("volume")
class VolumeEmbedder(Embedder):
    """VolumeGAN: trilinear features of a generated 3D volume, concatenated with PE(xyz)."""

    num_ws = 1

    @dataclass
    class Config(ComponentConfig):
        resolution: int = 32
        """Feature-volume side in voxels (VolumeGAN: 32)."""
        channels: int = 32
        """Feature-volume output channels."""
        base_channels: int = 256
        """Channels of the constant 4^3 input of the feature volume."""
        bounds: tuple[tuple[float, float, float], tuple[float, float, float]] = VOLUMEGAN_FFHQ_BOUNDS
        """(min, max) corners of the feature volume."""
        coordinate_scale: float = 1.0
        """Points are multiplied by this before the positional encoding."""
        pe_frequencies: int = 10
        """Positional-encoding frequencies of xyz concatenated to the volume feature."""
        init_resolution: int = 4
        """Side of the feature volume's learned constant (VolumeGAN's ``fv_cfg.init_res``)."""
        outside: str = "zero"
        """Points outside the box read zero ('zero', ours) or the nearest border voxels ('border', VolumeGAN's
        official sampler)."""
        share_first_w: bool = False
        """The volume reads the decoder's first w (official VolumeGAN) instead of a w of its own."""
        instance_norm: str = "torch"
        """Instance norm of the volume's stages (``models.feature_volume.INSTANCE_NORMS``): 'torch' or
        'explicit' (VolumeGAN's formula, its float32 order)."""

        def __post_init__(self):
            self.bounds = tuple(tuple(float(v) for v in corner) for corner in self.bounds)

    def __init__(self, config: Config, w_dim: int, box_side: float = 1.0):
        super().__init__()
        if config.outside not in OUTSIDE_MODES:
            raise ValueError(f"embedder.outside {config.outside!r} is not one of {', '.join(OUTSIDE_MODES)}")
        self.volume = FeatureVolume(w_dim, init_resolution=config.init_resolution, resolution=config.resolution,
                                    base_channels=config.base_channels, out_channels=config.channels,
                                    norm=config.instance_norm)
        self.outside = config.outside
        self.shares_first_ws = bool(config.share_first_w)
        self.num_ws = 0 if self.shares_first_ws else 1
        self.register_buffer("bounds", torch.tensor(config.bounds, dtype=torch.float32), persistent=False)
        self.coordinate_scale = float(config.coordinate_scale)
        self.frequencies = int(config.pe_frequencies)
        self.out_features = config.channels + encoded_size(self.frequencies)

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(resolution=8, channels=8, base_channels=16, pe_frequencies=min(config.pe_frequencies, 4))

    @classmethod
    def on_swap_in(cls, config: Any) -> None:
        if config.embedder.pe_frequencies == 0:
            config.embedder.pe_frequencies = 4

    def scene(self, ws: torch.Tensor, **_) -> torch.Tensor:
        """ws [N, 1, w_dim] -> volume [N, C, D, H, W]."""
        return self.volume(ws[:, 0])

    def forward(self, volume: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        features = sample_feature_volume(volume, points, self.bounds, self.outside)
        return torch.cat([features, positional_encoding(points * self.coordinate_scale, self.frequencies)], dim=-1)


@EMBEDDERS.register("manifold")
class ManifoldEmbedder(Embedder):
    """GRAM: a scalar field s(x) whose level sets are the radiance manifolds; the decoder is
    evaluated at ray-manifold intersections (``ops.manifolds``), at coordinates x scale."""

    gives_coordinates = True
    needs_constant_interval = True
    renders_rays = True
    tiny_num_coarse = 12

    @dataclass
    class Config(ComponentConfig):
        coordinate_scale: float = 2 / 0.24
        """Points are multiplied by this (GRAM: 2/0.24)."""
        hidden: int = 128
        """Manifold predictor width."""
        layers: int = 3
        """Manifold predictor hidden layers."""
        num_manifolds: int = 24
        """Manifolds including the background plane (FFHQ 24)."""
        levels_start: float = 23.0
        """First (outermost) level value."""
        levels_end: float = 8.0
        """Last level value (GRAM 8; Carver's default 3)."""
        center: tuple[float, float, float] = (0.0, 0.0, -1.5)
        """Centre subtracted from the scaled coordinates before the manifold predictor."""
        background_plane: bool = True
        """Append GRAM's background plane at world z = -0.12 (scaled with the scene box)."""
        field_scale: float = 0.0
        """Manifold predictor input scale; 0 = ``coordinate_scale`` (official GRAM: always 2/0.24, CARLA too)."""
        last_infinite: bool = False
        """With the background plane, the last point in depth order also gets delta 1e10 (official GRAM)."""
        plane_always_valid: bool = False
        """The background plane counts even where it lies behind the camera (official GRAM)."""

        def __post_init__(self):
            self.center = tuple(float(v) for v in self.center)

    def __init__(self, config: Config, w_dim: int = 0, box_side: float = 0.24):
        super().__init__()
        self.coordinate_scale = float(config.coordinate_scale)
        self.field_scale = float(config.field_scale) or self.coordinate_scale
        self.last_infinite = bool(config.last_infinite)
        self.plane_always_valid = bool(config.plane_always_valid)
        self.register_buffer("center", torch.tensor(config.center, dtype=torch.float32), persistent=False)
        self.register_buffer("levels", gram_levels(config.levels_start, config.levels_end, config.num_manifolds,
                                                   background=config.background_plane), persistent=False)
        self.background_plane = bool(config.background_plane)
        # GRAM's plane sits at z = -0.12 for its 0.24-wide face box; scale with the box.
        self.world_scale = float(box_side) / 0.24
        dims = [3] + [config.hidden] * config.layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.out = nn.Linear(dims[-1], 1)
        with torch.no_grad():  # GRAM's geometric init: s(x) starts as a scaled distance from the centre
            for layer in self.hidden:
                nn.init.normal_(layer.weight, 0.0, math.sqrt(2 / layer.out_features))
                nn.init.zeros_(layer.bias)
            self.out.weight.fill_(10 * math.sqrt(math.pi / dims[-1]))
            self.out.bias.zero_()
        self.out_features = 3

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(hidden=16, layers=2, num_manifolds=min(config.num_manifolds, 8))

    @classmethod
    def on_swap_in(cls, config: Any) -> None:
        if DECODERS.cls_of(config.decoder).needs_ws != "film":
            config.decoder = DECODERS.default_config("gram_siren")

    def field(self, points: torch.Tensor) -> torch.Tensor:
        """s(x): [..., 3] -> [...]."""
        x = points * self.field_scale - self.center
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.out(x)[..., 0]

    def forward(self, scene: None, points: torch.Tensor) -> torch.Tensor:
        return points * self.coordinate_scale

    def surface_points(self, G: Generator, origins: torch.Tensor, directions: torch.Tensor, depths: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The points a ray is shaded at: its level intersections (and the background plane), sorted
        by distance from the camera: points [N, M, L, 3], valid [N, M, L], depth [N, M, L], delta [N, M, L]."""
        samples = origins.unsqueeze(-2) + depths * directions.unsqueeze(-2)  # [N, M, K, 3]
        values = self.field(samples)
        hits = ray_manifold_intersections(samples, values, self.levels, origins)
        points, valid, depth = hits.points, hits.valid, hits.depth
        delta = torch.full_like(depth, G.renderer.constant_delta)
        if self.background_plane:
            plane = ray_plane_z_intersection(origins, directions, GRAM_BACKGROUND_Z * self.world_scale)
            plane_depth = torch.linalg.vector_norm(plane[:, :, 0] - origins, dim=-1)[..., None]
            points = torch.cat([points, plane], 2)
            valid = torch.cat([valid, torch.ones_like(valid[..., :1]) if self.plane_always_valid
                               else plane_depth > 0], 2)
            depth = torch.cat([depth, plane_depth], 2)
            delta = torch.cat([delta, torch.full_like(plane_depth, GRAM_BACKGROUND_DELTA)], 2)
            sorted_hits, order = sort_by_depth(points, valid, depth)
            points, valid, depth = sorted_hits
            delta = torch.gather(delta, -1, order)
            if self.last_infinite:
                delta = torch.cat([delta[..., :-1], torch.full_like(delta[..., -1:], GRAM_BACKGROUND_DELTA)], -1)
        return points, valid, depth, delta

    def render_rays(self, G: Generator, scene: Scene, origins: torch.Tensor, directions: torch.Tensor,
                    depths: torch.Tensor, density_noise: float,
                    directions_seen: torch.Tensor | None = None, options: Any = None) -> Composite:
        """Intersect the rays with the level sets of s(x), shade the surface points, composite with
        a constant interval (the background plane is opaque). ``directions_seen``: the view
        directions the decoder reads (``lock_view_dependence``), else the rays'. ``options``: the
        resolved ``RenderOptions`` (not read here)."""
        n, m = depths.shape[:2]
        points, valid, depth, delta = self.surface_points(G, origins, directions, depths)
        num = points.shape[2]
        if directions_seen is not None:
            directions = directions_seen
        dirs = directions.unsqueeze(-2).expand(-1, -1, num, -1).reshape(n, -1, 3)
        out = G.decoder(self(None, points.reshape(n, -1, 3)), dirs, G.decoder_ws(scene))
        raw = G.renderer.noisy(out["raw"], density_noise)
        density = G.renderer.activate(raw).reshape(n, m, num, 1)
        result = composite_constant_delta(out["rgb"].reshape(n, m, num, -1), density, depth[..., None],
                                          delta=delta[..., None], valid=valid[..., None],
                                          white_background=G.renderer.white_back)
        return G.finish_composite(result, depth[..., None])

    @torch.no_grad()
    def intersections(self, G: Generator, c: torch.Tensor, resolution: int) -> dict[str, torch.Tensor]:
        """The ray-manifold intersections of cameras c [N, 25] at r x r, as rendering finds them:
        ``values`` [N, M, K] s at the ray samples, ``points`` [N, M, L, 3] and ``valid`` [N, M, L] in
        level order (unsorted; no background plane), ``levels`` [L], ``sorted_depth`` [N, M, L'] of
        the shaded points in depth order (the background plane included), the rays ``origins`` and
        ``directions`` [N, M, 3]."""
        cam2world, intrinsics = unpack_label(c)
        origins, directions = generate_rays(cam2world, intrinsics, resolution, grid=G.config.renderer.pixel_grid)
        depths = G.sample_depths(origins, directions, int(G.rendering_kwargs["depth_resolution"]), jitter=False)
        samples = origins.unsqueeze(-2) + depths * directions.unsqueeze(-2)
        values = self.field(samples)
        hits = ray_manifold_intersections(samples, values, self.levels, origins, sort=False)
        _, _, depth, _ = self.surface_points(G, origins, directions, depths)
        return {"values": values, "points": hits.points, "valid": hits.valid, "levels": self.levels,
                "sorted_depth": depth, "origins": origins, "directions": directions}

    def mesh_fields(self, G: Generator, scene: Scene, color) -> MeshFields:
        half = G.box_side / 2
        field = lambda p: self.field(p.to(scene.ws.device))  # noqa: E731
        return MeshFields(field, color, (-half, half), self.dominant_level(G, scene), inside="below")

    @torch.no_grad()
    def dominant_level(self, G: Generator, scene: Scene) -> float:
        """The level whose manifold carries the most compositing weight in the frontal view."""
        camera = G.default_camera(device=scene.ws.device)
        cam2world, intrinsics = unpack_label(camera)
        origins, directions = generate_rays(cam2world, intrinsics, 32)
        depths = G.sample_depths(origins, directions, int(G.rendering_kwargs["depth_resolution"]), jitter=False)
        samples = origins.unsqueeze(-2) + depths * directions.unsqueeze(-2)
        values = self.field(samples)
        levels = self.levels
        weights = torch.zeros(len(levels), device=levels.device)
        for i, level in enumerate(levels):
            hits = ray_manifold_intersections(samples, values, level.reshape(1), origins)
            out = G.decoder(self(None, hits.points.reshape(1, -1, 3)), directions, G.decoder_ws(scene[:1]))
            alpha = 1 - torch.exp(-G.renderer.activate(out["raw"]) * G.renderer.constant_delta)
            weights[i] = (alpha[..., 0] * hits.valid.reshape(1, -1)).sum()
        return float(levels[int(weights.argmax())])


@EMBEDDERS.register("composition")
class CompositionEmbedder(Embedder):
    """A GIRAFFE-like composition (the first preset's, kept for its checkpoints): each object sees points
    in its own box frame ((x - t) / scale, PE), the background sees world points (PE); fields are
    composed by summed densities and density-weighted features. The official network is
    :class:`GiraffeSceneEmbedder`."""

    needs_codes = True

    @dataclass
    class Config(ComponentConfig):
        coordinate_scale: float = 1.0
        """World points are multiplied by this."""
        pe_frequencies: int = 10
        """NeRF positional-encoding frequencies of xyz."""
        num_objects: int = 1
        """Foreground objects (each with its own shape and appearance codes)."""
        object_scale: float = 0.21
        """Object box scale (points are divided by it in the object's frame)."""
        background: bool = True
        """Add a background field."""
        background_hidden: int = 64
        """Background MLP width."""
        background_layers: int = 4
        """Background MLP depth."""
        background_z_dim: int = 128
        """Background shape and appearance code size (each)."""

    def __init__(self, config: Config, w_dim: int = 0, box_side: float = 1.0):
        super().__init__()
        self.coordinate_scale = float(config.coordinate_scale)
        self.object_scale = float(config.object_scale)
        self.frequencies = int(config.pe_frequencies)
        self.num_objects = int(config.num_objects)
        self.has_background = bool(config.background)
        self.out_features = encoded_size(self.frequencies)

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(pe_frequencies=min(config.pe_frequencies, 4), background_hidden=8, background_layers=2,
                              background_z_dim=4)

    @classmethod
    def extra_decoder(cls, config: Config, decoder: ComponentConfig) -> ComponentConfig | None:
        if not config.background:
            return None
        return decoder.replace(hidden=config.background_hidden, layers=config.background_layers,
                               z_shape_dim=config.background_z_dim, z_app_dim=config.background_z_dim,
                               skip=config.background_layers)

    @classmethod
    def codes_needed(cls, config: Config, codes_per_field: int) -> int:
        return codes_per_field * config.num_objects + (2 * config.background_z_dim if config.background else 0)

    @classmethod
    def on_swap_in(cls, config: Any) -> None:
        config.decoder = DECODERS.default_config("nerf_mlp")
        config.mapping = MAPPINGS.default_config("none")

    def forward(self, scene: None, points: torch.Tensor) -> torch.Tensor:
        """Object-frame encoding (objects share the origin-centred box: translation 0 at inference)."""
        return positional_encoding(points * (self.coordinate_scale / self.object_scale), self.frequencies)

    def background(self, points: torch.Tensor) -> torch.Tensor:
        return positional_encoding(points * self.coordinate_scale, self.frequencies)

    def decode(self, fields: Fields, scene: Scene, points: torch.Tensor, directions: torch.Tensor,
               activate=None, options: Any = None) -> dict[str, torch.Tensor]:
        decoder = fields.decoder
        per = decoder.codes_per_field
        features, raws = [], []
        for i in range(self.num_objects):
            out = decoder(self(None, points), directions, fields.ws, decoder.codes(fields.z, i * per))
            features.append(out["rgb"])
            raws.append(out["raw"])
        if self.has_background:
            out = fields.extra(self.background(points), directions, fields.ws,
                               fields.extra.codes(fields.z, self.num_objects * per))
            features.append(out["rgb"])
            raws.append(out["raw"])
        # GIRAFFE composes activated densities; the renderer re-applies ReLU, which is then a no-op.
        densities = [activate(r) for r in raws]
        feature, density = combine_fields(torch.stack(features), torch.stack(densities))
        return {"rgb": feature, "raw": density}



def _triple(values: Any) -> tuple[float, float, float]:
    out = tuple(float(v) for v in values)
    if len(out) != 3:
        raise ValueError(f"expected 3 values (x, y, z), got {len(out)}")
    return out  # type: ignore[return-value]


def z_rotation(angles: torch.Tensor) -> torch.Tensor:
    """Rotations about the z axis by ``angles`` [...] (radians): [..., 3, 3], as scipy's
    ``Rotation.from_euler('z', angle)`` (computed in float64, returned as float32)."""
    a = angles.double()
    c, s, zero, one = torch.cos(a), torch.sin(a), torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([c, -s, zero, s, c, zero, zero, zero, one], -1).reshape(*a.shape, 3, 3).float()


@EMBEDDERS.register("giraffe_scene")
class GiraffeSceneEmbedder(Embedder):
    """GIRAFFE's compositional scene (``im2scene/giraffe/models/generator.py``): several object fields,
    each in its own box, and a background field, composed by density and volume-rendered.

    Object k sees box-frame points ``R_k (x - t_k) / s_k`` (per-axis scale s_k, rotation R_k about z,
    translation t_k) and box-frame ray directions ``R_k d / s_k``; its density is 0 where any box
    coordinate exceeds ``1 + box_padding``. The background sees the rotated world ``R_bg x``. Densities
    are summed and features density-weighted (``ops.compositing.combine_fields``); the sum is
    integrated with the last interval 1e10. Boxes and background rotation are per-call inputs
    (``RenderOptions.scene``: :class:`~models.scene.SceneControls`); by default each object sits at the
    middle of its training ranges (``get_transformations(0.5, 0.5, 0.5)``). Both fields are
    ``giraffe_mlp`` decoders reading codes from z: per object (shape, appearance), then the
    background's (shape, appearance).
    """

    gives_coordinates = True
    needs_codes = True
    renders_rays = True
    compositional: ClassVar[bool] = True
    """Objects and background can be moved per call (the viewer shows its scene panel)."""

    @dataclass
    class Config(ComponentConfig):
        num_objects: int = 1
        """Object boxes (``n_boxes``)."""
        scale_min: tuple[float, float, float] = (0.21, 0.21, 0.21)
        """Smallest box scale per axis (``scale_range_min``)."""
        scale_max: tuple[float, float, float] = (0.21, 0.21, 0.21)
        """Largest box scale per axis; one value in [0, 1] moves all three axes (``fix_scale_ratio``)."""
        translation_min: tuple[float, float, float] = (0.0, 0.0, 0.0)
        """Smallest box translation per axis."""
        translation_max: tuple[float, float, float] = (0.0, 0.0, 0.0)
        """Largest box translation per axis."""
        rotation_range: tuple[float, float] = (0.40278, 0.59722)
        """Object rotation about z, in full turns (``rotation_range``)."""
        object_on_plane: bool = False
        """Box centres sit at z = ``z_level_plane`` (CLEVR)."""
        z_level_plane: float = 0.0
        """The plane's height."""
        box_padding: float = 0.1
        """Object density is kept inside the box grown by this (GIRAFFE: 0.1)."""
        background: bool = True
        """Add the background field."""
        background_hidden: int = 64
        """Background MLP width."""
        background_blocks: int = 4
        """Background MLP blocks (no skips)."""
        background_z_dim: int = 128
        """Background shape and appearance code size (each)."""
        background_downscale: float = 12.0
        """Background points are divided by this before encoding (``downscale_p_by``)."""
        background_rotation_range: tuple[float, float] = (0.0, 0.0)
        """Background rotation about z, in full turns (``backround_rotation_range``)."""

        def __post_init__(self):
            self.scale_min, self.scale_max = _triple(self.scale_min), _triple(self.scale_max)
            self.translation_min, self.translation_max = _triple(self.translation_min), _triple(self.translation_max)
            self.rotation_range = tuple(float(v) for v in self.rotation_range)
            self.background_rotation_range = tuple(float(v) for v in self.background_rotation_range)

    def __init__(self, config: Config, w_dim: int = 0, box_side: float = 1.0):
        super().__init__()
        self.config = config
        self.num_objects = int(config.num_objects)
        self.has_background = bool(config.background)
        self.out_features = 3

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(background_hidden=8, background_blocks=2, background_z_dim=4)

    @classmethod
    def extra_decoder(cls, config: Config, decoder: ComponentConfig) -> ComponentConfig | None:
        if not config.background:
            return None
        return decoder.replace(hidden=config.background_hidden, blocks=config.background_blocks, skips=(),
                               z_shape_dim=config.background_z_dim, z_app_dim=config.background_z_dim,
                               downscale=config.background_downscale, sigma_bias_init=None)

    @classmethod
    def codes_needed(cls, config: Config, codes_per_field: int) -> int:
        return codes_per_field * config.num_objects + (2 * config.background_z_dim if config.background else 0)

    @classmethod
    def on_swap_in(cls, config: Any) -> None:
        config.decoder = DECODERS.default_config("giraffe_mlp")
        config.mapping = MAPPINGS.default_config("none")

    def forward(self, scene: None, points: torch.Tensor) -> torch.Tensor:
        return points

    # --- the scene's boxes ---------------------------------------------------------------------

    def object_pose(self, val_s: Any = 0.5, val_t: Any = (0.5, 0.5, 0.5), val_r: float = 0.5) -> ObjectPose:
        """The box at normalised values in [0, 1] of the training ranges, as the official
        ``get_transformations``: s = min + val_s[0] (max - min) (one value for the three axes),
        t = min + val_t (max - min), angle = 2 pi (r0 + val_r (r1 - r0))."""
        c = self.config

        def between(lo: tuple, hi: tuple, value: Any) -> list[float]:  # in float32, as the official tensors
            low = torch.tensor(lo, dtype=torch.float32)
            return (low + torch.tensor(value, dtype=torch.float32) * (torch.tensor(hi, dtype=torch.float32) - low)).tolist()

        v = float(val_s[0] if isinstance(val_s, (tuple, list)) else val_s)
        scale = tuple(between(c.scale_min, c.scale_max, [v] * 3))
        translation = between(c.translation_min, c.translation_max,
                              _triple(val_t if isinstance(val_t, (tuple, list)) else (val_t,) * 3))
        if c.object_on_plane:
            translation[2] = c.z_level_plane
        r0, r1 = c.rotation_range
        return ObjectPose(tuple(translation), scale, 2 * math.pi * (r0 + float(val_r) * (r1 - r0)))

    def background_angle(self, value: float = 0.5) -> float:
        """Background rotation (radians) at a normalised value of its range (official ``get_bg_rotation``)."""
        b0, b1 = self.config.background_rotation_range
        return 2 * math.pi * (b0 + float(value) * (b1 - b0))

    def default_controls(self) -> SceneControls:
        """Every object at the middle of its ranges, the background at the middle of its rotation range."""
        return SceneControls((self.object_pose(),) * self.num_objects, self.background_angle())

    def transforms(self, controls: SceneControls | None, batch: int, device: torch.device
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The boxes of ``controls`` (defaults where None): scale, translation [N, K', 3], rotation
        [N, K', 3, 3] of the K' shown objects, background rotation [N, 3, 3]."""
        default = self.default_controls()
        objects = default.objects if controls is None or controls.objects is None else tuple(controls.objects)
        if len(objects) > self.num_objects:
            raise ValueError(f"{len(objects)} object poses given; this model has {self.num_objects} objects")
        angle = default.background_rotation if controls is None or controls.background_rotation is None \
            else float(controls.background_rotation)

        def per_object(values: list) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32).reshape(1, len(objects), 3).expand(batch, -1, -1)

        scale = per_object([_triple(o.scale) for o in objects]).to(device)
        translation = per_object([_triple(o.translation) for o in objects]).to(device)
        rotation = z_rotation(torch.tensor([float(o.rotation) for o in objects], dtype=torch.float64))
        rotation = rotation[None].expand(batch, -1, -1, -1).to(device)
        background = z_rotation(torch.tensor(angle, dtype=torch.float64))[None].expand(batch, -1, -1).to(device)
        return scale, translation, rotation, background

    def random_transforms(self, batch: int, device: torch.device
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Boxes drawn per sample as GIRAFFE trains (``get_random_offset``, ``get_random_bg_rotation``):
        uniform over the scale (one value for the three axes), translation and rotation ranges, and
        the background rotation range; shapes as :meth:`transforms`."""
        c, k = self.config, self.num_objects
        low = torch.tensor(c.scale_min, device=device)
        scale = low + torch.rand(batch, k, 1, device=device) * (torch.tensor(c.scale_max, device=device) - low)
        low = torch.tensor(c.translation_min, device=device)
        translation = low + torch.rand(batch, k, 3, device=device) * (torch.tensor(c.translation_max, device=device) - low)
        if c.object_on_plane:
            translation[..., 2] = c.z_level_plane
        (r0, r1), (b0, b1) = c.rotation_range, c.background_rotation_range
        rotation = z_rotation(2 * math.pi * (r0 + torch.rand(batch, k, dtype=torch.float64) * (r1 - r0)))
        background = z_rotation(2 * math.pi * (b0 + torch.rand(batch, dtype=torch.float64) * (b1 - b0)))
        return scale, translation, rotation.to(device), background.to(device)

    # --- the fields ------------------------------------------------------------------------------

    def _fields(self, fields: Fields, density: Callable[[torch.Tensor], torch.Tensor], origins: torch.Tensor,
                ends: torch.Tensor, depths: torch.Tensor | None, boxes: tuple[torch.Tensor, ...]
                ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Features [N, P, C] and activated densities [N, P, 1] of every shown field (objects, then the
        background). Rays (``depths`` [N, M, K, 1]): points ``o + depth (e - o)`` for origins o and ends e
        [N, M, 3], P = M K; else (``depths`` None) the points o [N, P, 3] seen along ``e - o``. Each
        field maps o and e to its own frame first and forms its points and directions there (GIRAFFE's
        order of operations). ``density``: raw -> activated density (with training noise); ``boxes``: the
        (scale, translation, rotation, background rotation) of :meth:`transforms`."""
        n = origins.shape[0]
        scale, translation, rotation, background = boxes
        decoder, z = fields.decoder, fields.z
        features, densities = [], []

        def rotate(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return (matrix @ x.transpose(1, 2)).transpose(1, 2)

        def along(o: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            ray = e - o
            if depths is None:
                return o, ray
            points = o.unsqueeze(-2) + depths * ray.unsqueeze(-2)
            return points.reshape(n, -1, 3), ray.unsqueeze(-2).expand_as(points).reshape(n, -1, 3)

        per = decoder.codes_per_field
        limit = 1 + self.config.box_padding
        for i in range(scale.shape[1]):
            s, t, r = scale[:, i].unsqueeze(1), translation[:, i].unsqueeze(1), rotation[:, i]
            points, dirs = along(rotate(r, origins - t) / s, rotate(r, ends - t) / s)
            out = decoder(points, dirs, None, decoder.codes(z, i * per))
            inside = (points.abs() <= limit).all(-1, keepdim=True)
            features.append(out["rgb"])
            densities.append(density(out["raw"]) * inside)
        if self.has_background:
            points, dirs = along(rotate(background, origins), rotate(background, ends))
            out = fields.extra(points, dirs, None, fields.extra.codes(z, self.num_objects * per))
            features.append(out["rgb"])
            densities.append(density(out["raw"]))
        return features, densities

    @staticmethod
    def _own_fields(G: Generator, scene: Scene) -> Fields:
        return Fields(G.decoder, G.decoder_ws(scene), scene.ws[:, 0], getattr(G, "background_decoder", None))

    def decode(self, fields: Fields, scene: Scene, points: torch.Tensor, directions: torch.Tensor,
               activate=None, options: Any = None) -> dict[str, torch.Tensor]:
        """The composed scene at world points [N, M, 3] with the boxes of ``options.scene`` (default:
        the defaults): {'rgb', 'raw' (summed density)}."""
        boxes = self.transforms(getattr(options, "scene", None), points.shape[0], points.device)
        features, densities = self._fields(fields, activate, points, points + directions, None, boxes)
        feature, density = combine_fields(torch.stack(features), torch.stack(densities))
        return {"rgb": feature, "raw": density}

    def render_rays(self, G: Generator, scene: Scene, origins: torch.Tensor, directions: torch.Tensor,
                    depths: torch.Tensor, density_noise: float, directions_seen: torch.Tensor | None = None,
                    options: Any = None, image_points: torch.Tensor | None = None) -> Composite:
        """Composite of every field along rays [N, M, 3]: with ``image_points`` (each ray's point at unit
        depth along the optical axis), rays ``image_points - origins`` and depths [N, M, K, 1] along the
        axis; else unit ``directions`` and distances. The composite's depth is a distance.
        ``directions_seen`` is ignored (each field sees its own frame's directions). In training mode
        without scene controls the boxes are drawn per sample (:meth:`random_transforms`)."""
        n, m, k, _ = depths.shape
        controls = getattr(options, "scene", None)
        boxes = self.random_transforms(n, origins.device) if self.training and controls is None \
            else self.transforms(controls, n, origins.device)
        ends = origins + directions if image_points is None else image_points
        length = torch.linalg.vector_norm(ends - origins, dim=-1, keepdim=True)  # [N, M, 1]
        density = lambda raw: G.renderer.activate(G.renderer.noisy(raw, density_noise))  # noqa: E731
        features, densities = self._fields(self._own_fields(G, scene), density, origins, ends, depths, boxes)
        feature, total = combine_fields(torch.stack(features), torch.stack(densities))
        result = composite_last_delta(feature.reshape(n, m, k, -1), total.reshape(n, m, k, 1), depths,
                                      white_background=G.renderer.white_back, delta_scale=length)
        distances = depths * length.unsqueeze(-2)
        return G.finish_composite(Composite(result.features, result.depth * length, result.weights), distances)

    @torch.no_grad()
    def alpha_maps(self, G: Generator, scene: Scene, c: torch.Tensor, resolution: int,
                   options: Any = None) -> torch.Tensor:
        """Each shown object's opacity alone (GIRAFFE's ``return_alpha_map``: its weights with the
        last interval 0, summed along the ray): [N, K', r, r] for cameras c [N, 25]."""
        origins, ends, depths = G.axis_rays(c, resolution, options)
        n, m, k, _ = depths.shape
        length = torch.linalg.vector_norm(ends - origins, dim=-1, keepdim=True)
        boxes = self.transforms(getattr(options, "scene", None), n, origins.device)
        _, densities = self._fields(self._own_fields(G, scene), G.renderer.activate, origins, ends, depths, boxes)
        maps = [torch.zeros(n, 0, resolution, resolution, device=origins.device)]
        for density in densities[:len(densities) - self.has_background]:
            empty = torch.zeros(n, m, k, 1, dtype=density.dtype, device=density.device)
            weights = composite_last_delta(empty, density.reshape(n, m, k, 1), depths, last_delta=0.0,
                                           delta_scale=length).weights
            maps.append(weights.sum(2).reshape(n, 1, resolution, resolution))
        return torch.cat(maps, 1)


@EMBEDDERS.register("stylenerf")
class StyleNeRFEmbedder(Embedder):
    """StyleNeRF: points in its z-up world encoded as sin/cos(2^i pi p) without the raw point, and the
    renderer of its cameras (``renders_cameras``): official rays on its pixel grid, samples at depths
    along the optical axis on unnormalised rays, ``sample_pdf`` on the coarse positions, and the NeRF++
    background (the ``nerfpp_background`` decoder on inverted-sphere points with a per-image code,
    composited behind the foreground's end-of-ray transmittance). The scene is the background code.
    """

    renders_cameras = True
    shares_first_ws = True  # reads the decoder's first w only to seed its background codes
    reset_on_swap = ("pe_frequencies",)  # a raw-coordinate embedder's 0 would leave nothing to encode

    @dataclass
    class Config(ComponentConfig):
        pe_frequencies: int = 10
        """Frequencies of the foreground encoding (no raw input: 6 F features)."""
        align_corners: bool = True
        """``ray_align_corner``: the full image's corner-aligned grid, subsampled; else pixel centres."""
        background: bool = True
        """Render the NeRF++ background (StyleNeRF FFHQ)."""
        background_hidden: int = 64
        """Background MLP width."""
        background_layers: int = 4
        """Background MLP layers (``n_blocks``)."""
        background_z_dim: int = 32
        """Per-image background code size."""
        background_samples: int = 4
        """Background samples per ray (in inverse radius)."""
        background_start: float = 0.5
        """``bg_start``: the background's inverse radii run from this to 0."""
        background_code_std: float = 1.0
        """Std of the random per-image background codes (``get_latent_codes``' tmp; generate.py 0.65)."""

    def __init__(self, config: Config, w_dim: int = 0, box_side: float = 0.24):
        super().__init__()
        self.frequencies = int(config.pe_frequencies)
        self.align_corners = bool(config.align_corners)
        self.has_background = bool(config.background)
        self.code_dim, self.code_std = int(config.background_z_dim), float(config.background_code_std)
        self.background_samples, self.background_start = int(config.background_samples), float(config.background_start)
        self.out_features = 6 * self.frequencies

    @staticmethod
    def tiny(config: Config) -> Config:
        return config.replace(pe_frequencies=min(config.pe_frequencies, 4), background_hidden=8,
                              background_layers=2, background_z_dim=4)

    @classmethod
    def extra_decoder(cls, config: Config, decoder: ComponentConfig) -> ComponentConfig | None:
        if not config.background:
            return None
        return DECODERS.get("nerfpp_background").Config(
            hidden=config.background_hidden, layers=config.background_layers,
            out_features=decoder.out_features,
            z_dim=config.background_z_dim, pe_frequencies=config.pe_frequencies)

    @classmethod
    def on_swap_in(cls, config: Any) -> None:
        """Its background and compositing expect StyleNeRF's decoder ([rgb, feature] with ``out_features``)."""
        if not isinstance(config.decoder, DECODERS.get("stylenerf_mlp").Config):
            config.decoder = DECODERS.default_config("stylenerf_mlp")
        if MAPPINGS.cls_of(config.mapping).provides != "stylegan":
            config.mapping = MAPPINGS.default_config("stylegan2")

    def scene(self, ws: torch.Tensor, **_) -> torch.Tensor | None:
        """The background codes [N, z_dim]: N(0, std^2) draws, as StyleNeRF's (which come from neither z nor
        ws), from a generator seeded by each identity's first w, so every view and every run of an
        identity shows the same background."""
        if not self.has_background:
            return None
        codes = []
        for w in ws[:, 0].detach().float().cpu():
            seed = int.from_bytes(hashlib.sha256(w.numpy().tobytes()).digest()[:7], "little")
            codes.append(torch.randn(self.code_dim, generator=torch.Generator().manual_seed(seed)))
        return torch.stack(codes).to(ws.device, ws.dtype) * self.code_std

    def forward(self, scene: torch.Tensor | None, points: torch.Tensor) -> torch.Tensor:
        """Our world points [N, M, 3] -> [N, M, 6 F] (encoded in StyleNeRF's world)."""
        return pi_positional_encoding(to_stylenerf_world(points), self.frequencies)

    def render_cameras(self, G: Generator, scene: Scene, c: torch.Tensor, resolution: int,
                       options: RenderOptions | None = None) -> Composite:
        """The composite of cameras c [N, 25] at R x R (raster order): features [N, M, 3 + C] (the
        foreground plus the background behind its transmittance), depth [N, M, 1] (distance along the
        ray, the integrator's convention) and the foreground weights [N, M, K, 1]."""
        opts = (options or RenderOptions()).resolve(G.rendering_kwargs)
        near, far = float(G.rendering_kwargs["ray_start"]), float(G.rendering_kwargs["ray_end"])
        centre, rays = stylenerf_rays(c, resolution, G.img_resolution, self.align_corners)
        n, m, _ = rays.shape
        norm = torch.norm(rays, dim=-1, keepdim=True)
        ws = G.decoder_ws(scene)

        def field(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            t = axis_depths(s, near, far)
            points = ray_points(centre, rays, t).reshape(n, -1, 3)
            out = G.decoder(pi_positional_encoding(points, self.frequencies), None, ws)
            raw = G.renderer.noisy(out["raw"], opts.density_noise)
            return t, out["rgb"].reshape(n, m, s.shape[-1], -1), raw.reshape(n, m, -1)

        def weights(t: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            last = 0.0 if self.has_background else 1e10
            dists = torch.cat([(t[..., 1:] - t[..., :-1]) * norm, torch.full_like(t[..., :1], last)], -1)
            return volume_weights(sigma, dists, opaque_last=not self.has_background)

        s = torch.linspace(0, 1, opts.num_coarse, device=c.device).expand(n, m, -1)
        if G.training:
            s = _jitter_intervals(s)
        t, rgb, sigma = field(s)
        if opts.num_fine > 0:
            w, _ = weights(t, sigma)
            mids = 0.5 * (s[..., 1:] + s[..., :-1])
            fine = sample_pdf(mids.reshape(n * m, -1), w[..., 1:-1].reshape(n * m, -1).detach(), opts.num_fine,
                              deterministic=not G.training, right=False).reshape(n, m, -1).detach()
            t_fine, rgb_fine, sigma_fine = field(fine)
            s, order = torch.sort(torch.cat([fine, s], -1), -1)
            t = torch.gather(torch.cat([t_fine, t], -1), -1, order)
            sigma = torch.gather(torch.cat([sigma_fine, sigma], -1), -1, order)
            both = torch.cat([rgb_fine, rgb], -2)
            rgb = torch.gather(both, -2, order.unsqueeze(-1).expand(-1, -1, -1, both.shape[-1]))
        w, remaining = weights(t, sigma)
        features = torch.sum(w.unsqueeze(-1) * rgb, -2)
        if self.has_background:
            features = features + remaining.unsqueeze(-1) * self._background(G, scene, centre, rays)
        depths = (t.unsqueeze(-1) * norm.unsqueeze(-2))
        result = Composite(features, torch.sum(w.unsqueeze(-1) * depths, -2), w.unsqueeze(-1))
        return G.finish_composite(result, depths)

    def _background(self, G: Generator, scene: Scene, centre: torch.Tensor, rays: torch.Tensor) -> torch.Tensor:
        """The NeRF++ background composite [N, M, 3 + C] of rays [N, M, 3] from centres [N, 3]."""
        n, m, _ = rays.shape
        k = self.background_samples
        inverse_depth = torch.linspace(-1, 0, k, device=rays.device) * self.background_start  # far side last
        if G.training:
            inverse_depth = _jitter_intervals(inverse_depth)
        unit = rays / torch.norm(rays, dim=-1, keepdim=True)
        points = inverse_sphere_points(centre, unit, -inverse_depth)
        out = G.background_decoder(points.reshape(n, -1, 4), None, None, codes=scene.features)
        sigma = out["raw"].reshape(n, m, k)
        dists = torch.cat([inverse_depth[1:] - inverse_depth[:-1], inverse_depth.new_full((1,), 1e10)])
        w, _ = volume_weights(sigma, dists.expand(n, m, k), opaque_last=True)
        return torch.sum(w.unsqueeze(-1) * out["rgb"].reshape(n, m, k, -1), -2)


def _jitter_intervals(values: torch.Tensor) -> torch.Tensor:
    """StyleNeRF's training jitter: each value uniform within the half intervals around it."""
    mid = 0.5 * (values[..., 1:] + values[..., :-1])
    high = torch.cat([mid, values[..., -1:]], -1)
    low = torch.cat([values[..., :1], mid], -1)
    return low + (high - low) * torch.rand_like(low)
