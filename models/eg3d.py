"""EG3D's architecture description: ``EG3DConfig`` (NVlabs' ``TriPlaneGenerator`` constructor
kwargs and ``rendering_kwargs``, typed) and the named official layouts (:func:`eg3d_preset`).

EG3D is a preset of the one pipeline generator: ``models.methods.eg3d.from_eg3d`` turns this config
into a :class:`~models.pipeline_config.PipelineConfig` (official tri-plane axes, OSG decoder, EG3D's
midpoint ray marcher and super-resolution), and official parameter names map to the pipeline's at
import (``models.methods.eg3d.OFFICIAL_NAMES``). Output-compatible with the official network, bit
for bit on the CPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from models.stylegan2 import FusedModconv
from models.superresolution import OFFICIAL_SR_PREFIX
from models.typed_config import dataclass_from_dict
from ops.triplane import PlaneAxes

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
