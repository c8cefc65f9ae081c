"""GIRAFFE (methods.md §3.7; the official network, autonomousvision/giraffe), FFHQ 256 by default.

The preset is the official FFHQ-256 model (``configs/256res/ffhq_256.yaml``): camera at r 2.732 with
v in [0.4167, 0.5] (z up, OpenGL camera, fov 10 across the corner-aligned outer pixels), 64 samples
on depths 0.5-6 along the optical axis (GIRAFFE's arithmetic, :class:`~models.embedders.GiraffeSceneEmbedder`),
one object box (scale 0.21, translation 0, rotation U(0.40278, 0.59722) turns, drawn per sample in
training) and a background field, both GIRAFFE's own field network
(:class:`~models.decoders.GiraffeFieldDecoder`: 8 blocks of 128 with the additive skip at 4,
256-d codes, 256 features; background 4 blocks of 64, 128-d codes, points / 12), densities summed and
features density-weighted into a 256-ch 16 px map, and the neural renderer 16 -> 256 with its
[1, 2, 1] blur. Object boxes and the background rotation are per-call render inputs
(``RenderOptions.scene``).

Differences from the official code by design: the image is ``2 sigmoid - 1`` in [-1, 1] like every
generator here (GIRAFFE returns ``sigmoid`` in [0, 1]); the codes are one z (per object shape then
appearance, then the background's); CLEVR-2345's random object existence per training image is not
drawn (the number of shown objects is a render input instead); ``use_max_composition`` is not
provided. Carver's variant trains with Adam (0, 0.99).
"""

import re

import torch

from models.decoders import GiraffeFieldDecoder
from models.embedders import GiraffeSceneEmbedder
from models.mappings import IdentityMapping
from models.method_registry import register_method
from models.pipeline_config import PipelineConfig, RenderingOptions
from models.point_sampling import StratifiedPointSampler
from models.poses import PriorPoses
from models.releases import RELEASES, Release, giraffe_network
from models.upsamplers import GiraffeUpsampler
from models.volume_rendering import LastDeltaIntegrator, ReLUDensity

OFFICIAL_OBJECT = {"hidden": 128, "blocks": 8, "skips": 1, "z_shape_dim": 256, "z_app_dim": 256, "out_features": 256,
                   "pe_frequencies": 10, "dir_frequencies": 4}
"""The object field of ``configs/default.yaml`` with the 256 px configs' ``rgb_out_dim`` (``_field`` keys)."""
OFFICIAL_BACKGROUND = {**OFFICIAL_OBJECT, "hidden": 64, "blocks": 4, "skips": 0, "z_shape_dim": 128,
                       "z_app_dim": 128}
"""The background field of ``configs/default.yaml``."""


@register_method("giraffe")
def preset() -> PipelineConfig:
    return _config(RELEASES["giraffe-ffhq256"], OFFICIAL_OBJECT, OFFICIAL_BACKGROUND, blocks=4, min_channels=32)


# --- official checkpoints (autonomousvision/giraffe, ``checkpoint_<name>-<hash>.pt``) --------------

OFFICIAL_PREFIX = "generator_test."
"""The EMA generator's entries in the file's ``model`` state dict (``generator.`` holds the raw weights)."""
OFFICIAL_BLUR = "neural_renderer.upsample_rgb.1.f"
"""The blur's [1, 2, 1] taps (a buffer of the official renderer; ours is fixed)."""
_NAMES = (("decoder.", "decoder."), ("background_generator.", "background_decoder."),
          ("neural_renderer.conv_layers.", "upsampler.blocks."), ("neural_renderer.conv_rgb.", "upsampler.to_rgb."))
"""(official prefix, ours) of one generator's parameters."""


def official_to_pipeline_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One official generator's state dict (prefix stripped) in our names; the blur taps are dropped."""
    out = {}
    for name, tensor in state.items():
        if name == OFFICIAL_BLUR:
            continue
        for official, ours in _NAMES:
            if name.startswith(official):
                out[ours + name[len(official):]] = tensor
                break
        else:
            raise ValueError(f"unexpected generator entry {name}")
    return out


def pipeline_to_official_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`official_to_pipeline_names` (without the blur taps and the mapping's z mean)."""
    out = {}
    for name, tensor in state.items():
        for official, ours in _NAMES:
            if name.startswith(ours):
                out[official + name[len(ours):]] = tensor
                break
    return out


def _count(shapes: dict[str, tuple[int, ...]], pattern: str) -> int:
    return len({m.group(1) for n in shapes if (m := re.match(pattern, n))})


def _field(shapes: dict[str, tuple[int, ...]], prefix: str) -> dict[str, int]:
    """Sizes of one official field network (``decoder.`` or ``background_generator.``)."""
    def shape(name: str) -> tuple[int, ...]:
        if prefix + name not in shapes:
            raise ValueError(f"no parameter {prefix}{name}")
        return shapes[prefix + name]

    hidden, encoded = shape("fc_in.weight")
    if encoded % 6 or shape("fc_view.weight")[1] % 6:
        raise ValueError(f"{prefix}fc_in / fc_view do not read sin and cos of 3-d points")
    return {"hidden": hidden, "blocks": _count(shapes, re.escape(prefix) + r"blocks\.(\d+)\.weight$") + 1,
            "skips": _count(shapes, re.escape(prefix) + r"fc_z_skips\.(\d+)\.weight$"),
            "z_shape_dim": shape("fc_z.weight")[1], "z_app_dim": shape("fc_z_view.weight")[1],
            "out_features": shape("feat_out.weight")[0], "pe_frequencies": encoded // 6,
            "dir_frequencies": shape("fc_view.weight")[1] // 6}


def official_network(shapes: dict[str, tuple[int, ...]]) -> str:
    """The network an official generator holds, as ``models.releases`` names it (output size from the
    renderer's blocks at a 16 px feature map, feature channels, object code size)."""
    obj = _field(shapes, "decoder.")
    blocks = _count(shapes, r"neural_renderer\.conv_layers\.(\d+)\.weight$")
    return giraffe_network(16 * 2 ** blocks, obj["out_features"], obj["z_shape_dim"])


def from_official(shapes: dict[str, tuple[int, ...]], release: Release) -> PipelineConfig:
    """The pipeline config of an official GIRAFFE generator: sizes from its shapes (official names,
    prefix stripped), scene and render settings from its release."""
    if release.objects is None:
        raise ValueError(f"release {release.name} has no object boxes")
    if "neural_renderer.conv_in.weight" in shapes:
        raise ValueError("a neural renderer with conv_in (n_feat != input_dim) is not supported")
    obj, bg = _field(shapes, "decoder."), _field(shapes, "background_generator.")
    if obj["skips"] > 1 or bg["skips"]:
        raise ValueError("only the official skip layout is supported (one object skip after block 4, none in "
                         "the background)")
    if bg["out_features"] != obj["out_features"] or bg["z_shape_dim"] != bg["z_app_dim"]:
        raise ValueError("the background's features or codes do not fit the object field's")
    blocks = _count(shapes, r"neural_renderer\.conv_layers\.(\d+)\.weight$")
    if blocks < 1 or shapes.get("neural_renderer.conv_rgb.0.weight", (0, 0))[1] != obj["out_features"]:
        raise ValueError("the neural renderer does not read the fields' features")
    widths = [shapes[f"neural_renderer.conv_layers.{i}.weight"][0] for i in range(blocks)]
    return _config(release, obj, bg, blocks, min(widths))


def _config(release: Release, obj: dict[str, int], bg: dict[str, int], blocks: int, min_channels: int
            ) -> PipelineConfig:
    """The pipeline config of a GIRAFFE generator: field sizes (``_field`` keys), the neural renderer's
    blocks and channel floor, and the release's scene and render settings."""
    boxes, r = release.objects, release.neural_rendering_resolution
    # the scene box (meshes, 'auto' bounds) holds every object box in its ranges, with a margin
    reach = max(abs(t) + s * 1.1 for lo, hi, sl, sh in zip(boxes.translation_min, boxes.translation_max,
                                                           boxes.scale_min, boxes.scale_max)
                for t, s in ((lo, sl), (hi, sh), (lo, sh), (hi, sl)))
    return PipelineConfig(
        preset="giraffe", img_resolution=r * 2 ** blocks, neural_rendering_resolution=r,
        mapping=IdentityMapping.Config(z_dim=(obj["z_shape_dim"] + obj["z_app_dim"]) * boxes.num_objects
                                       + 2 * bg["z_shape_dim"]),
        pose=PriorPoses.Config(prior=release.pose_prior, radius=release.radius, fov_degrees=release.fov_degrees),
        points=StratifiedPointSampler.Config(near=release.near, far=release.far, num_coarse=release.num_coarse,
                                             num_fine=0, perturb="midpoint_bins", box_side=2.5 * reach, unit_grid=True,
                                             depth_along_axis=True),
        embedder=GiraffeSceneEmbedder.Config(
            num_objects=boxes.num_objects, scale_min=boxes.scale_min, scale_max=boxes.scale_max,
            translation_min=boxes.translation_min, translation_max=boxes.translation_max,
            rotation_range=boxes.rotation_range, object_on_plane=boxes.object_on_plane,
            z_level_plane=boxes.z_level_plane, background_hidden=bg["hidden"], background_blocks=bg["blocks"],
            background_z_dim=bg["z_shape_dim"], background_rotation_range=boxes.background_rotation_range),
        decoder=GiraffeFieldDecoder.Config(
            hidden=obj["hidden"], blocks=obj["blocks"], skips=(4,) if obj["skips"] else (),
            out_features=obj["out_features"], z_shape_dim=obj["z_shape_dim"], z_app_dim=obj["z_app_dim"],
            pe_frequencies=obj["pe_frequencies"], dir_frequencies=obj["dir_frequencies"]),
        density=ReLUDensity.Config(), integrator=LastDeltaIntegrator.Config(),
        upsampler=GiraffeUpsampler.Config(min_channels=min_channels, blur=True),
        renderer=RenderingOptions(pixel_grid="corners"),
        extra={"release": release.name, "truncation_psi": release.truncation_psi},
    )
