"""VolumeGAN (methods.md §3.2), as the official genforce/volumegan code computes it.

Gaussian poses (yaw 0.3, pitch 0.155, r 1, fov 12), 12+12 samples on 0.8-1.2 (every coarse depth jittered
by +-half a spacing: the official ``perturb_mode`` None), importance samples from ``sample_pdf`` on the raw
coarse weights ('plain'); a 32^3 x 32 feature volume over the FFHQ bounds, read with border clamping, driven
by the first w of the NeRF MLP (shared with its first layer), concatenated before PE(10) of xyz; 4 modulated
1x1 layers of 256 with a 512-ch feature head (the official order: activations scaled around a shared conv),
ReLU density, a corner-aligned pixel grid (the fov spans the outer pixel centres), a 512-ch feature map at
32 px, and VolumeGAN's own synthesis (1x1 kernels, the image starting from the feature map's first 3
channels, conv clamp 256) 32 -> 256; an 8-layer mapping of width 512 (``mapping_fmaps``).

The depth image keeps our convention (weight-normalised; training never reads it); imported releases
report VolumeGAN's sum of weight x depth (``depth_sum``). Official checkpoints (the Hammer runner's
``.pth``: ``models.generator_smooth`` plus ``model_kwargs_init``) are read by
``models.checkpoint.read_volumegan_checkpoint`` through :func:`from_official` and
:func:`official_to_pipeline_names`.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch

from models.decoders import ModulatedMLPFieldDecoder
from models.embedders import VOLUMEGAN_FFHQ_BOUNDS, VolumeEmbedder
from models.mappings import StyleGAN2Mapping
from models.method_registry import register_method
from models.pipeline_config import PipelineConfig, RenderingOptions
from models.point_sampling import StratifiedPointSampler
from models.poses import PriorPoses
from models.releases import Release
from models.upsamplers import VolumeGANSynthesis
from models.volume_rendering import LastDeltaIntegrator, ReLUDensity


@register_method("volumegan")
def preset() -> PipelineConfig:
    return PipelineConfig(
        preset="volumegan", img_resolution=256, neural_rendering_resolution=32,
        mapping=StyleGAN2Mapping.Config(z_dim=512, w_dim=512, layers=8, hidden=512),
        pose=PriorPoses.Config(prior="volumegan", radius=1.0, fov_degrees=12.0),
        points=StratifiedPointSampler.Config(near=0.8, far=1.2, num_coarse=12, num_fine=12, perturb="self_uniform",
                                             box_side=0.4, importance="plain"),
        embedder=VolumeEmbedder.Config(coordinate_scale=1.0, pe_frequencies=10, outside="border",
                                       share_first_w=True, instance_norm="explicit"),
        decoder=ModulatedMLPFieldDecoder.Config(hidden=256, layers=4, out_features=512, fused_modulation=False),
        density=ReLUDensity.Config(), integrator=LastDeltaIntegrator.Config(),
        upsampler=VolumeGANSynthesis.Config(channel_base=32768, channel_max=512, conv_clamp=256.0),
        renderer=RenderingOptions(pixel_grid="corners", rays="camera_frame"),
    )


# --- official checkpoints (genforce/volumegan, Hammer runner ``.pth``) ------------------------------

OFFICIAL_NAMES: tuple[tuple[str, str], ...] = (
    (r"w_avg$", "mapping_network.w_avg"),
    (r"mapping\.dense(\d+)\.", r"mapping_network.fc\1."),
    (r"nerfmlp\.fv\.const$", "embedder.volume.const"),
    (r"nerfmlp\.fv\.layer(\d+)\.", r"embedder.volume.convs.\1."),
    (r"nerfmlp\.fv\.mapping_network\.", "embedder.volume.affine."),
    (r"nerfmlp\.fg_mlps\.(\d+)\.style\.", r"decoder.net.layers.\1.affine."),
    (r"nerfmlp\.fg_mlps\.(\d+)\.", r"decoder.net.layers.\1."),
    (r"nerfmlp\.fg_density\.", "decoder.net.sigma_head."),
    (r"nerfmlp\.fg_color\.", "decoder.net.rgb_head."),
    (r"synthesis\.filter$", "upsampler.resample_filter"),
    (r"synthesis\.(layer\d+|output\d+)\.style\.", r"upsampler.\1.affine."),
    (r"synthesis\.(layer\d+)\.noise$", r"upsampler.\1.noise_const"),
    (r"synthesis\.(layer\d+)\.filter$", r"upsampler.\1.resample_filter"),
    (r"synthesis\.(layer\d+|output\d+)\.", r"upsampler.\1."),
)
"""(official name pattern, pipeline name); the first that matches a name renames it. Shapes match one for one
except the noise buffers ([1, 1, q, q] officially, [q, q] here)."""

DROPPED = ("synthesis.lod",)
"""Official entries with no parameter here (the progressive-growing level; 0 in a finished model)."""

DEFAULTS: dict[str, Any] = {
    "w_dim": 512, "mapping_fmaps": 512, "mapping_lr_mul": 0.01, "fmaps_max": 512, "noise_type": "spatial",
    "conv_clamp": None, "embed_cfg": {"input_dim": 3, "max_freq_log2": 9, "N_freqs": 10},
    "fv_cfg": {"feat_res": 32, "init_res": 4, "base_channels": 256, "output_channels": 32, "w_dim": 512},
    "hs_cfg": {"clamp_mode": "relu"}, "vr_cfg": {"clamp_mode": "relu"}, "bg_cfg": None,
}
"""The constructor defaults of ``VolumeGANGenerator`` for keys a checkpoint's kwargs may leave out
(volumegan_ref README)."""


def official_to_pipeline_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official VolumeGAN generator's state under our names (unknown names kept, so the check names them)."""
    out = {}
    for name, tensor in state_dict.items():
        if name in DROPPED:
            continue
        new = name
        for pattern, replacement in OFFICIAL_NAMES:
            new, count = re.subn(f"^{pattern}", replacement, name)
            if count:
                break
        if new.endswith(".noise_const") and tensor.ndim == 4:
            tensor = tensor[0, 0]
        out[new] = tensor
    return out


def _get(kwargs: dict[str, Any], key: str) -> Any:
    value = kwargs.get(key, DEFAULTS.get(key))
    if key not in kwargs and key not in DEFAULTS:
        raise ValueError(f"model_kwargs_init has no {key}")
    return value


def from_official(kwargs: dict[str, Any], shapes: dict[str, tuple[int, ...]], release: Release) -> PipelineConfig:
    """The pipeline config of an official VolumeGAN generator: sizes from its constructor kwargs (absent keys
    take the constructor defaults) checked against its parameter shapes (official names), render settings
    from ``release``."""
    def shape(name: str) -> tuple[int, ...]:
        if name not in shapes:
            raise ValueError(f"no parameter {name}")
        return shapes[name]

    def sub(key: str) -> dict[str, Any]:
        value = _get(kwargs, key)
        return {**DEFAULTS.get(key, {}), **dict(value)} if isinstance(value, dict) else {}

    if _get(kwargs, "bg_cfg") is not None:
        raise ValueError("a background NeRF (bg_cfg) is not supported")
    for key in ("hs_cfg", "vr_cfg"):
        if sub(key).get("clamp_mode", "relu") != "relu":
            raise ValueError(f"{key}.clamp_mode {sub(key)['clamp_mode']!r} is not supported")
    embed, fg, fv, ps = sub("embed_cfg"), sub("fg_cfg"), sub("fv_cfg"), sub("ps_cfg")
    frequencies = int(embed["N_freqs"])
    if int(embed["input_dim"]) != 3 or int(embed["max_freq_log2"]) != frequencies - 1:
        raise ValueError(f"positional encoding {embed} is not PE(xyz) with frequencies 2^0 .. 2^(N-1)")
    if fg.get("activation_type", "lrelu") != "lrelu":
        raise ValueError(f"fg_cfg.activation_type {fg['activation_type']!r} is not supported")
    if _get(kwargs, "noise_type") != "spatial":
        raise ValueError(f"noise_type {_get(kwargs, 'noise_type')!r} is not supported")
    w_dim, z_dim = int(_get(kwargs, "w_dim")), int(kwargs["z_dim"])
    mapping_layers = len({n for n in shapes if re.match(r"mapping\.dense\d+\.weight$", n)})
    if mapping_layers != int(kwargs["mapping_layers"]):
        raise ValueError(f"{mapping_layers} mapping layers stored, kwargs say {kwargs['mapping_layers']}")
    hidden, layers, out_dim = int(fg["hidden_dim"]), int(fg["num_layers"]), int(kwargs["out_dim"])
    channels = int(fv["output_channels"])
    in_features = channels + 3 * (1 + 2 * frequencies)
    expected = {
        "mapping.dense0.weight": (int(_get(kwargs, "mapping_fmaps")) if mapping_layers > 1 else w_dim, z_dim),
        f"mapping.dense{mapping_layers - 1}.weight": (w_dim, int(_get(kwargs, "mapping_fmaps"))
                                                      if mapping_layers > 1 else z_dim),
        "nerfmlp.fv.const": (1, int(fv["base_channels"]), *[int(fv["init_res"])] * 3),
        "nerfmlp.fg_mlps.0.weight": (hidden, in_features, 1, 1),
        f"nerfmlp.fg_mlps.{layers - 1}.weight": (hidden, hidden if layers > 1 else in_features, 1, 1),
        "nerfmlp.fg_color.weight": (out_dim, hidden),
        "nerfmlp.fg_mlps.0.style.weight": (in_features, w_dim),
    }
    for name, want in expected.items():
        if shape(name) != want:
            raise ValueError(f"{name} is {shape(name)}, the kwargs give {want}")
    bounds = fv.get("bounds", VOLUMEGAN_FFHQ_BOUNDS)
    lr_mul = float(_get(kwargs, "mapping_lr_mul"))
    clamp = _get(kwargs, "conv_clamp")
    if not math.isclose(float(ps.get("radius", release.radius)), release.radius):
        release = release.replace(radius=float(ps["radius"]))
    return PipelineConfig(
        preset="volumegan", img_resolution=int(kwargs["resolution"]), neural_rendering_resolution=int(kwargs["nerf_res"]),
        mapping=StyleGAN2Mapping.Config(z_dim=z_dim, w_dim=w_dim, layers=mapping_layers, lr_multiplier=lr_mul,
                                        hidden=int(_get(kwargs, "mapping_fmaps"))),
        pose=PriorPoses.Config(prior=release.pose_prior, radius=release.radius, fov_degrees=release.fov_degrees),
        points=StratifiedPointSampler.Config(near=release.near, far=release.far, num_coarse=release.num_coarse,
                                             num_fine=release.num_fine, perturb="self_uniform", box_side=0.4,
                                             importance="plain"),
        embedder=VolumeEmbedder.Config(resolution=int(fv["feat_res"]), channels=channels,
                                       base_channels=int(fv["base_channels"]), init_resolution=int(fv["init_res"]),
                                       bounds=tuple(tuple(float(v) for v in corner) for corner in bounds),
                                       coordinate_scale=1.0, pe_frequencies=frequencies, outside="border",
                                       share_first_w=True, instance_norm="explicit"),
        decoder=ModulatedMLPFieldDecoder.Config(hidden=hidden, layers=layers, out_features=out_dim,
                                                fused_modulation=False),
        density=ReLUDensity.Config(),
        integrator=LastDeltaIntegrator.Config(last_back=release.last_back, depth_sum=True),
        upsampler=VolumeGANSynthesis.Config(channel_base=int(kwargs["fmaps_base"]),
                                            channel_max=int(_get(kwargs, "fmaps_max")),
                                            conv_clamp=float(clamp) if clamp is not None else 0.0),
        renderer=RenderingOptions(white_back=release.white_back, pixel_grid="corners", rays="camera_frame"),
        extra={"release": release.name, "truncation_psi": release.truncation_psi,
               "truncation_cutoff": release.truncation_cutoff},
    )
