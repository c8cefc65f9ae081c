"""EG3D tri-plane generator, weight- and output-compatible with NVlabs' ``TriPlaneGenerator``.

The module tree and parameter names are the official ones (``backbone.*``, ``superresolution.*``,
``decoder.net.*``). Public Python API as EG3D users write it::

    ws = G.mapping(z, c, truncation_psi=0.7, truncation_cutoff=14)
    out = G.synthesis(ws, c)            # {'image', 'image_raw', 'image_depth'}
    sig = G.sample_mixed(xyz, dirs, ws)  # {'rgb', 'sigma'}

In ``eval()`` mode the renderer is deterministic (no depth jitter, importance sampling with fixed
quantiles), which is what a viewer wants and what the reference fixtures were made with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from models.scene import MeshFields
from models.stylegan2 import FullyConnectedLayer, FusedModconv, NoiseMode, StyleGAN2Generator
from models.superresolution import OFFICIAL_SR_PREFIX, Superresolution
from models.typed_config import dataclass_from_dict
from ops.camera import FFHQ_FOCAL, generate_rays, orbit_label, unpack_label
from ops.compositing import Composite, composite_midpoint
from ops.ray_sampling import auto_ray_bounds, importance_depths, merge_sorted_samples, ray_samples, stratified_depths
from ops.triplane import PlaneAxes, plane_axes, sample_triplane

TRIPLANE_CHANNELS = 32
"""Feature channels per plane (fixed by EG3D's architecture)."""

BACKBONE_RESOLUTION = 256
"""Tri-plane resolution of every official EG3D model."""


@dataclass
class EG3DRenderingConfig:
    """EG3D ``rendering_kwargs``. Field names are the official keys, so the dict round-trips."""

    image_resolution: int = 512
    """Final image resolution (matches the generator's ``img_resolution``)."""
    superresolution_module: str = "training.superresolution.SuperresolutionHybrid8XDC"
    """Official dotted name of the super-resolution module."""
    sr_antialias: bool = True
    """Antialias when resizing the neural image to the super-resolution input size."""
    superresolution_noise_mode: str = "none"
    """Noise mode of the super-resolution layers ('none', 'const' or 'random')."""
    depth_resolution: int = 48
    """Coarse (stratified) samples per ray."""
    depth_resolution_importance: int = 48
    """Fine (importance) samples per ray; 0 disables the fine pass."""
    ray_start: float | str = 2.25
    """Near ray distance, or 'auto' for ray-box intersection."""
    ray_end: float | str = 3.3
    """Far ray distance, or 'auto' for ray-box intersection."""
    box_warp: float = 1.0
    """Side length of the cube spanned by the tri-plane."""
    disparity_space_sampling: bool = False
    """Space coarse samples evenly in inverse depth."""
    clamp_mode: str = "softplus"
    """Density activation; EG3D supports only 'softplus' (applied as softplus(x - 1))."""
    white_back: bool = False
    """Composite onto a white background (ShapeNet)."""
    density_noise: float = 0.0
    """Std of Gaussian noise added to raw density (training regulariser)."""
    avg_camera_radius: float = 2.7
    """Orbit radius of the average training camera."""
    avg_camera_pivot: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.2])
    """Look-at point of the average training camera."""
    c_gen_conditioning_zero: bool = False
    """Zero the generator's camera conditioning (generator pose conditioning off)."""
    c_scale: float = 1.0
    """Scale applied to the conditioning camera label in the mapping network."""
    gpc_reg_prob: float | None = 0.5
    """Final probability of swapping the conditioning pose in training (None: GPC off)."""
    density_reg: float = 0.25
    """Weight of the density smoothness regulariser."""
    density_reg_p_dist: float = 0.004
    """Perturbation std of the density regulariser's paired points."""
    reg_type: str = "l1"
    """Density regulariser type."""
    decoder_lr_mul: float = 1.0
    """Learning-rate multiplier of the OSG decoder."""
    triplane_axes: PlaneAxes = "official"
    """Tri-plane axis set: 'official' (EG3D's, needed by its checkpoints) or 'corrected'."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Unrecognised official keys, kept so that imported rendering_kwargs round-trip."""

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> EG3DRenderingConfig:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in kwargs.items() if k in known}
        extra = {k: v for k, v in kwargs.items() if k not in known and k != "extra"}
        extra.update(kwargs.get("extra", {}))
        if "avg_camera_pivot" in values:
            values["avg_camera_pivot"] = [float(v) for v in values["avg_camera_pivot"]]
        return cls(**values, extra=extra)

    def to_kwargs(self) -> dict[str, Any]:
        """Flat official-style dict (extra keys merged in)."""
        kwargs = dataclasses.asdict(self)
        kwargs.update(kwargs.pop("extra"))
        return kwargs


@dataclass
class EG3DConfig:
    """Architecture of an EG3D tri-plane generator."""

    z_dim: int = 512
    """Latent z dimensionality."""
    w_dim: int = 512
    """Intermediate latent w dimensionality."""
    c_dim: int = 25
    """Conditioning label dimensionality (25 for EG3D cameras, 0 for none)."""
    img_resolution: int = 512
    """Final image resolution."""
    img_channels: int = 3
    """Final image channels."""
    mapping_layers: int = 2
    """Depth of the mapping MLP."""
    channel_base: int = 32768
    """Backbone feature maps: channels at resolution r are min(channel_base // r, channel_max)."""
    channel_max: int = 512
    """Backbone channel cap."""
    num_fp16_res: int = 0
    """Backbone blocks (from the top) that run in fp16 on CUDA."""
    conv_clamp: float | None = None
    """Clamp on backbone conv outputs (usually 256 when fp16 is on)."""
    fused_modconv_default: FusedModconv = "inference_only"
    """Grouped modulated convolution: True, False or 'inference_only' (fused in eval mode)."""
    sr_num_fp16_res: int = 0
    """>0 runs the super-resolution blocks in fp16 on CUDA (with conv clamp 256)."""
    sr_fused_modconv_default: FusedModconv = "inference_only"
    """``fused_modconv_default`` of the super-resolution blocks."""
    neural_rendering_resolution: int = 64
    """Default resolution of the volume-rendered feature image."""
    triplane_resolution: int = BACKBONE_RESOLUTION
    """Tri-plane resolution (EG3D: always 256; smaller planes make CPU-sized models cheap)."""
    rendering: EG3DRenderingConfig = field(default_factory=EG3DRenderingConfig)
    """Rendering options (EG3D's rendering_kwargs)."""

    method: str = "eg3d"
    """Generator family; selects the class that builds this config."""

    def __post_init__(self):
        if isinstance(self.rendering, dict):
            self.rendering = EG3DRenderingConfig.from_kwargs(self.rendering)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EG3DConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error that names them."""
        return dataclass_from_dict(cls, data, "EG3D config")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_official(cls, init_kwargs: dict[str, Any], attributes: dict[str, Any] | None = None) -> EG3DConfig:
        """Config from official ``TriPlaneGenerator`` constructor kwargs (and pickled attributes).

        ``attributes`` may carry the live ``rendering_kwargs`` and ``neural_rendering_resolution``
        of a trained model (e.g. 128 after EG3D's fine-tuning stage).
        """
        kw = dict(init_kwargs)
        attributes = attributes or {}
        rendering = dict(kw.pop("rendering_kwargs", {}) or {})
        rendering.update(attributes.get("rendering_kwargs") or {})
        mapping = dict(kw.pop("mapping_kwargs", {}) or {})
        sr_kwargs = dict(kw.pop("sr_kwargs", {}) or {})
        config = cls(
            z_dim=int(kw.pop("z_dim")),
            c_dim=int(kw.pop("c_dim")),
            w_dim=int(kw.pop("w_dim")),
            img_resolution=int(kw.pop("img_resolution")),
            img_channels=int(kw.pop("img_channels", 3)),
            mapping_layers=int(mapping.pop("num_layers", 8)),
            channel_base=int(kw.pop("channel_base", 32768)),
            channel_max=int(kw.pop("channel_max", 512)),
            num_fp16_res=int(kw.pop("num_fp16_res", 4)),
            conv_clamp=kw.pop("conv_clamp", 256),
            fused_modconv_default=kw.pop("fused_modconv_default", True),
            sr_num_fp16_res=int(kw.pop("sr_num_fp16_res", 0)),
            sr_fused_modconv_default=sr_kwargs.pop("fused_modconv_default", True),
            neural_rendering_resolution=int(attributes.get("neural_rendering_resolution", 64)),
            rendering=EG3DRenderingConfig.from_kwargs(rendering),
        )
        # The official SR modules ignore these; anything else would change the network.
        for ignored in ("channel_base", "channel_max", "num_fp16_res", "conv_clamp"):
            sr_kwargs.pop(ignored, None)
        leftovers = {**{f"mapping_kwargs.{k}": v for k, v in mapping.items()},
                     **{f"sr_kwargs.{k}": v for k, v in sr_kwargs.items()}, **kw}
        if leftovers:
            raise ValueError(f"unsupported EG3D options: {', '.join(sorted(leftovers))}")
        return config

    def to_official(self) -> dict[str, Any]:
        """Official ``TriPlaneGenerator`` constructor kwargs for this config.

        Raises:
            ValueError: for architectures the official code cannot build (small tri-planes, our SR modules).
        """
        official_sr = self.rendering.superresolution_module.startswith(OFFICIAL_SR_PREFIX)
        if self.triplane_resolution != BACKBONE_RESOLUTION or not official_sr:
            raise ValueError("this generator has no official EG3D equivalent "
                             f"(tri-planes {self.triplane_resolution}px, {self.rendering.superresolution_module})")
        return {
            "z_dim": self.z_dim, "c_dim": self.c_dim, "w_dim": self.w_dim,
            "img_resolution": self.img_resolution, "img_channels": self.img_channels,
            "sr_num_fp16_res": self.sr_num_fp16_res,
            "mapping_kwargs": {"num_layers": self.mapping_layers},
            "rendering_kwargs": {k: v for k, v in self.rendering.to_kwargs().items() if k != "triplane_axes"},
            "sr_kwargs": {"channel_base": self.channel_base, "channel_max": self.channel_max,
                          "fused_modconv_default": self.sr_fused_modconv_default},
            "channel_base": self.channel_base, "channel_max": self.channel_max,
            "fused_modconv_default": self.fused_modconv_default,
            "num_fp16_res": self.num_fp16_res, "conv_clamp": self.conv_clamp,
        }


def eg3d_preset(name: str) -> EG3DConfig:
    """Named architectures: official dataset layouts and a tiny CPU one.

    * ``ffhq512``: the official FFHQ-512 generator (8XDC super-resolution, 48+48 samples).
    * ``afhq512``: as FFHQ with AFHQ's camera pivot.
    * ``shapenet128``: ShapeNet cars/chairs, white background, 64+64 samples, radius 1.7.
    * ``ref128``: the layout of the shared reference fixture (small channels, 12+12 samples).
    * ``tiny``: a CPU-sized generator (64px images, 64px tri-planes, 32px neural rendering, a narrow
      super-resolution of ours) for tests, demos and the bundled model; not loadable by EG3D's code.
    """
    if name in ("ffhq512", "afhq512"):
        pivot = [0.0, 0.0, 0.2] if name == "ffhq512" else [0.0, 0.0, -0.06]
        return EG3DConfig(rendering=EG3DRenderingConfig(avg_camera_pivot=pivot))
    if name == "shapenet128":
        return EG3DConfig(
            img_resolution=128,
            rendering=EG3DRenderingConfig(
                image_resolution=128, superresolution_module=OFFICIAL_SR_PREFIX + "SuperresolutionHybrid2X",
                depth_resolution=64, depth_resolution_importance=64, ray_start=0.1, ray_end=2.6, box_warp=1.6,
                white_back=True, avg_camera_radius=1.7, avg_camera_pivot=[0.0, 0.0, 0.0],
            ),
        )
    if name == "ref128":
        return EG3DConfig(
            img_resolution=128, channel_base=2048, channel_max=64,
            rendering=EG3DRenderingConfig(
                image_resolution=128, superresolution_module=OFFICIAL_SR_PREFIX + "SuperresolutionHybrid2X",
                depth_resolution=12, depth_resolution_importance=12,
            ),
        )
    if name == "tiny":
        return EG3DConfig(
            z_dim=64, w_dim=64, img_resolution=64, channel_base=2048, channel_max=64,
            neural_rendering_resolution=32, triplane_resolution=64,
            rendering=EG3DRenderingConfig(
                image_resolution=64, superresolution_module="studio.SuperresolutionLite2X64",
                depth_resolution=12, depth_resolution_importance=12, triplane_axes="corrected",
            ),
        )
    raise ValueError(f"unknown EG3D preset {name!r}; expected one of {', '.join(EG3D_PRESETS)}")


EG3D_PRESETS = ("ffhq512", "afhq512", "shapenet128", "ref128", "tiny")


class OSGDecoder(nn.Module):
    """EG3D's small MLP: averaged tri-plane feature -> (raw sigma, 32-channel feature in [0, 1])."""

    def __init__(self, n_features: int, hidden_dim: int = 64, output_dim: int = 32, lr_multiplier: float = 1.0,
                 activation: str = "softplus"):
        """``activation``: 'softplus' (EG3D) or 'lrelu' (EpiGRAF's variant of this decoder)."""
        super().__init__()
        self.hidden_dim = hidden_dim
        self.net = nn.Sequential(
            FullyConnectedLayer(n_features, hidden_dim, lr_multiplier=lr_multiplier),
            nn.Softplus() if activation == "softplus" else nn.LeakyReLU(0.2),
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


class TriPlaneGenerator(nn.Module):
    """EG3D generator: mapping -> StyleGAN2 tri-plane backbone -> importance-sampled volume
    rendering of an OSG decoder -> super-resolution."""

    def __init__(self, config: EG3DConfig):
        super().__init__()
        self.config = config
        self.z_dim, self.c_dim, self.w_dim = config.z_dim, config.c_dim, config.w_dim
        self.img_resolution, self.img_channels = config.img_resolution, config.img_channels
        # Live dict under EG3D's keys: scripts edit it (e.g. depth_resolution) and the renderer reads it.
        self.rendering_kwargs: dict[str, Any] = config.rendering.to_kwargs()
        self.neural_rendering_resolution = config.neural_rendering_resolution
        self.backbone = StyleGAN2Generator(
            config.z_dim, config.c_dim, config.w_dim, img_resolution=config.triplane_resolution,
            img_channels=TRIPLANE_CHANNELS * 3, mapping_kwargs={"num_layers": config.mapping_layers},
            channel_base=config.channel_base, channel_max=config.channel_max, num_fp16_res=config.num_fp16_res,
            conv_clamp=config.conv_clamp, fused_modconv_default=config.fused_modconv_default,
        )
        self.superresolution = Superresolution(
            config.rendering.superresolution_module, channels=TRIPLANE_CHANNELS, img_resolution=config.img_resolution,
            sr_num_fp16_res=config.sr_num_fp16_res, sr_antialias=config.rendering.sr_antialias,
            fused_modconv_default=config.sr_fused_modconv_default, w_dim=config.w_dim,
        )
        self.decoder = OSGDecoder(TRIPLANE_CHANNELS, output_dim=TRIPLANE_CHANNELS,
                                  lr_multiplier=config.rendering.decoder_lr_mul)
        self.register_buffer("plane_axes", plane_axes(config.rendering.triplane_axes), persistent=False)
        self._last_planes: torch.Tensor | None = None

    # --- EG3D API -------------------------------------------------------------------------------

    @property
    def num_ws(self) -> int:
        return self.backbone.num_ws

    def current_config(self) -> EG3DConfig:
        """The config with the live ``rendering_kwargs`` and neural resolution folded back in."""
        return dataclasses.replace(
            self.config,
            rendering=EG3DRenderingConfig.from_kwargs(self.rendering_kwargs),
            neural_rendering_resolution=int(self.neural_rendering_resolution),
        )

    def mapping(self, z, c, truncation_psi: float = 1, truncation_cutoff: int | None = None,
                update_emas: bool = False) -> torch.Tensor:
        """z [N, z_dim], c [N, 25] -> ws [N, num_ws, w_dim]."""
        if self.rendering_kwargs["c_gen_conditioning_zero"]:
            c = torch.zeros_like(c)
        return self.backbone.mapping(z, c * self.rendering_kwargs.get("c_scale", 0), truncation_psi=truncation_psi,
                                     truncation_cutoff=truncation_cutoff, update_emas=update_emas)

    def planes(self, ws: torch.Tensor, update_emas: bool = False, **synthesis_kwargs) -> torch.Tensor:
        """ws -> tri-plane features [N, 3, 32, 256, 256]."""
        planes = self.backbone.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)
        return planes.view(len(planes), 3, TRIPLANE_CHANNELS, planes.shape[-2], planes.shape[-1])

    def synthesis(
        self,
        ws: torch.Tensor,
        c: torch.Tensor,
        neural_rendering_resolution: int | None = None,
        update_emas: bool = False,
        cache_backbone: bool = False,
        use_cached_backbone: bool = False,
        noise_mode: NoiseMode = "const",
        **synthesis_kwargs,
    ) -> dict[str, torch.Tensor]:
        """Render ws from camera c.

        Returns:
            ``image`` [N, 3, R, R], ``image_raw`` [N, 3, r, r] and ``image_depth`` [N, 1, r, r].
        """
        if neural_rendering_resolution is None:
            neural_rendering_resolution = self.neural_rendering_resolution
        else:
            self.neural_rendering_resolution = neural_rendering_resolution
        if use_cached_backbone and self._last_planes is not None:
            planes = self._last_planes
        else:
            planes = self.planes(ws, update_emas=update_emas, noise_mode=noise_mode, **synthesis_kwargs)
        if cache_backbone:
            self._last_planes = planes
        features, depth = self.render_neural(planes, c, int(neural_rendering_resolution))
        image, image_raw = self.superresolve(features, ws, **synthesis_kwargs)
        return {"image": image, "image_raw": image_raw, "image_depth": depth}

    def render_neural(self, planes: torch.Tensor, c: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Volume-render tri-planes from cameras c [N, 25].

        Returns:
            feature image [N, 32, r, r] in about [-1, 1] and depth image [N, 1, r, r] (ray distance).
        """
        cam2world, intrinsics = unpack_label(c)
        ray_origins, ray_directions = generate_rays(cam2world, intrinsics, resolution)
        n = ray_origins.shape[0]
        composite = self.render_planes(planes, ray_origins, ray_directions)
        features = composite.features.permute(0, 2, 1).reshape(n, composite.features.shape[-1], resolution, resolution)
        depth = composite.depth.permute(0, 2, 1).reshape(n, 1, resolution, resolution)
        return features.contiguous(), depth

    def superresolve(self, features: torch.Tensor, ws: torch.Tensor, **synthesis_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature image [N, 32, r, r] -> (final image [N, 3, R, R], image_raw [N, 3, r, r] as EG3D
        returns it); the noise mode comes from rendering_kwargs."""
        kwargs = {k: v for k, v in synthesis_kwargs.items() if k != "noise_mode"}
        return self.superresolution(features[:, :3], features, ws,
                                    noise_mode=self.rendering_kwargs["superresolution_noise_mode"], **kwargs)

    def sample(self, coordinates, directions, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False,
               **synthesis_kwargs):
        """σ and feature at world points for latent z: coordinates [N, M, 3] -> {'rgb', 'sigma'}."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return self.sample_mixed(coordinates, directions, ws, update_emas=update_emas, **synthesis_kwargs)

    def sample_mixed(self, coordinates, directions, ws, truncation_psi=1, truncation_cutoff=None, update_emas=False,
                     noise_mode: NoiseMode = "const", **synthesis_kwargs):
        """σ and feature at world points for given ws: coordinates [N, M, 3] -> {'rgb', 'sigma'}."""
        del truncation_psi, truncation_cutoff  # accepted for EG3D API compatibility; ws are already final
        planes = self.planes(ws, update_emas=update_emas, noise_mode=noise_mode, **synthesis_kwargs)
        return self.run_decoder(planes, coordinates, directions)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, neural_rendering_resolution=None, update_emas=False,
                cache_backbone=False, use_cached_backbone=False, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, c, neural_rendering_resolution=neural_rendering_resolution, update_emas=update_emas,
                              cache_backbone=cache_backbone, use_cached_backbone=use_cached_backbone, **synthesis_kwargs)

    # --- rendering ------------------------------------------------------------------------------

    def run_decoder(self, planes: torch.Tensor, coordinates: torch.Tensor, directions: torch.Tensor) -> dict[str, torch.Tensor]:
        """planes [N, 3, 32, H, W], coordinates/directions [N, M, 3] -> {'rgb' [N, M, 32], 'sigma' [N, M, 1]}."""
        features = sample_triplane(self.plane_axes, planes, coordinates, box_warp=self.rendering_kwargs["box_warp"])
        out = self.decoder(features, directions)
        noise_std = self.rendering_kwargs.get("density_noise", 0)
        if noise_std > 0:
            out["sigma"] = out["sigma"] + torch.randn_like(out["sigma"]) * noise_std
        return out

    def render_planes(self, planes: torch.Tensor, ray_origins: torch.Tensor, ray_directions: torch.Tensor) -> Composite:
        """EG3D's importance renderer: coarse pass, fine pass from the coarse weights, composite.

        Args:
            planes: [N, 3, 32, H, W].
            ray_origins, ray_directions: [N, M, 3].

        Returns:
            Composite with features [N, M, 32] in [-1, 1], depth [N, M, 1], weights [N, M, K-1, 1].
        """
        opts = self.rendering_kwargs
        if opts["clamp_mode"] != "softplus":
            raise ValueError(f"EG3D's ray marcher supports clamp_mode 'softplus' only, got {opts['clamp_mode']!r}")
        jitter = self.training
        n, m, _ = ray_origins.shape
        if opts["ray_start"] == opts["ray_end"] == "auto":
            ray_start, ray_end = auto_ray_bounds(ray_origins, ray_directions, opts["box_warp"])
        else:
            ray_start, ray_end = opts["ray_start"], opts["ray_end"]
        depths = stratified_depths(n, m, ray_start, ray_end, opts["depth_resolution"], jitter=jitter,
                                   disparity_space=opts["disparity_space_sampling"], device=ray_origins.device)
        colors, densities = self._evaluate(planes, ray_origins, ray_directions, depths)

        num_fine = opts["depth_resolution_importance"]
        white = opts.get("white_back", False)
        if num_fine > 0:
            coarse = composite_midpoint(colors, densities, depths, white_background=white)
            depths_fine = importance_depths(depths, coarse.weights, num_fine, deterministic=not jitter)
            colors_fine, densities_fine = self._evaluate(planes, ray_origins, ray_directions, depths_fine)
            depths, colors, densities = merge_sorted_samples(depths, colors, densities,
                                                             depths_fine, colors_fine, densities_fine)
        return composite_midpoint(colors, densities, depths, white_background=white)

    def _evaluate(self, planes, ray_origins, ray_directions, depths):
        """Decoder outputs at depths [N, M, K, 1] along rays: colors [N, M, K, 32], raw sigma [N, M, K, 1]."""
        n, m, k, _ = depths.shape
        coordinates, directions = ray_samples(ray_origins, ray_directions, depths)
        out = self.run_decoder(planes, coordinates, directions)
        return out["rgb"].reshape(n, m, k, out["rgb"].shape[-1]), out["sigma"].reshape(n, m, k, 1)

    def mesh_fields(self, planes: torch.Tensor) -> MeshFields:
        """Density and colour fields of one identity (planes [1, 3, 32, H, W]) in the tri-plane box.

        The density is the raw sigma (EG3D meshes it at level 10; None lets the viewer pick the
        rendered surface's level) and the colour the first three feature channels in [0, 1]. The
        decoder is called piecewise, without ``run_decoder``'s training density noise, so a render
        thread may use ``G`` meanwhile. Points go to the planes' device.
        """
        if planes.ndim != 5 or planes.shape[0] != 1 or planes.shape[1] != 3:
            raise ValueError(f"planes must be [1, 3, C, H, W] (one identity), got {tuple(planes.shape)}")
        box_warp = float(self.rendering_kwargs["box_warp"])

        def decode(points: torch.Tensor) -> dict[str, torch.Tensor]:
            coordinates = points.to(device=planes.device, dtype=planes.dtype).reshape(1, -1, 3)
            directions = torch.zeros_like(coordinates)  # the OSG decoder ignores directions
            directions[..., 2] = -1
            return self.decoder(sample_triplane(self.plane_axes, planes, coordinates, box_warp=box_warp), directions)

        return MeshFields(field=lambda p: decode(p)["sigma"][0, :, 0],
                          color=lambda p: decode(p)["rgb"][0, :, :3].clamp(0, 1),
                          bounds=(-box_warp / 2, box_warp / 2), level=None, eg3d_cleanup=True)

    # --- conveniences ---------------------------------------------------------------------------

    def default_camera(self, batch: int = 1, yaw: float = 0.0, pitch: float = 0.0, focal: float = FFHQ_FOCAL,
                       device: torch.device | str | None = None) -> torch.Tensor:
        """[batch, 25] label for an orbit camera around the model's average pivot and radius."""
        opts = self.rendering_kwargs
        label = orbit_label(yaw, pitch, float(opts["avg_camera_radius"]), opts["avg_camera_pivot"], focal)
        return label.repeat(batch, 1).to(device if device is not None else self.backbone.mapping.w_avg.device)


def build_eg3d(config: EG3DConfig | str) -> TriPlaneGenerator:
    """A freshly initialised generator from a config or preset name."""
    if isinstance(config, str):
        config = eg3d_preset(config)
    return TriPlaneGenerator(config)

