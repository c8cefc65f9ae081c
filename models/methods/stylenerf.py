"""StyleNeRF (methods.md §3.8), as the official code (facebookresearch/StyleNeRF) computes it, in the
configuration of its released FFHQ models (fixture README "Released checkpoints").

Gaussian poses (u 0.3, v 0.155, r 1, fov 12); the ``stylenerf`` embedder renders its own cameras:
rays on the corner-aligned grid in its z-up world, not normalised, 14 samples at depths 0.88-1.12 along
the optical axis plus 14 from ``sample_pdf`` on the coarse positions, PE sin/cos(2^i pi p) (10
frequencies, no raw point), and the NeRF++ background (4 samples in inverse radius from 0.5, a 64-wide
4-layer ReLU MLP on [PE(4-d point), 32-d per-image code]) behind the foreground's end-of-ray
transmittance; the ``stylenerf_mlp`` decoder (8 modulated layers of 128, style-modulated sigma and
64-ch feature heads, a separate ``to_rgb``), ReLU density; 32 px rendering; the ``stylenerf`` upsampler
(1x1 blocks with ``pixelshuffle`` upsampling and magnitude-EMA input scales, conv clamp 256,
channel_base 1 x 32768, max 1024) to 256; an 8-layer mapping. The NeRF-path regulariser is in the loss.
Carver: batch 8 per GPU, R1 0.5, path length 2.

Official checkpoints (``ffhq_{256,512,1024}.pkl``: persistence pickles, ``G_ema``) are read by
``models.checkpoint.read_stylenerf_pickle_generator`` through :func:`from_official` and
:func:`official_to_pipeline_names` into the same network.

Differences from the official code by design:

* the background code is drawn per identity from N(0, ``background_code_std``^2) by a generator seeded
  with its first w (the scene, so every view and run of an identity shares it; the official scripts
  draw fresh ones per batch and image);
* everything runs in float32 (the official code runs the upper upsampler blocks in fp16 on GPU);
* depth is reported along the unit ray (the official ``surface_xyz`` is ``camera + depth * unit ray``),
  weight-normalised in the preset (our convention), the plain weighted sum in imported files;
* the foreground's modulated layers are matrix products, not convolutions (same sums, independent of
  the thread count);
* ``nn_cat`` upsampling (the repository's yaml) and view directions are not implemented: imported files
  with either are refused (the released FFHQ models use neither);
* the NeRF-path regulariser renders the foreground alone on unit rays through the generic sampler;
* the pose prior draws our y-up labels; ``ops.stylenerf`` maps them to StyleNeRF's z-up world exactly.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from models.decoders import StyleNeRFFieldDecoder
from models.embedders import StyleNeRFEmbedder
from models.mappings import StyleGAN2Mapping
from models.method_registry import register_method
from models.pipeline_config import PipelineConfig, RenderingOptions
from models.point_sampling import StratifiedPointSampler
from models.poses import PriorPoses
from models.releases import STYLENERF_NETWORK, Release
from models.upsamplers import StyleNeRFUpsampler
from models.volume_rendering import LastDeltaIntegrator, ReLUDensity


@register_method("stylenerf")
def preset() -> PipelineConfig:
    return PipelineConfig(
        preset="stylenerf", img_resolution=256, neural_rendering_resolution=32,
        mapping=StyleGAN2Mapping.Config(z_dim=512, w_dim=512, layers=8),
        pose=PriorPoses.Config(prior="stylenerf", radius=1.0, fov_degrees=12.0),
        points=StratifiedPointSampler.Config(near=0.88, far=1.12, num_coarse=14, num_fine=14, perturb="none",
                                             box_side=0.24, importance="plain", depth_along_axis=True),
        embedder=StyleNeRFEmbedder.Config(),
        decoder=StyleNeRFFieldDecoder.Config(hidden=128, layers=8, out_features=64),
        density=ReLUDensity.Config(), integrator=LastDeltaIntegrator.Config(),
        upsampler=StyleNeRFUpsampler.Config(channel_base=32768, channel_max=1024),
        renderer=RenderingOptions(pixel_grid="corners"),
    )


# --- official checkpoints (facebookresearch/StyleNeRF persistence pickles) ---------------------------

STYLENERF_GENERATOR = "training.networks.Generator"
"""The persistent class of an official StyleNeRF ``G_ema`` (its ``synthesis`` a ``NeRFSynthesisNetwork``)."""
STYLENERF_SYNTHESIS = "NeRFSynthesisNetwork"
"""The persistent class of its synthesis network, which tells a StyleNeRF ``Generator`` from others."""

OFFICIAL_NAMES: tuple[tuple[str, str], ...] = (
    (r"mapping\.", "mapping_network."),
    (r"synthesis\.fg_nerf\.", "decoder.net."),
    (r"synthesis\.bg_nerf\.", "background_decoder.net."),
    (r"synthesis\.(b\d+)\.", r"upsampler.\1."),
)
"""(official name prefix, pipeline prefix); shapes match one for one."""

DROPPED = re.compile(r"synthesis\.alpha$|synthesis\.(fg|bg)_nerf\.(fc_in|blocks\.\d+)\.resample_filter$")
"""Official entries with no tensor here: the progressive-growing ``alpha`` (1 in a finished model, checked
by the reader) and the unused filters of the NeRF MLPs' layers."""


def official_to_pipeline_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official StyleNeRF ``G_ema`` state under our names (unknown names kept, so the check names them)."""
    out = {}
    for name, tensor in state_dict.items():
        if DROPPED.match(name):
            continue
        new = name
        for pattern, replacement in OFFICIAL_NAMES:
            new, count = re.subn(f"^{pattern}", replacement, name)
            if count:
                break
        out[new] = tensor
    return out


def pipeline_to_official_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our StyleNeRF generator's tensors under the official ``G_ema`` names (the inverse of
    :func:`official_to_pipeline_names` on what it keeps)."""
    back = (("mapping_network.", "mapping."), ("decoder.net.", "synthesis.fg_nerf."),
            ("background_decoder.net.", "synthesis.bg_nerf."), ("upsampler.", "synthesis."))
    out = {}
    for name, tensor in state_dict.items():
        for ours, theirs in back:
            if name.startswith(ours):
                out[theirs + name[len(ours):]] = tensor
                break
    return out


def official_network(kwargs: dict[str, Any]) -> str:
    """The network an official StyleNeRF ``G_ema`` is, as ``models.releases`` names it (by image size)."""
    return f"{STYLENERF_NETWORK} {kwargs.get('img_resolution')} px"


def _count(shapes: dict[str, tuple[int, ...]], pattern: str) -> int:
    return len({m.group(1) for n in shapes if (m := re.match(pattern, n))})


def release_settings(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The render settings an official ``G_ema``'s init kwargs hold, as ``Release`` fields."""
    synthesis = kwargs.get("synthesis_kwargs") or {}
    camera, renderer = synthesis.get("camera_kwargs") or {}, synthesis.get("renderer_kwargs") or {}
    out: dict[str, Any] = {}
    if "fov" in camera:
        out["fov_degrees"] = float(camera["fov"])
    if isinstance(camera.get("depth_range"), list) and len(camera["depth_range"]) == 2:
        out["near"], out["far"] = (float(v) for v in camera["depth_range"])
    if "n_ray_samples" in renderer:
        out["num_coarse"] = int(renderer["n_ray_samples"])
        out["num_fine"] = int(renderer["n_ray_samples"]) if renderer.get("hierarchical", True) else 0
    if "img_resolution" in kwargs:
        out["img_resolution"] = int(kwargs["img_resolution"])
    if "resolution_vol" in synthesis:
        out["neural_rendering_resolution"] = int(synthesis["resolution_vol"])
    return out


def from_official(kwargs: dict[str, Any], shapes: dict[str, tuple[int, ...]], release: Release) -> PipelineConfig:
    """The pipeline config of an official StyleNeRF ``G_ema``: sizes from its tensor shapes (official
    names; the kwargs' omegaconf interpolations need not resolve), options from its init kwargs, render
    settings from ``release`` (which the reader fills from the kwargs first)."""
    def shape(name: str) -> tuple[int, ...]:
        if name not in shapes:
            raise ValueError(f"no parameter {name}")
        return shapes[name]

    synthesis = kwargs.get("synthesis_kwargs") or {}
    camera, renderer = synthesis.get("camera_kwargs") or {}, synthesis.get("renderer_kwargs") or {}
    foreground, background = synthesis.get("foreground_kwargs") or {}, synthesis.get("background_kwargs") or {}
    mode = synthesis.get("upsample_mode", "pixelshuffle")
    if mode != "pixelshuffle":
        raise ValueError(f"upsample_mode {mode!r} is not supported (the released models use 'pixelshuffle')")
    for name, part in (("foreground", foreground), ("background", background)):
        if part.get("use_viewdirs"):
            raise ValueError(f"{name} view directions (use_viewdirs) are not supported")
        if part.get("positional_encoding", "normal") != "normal":
            raise ValueError(f"{name} positional_encoding {part['positional_encoding']!r} is not supported")
        if float(part.get("downscale_p_by", 1)) != 1:
            raise ValueError(f"{name} downscale_p_by {part['downscale_p_by']} is not supported")
    if camera.get("depth_transform") is not None:
        raise ValueError(f"depth_transform {camera['depth_transform']!r} is not supported")
    mapping_layers = _count(shapes, r"mapping\.fc(\d+)\.weight$")
    w_dim, z_dim = shape("mapping.fc0.weight")[0], shape("mapping.fc0.weight")[1]
    hidden, encoded = shape("synthesis.fg_nerf.fc_in.weight")[:2]
    if encoded % 6:
        raise ValueError(f"fg_nerf.fc_in reads {encoded} features, not a 3-d sin/cos encoding")
    frequencies = encoded // 6
    layers = 1 + _count(shapes, r"synthesis\.fg_nerf\.blocks\.(\d+)\.weight$")
    features = shape("synthesis.fg_nerf.feat_out.weight")[0]
    has_background = "synthesis.bg_nerf.fc_in.weight" in shapes
    embedder = StyleNeRFEmbedder.Config(pe_frequencies=frequencies, background=has_background,
                                        align_corners=bool(camera.get("ray_align_corner", True)),
                                        background_samples=int(renderer.get("n_bg_samples", 4)),
                                        background_start=float(camera.get("bg_start", 0.5)))
    if has_background:
        bg_hidden, bg_in = shape("synthesis.bg_nerf.fc_in.weight")
        z_bg = bg_in - 8 * frequencies
        if z_bg < 0 or shape("synthesis.bg_nerf.feat_out.weight")[0] != features:
            raise ValueError(f"bg_nerf.fc_in reads {bg_in} features and bg_nerf.feat_out gives "
                             f"{shape('synthesis.bg_nerf.feat_out.weight')[0]}: not PE(4-d points) + a code with "
                             f"the foreground's {features} features")
        embedder = embedder.replace(background_hidden=bg_hidden, background_z_dim=z_bg,
                                    background_layers=1 + _count(shapes, r"synthesis\.bg_nerf\.blocks\.(\d+)\.weight$"))
    r, resolution = release.neural_rendering_resolution, release.img_resolution
    base = int(round(float(synthesis.get("channel_base", 1)) * 32768))
    upsampler = StyleNeRFUpsampler.Config(channel_base=base, channel_max=int(synthesis.get("channel_max", 512)),
                                          conv_clamp=float(synthesis.get("conv_clamp") or 0),
                                          magnitude_ema_beta=float(synthesis.get("magnitude_ema_beta", 0.999)))
    res = r * 2
    while f"synthesis.b{res}.conv0.weight" in shapes:
        want = min(upsampler.channel_base // res, upsampler.channel_max)
        if shape(f"synthesis.b{res}.conv0.weight")[0] != want:
            raise ValueError(f"synthesis.b{res} has {shape(f'synthesis.b{res}.conv0.weight')[0]} channels, "
                             f"channel_base / channel_max give {want}")
        res *= 2
    if res // 2 != resolution:
        raise ValueError(f"the upsampler blocks end at {res // 2} px, the generator's image is {resolution} px")
    return PipelineConfig(
        preset="stylenerf", img_resolution=resolution, neural_rendering_resolution=r,
        mapping=StyleGAN2Mapping.Config(z_dim=z_dim, w_dim=w_dim, layers=mapping_layers),
        pose=PriorPoses.Config(prior=release.pose_prior, radius=release.radius, fov_degrees=release.fov_degrees),
        points=StratifiedPointSampler.Config(near=release.near, far=release.far, num_coarse=release.num_coarse,
                                             num_fine=release.num_fine, perturb="none", box_side=0.24,
                                             importance="plain", depth_along_axis=True),
        embedder=embedder,
        decoder=StyleNeRFFieldDecoder.Config(hidden=hidden, layers=layers, out_features=features),
        density=ReLUDensity.Config(), integrator=LastDeltaIntegrator.Config(depth_sum=True),
        upsampler=upsampler, renderer=RenderingOptions(pixel_grid="corners"),
        extra={"release": release.name, "truncation_psi": release.truncation_psi},
    )
