"""Typed configs of the modular 3D-aware GAN pipeline, and the method presets built from them.

A generator is composed of a mapping network, a point sampler, a point embedder, a feature
decoder, a volume renderer and an upsampler (the pose sampler is the camera distribution it is
trained and viewed with). Each component has one dataclass below; a method is a
:class:`PipelineConfig` preset (:func:`pipeline_preset`), and an ablation replaces one component
(:func:`with_component`). Facts and sources: ``../shared/docs/methods.md`` (section numbers below).

World scale is per method, as in the original code: pi-GAN's family looks at the origin from
radius 1 with a 12 degree field of view, GRAF from radius 10, GIRAFFE from 2.732, EpiGRAF from
radius 1. Everything the app needs to frame a model (average radius, pivot, field of view, the
box the scene lives in) is in the config, so the viewer needs no per-method code.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from models.typed_config import dataclass_from_dict
from ops.pose_sampling import POSE_PRIORS

MAPPING_KINDS = ("stylegan2", "film", "none")
EMBEDDER_KINDS = ("coordinate", "triplane", "volume", "manifold", "composition")
DECODER_KINDS = ("osg", "siren", "gram_siren", "sdf_siren", "modulated_mlp", "nerf_mlp")
DENSITY_KINDS = ("relu", "softplus", "softplus_shifted", "sdf_sigmoid", "sdf_laplace")
INTEGRATOR_KINDS = ("midpoint", "last_delta", "constant_delta")
UPSAMPLER_KINDS = ("none", "eg3d_sr", "stylegan", "giraffe")
POSE_KINDS = ("prior", "dataset", "dataset_angles")
PERTURB_KINDS = ("none", "uniform", "self_uniform", "offset")
PATCH_KINDS = ("none", "graf", "epigraf")


@dataclass
class MappingConfig:
    """Stochasticity mapper: z (and optionally the camera) -> ws."""

    kind: str = "stylegan2"
    """'stylegan2' (MLP to w, broadcast to every layer), 'film' (pi-GAN: per-layer FiLM
    frequencies and phases) or 'none' (ws = z, as GRAF and GIRAFFE use their codes directly)."""
    z_dim: int = 512
    """Latent z size."""
    w_dim: int = 512
    """w size ('stylegan2'); for 'film' the ws are 2 * decoder width wide, for 'none' z_dim."""
    layers: int = 8
    """Fully connected layers ('stylegan2') or hidden layers ('film')."""
    hidden: int = 256
    """Hidden width of the FiLM mapper."""
    camera_conditioning: bool = False
    """Feed the 25-d camera label to the mapping network (EG3D's generator pose conditioning)."""
    lr_multiplier: float = 0.01
    """Learning-rate multiplier of the StyleGAN2 mapping layers."""


@dataclass
class PoseSamplerConfig:
    """Where training cameras come from, and the camera the viewer starts at."""

    kind: str = "prior"
    """'prior' (sample ``prior``), 'dataset' (labels of random training images, EG3D) or
    'dataset_angles' (the yaw/pitch of random training labels, re-placed at ``radius`` with this
    field of view: EpiGRAF's 'custom' distribution)."""
    prior: str = "pi_gan"
    """Name in ``ops.pose_sampling.POSE_PRIORS`` (kind 'prior')."""
    radius: float = 1.0
    """Average camera distance from the pivot (viewer default; 'dataset_angles' radius)."""
    fov_degrees: float = 12.0
    """Full field of view of the generator's camera ('dataset_angles'; viewer hint)."""
    pivot: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Point the cameras look at."""


@dataclass
class PointSamplerConfig:
    """Depths along each ray, and patch rays for patch-wise training."""

    near: float | str = 0.88
    """Near ray distance, or 'auto' for the ray-box intersection with ``box_side``."""
    far: float | str = 1.12
    """Far ray distance, or 'auto'."""
    num_coarse: int = 12
    """Stratified samples per ray (GRAM: samples fed to the manifold predictor)."""
    num_fine: int = 12
    """Importance samples per ray from the coarse weights (0: none)."""
    perturb: str = "self_uniform"
    """Training jitter: 'none', 'uniform' (forward U(0,1) of a spacing, EG3D), 'self_uniform'
    (+-half a spacing, pi-GAN) or 'offset' (one random shift per ray, StyleSDF)."""
    box_side: float = 0.24
    """Side of the cube, centred at the pivot, that holds the scene ('auto' bounds, meshes)."""
    patch: str = "none"
    """Patch-wise training: 'none', 'graf' (scale/offset grid) or 'epigraf' (Beta scales)."""
    patch_size: int = 32
    """Rays per patch side in patch-wise training."""


@dataclass
class EmbedderConfig:
    """Point embedder: world points -> per-point features for the decoder."""

    kind: str = "coordinate"
    """'coordinate', 'triplane', 'volume' (VolumeGAN), 'manifold' (GRAM) or 'composition' (GIRAFFE)."""
    coordinate_scale: float = 2 / 0.24
    """Points are multiplied by this before encoding (pi-GAN: 2/0.24)."""
    pe_frequencies: int = 0
    """NeRF positional-encoding frequencies of xyz (0: raw scaled coordinates)."""
    dir_pe_frequencies: int = 0
    """Positional-encoding frequencies of the view direction (decoders that take it)."""
    triplane_resolution: int = 256
    """Tri-plane side in texels."""
    triplane_channels: int = 32
    """Channels per plane."""
    triplane_axes: str = "corrected"
    """'corrected' or 'official' (EG3D's duplicated xz plane)."""
    triplane_align_corners: bool = False
    """grid_sample corner alignment (EpiGRAF: True)."""
    channel_base: int = 32768
    """Tri-plane backbone width: channels at res r = min(channel_base // r, channel_max)."""
    channel_max: int = 512
    """Tri-plane backbone channel cap."""
    volume_resolution: int = 32
    """Feature-volume side in voxels (VolumeGAN: 32)."""
    volume_channels: int = 32
    """Feature-volume output channels."""
    volume_base_channels: int = 256
    """Channels of the constant 4^3 input of the feature volume."""
    volume_bounds: tuple[tuple[float, float, float], tuple[float, float, float]] = (
        (-0.1886, -0.1671, -0.1956), (0.1887, 0.1692, 0.1872))
    """(min, max) corners of the feature volume (VolumeGAN FFHQ bounds, methods.md §3.2)."""
    manifold_hidden: int = 128
    """GRAM manifold predictor width."""
    manifold_layers: int = 3
    """GRAM manifold predictor hidden layers."""
    num_manifolds: int = 24
    """GRAM manifolds including the background plane (FFHQ 24)."""
    levels_start: float = 23.0
    """First (outermost) level value."""
    levels_end: float = 8.0
    """Last level value (GRAM 8; Carver's default 3)."""
    manifold_center: tuple[float, float, float] = (0.0, 0.0, -1.5)
    """Centre subtracted from the scaled coordinates before the manifold predictor."""
    background_plane: bool = True
    """Append GRAM's background plane at world z = -0.12."""
    num_objects: int = 1
    """GIRAFFE: foreground objects (each with its own shape and appearance codes)."""
    object_scale: float = 0.21
    """GIRAFFE: object box scale (points are divided by it in the object's frame)."""
    background: bool = True
    """GIRAFFE: add a background field."""


@dataclass
class DecoderConfig:
    """Feature decoder: per-point features -> density (or SDF) and colour/feature."""

    kind: str = "siren"
    """'osg' (EG3D/EpiGRAF), 'siren' (pi-GAN), 'gram_siren', 'sdf_siren' (StyleSDF),
    'modulated_mlp' (VolumeGAN, StyleNeRF) or 'nerf_mlp' (GRAF, GIRAFFE)."""
    hidden: int = 256
    """Hidden width."""
    layers: int = 8
    """Hidden layers."""
    out_features: int = 3
    """Colour/feature channels composited along rays (3 for RGB decoders)."""
    activation: str = "softplus"
    """'osg' hidden activation: 'softplus' (EG3D) or 'lrelu' (EpiGRAF)."""
    skip: int = 4
    """'nerf_mlp' skip connection after this layer."""
    z_shape_dim: int = 128
    """'nerf_mlp' shape code size (sliced from z)."""
    z_app_dim: int = 128
    """'nerf_mlp' appearance code size."""
    background_hidden: int = 64
    """GIRAFFE background MLP width."""
    background_layers: int = 4
    """GIRAFFE background MLP depth."""
    background_z_dim: int = 128
    """GIRAFFE background shape and appearance code size (each)."""
    sdf_feature_dim: int = 256
    """'sdf_siren' feature channels composited beside RGB."""


@dataclass
class VolumeRendererConfig:
    """Density activation and integrator."""

    density: str = "relu"
    """'relu', 'softplus', 'softplus_shifted' (EG3D), 'sdf_sigmoid' (StyleSDF) or 'sdf_laplace' (VolSDF)."""
    integrator: str = "last_delta"
    """'midpoint' (EG3D), 'last_delta' (NeRF/pi-GAN) or 'constant_delta' (GRAM)."""
    constant_delta: float = 0.04
    """'constant_delta' interval (GRAM 0.04)."""
    density_noise: float = 0.0
    """Initial std of Gaussian noise added to raw density in training."""
    density_noise_fade_kimg: float = 0.0
    """kimg over which the noise falls linearly to 0 (0: constant)."""
    sdf_alpha_init: float = 0.1
    """StyleSDF's learnable alpha (VolSDF beta) at initialisation."""
    white_back: bool = False
    """Composite onto white."""


@dataclass
class UpsamplerConfig:
    """Feature image -> final image."""

    kind: str = "none"
    """'none' (the rendering is the image), 'eg3d_sr', 'stylegan' (VolumeGAN, StyleNeRF, StyleSDF)
    or 'giraffe' (neural renderer)."""
    channel_base: int = 32768
    """'stylegan': channels at res r = min(channel_base // r, channel_max)."""
    channel_max: int = 512
    """'stylegan' channel cap."""
    upsample_mode: str = "stylegan"
    """'stylegan' or 'nn_cat' (StyleNeRF)."""
    sr_module: str = "training.superresolution.SuperresolutionHybrid8XDC"
    """'eg3d_sr' module name (see models.superresolution)."""
    min_channels: int = 32
    """'giraffe' channel floor."""


@dataclass
class PipelineConfig:
    """A generator composed of pipeline components."""

    preset: str = "pigan"
    """Method preset this config started from (for display and the README table)."""
    c_dim: int = 25
    """Camera label size (the internal camera is always EG3D's 25-float label)."""
    img_resolution: int = 64
    """Final image resolution."""
    img_channels: int = 3
    """Image channels."""
    neural_rendering_resolution: int = 64
    """Volume-rendering resolution (equals img_resolution without an upsampler)."""
    mapping: MappingConfig = field(default_factory=MappingConfig)
    """Mapping network."""
    pose: PoseSamplerConfig = field(default_factory=PoseSamplerConfig)
    """Pose sampler."""
    points: PointSamplerConfig = field(default_factory=PointSamplerConfig)
    """Point sampler."""
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    """Point embedder."""
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    """Feature decoder."""
    renderer: VolumeRendererConfig = field(default_factory=VolumeRendererConfig)
    """Volume renderer."""
    upsampler: UpsamplerConfig = field(default_factory=UpsamplerConfig)
    """Upsampler."""
    frozen: tuple[str, ...] = ()
    """Components whose parameters do not train (StyleSDF stage 2 freezes the volume renderer)."""
    method: str = "pipeline"
    """Generator family; selects the class that builds this config (checkpoints)."""

    def __post_init__(self):
        for name, cls in _COMPONENTS.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, dataclass_from_dict(cls, value))
        self.frozen = tuple(self.frozen)
        self.pose.pivot = tuple(float(v) for v in self.pose.pivot)
        self.embedder.volume_bounds = tuple(tuple(float(v) for v in c) for c in self.embedder.volume_bounds)
        self.embedder.manifold_center = tuple(float(v) for v in self.embedder.manifold_center)

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent setting."""
        checks = [("mapping.kind", self.mapping.kind, MAPPING_KINDS), ("pose.kind", self.pose.kind, POSE_KINDS),
                  ("embedder.kind", self.embedder.kind, EMBEDDER_KINDS), ("decoder.kind", self.decoder.kind, DECODER_KINDS),
                  ("renderer.density", self.renderer.density, DENSITY_KINDS),
                  ("renderer.integrator", self.renderer.integrator, INTEGRATOR_KINDS),
                  ("upsampler.kind", self.upsampler.kind, UPSAMPLER_KINDS),
                  ("points.perturb", self.points.perturb, PERTURB_KINDS), ("points.patch", self.points.patch, PATCH_KINDS)]
        for name, value, allowed in checks:
            if value not in allowed:
                raise ValueError(f"{name} {value!r} is not one of {', '.join(allowed)}")
        if self.pose.kind == "prior" and self.pose.prior not in POSE_PRIORS:
            raise ValueError(f"pose.prior {self.pose.prior!r} is not one of {', '.join(sorted(POSE_PRIORS))}")
        if self.upsampler.kind == "none" and self.neural_rendering_resolution != self.img_resolution:
            raise ValueError(f"without an upsampler the neural rendering resolution ({self.neural_rendering_resolution}) "
                             f"must equal the image resolution ({self.img_resolution})")
        sdf = self.decoder.kind == "sdf_siren"
        if sdf != self.renderer.density.startswith("sdf_"):
            raise ValueError(f"decoder {self.decoder.kind!r} and density {self.renderer.density!r} do not match: "
                             "SDF densities need the 'sdf_siren' decoder and it needs one of them")
        if self.embedder.kind == "manifold" and self.renderer.integrator != "constant_delta":
            raise ValueError("the manifold embedder composites with the 'constant_delta' integrator")
        if self.decoder.kind in ("gram_siren", "sdf_siren") and self.embedder.kind not in ("coordinate", "manifold"):
            raise ValueError(f"decoder {self.decoder.kind!r} reads 3-d coordinates: use the 'coordinate' or "
                             f"'manifold' embedder, not {self.embedder.kind!r} (or the 'siren' decoder)")
        if self.mapping.kind == "film" and self.decoder.kind not in ("siren", "gram_siren"):
            raise ValueError(f"FiLM mapping drives FiLM-SIREN decoders, not {self.decoder.kind!r}")
        if self.mapping.kind == "film" and self.upsampler.kind in ("eg3d_sr", "stylegan"):
            raise ValueError(f"upsampler {self.upsampler.kind!r} needs StyleGAN2 ws, not the FiLM mapping's")
        if self.decoder.kind in ("siren", "gram_siren") and self.mapping.kind != "film":
            raise ValueError(f"decoder {self.decoder.kind!r} needs the 'film' mapping")
        if self.decoder.kind == "nerf_mlp" and self.mapping.kind != "none":
            raise ValueError("decoder 'nerf_mlp' reads its shape/appearance codes from z: use mapping 'none'")
        if self.embedder.kind == "composition" and self.decoder.kind != "nerf_mlp":
            raise ValueError("the composition embedder (GIRAFFE) needs the 'nerf_mlp' decoder")
        if self.mapping.kind == "none" and self.decoder.kind == "nerf_mlp":
            need = self.codes_per_field() * (self.embedder.num_objects if self.embedder.kind == "composition" else 1)
            if self.embedder.kind == "composition" and self.embedder.background:
                need += 2 * self.decoder.background_z_dim
            if self.mapping.z_dim != need:
                raise ValueError(f"mapping.z_dim is {self.mapping.z_dim} but the decoder's codes need {need}")

    def codes_per_field(self) -> int:
        """z entries one NeRF-MLP field reads (shape + appearance codes)."""
        return self.decoder.z_shape_dim + self.decoder.z_app_dim

    @property
    def z_dim(self) -> int:
        return self.mapping.z_dim

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PipelineConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error that names them."""
        return dataclass_from_dict(cls, data)


_COMPONENTS = {"mapping": MappingConfig, "pose": PoseSamplerConfig, "points": PointSamplerConfig,
               "embedder": EmbedderConfig, "decoder": DecoderConfig, "renderer": VolumeRendererConfig,
               "upsampler": UpsamplerConfig}


# --- presets ---------------------------------------------------------------------------------------

PIPELINE_METHODS = ("pigan", "graf", "giraffe", "volumegan", "stylenerf", "stylesdf", "gram", "epigraf")
"""Methods built by :class:`models.pipeline.PipelineGenerator` (EG3D has its own exact class)."""

_FACE_PRIOR = dict(radius=1.0, fov_degrees=12.0)


def _pigan() -> PipelineConfig:
    """pi-GAN (methods.md §3.5, CelebA curriculum): Gaussian poses (yaw 0.3, pitch 0.155, r 1, fov 12),
    12+12 samples on 0.88-1.12 with +-half-spacing jitter, raw coordinates x 2/0.24, 8x256 FiLM-SIREN,
    3x256 FiLM mapping, ReLU density with noise annealed over 5000 steps (here kimg = steps x batch 56
    / 1000 = 280), last delta 1e10, 64 px, no upsampler. Carver (pigan_ffhq64): batch 8, otherwise the same."""
    return PipelineConfig(
        preset="pigan", img_resolution=64, neural_rendering_resolution=64,
        mapping=MappingConfig(kind="film", z_dim=256, layers=3, hidden=256),
        pose=PoseSamplerConfig(prior="pi_gan", **_FACE_PRIOR),
        points=PointSamplerConfig(near=0.88, far=1.12, num_coarse=12, num_fine=12, perturb="self_uniform", box_side=0.24),
        embedder=EmbedderConfig(kind="coordinate", coordinate_scale=2 / 0.24),
        decoder=DecoderConfig(kind="siren", hidden=256, layers=8, out_features=3),
        renderer=VolumeRendererConfig(density="relu", integrator="last_delta", density_noise=1.0,
                                      density_noise_fade_kimg=5000 * 56 / 1000),
    )


def _gram() -> PipelineConfig:
    """GRAM (methods.md §3.3, FFHQ): pi-GAN's pose prior, 64 unperturbed samples on 0.88-1.12 into a
    3x128 manifold predictor, 23 levels 23 -> 8 plus the background plane at z = -0.12, GramRF
    8x256 FiLM-SIREN with summed per-layer heads, softplus density, constant delta 0.04, 256 px.
    Carver: ``levels_end`` defaults to 3, not the official 8 (``--set generator.embedder.levels_end=3``)."""
    return PipelineConfig(
        preset="gram", img_resolution=256, neural_rendering_resolution=256,
        mapping=MappingConfig(kind="film", z_dim=256, layers=3, hidden=256),
        pose=PoseSamplerConfig(prior="gram", **_FACE_PRIOR),
        points=PointSamplerConfig(near=0.88, far=1.12, num_coarse=64, num_fine=0, perturb="none", box_side=0.24),
        embedder=EmbedderConfig(kind="manifold", coordinate_scale=2 / 0.24, num_manifolds=24, levels_start=23.0,
                                levels_end=8.0, manifold_hidden=128, manifold_layers=3),
        decoder=DecoderConfig(kind="gram_siren", hidden=256, layers=8, out_features=3),
        renderer=VolumeRendererConfig(density="softplus", integrator="constant_delta", constant_delta=0.04),
    )


def _stylesdf() -> PipelineConfig:
    """StyleSDF (methods.md §3.4): Gaussian poses (azimuth 0.3, elevation 0.15; Carver 0.155), r 1,
    12 degree fov, 24 samples on 1 +- 0.12 with one random offset per ray, coordinates
    x 2/(far - near), 8x256 FiLM-SIREN SDF decoder with a 256-ch feature, sigma = sigmoid(-d/a)/a
    with learnable a (init 0.1), 64 px volume rendering; stage 2 adds the StyleGAN2 decoder to
    1024 px with the renderer frozen. Simplification: one 3-layer 256-d mapping feeds both stages
    (StyleSDF's 2D decoder has its own 5-layer 512-d mapping). Carver: elevation std 0.155
    (``pose.prior='stylesdf_carver'``) and R1 0.2 for the 1024 px pipeline."""
    return PipelineConfig(
        preset="stylesdf", img_resolution=1024, neural_rendering_resolution=64,
        mapping=MappingConfig(kind="stylegan2", z_dim=256, w_dim=256, layers=3),
        pose=PoseSamplerConfig(prior="stylesdf", **_FACE_PRIOR),
        points=PointSamplerConfig(near=0.88, far=1.12, num_coarse=24, num_fine=0, perturb="offset", box_side=0.24),
        embedder=EmbedderConfig(kind="coordinate", coordinate_scale=2 / 0.24),
        decoder=DecoderConfig(kind="sdf_siren", hidden=256, layers=8, out_features=3, sdf_feature_dim=256),
        renderer=VolumeRendererConfig(density="sdf_sigmoid", integrator="last_delta", sdf_alpha_init=0.1),
        upsampler=UpsamplerConfig(kind="stylegan", channel_base=32768 * 2, channel_max=512),
    )


def _volumegan() -> PipelineConfig:
    """VolumeGAN (methods.md §3.2): Gaussian poses (yaw 0.3, pitch 0.155, r 1, fov 12), 12+12 samples
    on 0.8-1.2, a 32^3 x 32 feature volume over the FFHQ bounds concatenated with PE(10) of xyz,
    4 modulated 1x1 layers of 256 with a 512-ch feature head, ReLU density, 512-ch feature map at
    32 px, StyleGAN2 skip synthesis 32 -> 256, 8-layer mapping. Carver uses the same values."""
    return PipelineConfig(
        preset="volumegan", img_resolution=256, neural_rendering_resolution=32,
        mapping=MappingConfig(kind="stylegan2", z_dim=512, w_dim=512, layers=8),
        pose=PoseSamplerConfig(prior="volumegan", **_FACE_PRIOR),
        points=PointSamplerConfig(near=0.8, far=1.2, num_coarse=12, num_fine=12, perturb="self_uniform", box_side=0.4),
        embedder=EmbedderConfig(kind="volume", coordinate_scale=1.0, pe_frequencies=10),
        decoder=DecoderConfig(kind="modulated_mlp", hidden=256, layers=4, out_features=512),
        renderer=VolumeRendererConfig(density="relu", integrator="last_delta"),
        upsampler=UpsamplerConfig(kind="stylegan"),
    )


def _stylenerf() -> PipelineConfig:
    """StyleNeRF (methods.md §3.8): Gaussian poses (u 0.3, v 0.155, r 1, fov 12), 14+14 samples on
    0.88-1.12, PE(10) coordinates, 8 modulated FC layers of 128 (LReLU) with a 256-ch feature head,
    ReLU density, 256-ch map at 32 px, StyleGAN2 blocks with 'nn_cat' upsampling to 256, 8-layer
    mapping. Left out: the 4-sample NeRF++ background (the NeRF-path regulariser is in the loss).
    Carver: batch 8 per GPU, R1 0.5, path length 2."""
    return PipelineConfig(
        preset="stylenerf", img_resolution=256, neural_rendering_resolution=32,
        mapping=MappingConfig(kind="stylegan2", z_dim=512, w_dim=512, layers=8),
        pose=PoseSamplerConfig(prior="stylenerf", **_FACE_PRIOR),
        points=PointSamplerConfig(near=0.88, far=1.12, num_coarse=14, num_fine=14, perturb="self_uniform", box_side=0.24),
        embedder=EmbedderConfig(kind="coordinate", coordinate_scale=2 / 0.24, pe_frequencies=10),
        decoder=DecoderConfig(kind="modulated_mlp", hidden=128, layers=8, out_features=256),
        renderer=VolumeRendererConfig(density="relu", integrator="last_delta"),
        upsampler=UpsamplerConfig(kind="stylegan", upsample_mode="nn_cat"),
    )


def _graf() -> PipelineConfig:
    """GRAF (methods.md §3.6, CelebA): uniform poses (u in [0, 0.25], v in [0.329, 0.456], r U(9.5,
    10.5), fov 10), 64 stratified samples on 7.5-12.5, PE(10) xyz / PE(4) view, 8x256 ReLU NeRF MLP
    with a skip at 4, 128-d shape and appearance codes used directly, ReLU density with noise 1
    annealed to 0 over 5000 iterations (batch 8: 40 kimg), 32 px patches, 64 px images. Carver: the
    shared Gaussian prior at r 1, fov 12 (``pose.prior='graf_carver'``, near/far 0.88-1.12), Adam
    (0, 0.99), R1 20, 128 px output."""
    return PipelineConfig(
        preset="graf", img_resolution=64, neural_rendering_resolution=64,
        mapping=MappingConfig(kind="none", z_dim=256),
        pose=PoseSamplerConfig(prior="graf", radius=10.0, fov_degrees=10.0),
        points=PointSamplerConfig(near=7.5, far=12.5, num_coarse=64, num_fine=0, perturb="self_uniform", box_side=5.0,
                                  patch="graf", patch_size=32),
        embedder=EmbedderConfig(kind="coordinate", coordinate_scale=1.0, pe_frequencies=10, dir_pe_frequencies=4),
        decoder=DecoderConfig(kind="nerf_mlp", hidden=256, layers=8, skip=4, out_features=3, z_shape_dim=128, z_app_dim=128),
        renderer=VolumeRendererConfig(density="relu", integrator="last_delta", density_noise=1.0,
                                      density_noise_fade_kimg=5000 * 8 / 1000),
    )


def _giraffe() -> PipelineConfig:
    """GIRAFFE (methods.md §3.7, FFHQ 256): camera at r 2.732 with v in [0.4167, 0.5], object yaw
    folded into the camera yaw, fov 10, 64 samples on 0.5-6, one object (box scale 0.21) and a
    background, 8x128 object MLP (skip 4, 256-d codes) and 4x64 background MLP (128-d codes), PE(10)
    xyz / PE(4) view, ReLU, sum of densities and density-weighted features -> 256 ch at 16 px, neural
    renderer 16 -> 256. The object's box translation is 0 and its rotation is folded into the camera
    yaw (one object; GIRAFFE's per-object affine sampling is not modelled). Carver: Adam (0, 0.99)."""
    return PipelineConfig(
        preset="giraffe", img_resolution=256, neural_rendering_resolution=16,
        mapping=MappingConfig(kind="none", z_dim=256 + 256 + 128 + 128),
        pose=PoseSamplerConfig(prior="giraffe", radius=2.732, fov_degrees=10.0),
        points=PointSamplerConfig(near=0.5, far=6.0, num_coarse=64, num_fine=0, perturb="self_uniform", box_side=0.5),
        embedder=EmbedderConfig(kind="composition", coordinate_scale=1.0, pe_frequencies=10, dir_pe_frequencies=4,
                                num_objects=1, object_scale=0.21, background=True),
        decoder=DecoderConfig(kind="nerf_mlp", hidden=128, layers=8, skip=4, out_features=256, z_shape_dim=256,
                              z_app_dim=256, background_hidden=64, background_layers=4, background_z_dim=128),
        renderer=VolumeRendererConfig(density="relu", integrator="last_delta"),
        upsampler=UpsamplerConfig(kind="giraffe", min_channels=32),
    )


def _epigraf() -> PipelineConfig:
    """EpiGRAF (methods.md §3.9): dataset camera angles re-placed at r 1, fov 12, 48+48 samples on
    0.88-1.12, a 512^2 x 3 x 32 tri-plane (corrected axes, align_corners, coordinates / 0.2) from
    StyleGAN2 synthesis, FC 32 -> 64 (LReLU) -> 3 + 1, softplus density with noise 1 annealed over
    5000 kimg, 64 px patches of the 512 px image, 2-layer mapping, no upsampler. Carver: R1 0.1,
    batch 8 per GPU, pose_dim 3."""
    return PipelineConfig(
        preset="epigraf", img_resolution=512, neural_rendering_resolution=512,
        mapping=MappingConfig(kind="stylegan2", z_dim=512, w_dim=512, layers=2),
        pose=PoseSamplerConfig(kind="dataset_angles", radius=1.0, fov_degrees=12.0),
        points=PointSamplerConfig(near=0.88, far=1.12, num_coarse=48, num_fine=48, perturb="uniform", box_side=0.4,
                                  patch="epigraf", patch_size=64),
        embedder=EmbedderConfig(kind="triplane", coordinate_scale=1.0, triplane_resolution=512, triplane_channels=32,
                                triplane_axes="corrected", triplane_align_corners=True),
        decoder=DecoderConfig(kind="osg", hidden=64, out_features=3, activation="lrelu"),
        renderer=VolumeRendererConfig(density="softplus", integrator="midpoint", density_noise=1.0,
                                      density_noise_fade_kimg=5000.0),
    )


def _eg3d_recipe() -> PipelineConfig:
    """EG3D's components as a pipeline config, for ablations only (``--cfg eg3d --embedder volume``):
    plain ``--cfg eg3d`` trains the exact official-layout ``models.eg3d.TriPlaneGenerator``."""
    return PipelineConfig(
        preset="eg3d", img_resolution=512, neural_rendering_resolution=64,
        mapping=MappingConfig(kind="stylegan2", z_dim=512, w_dim=512, layers=2, camera_conditioning=True),
        pose=PoseSamplerConfig(kind="dataset", radius=2.7, fov_degrees=2 * math.degrees(math.atan(0.5 / 4.2647)),
                               pivot=(0.0, 0.0, 0.2)),
        points=PointSamplerConfig(near=2.25, far=3.3, num_coarse=48, num_fine=48, perturb="uniform", box_side=1.0),
        embedder=EmbedderConfig(kind="triplane", coordinate_scale=1.0, triplane_resolution=256, triplane_axes="official"),
        decoder=DecoderConfig(kind="osg", hidden=64, out_features=32),
        renderer=VolumeRendererConfig(density="softplus_shifted", integrator="midpoint"),
        upsampler=UpsamplerConfig(kind="eg3d_sr"),
    )


_PRESETS = {"pigan": _pigan, "gram": _gram, "stylesdf": _stylesdf, "volumegan": _volumegan, "stylenerf": _stylenerf,
            "graf": _graf, "giraffe": _giraffe, "epigraf": _epigraf, "eg3d": _eg3d_recipe}


def tiny(config: PipelineConfig) -> PipelineConfig:
    """The same method at CPU size: narrow layers, few samples, 32 px images (16 px neural
    rendering with an upsampler), small tri-planes and volumes. Geometry, densities, integrators
    and pose priors are unchanged."""
    c = dataclasses.replace(config, preset=config.preset + "-tiny")
    c.mapping = dataclasses.replace(config.mapping, layers=min(config.mapping.layers, 2), hidden=32,
                                    z_dim=_tiny_z(config), w_dim=min(config.mapping.w_dim, 32))
    up = config.upsampler.kind != "none"
    c.img_resolution = 32
    c.neural_rendering_resolution = 16 if up else 32
    c.points = dataclasses.replace(config.points, num_coarse=min(config.points.num_coarse, 12 if config.embedder.kind == "manifold" else 8),
                                   num_fine=min(config.points.num_fine, 6),
                                   patch_size=min(config.points.patch_size, 16))
    c.embedder = dataclasses.replace(config.embedder, triplane_resolution=32, triplane_channels=8, channel_base=1024,
                                     channel_max=32, volume_resolution=8, volume_channels=8, volume_base_channels=16,
                                     manifold_hidden=16, manifold_layers=2,
                                     pe_frequencies=min(config.embedder.pe_frequencies, 4),
                                     dir_pe_frequencies=min(config.embedder.dir_pe_frequencies, 2),
                                     num_manifolds=min(config.embedder.num_manifolds, 8))
    c.decoder = dataclasses.replace(config.decoder, hidden=16, layers=min(config.decoder.layers, 3),
                                    out_features=config.decoder.out_features if config.decoder.out_features == 3 else 16,
                                    skip=1, z_shape_dim=8, z_app_dim=8, background_hidden=8, background_layers=2,
                                    background_z_dim=4, sdf_feature_dim=8)
    c.upsampler = dataclasses.replace(config.upsampler, channel_base=256, channel_max=16, min_channels=4,
                                      sr_module="studio.SuperresolutionLite2X64")
    c.renderer = dataclasses.replace(config.renderer,
                                     density_noise_fade_kimg=min(config.renderer.density_noise_fade_kimg, 2.0))
    if config.upsampler.kind == "eg3d_sr":
        c.img_resolution, c.neural_rendering_resolution = 64, 32
    return c


def _tiny_z(config: PipelineConfig) -> int:
    if config.mapping.kind != "none":
        return 32
    per_field = 8 + 8
    if config.embedder.kind == "composition":
        return per_field * config.embedder.num_objects + (2 * 4 if config.embedder.background else 0)
    return per_field


PIPELINE_PRESET_NAMES = tuple(_PRESETS) + tuple(f"{name}-tiny" for name in _PRESETS)


def pipeline_preset(name: str) -> PipelineConfig:
    """The config of a method (``pigan``, ``gram``, ...) or its CPU-sized ``<method>-tiny`` variant."""
    base = name[:-5] if name.endswith("-tiny") else name
    if base not in _PRESETS:
        raise ValueError(f"unknown pipeline preset {name!r}; expected one of {', '.join(PIPELINE_PRESET_NAMES)}")
    config = _PRESETS[base]()
    return tiny(config) if name.endswith("-tiny") else config


COMPONENT_CHOICES = {"embedder": EMBEDDER_KINDS, "decoder": DECODER_KINDS, "mapping": MAPPING_KINDS,
                     "upsampler": UPSAMPLER_KINDS, "density": DENSITY_KINDS, "integrator": INTEGRATOR_KINDS}
"""Component swaps the command line offers (``--embedder volume --decoder siren``)."""


def with_component(config: PipelineConfig, component: str, kind: str) -> PipelineConfig:
    """An ablation: ``config`` with one component replaced, and the couplings that swap implies
    (a FiLM-SIREN decoder brings the FiLM mapping, and drops a StyleGAN upsampler that would need
    StyleGAN2 ws; an SDF decoder brings an SDF density; no upsampler renders at the image
    resolution, ...). Raises ValueError for unknown kinds and for combinations that cannot work."""
    if component not in COMPONENT_CHOICES:
        raise ValueError(f"unknown component {component!r}; swappable: {', '.join(COMPONENT_CHOICES)}")
    if kind not in COMPONENT_CHOICES[component]:
        raise ValueError(f"unknown {component} {kind!r}; expected one of {', '.join(COMPONENT_CHOICES[component])}")
    c = PipelineConfig.from_dict(config.to_dict())
    if component in ("density", "integrator"):
        setattr(c.renderer, component, kind)
    else:
        getattr(c, component).kind = kind
    if component == "decoder":
        if kind in ("siren", "gram_siren"):
            c.mapping.kind = "film"
            if c.upsampler.kind in ("eg3d_sr", "stylegan"):  # they need StyleGAN2 ws: render at full size instead
                c.upsampler.kind = "none"
        elif kind == "nerf_mlp":
            c.mapping.kind = "none"
        elif c.mapping.kind != "stylegan2":
            c.mapping.kind = "stylegan2"
        if kind == "sdf_siren":
            c.renderer.density = "sdf_sigmoid"
        elif c.renderer.density.startswith("sdf_"):
            c.renderer.density = "softplus"
        if kind == "osg":
            c.decoder.hidden = 64
    if component == "embedder":
        if kind == "manifold":
            c.renderer.integrator = "constant_delta"
            if c.decoder.kind not in ("siren", "gram_siren"):
                c.decoder.kind, c.mapping.kind = "gram_siren", "film"
        elif c.renderer.integrator == "constant_delta":
            c.renderer.integrator = "last_delta"
        if kind not in ("coordinate", "manifold") and c.decoder.kind == "gram_siren":
            c.decoder.kind = "siren"  # GramRF reads coordinates; pi-GAN's FiLM-SIREN reads any features
        if kind == "composition":
            c.decoder.kind, c.mapping.kind = "nerf_mlp", "none"
        if kind == "volume" and c.embedder.pe_frequencies == 0:
            c.embedder.pe_frequencies = 4
    if c.upsampler.kind == "none":
        c.neural_rendering_resolution = c.img_resolution
    if component == "upsampler" and kind != "none" and config.upsampler.kind == "none":
        c.neural_rendering_resolution = max(c.img_resolution // 4, 16)
    if c.mapping.kind == "none" and c.decoder.kind == "nerf_mlp":
        per = c.codes_per_field()
        c.mapping.z_dim = per * (c.embedder.num_objects if c.embedder.kind == "composition" else 1) + (
            2 * c.decoder.background_z_dim if c.embedder.kind == "composition" and c.embedder.background else 0)
    c.validate()
    return c
