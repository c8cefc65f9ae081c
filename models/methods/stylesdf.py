"""StyleSDF (methods.md §3.4), as the official code (royorel/StyleSDF) computes it.

Gaussian poses (azimuth 0.3, elevation 0.15; Carver 0.155), r 1, 12 degree fov (6 degree half angle),
24 samples on depths 0.88-1.12 along the optical axis (unnormalised rays, camera z = -1) on the offset
grid t = linspace(0, 1 - 1/N, N) with one random offset per ray in training, coordinates x 2/(far -
near), the renderer mapping (3 plain layers, leaky ReLU 0.2, no z normalisation, ``StyleSDFMapping``),
8x256 FiLM-SIREN SDF decoder whose feature is the view layer itself (256 ch), view directions in the
camera frame (``static_viewdirs``), sigma = sigmoid(-d/a)/a with a learnable a (init 0.1) used as is
and not scaled to world units, ``force_background``, 64 px volume rendering; stage 2 adds StyleSDF's
2D decoder (``StyleSDFDecoderUpsampler``: its own PixelNorm + 5-layer 512-d mapping at lr x 0.01 on
the truncated renderer w, a second truncation, a rosinality StyleGAN2 generator with channel
multiplier 2) to 1024 px with the renderer frozen. Carver: elevation std 0.155
(``pose.prior='stylesdf_carver'``) and R1 0.2 for the 1024 px pipeline.

Checkpoints written before these options keep their own config (the new fields default to the old
behaviour: one StyleGAN2 mapping, per-world-unit density, distances along unit rays).
"""

import re

import torch

from models.decoders import SDFSirenFieldDecoder
from models.embedders import CoordinateEmbedder
from models.mappings import StyleSDFMapping
from models.method_registry import register_method
from models.pipeline_config import PipelineConfig, RenderingOptions
from models.point_sampling import StratifiedPointSampler
from models.poses import PriorPoses
from models.releases import Release
from models.upsamplers import NoUpsampler, StyleSDFDecoderUpsampler, stylesdf_channels
from models.volume_rendering import LastDeltaIntegrator, SDFSigmoidDensity


@register_method("stylesdf")
def preset() -> PipelineConfig:
    return PipelineConfig(
        preset="stylesdf", img_resolution=1024, neural_rendering_resolution=64,
        mapping=StyleSDFMapping.Config(z_dim=256, w_dim=256, layers=3),
        pose=PriorPoses.Config(prior="stylesdf", radius=1.0, fov_degrees=12.0),
        points=StratifiedPointSampler.Config(near=0.88, far=1.12, num_coarse=24, num_fine=0, perturb="offset",
                                             box_side=0.24, offset_grid=True, depth_along_axis=True),
        embedder=CoordinateEmbedder.Config(coordinate_scale=2 / 0.24),
        decoder=SDFSirenFieldDecoder.Config(hidden=256, layers=8, feature_dim=256),
        density=SDFSigmoidDensity.Config(alpha_init=0.1, per_world_unit=False, alpha_as_is=True),
        integrator=LastDeltaIntegrator.Config(force_background=True, depth_sum=True),
        upsampler=StyleSDFDecoderUpsampler.Config(w_dim=512, mapping_layers=5, lr_multiplier=0.01,
                                                  channel_multiplier=2),
        renderer=RenderingOptions(camera_frame_views=True),
    )


# --- official checkpoints (royorel/StyleSDF ``*.pt``: {'g_ema', 'g', 'd'} state dicts) -------------

OFFICIAL_NAMES: tuple[tuple[str, str], ...] = (
    (r"style\.(\d+)\.", r"mapping_network.layers.\1."),
    (r"renderer\.network\.pts_linears\.(\d+)\.(weight|bias)$", r"decoder.net.layers.\1.film.linear.\2"),
    (r"renderer\.network\.pts_linears\.(\d+)\.(gamma|beta)\.", r"decoder.net.layers.\1.\2."),
    (r"renderer\.network\.views_linears\.(weight|bias)$", r"decoder.net.view_film.film.linear.\1"),
    (r"renderer\.network\.views_linears\.(gamma|beta)\.", r"decoder.net.view_film.\1."),
    (r"renderer\.network\.sigma_linear\.", "decoder.net.sdf_head."),
    (r"renderer\.network\.rgb_linear\.", "decoder.net.rgb_head."),
    (r"renderer\.sigmoid_beta$", "renderer.sdf_alpha"),
)
"""(official name pattern, pipeline name) of the renderer's entries (``g_ema`` of StyleSDF's
``Generator``); ``decoder.*`` (the 2D decoder) is mapped by :func:`official_to_pipeline_names`."""

STYLESDF_GENERATOR = "StyleSDF Generator"
"""What a StyleSDF ``.pt`` file's ``g_ema`` is (the official ``model.Generator``)."""


def official_to_pipeline_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official StyleSDF ``g_ema`` under our names (unknown names are kept as they are, so the
    caller names them). ``renderer.sigmoid_beta`` [1] becomes our scalar ``renderer.sdf_alpha``."""
    out = {}
    for name, tensor in state_dict.items():
        new = name
        for pattern, replacement in OFFICIAL_NAMES:
            new = re.sub(f"^{pattern}", replacement, new)
        if new == "renderer.sdf_alpha" and tensor.numel() == 1:
            tensor = tensor.reshape(())
        new = _decoder_name(new)
        out[new] = tensor
    return out


def _decoder_name(name: str) -> str:
    if not name.startswith("decoder.") or name.startswith("decoder.net."):
        return name
    return "upsampler.net." + name[len("decoder."):]


def pipeline_to_official_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our StyleSDF generator's parameters under the official ``g_ema`` names (no truncation mean)."""
    back = (
        (r"mapping_network\.layers\.(\d+)\.", r"style.\1."),
        (r"decoder\.net\.layers\.(\d+)\.film\.linear\.", r"renderer.network.pts_linears.\1."),
        (r"decoder\.net\.layers\.(\d+)\.(gamma|beta)\.", r"renderer.network.pts_linears.\1.\2."),
        (r"decoder\.net\.view_film\.film\.linear\.", "renderer.network.views_linears."),
        (r"decoder\.net\.view_film\.(gamma|beta)\.", r"renderer.network.views_linears.\1."),
        (r"decoder\.net\.sdf_head\.", "renderer.network.sigma_linear."),
        (r"decoder\.net\.rgb_head\.", "renderer.network.rgb_linear."),
        (r"renderer\.sdf_alpha$", "renderer.sigmoid_beta"),
        (r"upsampler\.net\.", "decoder."),
    )
    official = {}
    for name, tensor in state_dict.items():
        for pattern, replacement in back:
            if re.match(pattern, name):
                new = re.sub(f"^{pattern}", replacement, name)
                official[new] = tensor.reshape(1) if new == "renderer.sigmoid_beta" else tensor
                break
    return official


def official_network(shapes: dict[str, tuple[int, ...]]) -> str:
    """The network a StyleSDF ``g_ema`` holds, as ``models.releases`` names it: the renderer alone,
    or the full pipeline with its output size (64 px renderer x 2 per ``to_rgbs`` block)."""
    if "style.0.weight" not in shapes or "renderer.network.pts_linears.0.weight" not in shapes:
        raise ValueError("not a StyleSDF generator (no style.0.weight or renderer.network.pts_linears.0.weight)")
    if not any(name.startswith("decoder.") for name in shapes):
        return f"{STYLESDF_GENERATOR} renderer"
    blocks = len({m.group(1) for n in shapes if (m := re.match(r"decoder\.to_rgbs\.(\d+)\.", n))})
    return f"{STYLESDF_GENERATOR} full pipeline, {blocks} decoder blocks"


def _count(shapes, pattern: str) -> int:
    return len({m.group(1) for n in shapes if (m := re.match(pattern, n))})


def from_official(shapes: dict[str, tuple[int, ...]], release: Release) -> PipelineConfig:
    """The pipeline config of an official StyleSDF ``g_ema``: sizes from its shapes (official names),
    render settings from its release."""
    def shape(name: str) -> tuple[int, ...]:
        if name not in shapes:
            raise ValueError(f"no parameter {name}")
        return shapes[name]

    mapping_layers = _count(shapes, r"style\.(\d+)\.weight$")
    depth = _count(shapes, r"renderer\.network\.pts_linears\.(\d+)\.weight$")
    if mapping_layers < 1 or depth < 1:
        raise ValueError("not a StyleSDF generator (no mapping or SIREN layers)")
    w_dim, z_dim = shape("style.0.weight")
    width = shape("renderer.network.pts_linears.0.weight")[0]
    if shape("renderer.network.pts_linears.0.gamma.weight") != (width, w_dim):
        raise ValueError("the SIREN's FiLM layers do not read the mapping's w")
    if shape("renderer.network.views_linears.weight") != (width, width + 3):
        raise ValueError("views_linears does not read the SIREN features and a 3-d direction")
    box = release.far - release.near
    full = any(name.startswith("decoder.") for name in shapes)
    resolution = release.img_resolution if full else release.neural_rendering_resolution
    upsampler, mapping = NoUpsampler.Config(), StyleSDFMapping.Config(z_dim=z_dim, w_dim=w_dim, layers=mapping_layers)
    if full:
        upsampler, mapping, resolution = _official_decoder(shapes, mapping, release)
    return PipelineConfig(
        preset="stylesdf", img_resolution=resolution, neural_rendering_resolution=release.neural_rendering_resolution,
        mapping=mapping,
        pose=PriorPoses.Config(prior=release.pose_prior, radius=release.radius, fov_degrees=release.fov_degrees),
        points=StratifiedPointSampler.Config(near=release.near, far=release.far, num_coarse=release.num_coarse,
                                             num_fine=release.num_fine, perturb="offset", box_side=box,
                                             offset_grid=True, depth_along_axis=True),
        embedder=CoordinateEmbedder.Config(coordinate_scale=2 / box),
        decoder=SDFSirenFieldDecoder.Config(hidden=width, layers=depth, feature_dim=width),
        density=SDFSigmoidDensity.Config(per_world_unit=False, alpha_as_is=True),
        integrator=LastDeltaIntegrator.Config(force_background=release.last_back, depth_sum=True),
        upsampler=upsampler,
        renderer=RenderingOptions(white_back=release.white_back, camera_frame_views=True),
        extra={"release": release.name, "truncation_psi": release.truncation_psi},
    )


def _official_decoder(shapes: dict[str, tuple[int, ...]], mapping: StyleSDFMapping.Config, release: Release
                      ) -> tuple[StyleSDFDecoderUpsampler.Config, StyleSDFMapping.Config, int]:
    """(upsampler config, mapping config, output resolution) of the official 2D decoder's shapes."""
    blocks = _count(shapes, r"decoder\.to_rgbs\.(\d+)\.conv\.weight$")
    layers = _count(shapes, r"decoder\.style\.(\d+)\.weight$")
    if layers < 1 or "decoder.conv1.activate.bias" not in shapes:
        raise ValueError("the 2D decoder has no mapping or no conv1")
    w_dim, renderer_w = shapes["decoder.style.1.weight"]
    if renderer_w != mapping.w_dim:
        raise ValueError(f"decoder.style reads {renderer_w}-d ws, the renderer's are {mapping.w_dim}-d")
    r = release.neural_rendering_resolution
    first = shapes["decoder.conv1.activate.bias"][0]
    multiplier = max(1, first // stylesdf_channels(r, 1, 1 << 30))
    config = StyleSDFDecoderUpsampler.Config(w_dim=w_dim, mapping_layers=layers, channel_multiplier=multiplier,
                                             channel_max=max(first, 512))
    res = r
    for k in range(blocks):
        res *= 2
        found = shapes.get(f"decoder.convs.{2 * k}.activate.bias", (None,))[0]
        if found != stylesdf_channels(res, multiplier, config.channel_max):
            raise ValueError(f"decoder.convs.{2 * k} has {found} channels, the official table "
                             f"{stylesdf_channels(res, multiplier, config.channel_max)}")
    return config, mapping, res
