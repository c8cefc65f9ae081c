"""EG3D as a preset of the pipeline generator.

* :func:`preset`: EG3D's FFHQ components as a pipeline config (the registered method; ablations
  such as ``--cfg eg3d --embedder volume`` start from it).
* :func:`from_eg3d`: any :class:`~models.eg3d.EG3DConfig` (an official pickle's constructor
  kwargs and ``rendering_kwargs``, or one of ``models.eg3d.eg3d_preset``) as the pipeline config
  that renders exactly what NVlabs' ``TriPlaneGenerator`` renders; :func:`to_eg3d` is its inverse.
* :data:`OFFICIAL_NAMES`: official parameter-name prefixes and the pipeline's, applied at import
  (official pickles, and our checkpoints written before EG3D joined the pipeline), like NVlabs'
  ``legacy.py``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from models.decoders import OSGFieldDecoder
from models.eg3d import TRIPLANE_CHANNELS, EG3DConfig, EG3DRenderingConfig
from models.embedders import TriplaneEmbedder
from models.mappings import StyleGAN2Mapping
from models.method_registry import register_method
from models.pipeline_config import PipelineConfig, RenderingOptions
from models.point_sampling import StratifiedPointSampler
from models.poses import DatasetPoses
from models.upsamplers import EG3DSuperresolution
from models.volume_rendering import MidpointIntegrator, ShiftedSoftplusDensity
from ops.camera import FFHQ_FOCAL

FFHQ_FOV_DEGREES = 2 * math.degrees(math.atan(0.5 / FFHQ_FOCAL))
"""EG3D's FFHQ lens as a full field of view."""

OFFICIAL_NAMES: tuple[tuple[str, str], ...] = (
    ("backbone.mapping.", "mapping_network."),
    ("backbone.synthesis.", "embedder.backbone."),
    ("decoder.net.", "decoder.net.net."),
    ("superresolution.", "upsampler."),
)
"""(official prefix, pipeline prefix) of every EG3D parameter and buffer."""

LOSS_KEYS = ("gpc_reg_prob", "density_reg", "density_reg_p_dist", "reg_type")
"""EG3D ``rendering_kwargs`` that only its training loss reads (kept in ``PipelineConfig.extra``)."""


@register_method("eg3d", exact_generator=True)
def preset() -> PipelineConfig:
    """EG3D's FFHQ components for ablations; plain ``--cfg eg3d`` trains :func:`from_eg3d` of the
    official FFHQ-512 layout."""
    return PipelineConfig(
        preset="eg3d", img_resolution=512, neural_rendering_resolution=64,
        mapping=StyleGAN2Mapping.Config(z_dim=512, w_dim=512, layers=2, camera_conditioning=True),
        pose=DatasetPoses.Config(radius=2.7, fov_degrees=FFHQ_FOV_DEGREES, pivot=(0.0, 0.0, 0.2)),
        points=StratifiedPointSampler.Config(near=2.25, far=3.3, num_coarse=48, num_fine=48, perturb="uniform",
                                             box_side=1.0),
        embedder=TriplaneEmbedder.Config(resolution=256, axes="official"),
        decoder=OSGFieldDecoder.Config(hidden=64, out_features=32),
        density=ShiftedSoftplusDensity.Config(), integrator=MidpointIntegrator.Config(),
        upsampler=EG3DSuperresolution.Config(),
    )


def from_eg3d(config: EG3DConfig) -> PipelineConfig:
    """The pipeline config of an EG3D architecture (exactly the official network)."""
    r = config.rendering
    if r.clamp_mode != "softplus":
        raise ValueError(f"EG3D's ray marcher supports clamp_mode 'softplus' only, got {r.clamp_mode!r}")
    if r.image_resolution != config.img_resolution:
        raise ValueError(f"rendering image_resolution {r.image_resolution} != img_resolution {config.img_resolution}")
    return PipelineConfig(
        preset="eg3d", c_dim=config.c_dim, img_resolution=config.img_resolution, img_channels=config.img_channels,
        neural_rendering_resolution=config.neural_rendering_resolution,
        mapping=StyleGAN2Mapping.Config(z_dim=config.z_dim, w_dim=config.w_dim, layers=config.mapping_layers,
                                        camera_conditioning=config.c_dim > 0, camera_scale=r.c_scale,
                                        zero_camera=r.c_gen_conditioning_zero),
        pose=DatasetPoses.Config(radius=r.avg_camera_radius, fov_degrees=FFHQ_FOV_DEGREES, pivot=tuple(r.avg_camera_pivot)),
        points=StratifiedPointSampler.Config(near=r.ray_start, far=r.ray_end, num_coarse=r.depth_resolution,
                                             num_fine=r.depth_resolution_importance, perturb="uniform",
                                             box_side=r.box_warp, disparity_space=r.disparity_space_sampling),
        embedder=TriplaneEmbedder.Config(resolution=config.triplane_resolution, channels=TRIPLANE_CHANNELS,
                                         axes=r.triplane_axes, channel_base=config.channel_base,
                                         channel_max=config.channel_max, num_fp16_res=config.num_fp16_res,
                                         conv_clamp=config.conv_clamp, fused_modconv_default=config.fused_modconv_default,
                                         mesh_border_cleanup=True),
        decoder=OSGFieldDecoder.Config(hidden=64, out_features=TRIPLANE_CHANNELS, lr_multiplier=r.decoder_lr_mul),
        density=ShiftedSoftplusDensity.Config(), integrator=MidpointIntegrator.Config(),
        upsampler=EG3DSuperresolution.Config(module=r.superresolution_module, share_last_ws=True,
                                             antialias=r.sr_antialias, num_fp16_res=config.sr_num_fp16_res,
                                             fused_modconv_default=config.sr_fused_modconv_default,
                                             noise_mode=r.superresolution_noise_mode, official_raw=True),
        renderer=RenderingOptions(density_noise=r.density_noise, white_back=r.white_back),
        extra={**{key: getattr(r, key) for key in LOSS_KEYS}, **r.extra},
    )


def to_eg3d(config: PipelineConfig) -> EG3DConfig:
    """The EG3D config of a pipeline config made by :func:`from_eg3d` (official export)."""
    m, p, e, u = config.mapping, config.points, config.embedder, config.upsampler
    extra = dict(config.extra)
    rendering = EG3DRenderingConfig(
        image_resolution=config.img_resolution, superresolution_module=u.module, sr_antialias=u.antialias,
        superresolution_noise_mode=u.noise_mode, depth_resolution=p.num_coarse, depth_resolution_importance=p.num_fine,
        ray_start=p.near, ray_end=p.far, box_warp=p.box_side, disparity_space_sampling=p.disparity_space,
        white_back=config.renderer.white_back, density_noise=config.renderer.density_noise,
        avg_camera_radius=config.pose.radius, avg_camera_pivot=list(config.pose.pivot),
        c_gen_conditioning_zero=m.zero_camera, c_scale=m.camera_scale, decoder_lr_mul=config.decoder.lr_multiplier,
        triplane_axes=e.axes, **{key: extra.pop(key) for key in LOSS_KEYS if key in extra}, extra=extra)
    return EG3DConfig(
        z_dim=m.z_dim, w_dim=m.w_dim, c_dim=config.c_dim, img_resolution=config.img_resolution,
        img_channels=config.img_channels, mapping_layers=m.layers, channel_base=e.channel_base,
        channel_max=e.channel_max, num_fp16_res=e.num_fp16_res, conv_clamp=e.conv_clamp,
        fused_modconv_default=e.fused_modconv_default, sr_num_fp16_res=u.num_fp16_res,
        sr_fused_modconv_default=u.fused_modconv_default, neural_rendering_resolution=config.neural_rendering_resolution,
        triplane_resolution=e.resolution, rendering=rendering)


def official_to_pipeline_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official EG3D state dict under the pipeline's parameter names (unknown names kept, so the
    loader reports them)."""
    return {_rename(name, OFFICIAL_NAMES): tensor for name, tensor in state_dict.items()}


def pipeline_to_official_names(state_dict: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`official_to_pipeline_names`."""
    return {_rename(name, tuple((b, a) for a, b in OFFICIAL_NAMES)): v for name, v in state_dict.items()}


def _rename(name: str, prefixes: tuple[tuple[str, str], ...]) -> str:
    for old, new in prefixes:
        if name.startswith(old):
            return new + name[len(old):]
    return name
