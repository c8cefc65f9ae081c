"""GRAF (methods.md §3.6), as the official code (autonomousvision/graf, nerf-pytorch) computes it.

The CelebA configuration: uniform poses (azimuth 2 pi u, u in [0, 0.25]; polar angle arccos(1 - 2 v),
70-85 deg; r U(9.5, 10.5), viewed from r 10.5 as ``eval.py`` renders; fov 10; ``pose.prior='graf_celeba'``),
the z-up world of the official code (``embedder.world_axes`` (2, 0, 1): our frontal camera on +z is its
u = 0 camera on +x, our up +y its +z),
OpenGL cameras with rays through integer pixel coordinates (``renderer.pixel_grid='integers'``: ``(i - W/2) /
f``, no +0.5), nerf-pytorch's unnormalised rays R (x, y, 1) and points o + rays t in its float32 order
(``renderer.rays='axis'``), 64 depths t = 7.5 (1 - s) + 12.5 s along the optical axis (``lerp_grid``,
``depth_along_axis``; intervals x |rays|, the last 1e10), moved by -(r_max - r) for each camera
(``radius_max``), jittered in training between the neighbouring midpoints (``perturb='midpoint_bins'``), PE(10) of
world points and PE(4) of the unit view direction (no pi, input included), the 8x256 ReLU NeRF MLP with
[input, h] after layer 4, 128-d shape and appearance codes read from z as they are, ReLU density with
noise 1 annealed to 0 over 5000 iterations (batch 8: 40 kimg), colour sigmoid x 2 - 1, depth the plain sum
of weight x depth, 32 px patches, 64 px images. Carver: the shared Gaussian prior at r 1, fov 12
(``pose.prior='graf_carver'``, near/far 0.88-1.12), Adam (0, 0.99), R1 20, 128 px output.

Differences from the official code by design: the world is ours (y up) and the network reads it through
the axis permutation, which is exact; the last interval is 1e10 along the unit ray (officially 1e10 x
|rays|: the same alpha wherever the density is not 0 to float precision) and intervals are differences of
t |rays| (officially (t' - t) |rays|: round-off); depth images are distances along each ray (divide by
|rays| of the pixel for the official depth along the axis, as ``tests/reference_check.py`` does for
``disp``); disp and acc are not outputs of ``synthesis`` (acc is the sum of ``render_composite``'s
weights); the density noise is annealed by images shown, not iterations (the same at batch 8).
Checkpoints written before these options keep their own config (the new fields default to the old
behaviour).
"""

from __future__ import annotations

import re

import torch

from models.decoders import NeRFMLPFieldDecoder
from models.embedders import CoordinateEmbedder
from models.mappings import IdentityMapping
from models.method_registry import register_method
from models.pipeline_config import PipelineConfig, RenderingOptions
from models.point_sampling import StratifiedPointSampler
from models.poses import PriorPoses
from models.releases import Release
from models.volume_rendering import LastDeltaIntegrator, ReLUDensity
from ops.camera import Z_UP_AXES
from ops.siren import encoded_size

GRAF_AXES = Z_UP_AXES
"""Our world axes as GRAF's z-up world reads them (``embedder.world_axes``)."""
PE_POINTS, PE_VIEWS = 10, 4
"""Positional-encoding frequencies of every official GRAF configuration (``multires``, ``multires_views``)."""


@register_method("graf")
def preset() -> PipelineConfig:
    return PipelineConfig(
        preset="graf", img_resolution=64, neural_rendering_resolution=64,
        mapping=IdentityMapping.Config(z_dim=256),
        pose=PriorPoses.Config(prior="graf_celeba", radius=10.5, fov_degrees=10.0),
        points=StratifiedPointSampler.Config(near=7.5, far=12.5, num_coarse=64, num_fine=0, perturb="midpoint_bins",
                                             box_side=5.0, patch="graf", patch_size=32, depth_along_axis=True,
                                             radius_max=10.5, lerp_grid=True),
        embedder=CoordinateEmbedder.Config(coordinate_scale=1.0, pe_frequencies=PE_POINTS, world_axes=GRAF_AXES),
        decoder=NeRFMLPFieldDecoder.Config(hidden=256, layers=8, skip=4, out_features=3, z_shape_dim=128, z_app_dim=128,
                                           dir_frequencies=PE_VIEWS),
        density=ReLUDensity.Config(), integrator=LastDeltaIntegrator.Config(depth_sum=True),
        renderer=RenderingOptions(density_noise=1.0, density_noise_fade_kimg=5000 * 8 / 1000, pixel_grid="integers",
                                  rays="axis"),
    )


# --- official checkpoints (``CheckpointIO`` dicts: ``generator_test`` / ``generator`` NeRF state dicts) --------

OFFICIAL_NAMES: tuple[tuple[str, str], ...] = (
    (r"pts_linears\.(\d+)\.", r"decoder.net.layers.\1."),
    (r"alpha_linear\.", "decoder.net.sigma_head."),
    (r"feature_linear\.", "decoder.net.feature_linear."),
    (r"views_linears\.0\.", "decoder.net.view_linear."),
    (r"rgb_linear\.", "decoder.net.rgb_head."),
)
"""(official name pattern, pipeline name) of the NeRF MLP's entries (both ways: the patterns are one to one)."""

GRAF_NETWORK = "GRAF NeRF"
"""What a GRAF checkpoint's ``generator_test`` is (nerf-pytorch's ``NeRF`` in GRAF's ``Generator``)."""


def _rename(state_dict: dict[str, torch.Tensor], pairs) -> dict[str, torch.Tensor]:
    out = {}
    for name, tensor in state_dict.items():
        new = name
        for pattern, replacement in pairs:
            if re.match(pattern, name):
                new = re.sub(f"^{pattern}", replacement, name)
                break
        out[new] = tensor
    return out


def official_to_pipeline_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official GRAF NeRF state dict under our names (unknown names kept, so the caller names them)."""
    return _rename(state_dict, OFFICIAL_NAMES)


def pipeline_to_official_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our GRAF decoder's parameters under the official names (the mapping's unused mean left out)."""
    pairs = (
        (r"decoder\.net\.layers\.(\d+)\.", r"pts_linears.\1."),
        (r"decoder\.net\.sigma_head\.", "alpha_linear."),
        (r"decoder\.net\.feature_linear\.", "feature_linear."),
        (r"decoder\.net\.view_linear\.", "views_linears.0."),
        (r"decoder\.net\.rgb_head\.", "rgb_linear."),
    )
    return {k: v for k, v in _rename(state_dict, pairs).items() if not k.startswith(("decoder.", "mapping_network."))}


def _shape(shapes: dict[str, tuple[int, ...]], name: str) -> tuple[int, ...]:
    if name not in shapes:
        raise ValueError(f"no parameter {name}")
    return shapes[name]


def official_network(shapes: dict[str, tuple[int, ...]]) -> str:
    """The network a GRAF state dict holds, as ``models.releases`` names it: with or without view directions.

    The official colour branch reads [feature, PE(d), z_app] (``use_viewdirs``) or [feature, z_app]; the
    appearance code's size is not stored, so the branch is told apart by its width: without view
    directions (the released cub_64) z_app is as wide as z_shape, the released configuration."""
    width, first_in = _shape(shapes, "pts_linears.0.weight")
    z_shape = first_in - encoded_size(PE_POINTS)
    views_in = _shape(shapes, "views_linears.0.weight")[1] - width
    if z_shape < 0 or views_in < 0:
        raise ValueError("not a GRAF NeRF (pts_linears.0 or views_linears.0 narrower than PE(10) / the features)")
    with_views = views_in != z_shape
    return f"{GRAF_NETWORK}, {'view directions' if with_views else 'no view directions'}"


def from_official(shapes: dict[str, tuple[int, ...]], release: Release) -> PipelineConfig:
    """The pipeline config of an official GRAF NeRF state dict: sizes from its shapes (official names),
    render settings from its release (its network says whether the colour branch reads view directions)."""
    depth = len({m.group(1) for n in shapes if (m := re.match(r"pts_linears\.(\d+)\.weight$", n))})
    if depth < 2:
        raise ValueError("not a GRAF NeRF (fewer than 2 pts_linears)")
    width, first_in = _shape(shapes, "pts_linears.0.weight")
    z_shape = first_in - encoded_size(PE_POINTS)
    with_views = release.network.endswith(", view directions")
    z_app = _shape(shapes, "views_linears.0.weight")[1] - width - (encoded_size(PE_VIEWS) if with_views else 0)
    skips = [i for i in range(depth - 1) if _shape(shapes, f"pts_linears.{i + 1}.weight")[1] == width + first_in]
    if len(skips) != 1 or z_app < 0:
        raise ValueError(f"unsupported GRAF NeRF: skips after layers {skips}, appearance code {z_app}")
    view_hidden = _shape(shapes, "rgb_linear.weight")[1]
    if view_hidden != width // 2 or _shape(shapes, "alpha_linear.weight") != (1, width):
        raise ValueError("the colour branch is not width / 2 wide or alpha_linear does not read the features")
    return PipelineConfig(
        preset="graf", img_resolution=release.img_resolution, neural_rendering_resolution=release.img_resolution,
        mapping=IdentityMapping.Config(z_dim=z_shape + z_app),
        pose=PriorPoses.Config(prior=release.pose_prior, radius=release.radius, fov_degrees=release.fov_degrees),
        points=StratifiedPointSampler.Config(near=release.near, far=release.far, num_coarse=release.num_coarse,
                                             num_fine=release.num_fine, perturb="midpoint_bins",
                                             box_side=2 * (release.radius - release.near), patch="graf",
                                             depth_along_axis=True, radius_max=release.radius_max, lerp_grid=True),
        embedder=CoordinateEmbedder.Config(pe_frequencies=PE_POINTS, world_axes=GRAF_AXES),
        decoder=NeRFMLPFieldDecoder.Config(hidden=width, layers=depth, skip=skips[0], out_features=3,
                                           z_shape_dim=z_shape, z_app_dim=z_app, dir_frequencies=PE_VIEWS,
                                           view_directions=with_views),
        density=ReLUDensity.Config(), integrator=LastDeltaIntegrator.Config(depth_sum=True),
        renderer=RenderingOptions(white_back=release.white_back, pixel_grid="integers", rays="axis"),
        extra={"release": release.name, "truncation_psi": release.truncation_psi},
    )
