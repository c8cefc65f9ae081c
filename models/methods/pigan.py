"""pi-GAN (methods.md §3.5, CelebA curriculum).

Gaussian poses (yaw 0.3, pitch 0.155, r 1, fov 12), 12+12 samples on 0.88-1.12 with +-half-spacing
jitter, raw coordinates x 2/0.24, 8x256 FiLM-SIREN, 3x256 FiLM mapping, ReLU density with noise
annealed over 5000 steps (here kimg = steps x batch 56 / 1000 = 280), last delta 1e10, 64 px, no
upsampler. Carver (pigan_ffhq64): batch 8, otherwise the same.

As the official code: importance samples from ``sample_pdf`` on the raw coarse weights ('plain'),
a corner-aligned pixel grid (the fov spans the outer pixel centres), truncation as avg + psi (ws - avg).
The depth image keeps our convention (weight-normalised, empty rays at the far end; training never
reads it, and the viewer's surface level needs empty pixels far); imported releases report pi-GAN's
sum of weight x depth (``depth_sum``). ``last_back`` is off as in the training curricula; the released models
render with it on (``models.releases``).
"""

import re

import torch

from models.decoders import SirenDecoder
from models.embedders import CoordinateEmbedder
from models.mappings import FiLMMappingNetwork
from models.method_registry import register_method
from models.pipeline_config import PipelineConfig, RenderingOptions
from models.point_sampling import StratifiedPointSampler
from models.poses import PriorPoses
from models.releases import Release
from models.volume_rendering import LastDeltaIntegrator, ReLUDensity


@register_method("pigan")
def preset() -> PipelineConfig:
    return PipelineConfig(
        preset="pigan", img_resolution=64, neural_rendering_resolution=64,
        mapping=FiLMMappingNetwork.Config(z_dim=256, layers=3, hidden=256, affine_truncation=True),
        pose=PriorPoses.Config(prior="pi_gan", radius=1.0, fov_degrees=12.0),
        points=StratifiedPointSampler.Config(near=0.88, far=1.12, num_coarse=12, num_fine=12, perturb="self_uniform",
                                             box_side=0.24, importance="plain"),
        embedder=CoordinateEmbedder.Config(coordinate_scale=2 / 0.24),
        decoder=SirenDecoder.Config(hidden=256, layers=8),
        density=ReLUDensity.Config(), integrator=LastDeltaIntegrator.Config(),
        renderer=RenderingOptions(density_noise=1.0, density_noise_fade_kimg=5000 * 56 / 1000, pixel_grid="corners"),
    )


# --- official checkpoints (marcoamonteiro/pi-GAN ``generator.pth``) ---------------------------------

OFFICIAL_NAMES: tuple[tuple[str, str], ...] = (
    (r"siren\.network\.(\d+)\.layer\.", r"decoder.net.layers.\1.linear."),
    (r"siren\.final_layer\.", "decoder.net.sigma_head."),
    (r"siren\.color_layer_sine\.layer\.", "decoder.net.color_film.linear."),
    (r"siren\.color_layer_linear\.0\.", "decoder.net.rgb_head."),
)
"""(official name pattern, pipeline name) of the SIREN's parameters; the mapping network's
``siren.mapping_network.network.{2k}`` are ``mapping_network.film.hidden.{k}``, its last linear
``mapping_network.film.out`` (:func:`official_to_pipeline_names`). Shapes match one for one."""

_OFFICIAL_MAPPING = re.compile(r"siren\.mapping_network\.network\.(\d+)\.")


def official_to_pipeline_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official pi-GAN generator's parameters under our names (unknown names are kept as they are,
    so the shape check names them)."""
    mapping_ids = sorted({int(m.group(1)) for name in state_dict if (m := _OFFICIAL_MAPPING.match(name))})
    out = {}
    for name, tensor in state_dict.items():
        new = name
        found = _OFFICIAL_MAPPING.match(name)
        if found:
            index = mapping_ids.index(int(found.group(1)))
            layer = "out" if index == len(mapping_ids) - 1 else f"hidden.{index}"
            new = f"mapping_network.film.{layer}." + name[found.end():]
        for pattern, replacement in OFFICIAL_NAMES:
            new = re.sub(f"^{pattern}", replacement, new)
        out[new] = tensor
    return out


def from_official(shapes: dict[str, tuple[int, ...]], coordinate_scale: float, release: Release) -> PipelineConfig:
    """The pipeline config of an official pi-GAN generator: sizes from its parameter shapes (official
    names), the input scale from its ``UniformBoxWarp``, render settings from its release."""
    def shape(name: str) -> tuple[int, ...]:
        if name not in shapes:
            raise ValueError(f"no parameter {name}")
        return shapes[name]

    layers = len({n for n in shapes if re.match(r"siren\.network\.\d+\.layer\.weight$", n)})
    hidden = shape("siren.network.0.layer.weight")[0]
    mapping = sorted(int(m.group(1)) for n in shapes if (m := _OFFICIAL_MAPPING.match(n)) and n.endswith(".weight"))
    if layers < 1 or len(mapping) < 2:
        raise ValueError("not a pi-GAN SIREN (no FiLM layers or mapping network)")
    mapping_hidden, z_dim = shape(f"siren.mapping_network.network.{mapping[0]}.weight")
    out = shape(f"siren.mapping_network.network.{mapping[-1]}.weight")[0]
    if out != 2 * (layers + 1) * hidden:
        raise ValueError(f"mapping output {out} != 2 x {layers + 1} FiLM layers x {hidden}")
    if not coordinate_scale > 0:
        raise ValueError(f"input scale {coordinate_scale} is not positive")
    return PipelineConfig(
        preset="pigan", img_resolution=release.img_resolution, neural_rendering_resolution=release.img_resolution,
        mapping=FiLMMappingNetwork.Config(z_dim=z_dim, layers=len(mapping) - 1, hidden=mapping_hidden,
                                          affine_truncation=True),
        pose=PriorPoses.Config(prior=release.pose_prior, radius=release.radius, fov_degrees=release.fov_degrees),
        points=StratifiedPointSampler.Config(near=release.near, far=release.far, num_coarse=release.num_coarse,
                                             num_fine=release.num_fine, perturb="self_uniform",
                                             box_side=2 / coordinate_scale, importance="plain"),
        embedder=CoordinateEmbedder.Config(coordinate_scale=coordinate_scale),
        decoder=SirenDecoder.Config(hidden=hidden, layers=layers),
        density=ReLUDensity.Config(),
        integrator=LastDeltaIntegrator.Config(last_back=release.last_back, depth_sum=True),
        renderer=RenderingOptions(white_back=release.white_back, lock_view_dependence=release.lock_view_dependence,
                                  pixel_grid="corners"),
        extra={"release": release.name, "truncation_psi": release.truncation_psi},
    )
