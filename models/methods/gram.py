"""GRAM (methods.md §3.3, FFHQ).

pi-GAN's pose prior, 64 unperturbed samples on 0.88-1.12 into a 3x128 manifold predictor, 23 levels
23 -> 8 plus the background plane at z = -0.12, GramRF 8x256 FiLM-SIREN with summed per-layer heads,
softplus density, constant delta 0.04, 256 px. Carver: ``levels_end`` defaults to 3, not the
official 8 (``--set generator.embedder.levels_end=3``).

As the official code (microsoft/GRAM): the manifold predictor always reads x 2/0.24 (``field_scale``),
the background plane is always valid and the last point in depth order gets delta 1e10
(``last_infinite``), a corner-aligned pixel grid (the fov spans the outer pixel centres), truncation
``avg.lerp(raw, psi)``. The depth image keeps our convention (weight-normalised, clamped, empty rays
far); imported releases report GRAM's sum(w z) / sum(w) (``depth_ratio``). ``lock_view_dependence``
is off for training; the FFHQ and CATS releases render with it on (``models.releases``).
"""

import re

import torch

from models.decoders import GramSirenFieldDecoder
from models.embedders import ManifoldEmbedder
from models.mappings import FiLMMappingNetwork
from models.method_registry import register_method
from models.pipeline_config import PipelineConfig, RenderingOptions
from models.point_sampling import StratifiedPointSampler
from models.poses import PriorPoses
from models.releases import Release
from models.volume_rendering import ConstantDeltaIntegrator, SoftplusDensity


@register_method("gram")
def preset() -> PipelineConfig:
    return PipelineConfig(
        preset="gram", img_resolution=256, neural_rendering_resolution=256,
        mapping=FiLMMappingNetwork.Config(z_dim=256, layers=3, hidden=256),
        pose=PriorPoses.Config(prior="gram", radius=1.0, fov_degrees=12.0),
        points=StratifiedPointSampler.Config(near=0.88, far=1.12, num_coarse=64, num_fine=0, perturb="none",
                                             box_side=0.24),
        embedder=ManifoldEmbedder.Config(coordinate_scale=2 / 0.24, field_scale=2 / 0.24, num_manifolds=24,
                                         levels_start=23.0, levels_end=8.0, hidden=128, layers=3,
                                         last_infinite=True, plane_always_valid=True),
        decoder=GramSirenFieldDecoder.Config(hidden=256, layers=8),
        density=SoftplusDensity.Config(), integrator=ConstantDeltaIntegrator.Config(delta=0.04),
        renderer=RenderingOptions(pixel_grid="corners"),
    )


# --- official checkpoints (microsoft/GRAM ``generator.pth``: a GramGenerator state dict) -----------

OFFICIAL_NAMES: tuple[tuple[str, str], ...] = (
    (r"representation\.sample_network\.output_layer\.", "embedder.out."),
    (r"representation\.rf_network\.network\.(\d+)\.layer\.", r"decoder.net.layers.\1.linear."),
    (r"representation\.rf_network\.color_layer\.0\.layer\.", "decoder.net.color_film.linear."),
    (r"representation\.rf_network\.output_sigma\.(\d+)\.", r"decoder.net.sigma_heads.\1."),
    (r"representation\.rf_network\.output_color\.(\d+)\.", r"decoder.net.rgb_heads.\1."),
)
"""(official name pattern, pipeline name) of GramRF's parameters and the manifold predictor's output
layer; the Sequentials with ReLUs between their Linears (``sample_network.network.{2k}``,
``mapping_network.network.{2k}``) are renumbered by :func:`official_to_pipeline_names`. Shapes
match one for one."""

_SAMPLE = re.compile(r"representation\.sample_network\.network\.(\d+)\.")
_MAPPING = re.compile(r"representation\.rf_network\.mapping_network\.network\.(\d+)\.")


def _indices(pattern: re.Pattern, names) -> list[int]:
    return sorted({int(m.group(1)) for name in names if (m := pattern.match(name))})


def official_to_pipeline_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official GRAM generator's parameters under our names (unknown names are kept as they are,
    so the shape check names them)."""
    sample_ids, mapping_ids = _indices(_SAMPLE, state_dict), _indices(_MAPPING, state_dict)
    out = {}
    for name, tensor in state_dict.items():
        new = name
        if found := _SAMPLE.match(name):
            new = f"embedder.hidden.{sample_ids.index(int(found.group(1)))}." + name[found.end():]
        elif found := _MAPPING.match(name):
            index = mapping_ids.index(int(found.group(1)))
            layer = "out" if index == len(mapping_ids) - 1 else f"hidden.{index}"
            new = f"mapping_network.film.{layer}." + name[found.end():]
        for pattern, replacement in OFFICIAL_NAMES:
            new = re.sub(f"^{pattern}", replacement, new)
        out[new] = tensor
    return out


def pipeline_to_official_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our GRAM generator's parameters under the official names (``generator.parameters()`` order:
    manifold predictor, GramRF layers, colour layer, heads, mapping network; no truncation mean)."""
    official = {}
    for name, tensor in state_dict.items():
        if m := re.match(r"embedder\.hidden\.(\d+)\.(.*)", name):
            new = f"representation.sample_network.network.{2 * int(m.group(1))}.{m.group(2)}"
        elif m := re.match(r"embedder\.out\.(.*)", name):
            new = f"representation.sample_network.output_layer.{m.group(1)}"
        elif m := re.match(r"decoder\.net\.layers\.(\d+)\.linear\.(.*)", name):
            new = f"representation.rf_network.network.{m.group(1)}.layer.{m.group(2)}"
        elif m := re.match(r"decoder\.net\.color_film\.linear\.(.*)", name):
            new = f"representation.rf_network.color_layer.0.layer.{m.group(1)}"
        elif m := re.match(r"decoder\.net\.sigma_heads\.(\d+)\.(.*)", name):
            new = f"representation.rf_network.output_sigma.{m.group(1)}.{m.group(2)}"
        elif m := re.match(r"decoder\.net\.rgb_heads\.(\d+)\.(.*)", name):
            new = f"representation.rf_network.output_color.{m.group(1)}.{m.group(2)}"
        elif m := re.match(r"mapping_network\.film\.hidden\.(\d+)\.(.*)", name):
            new = f"representation.rf_network.mapping_network.network.{2 * int(m.group(1))}.{m.group(2)}"
        else:
            continue
        official[new] = tensor
    hidden = len({n for n in official if n.startswith("representation.rf_network.mapping_network.")}) // 2
    for name, tensor in state_dict.items():
        if m := re.match(r"mapping_network\.film\.out\.(.*)", name):
            official[f"representation.rf_network.mapping_network.network.{2 * hidden}.{m.group(1)}"] = tensor
    return dict(sorted(official.items(), key=lambda item: _official_order(item[0])))


def _official_order(name: str) -> tuple:
    """Sort key giving GramGenerator's ``parameters()`` order."""
    groups = ("representation.sample_network.network.", "representation.sample_network.output_layer.",
              "representation.rf_network.network.", "representation.rf_network.color_layer.",
              "representation.rf_network.output_sigma.", "representation.rf_network.output_color.",
              "representation.rf_network.mapping_network.")
    group = next(i for i, g in enumerate(groups) if name.startswith(g))
    numbers = tuple(int(x) for x in re.findall(r"\.(\d+)\.", name))
    return group, numbers, name.endswith(".bias")


def official_network(shapes: dict[str, tuple[int, ...]]) -> str:
    """The network a GRAM file holds, as ``models.releases`` names it: the releases differ only in
    the manifold predictor's width (FFHQ 128, CATS 64, CARLA 256)."""
    first = shapes.get("representation.sample_network.network.0.weight")
    if first is None or len(first) != 2:
        raise ValueError("no manifold predictor (representation.sample_network.network.0.weight)")
    return f"{GRAM_GENERATOR} sample_network width {first[0]}"


GRAM_GENERATOR = "generators.generators.GramGenerator"
"""The official class whose state dict GRAM's ``generator.pth`` is."""


def from_official(shapes: dict[str, tuple[int, ...]], release: Release) -> PipelineConfig:
    """The pipeline config of an official GRAM generator: sizes from its parameter shapes (official
    names), everything else (manifolds, scales, delta, camera) from its release."""
    def shape(name: str) -> tuple[int, ...]:
        if name not in shapes:
            raise ValueError(f"no parameter {name}")
        return shapes[name]

    sample = _indices(_SAMPLE, [n for n in shapes if n.endswith(".weight")])
    layers = len({n for n in shapes if re.match(r"representation\.rf_network\.network\.\d+\.layer\.weight$", n)})
    mapping = _indices(_MAPPING, [n for n in shapes if n.endswith(".weight")])
    if not sample or layers < 2 or len(mapping) < 2:
        raise ValueError("not a GRAM generator (no manifold predictor, FiLM layers or mapping network)")
    hidden = shape("representation.rf_network.network.0.layer.weight")[0]
    sample_hidden = shape(f"representation.sample_network.network.{sample[0]}.weight")[0]
    mapping_hidden, z_dim = shape(f"representation.rf_network.mapping_network.network.{mapping[0]}.weight")
    out = shape(f"representation.rf_network.mapping_network.network.{mapping[-1]}.weight")[0]
    if out != 2 * (layers + 1) * hidden:
        raise ValueError(f"mapping output {out} != 2 x {layers + 1} FiLM layers x {hidden}")
    manifold = release.manifolds
    if manifold is None:
        raise ValueError(f"release {release.name} has no manifold settings")
    return PipelineConfig(
        preset="gram", img_resolution=release.img_resolution, neural_rendering_resolution=release.img_resolution,
        mapping=FiLMMappingNetwork.Config(z_dim=z_dim, layers=len(mapping) - 1, hidden=mapping_hidden),
        pose=PriorPoses.Config(prior=release.pose_prior, radius=release.radius, fov_degrees=release.fov_degrees),
        points=StratifiedPointSampler.Config(near=release.near, far=release.far, num_coarse=release.num_coarse,
                                             num_fine=0, perturb="none", box_side=manifold.normalize),
        embedder=ManifoldEmbedder.Config(coordinate_scale=2 / manifold.normalize, field_scale=2 / 0.24,
                                         num_manifolds=manifold.num_manifolds, levels_start=manifold.levels_start,
                                         levels_end=manifold.levels_end, hidden=sample_hidden, layers=len(sample),
                                         center=manifold.center, background_plane=manifold.background,
                                         last_infinite=True, plane_always_valid=True),
        decoder=GramSirenFieldDecoder.Config(hidden=hidden, layers=layers),
        density=SoftplusDensity.Config(), integrator=ConstantDeltaIntegrator.Config(delta=manifold.delta,
                                                                                    depth_ratio=True),
        renderer=RenderingOptions(white_back=release.white_back, lock_view_dependence=release.lock_view_dependence,
                                  pixel_grid="corners"),
        extra={"release": release.name, "truncation_psi": release.truncation_psi},
    )
