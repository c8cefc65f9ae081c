"""Released official checkpoints: what each needs that its file does not say, and how to recognise it.

Official files carry weights (and sometimes class names) but not the render settings their scripts
take from a curriculum or command line: field of view, ray range, samples per ray, background,
camera prior, truncation. Each :class:`Release` records those facts (from the method's fixture
README and ``../shared/docs/official_checkpoints.md``); :func:`identify` picks the releases a file
can be from its format and network class, and :func:`choose` settles on one (a name given by the
user wins; where the weights cannot tell two releases apart, e.g. pi-GAN CelebA and Cats, the
first is taken with a warning naming the others).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any

__all__ = ["RELEASES", "STYLENERF_NETWORK", "Manifolds", "ObjectBoxes", "Release", "choose", "identify",
           "release_names"]


@dataclass(frozen=True)
class Manifolds:
    """GRAM's radiance-manifold settings of a release (``configs.py``; not in its file)."""

    num_manifolds: int
    """Manifolds, the background plane included when there is one."""
    levels_start: float
    """First level value."""
    levels_end: float
    """Last level value."""
    center: tuple[float, float, float]
    """Subtracted from the manifold predictor's scaled input."""
    normalize: float
    """The radiance network's input is x 2/normalize (the manifold predictor always uses 2/0.24)."""
    delta: float
    """Constant compositing interval."""
    background: bool
    """A background plane at world z = -0.12."""


@dataclass(frozen=True)
class ObjectBoxes:
    """GIRAFFE's scene settings of a release (``bounding_box_generator_kwargs`` and the background
    rotation of its yaml; not in its file). Ranges in [0, 1] of rotation are full turns."""

    num_objects: int
    """Object boxes (``n_boxes``)."""
    scale_min: tuple[float, float, float]
    """Smallest box scale per axis."""
    scale_max: tuple[float, float, float]
    """Largest box scale per axis."""
    translation_min: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Smallest box translation per axis."""
    translation_max: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Largest box translation per axis."""
    rotation_range: tuple[float, float] = (0.0, 1.0)
    """Object rotation about z, in turns."""
    object_on_plane: bool = False
    """Box centres at z = ``z_level_plane`` (CLEVR)."""
    z_level_plane: float = 0.0
    """That plane's height."""
    background_rotation_range: tuple[float, float] = (0.0, 0.0)
    """Background rotation about z, in turns."""
    random_existence: bool = False
    """Training drew which objects exist per image (``sample_object_existance``, CLEVR 2-5)."""


@dataclass(frozen=True)
class Release:
    """One released official model and the settings it renders with."""

    name: str
    """Registry name (``load_generator(..., release=name)``)."""
    method: str
    """Method preset the file maps onto."""
    file_format: str
    """The importer that reads it (see ``models.checkpoint``)."""
    network: str
    """Class (or layout) in the file that identifies it."""
    fov_degrees: float
    """Field of view the official scripts render with (across the outer pixel centres for pi-GAN)."""
    near: float
    """Ray start (distance along unit rays)."""
    far: float
    """Ray end."""
    num_coarse: int
    """Coarse samples per ray at render time (pi-GAN's scripts: 2 x the first training stage)."""
    num_fine: int
    """Importance samples per ray at render time."""
    last_back: bool
    """The last sample takes the ray's remaining weight at render time (pi-GAN's ``eval_last_back``)."""
    white_back: bool
    """Composite onto white."""
    img_resolution: int
    """Training image resolution (the default render size; the scripts render 256)."""
    camera_prior: str
    """Training camera distribution, as the curriculum states it (facts only)."""
    pose_prior: str
    """Our ``ops.pose_sampling.POSE_PRIORS`` entry used when training or sampling poses from the import."""
    radius: float = 1.0
    """Camera distance from the origin."""
    truncation_psi: float = 0.7
    """Truncation the official render scripts use."""
    truncation_cutoff: int | None = None
    """ws truncated (the first this many; None: all), VolumeGAN's ``trunc_layers``."""
    truncation_samples: int = 10_000
    """z averaged for the truncation mean (not stored by the file; computed once at import)."""
    lock_view_dependence: bool = False
    """Render every sample with the frontal view direction (a script option, off by default)."""
    manifolds: Manifolds | None = None
    """GRAM's manifold settings (GRAM releases only)."""
    neural_rendering_resolution: int = 64
    """Volume-rendering resolution (StyleSDF's ``renderer_spatial_output_dim``; pipelines with an upsampler)."""
    radius_max: float | None = None
    """The largest radius of a camera radius range: near and far move by -(radius_max - r) per camera (GRAF);
    None: one radius, no shift."""
    file_name: str = ""
    """The released file's name, which picks this release when the weights fit several (GRAF)."""
    box_side: float = 0.24
    """Side of the cube the scene lives in, where the file does not say it (EpiGRAF: 2 x ``cube_scale``)."""
    random_sampling: bool = False
    """Render with random depths as the official forward always does (EpiGRAF); default: the deterministic rule."""
    objects: ObjectBoxes | None = None
    """GIRAFFE's object boxes and background rotation (GIRAFFE releases only)."""

    def replace(self, **changes: Any) -> Release:
        """A copy with settings changed (a user's own fov, ray range, samples, ...)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown release settings: {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)


_PIGAN = "pigan-torch-save"
_GRAM = "gram-state-dict"
_VOLUMEGAN = "volumegan-runner"
_STYLESDF = "stylesdf-pt"
_STYLESDF_FFHQ = ("gaussian, azimuth N(0, 0.3), elevation N(0, 0.15), radius 1, fov 6 deg half angle; "
                  "renders 24 samples, force_background, truncation 0.5 over 10000 z")
_STYLESDF_AFHQ = _STYLESDF_FFHQ.replace("N(0, 0.3)", "N(0, 0.15)")
_GRAF = "graf-checkpoint"
_GRAF_VIEWS = "GRAF NeRF, view directions"
_GRAF_NO_VIEWS = "GRAF NeRF, no view directions"
_GRAF_CARLA = "uniform, u in [0, 1], polar 0-85 deg, r 10, fov 30"
_GRAF_CELEBA = "uniform, u in [0, 0.25], polar 70-85 deg, r U(9.5, 10.5), fov 10"
_EPIGRAF = "epigraf-pickle"
_EPIGRAF_MEGASCANS = ("spherical_uniform; white background, class-conditional; scripts/inference.py renders 256 px "
                      "with the file's num_ray_steps, psi 0.7 toward the class's mean w of 256 z")
_GIRAFFE = "giraffe-checkpoint"


def giraffe_network(img_resolution: int, channels: int, z_dim: int) -> str:
    """How a GIRAFFE file's network is named here: what its tensor shapes tell (not its box settings)."""
    return f"GIRAFFE generator, {img_resolution} px, {channels}-ch features, {z_dim}-d object codes"


def _giraffe(name: str, res: int, channels: int, z_dim: int, fov: float, range_v: tuple[float, float],
             boxes: ObjectBoxes) -> Release:
    # render.py: 64 samples on depths 0.5-6 along the optical axis, a 16 px feature map, codes x 0.65
    return Release(f"giraffe-{name}", "giraffe", _GIRAFFE, giraffe_network(res, channels, z_dim), fov, 0.5, 6.0, 64, 0,
                   last_back=False, white_back=False, img_resolution=res,
                   camera_prior=f"uniform on the sphere, r 2.732, u in [0, 0], v in [{range_v[0]}, {range_v[1]}] "
                                f"(z up); box settings in .objects", pose_prior="giraffe", radius=2.732,
                   truncation_psi=0.65, truncation_samples=0, neural_rendering_resolution=16, objects=boxes)


def _face(rotation: tuple[float, float]) -> ObjectBoxes:
    return ObjectBoxes(1, (0.21,) * 3, (0.21,) * 3, rotation_range=rotation)


_CARS = ObjectBoxes(1, (0.2, 0.16, 0.16), (0.25, 0.2, 0.2), (-0.22, -0.12, 0.0), (0.22, 0.12, 0.0))
_CHURCH = ObjectBoxes(1, (0.45,) * 3, (0.55,) * 3, (-0.15, -0.15, 0.0), (0.15, 0.15, 0.0),
                      background_rotation_range=(0.0, 0.25))
_FACE_V, _CAR_V = (0.4167, 0.5), (0.41667, 0.5)
_STYLENERF = "stylenerf-pickle"
STYLENERF_NETWORK = "StyleNeRF Generator (NeRFSynthesisNetwork)"
"""What a StyleNeRF pickle's ``G_ema`` is; its releases' ``network`` adds the image size ('... 256 px')."""
_STYLENERF_PRIOR = "gaussian, yaw N(0, 0.3), polar angle N(pi/2, 0.155), radius 1, fov 12 (z-up world, frontal on +x)"
RELEASES: dict[str, Release] = {
    r.name: r
    for r in (
        Release("pigan-celeba", "pigan", _PIGAN, "siren.siren.SPATIALSIRENBASELINE", 12.0, 0.88, 1.12, 24, 24,
                last_back=True, white_back=False, img_resolution=64,
                camera_prior="gaussian, yaw N(pi/2, 0.3), polar angle N(pi/2, 0.155)",
                pose_prior="pi_gan"),
        Release("pigan-cats", "pigan", _PIGAN, "siren.siren.SPATIALSIRENBASELINE", 12.0, 0.8, 1.2, 48, 48,
                last_back=True, white_back=False, img_resolution=64,
                camera_prior="uniform, yaw pi/2 +- 0.5, pitch pi/2 +- 0.4", pose_prior="pi_gan"),
        Release("pigan-carla", "pigan", _PIGAN, "siren.siren.TALLSIREN", 30.0, 0.7, 1.3, 96, 96,
                last_back=False, white_back=True, img_resolution=128,
                camera_prior="spherical_uniform, yaw pi/2 +- pi, v_mean = v_stddev = (pi/4)(85/90)",
                pose_prior="pi_gan"),
        *(Release(f"gram-{name}", "gram", _GRAM, f"generators.generators.GramGenerator sample_network width {width}",
                  fov, near, far, 64, 0, last_back=False, white_back=white, img_resolution=res,
                  camera_prior=prior, pose_prior="gram", lock_view_dependence=lock, manifolds=manifolds)
          for name, width, fov, near, far, white, res, prior, lock, manifolds in (
              ("ffhq", 128, 12.0, 0.88, 1.12, False, 256, "gaussian, yaw N(pi/2, 0.3), polar angle N(pi/2, 0.155)",
               True, Manifolds(24, 23.0, 8.0, (0.0, 0.0, -1.5), 0.24, 0.04, True)),
              ("cats", 64, 12.0, 0.88, 1.12, False, 256, "gaussian, yaw N(pi/2, 0.3), polar angle N(pi/2, 0.155)",
               True, Manifolds(24, 23.0, 8.0, (0.0, 0.0, -1.5), 0.24, 0.04, True)),
              ("carla", 256, 35.0, 0.7, 1.3, True, 128,
               "spherical_uniform, yaw pi/2 +- pi, v_mean = v_stddev = pi 42.5/180", False,
               Manifolds(48, 35.0, 5.0, (0.0, 0.0, 0.0), 2.0, 0.02, False)),
          )),
        # render.py: 3 x the FFHQ config's 12 steps, coarse and fine; psi 0.7 on the first 8 ws (w_avg is stored)
        Release("volumegan-ffhq256", "volumegan", _VOLUMEGAN, "VolumeGANGenerator", 12.0, 0.8, 1.2, 36, 36,
                last_back=False, white_back=False, img_resolution=256,
                camera_prior="gaussian, yaw N(pi/2, 0.3), pitch N(pi/2, 0.155), r 1 (positive yaw moves the camera "
                             "to -x)", pose_prior="volumegan", truncation_psi=0.7, truncation_cutoff=8,
                truncation_samples=0),
        *(Release(name, "stylesdf", _STYLESDF, network, 12.0, 0.88, 1.12, 24, 0, last_back=True, white_back=False,
                  img_resolution=res, camera_prior=prior, pose_prior=pose, truncation_psi=0.5)
          for name, network, res, prior, pose in (
              ("stylesdf-ffhq1024", "StyleSDF Generator full pipeline, 4 decoder blocks", 1024, _STYLESDF_FFHQ,
               "stylesdf"),
              ("stylesdf-afhq512", "StyleSDF Generator full pipeline, 3 decoder blocks", 512, _STYLESDF_AFHQ,
               "stylesdf_afhq"),
              ("stylesdf-ffhq-vol-renderer", "StyleSDF Generator renderer", 64, _STYLESDF_FFHQ, "stylesdf"),
              ("stylesdf-afhq-vol-renderer", "StyleSDF Generator renderer", 64, _STYLESDF_AFHQ, "stylesdf_afhq"),
              ("stylesdf-sphere-init", "StyleSDF Generator renderer", 64, _STYLESDF_FFHQ, "stylesdf"),
          )),
        *(Release(f"graf-{data.lower().replace('_', '')}{res}", "graf", _GRAF, _GRAF_VIEWS if views else _GRAF_NO_VIEWS,
                  fov, 7.5, 12.5, 64, 0, last_back=False, white_back=white, img_resolution=res, camera_prior=prior,
                  pose_prior=pose, radius=r_max or 10.0, truncation_psi=1.0, truncation_samples=0, radius_max=r_max,
                  file_name=f"{folder}/{data}_{res}.pt")
          for folder, data, res, fov, white, views, r_max, pose, prior in (
              *(("carla", "carla", res, 30.0, True, True, None, "graf_carla", _GRAF_CARLA) for res in (64, 128, 256, 512)),
              *(("faces", "celebA", res, 10.0, False, True, 10.5, "graf_celeba", _GRAF_CELEBA) for res in (64, 128)),
              *(("faces", "celebA_hq", res, 10.0, False, True, 10.5, "graf_celeba", _GRAF_CELEBA) for res in (256, 512)),
              ("cats", "cats", 64, 10.0, False, True, None, "graf_cats",
               "uniform, u in [0, 0.1944], polar 70-85 deg, r 10, fov 10"),
              ("birds", "cub", 64, 30.0, True, False, 11.0, "graf_cub",
               "uniform, u in [0, 1], polar 60-95 deg, r U(9, 11), fov 30"),
          )),
        # scripts/inference.py: 256 px, psi 0.7; ray_step_multiplier does not reach the synthesis network,
        # which keeps the checkpoint's num_ray_steps (48 for FFHQ); fov, rays and cube_scale are read from
        # the file's config where it resolves (these values otherwise)
        Release("epigraf-ffhq512", "epigraf", _EPIGRAF, "EpiGRAF Generator, c_dim 0", 12.0, 0.88, 1.12, 48, 48,
                last_back=False, white_back=False, img_resolution=256,
                camera_prior="dataset camera angles (dist custom, FFHQ poses from GRAM), r 1; scripts/inference.py "
                             "renders 256 px, psi 0.7, the file's num_ray_steps", pose_prior="epigraf",
                truncation_samples=0, box_side=0.4),
        *(Release(f"epigraf-megascans-{name}256", "epigraf", _EPIGRAF, f"EpiGRAF Generator, c_dim {classes}", 30.0,
                  0.75, 1.25, 48, 48, last_back=False, white_back=True, img_resolution=256,
                  camera_prior=_EPIGRAF_MEGASCANS, pose_prior="epigraf", truncation_samples=0, box_side=0.95)
          for name, classes in (("plants", 198), ("food", 10))),
        _giraffe("celeba64", 64, 128, 256, 10.0, _FACE_V, _face((0.40278, 0.59722))),
        _giraffe("cats64", 64, 128, 256, 10.0, _CAR_V, _face((0.40278, 0.59722))),
        _giraffe("compcars64", 64, 128, 256, 10.0, _CAR_V, _CARS),
        _giraffe("chairs64", 64, 128, 256, 49.13, (0.05, 0.5), ObjectBoxes(1, (0.5,) * 3, (0.5,) * 3)),
        _giraffe("church64", 64, 128, 256, 30.0, (0.5, 0.5), _CHURCH),
        _giraffe("cars256", 256, 256, 256, 10.0, _CAR_V, _CARS),
        _giraffe("celebahq256", 256, 256, 256, 10.0, _FACE_V, _face((0.375, 0.625))),
        _giraffe("ffhq256", 256, 256, 256, 10.0, _FACE_V, _face((0.40278, 0.59722))),
        _giraffe("church256", 256, 256, 256, 30.0, (0.5, 0.5), _CHURCH),
        _giraffe("clevr2-256", 256, 256, 256, 49.13, (0.33333, 0.33333),
                 ObjectBoxes(2, (0.17,) * 3, (0.17,) * 3, (-0.713, -0.713, 0.0), (0.713, 0.713, 0.0), (0.0, 0.0),
                             object_on_plane=True, z_level_plane=0.1665)),
        _giraffe("clevr2345-256", 256, 128, 64, 49.13, (0.33333, 0.33333),
                 ObjectBoxes(5, (0.17,) * 3, (0.17,) * 3, (-0.71, -0.71, 0.0), (0.71, 0.71, 0.0), (0.0, 0.0),
                             object_on_plane=True, z_level_plane=0.1665, random_existence=True)),
        # generate.py: G_ema, truncation 0.7 (the README's example), background codes N(0, 0.65^2); the file
        # holds fov, depth range and samples (they replace these), near/far are depths along the optical axis
        *(Release(f"stylenerf-{name}", "stylenerf", _STYLENERF, f"{STYLENERF_NETWORK} {res} px", 12.0, 0.88, 1.12,
                  14, 14, last_back=False, white_back=False, img_resolution=res, camera_prior=_STYLENERF_PRIOR,
                  pose_prior="stylenerf", truncation_psi=0.7, truncation_samples=0, neural_rendering_resolution=32)
          for name, res in (("ffhq256", 256), ("ffhq512", 512), ("ffhq1024", 1024), ("ffhq512-eg3d", 512),
                            ("afhq512", 512), ("metfaces512", 512), ("cars256", 256))),
    )
}
"""Every known release by name: pi-GAN's three Google-Drive zips, GRAM's three ``pretrained_models``
folders, StyleSDF's full models (``full_models/ffhq1024x1024.pt``, ``afhq512x512.pt``) and renderers
(``pretrained_renderer/*_vol_renderer.pt``, ``sphere_init.pt``: last_back meaning StyleSDF's
``force_background``), VolumeGAN's ``volumegan_ffhq256.pth``, GRAF's ten ``configs/pretrained_models.yaml``
files (``graf-carla64`` ... ``graf-cub64``; their near and far are depths along the optical axis; radius the
largest of a range, as ``eval.py`` renders), EpiGRAF's three ``model.pkl`` snapshots (FFHQ 512, Megascans
Plants and Food 256; told apart by their class-label size), GIRAFFE's eleven ``checkpoint_<name>-<hash>.pt``
(``configs/*/*_pretrained.yaml``), StyleNeRF's ``ffhq_{256,512,1024}.pkl`` (Hugging Face
``facebook/stylenerf-ffhq-config-basic``) and the local files ``web_demo.py`` names (``ffhq_512_eg3d.pkl``,
``afhq_512.pkl``, ``metfaces_512.pkl``, ``cars_256.pkl``; releases of one size are told apart only by name).
GRAM's render at the script's fov (CARLA 35, trained at 30)."""


def release_names() -> tuple[str, ...]:
    return tuple(RELEASES)


def identify(file_format: str, network: str) -> list[Release]:
    """The releases a file of this format whose network is ``network`` can be, registry order."""
    return [r for r in RELEASES.values() if r.file_format == file_format and r.network == network]


def choose(file_format: str, network: str, name: str | None = None, where: str = "this file",
           any_network: bool = False) -> Release:
    """The release to use: ``name`` if given (it must fit the file), else the one the file identifies.
    ``any_network``: a named release of this format fits whatever the network (formats whose architecture
    comes from the tensor shapes, so the release only gives render settings).

    Raises:
        ValueError: an unknown name, a name that does not fit the file, or a file no release fits.
    """
    if any_network and name in RELEASES and RELEASES[name].file_format == file_format:
        return RELEASES[name]
    fits = identify(file_format, network)
    if name is not None:
        if name not in RELEASES:
            raise ValueError(f"unknown release {name!r}; known: {', '.join(RELEASES)}")
        if RELEASES[name] not in fits:
            raise ValueError(f"release {name!r} is a {RELEASES[name].network}, {where} holds a {network}")
        return RELEASES[name]
    if not fits:
        raise ValueError(f"no known release has a {network} ({file_format})")
    if len(fits) > 1:
        warnings.warn(f"{where}: the weights cannot tell {', '.join(r.name for r in fits)} apart; using "
                      f"{fits[0].name}'s settings (pass release=NAME to choose)", stacklevel=3)
    return fits[0]
