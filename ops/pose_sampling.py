"""Prior-based camera pose sampling: the "pose sampler" module of methods.md §1, as EG3D labels.

Methods that do not read poses from a dataset (pi-GAN, GRAM, StyleSDF, VolumeGAN, GRAF,
GIRAFFE, StyleNeRF) draw a camera for every fake image from a prior over orbit angles and
radius. This module turns such a prior into [N, 25] EG3D camera labels built with
:mod:`ops.camera`, the one internal pose format (methods.md §4, note 1). EG3D and EpiGRAF use
dataset poses instead (see :data:`DATASET_POSE_METHODS`); they need no prior.

Angle conventions (world y-up, OpenCV camera; see :mod:`ops.camera`).

* ``yaw`` is the horizontal angle offset from the frontal view, exactly as in
  :func:`ops.camera.orbit_pose`: EG3D's ``h = pi/2 + yaw``. The camera sits at
  ``r * (sin(phi) sin(yaw), cos(phi), sin(phi) cos(yaw))``, so positive yaw moves it to +x.
* ``pitch`` is a vertical offset from the frontal view; positive pitch moves the camera *down*
  (as in :func:`ops.camera.orbit_pose`). How it maps to the polar angle ``phi`` (measured from
  world +y) depends on :attr:`PosePrior.pitch_space`:

  - ``"elevation"`` (default): the geometric angle, ``phi = pi/2 + pitch``. This is the polar
    angle that pi-GAN, GRAM, VolumeGAN, StyleNeRF and Carver sample directly
    (``phi ~ N(pi/2, sigma)``), and minus StyleSDF's elevation. EG3D's ``LookAtPoseSampler``
    (hence ``orbit_pose``) does *not* use the angle directly: it maps its vertical angle
    ``v = pi/2 + p`` through ``phi = arccos(1 - 2 v / pi)``, i.e. ``cos(phi) = -2 p / pi``. To
    land the camera at the sampled geometric angle we therefore pass
    ``p = (pi / 2) * sin(pitch)`` to ``orbit_pose``. Without this conversion a N(0, 0.155)
    prior would give a camera elevation std of only about 0.155 * 2 / pi = 0.099 rad.
  - ``"orbit"``: ``pitch`` is passed to ``orbit_pose`` unchanged (EG3D's v-space). Because
    ``cos(phi)`` is linear in it, a uniform prior here is uniform in ``cos(phi)``: this is
    GRAF's and GIRAFFE's ``phi = arccos(1 - 2 v)`` with ``v ~ U`` (orbit pitch = ``pi * (v -
    1/2)``), and yaw ~ U(-pi, pi) with pitch ~ U(-pi/2, pi/2) is Carver's spherical-uniform
    position option.

* How the sources' names map onto ours. pi-GAN/GRAM/VolumeGAN/Carver ``h``/yaw/azimuth
  ~ N(pi/2, sigma_h) and ``v``/pitch/polar ~ N(pi/2, sigma_v): yaw ~ N(0, sigma_h), elevation
  pitch ~ N(0, sigma_v). pi-GAN places its camera at ``(sin(phi) cos(theta), cos(phi),
  sin(phi) sin(theta))``, so the same position has ``yaw = -(theta - pi/2)``; every preset is
  symmetric in yaw, so the sign does not change the distribution. StyleSDF's ``(azim, elev)``
  and StyleNeRF's ``(u, v - pi/2)`` are ``(yaw, -pitch)`` and ``(yaw, pitch)`` respectively.
* ``radius`` is the camera's distance from the world origin, which it orbits; it looks at
  ``pivot`` (EG3D ``LookAtPoseSampler`` semantics; ``pivot`` is the origin for all presets).
* ``roll`` (Carver allows it; no preset uses it) turns the camera about its viewing axis:
  ``right' = cos(roll) right + sin(roll) down``, ``down' = cos(roll) down - sin(roll) right``.

Sampling draws on the generator's device (CPU when none is given) and moves the results to
``device``, so a seed gives the same poses whatever the target device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import torch

from ops.camera import FFHQ_FOCAL, fov_to_focal, intrinsics_from_focal, orbit_pose, pack_label

PriorKind = Literal["fixed", "uniform", "normal", "truncated_normal", "hybrid"]
PitchSpace = Literal["elevation", "orbit"]


def _draw_fixed(prior: AnglePrior, n: int, kw: dict) -> torch.Tensor:
    return torch.full((n,), prior.mean, device=kw["device"], dtype=torch.float32)


def _draw_uniform(prior: AnglePrior, n: int, kw: dict) -> torch.Tensor:
    return prior.low + (prior.high - prior.low) * torch.rand(n, **kw)


def _draw_normal(prior: AnglePrior, n: int, kw: dict) -> torch.Tensor:
    return prior.mean + prior.std * torch.randn(n, **kw)


def _draw_truncated_normal(prior: AnglePrior, n: int, kw: dict) -> torch.Tensor:
    return torch.clamp(prior.mean + prior.std * torch.randn(n, **kw), prior.low, prior.high)


def _draw_hybrid(prior: AnglePrior, n: int, kw: dict) -> torch.Tensor:
    coin = torch.rand(n, **kw) < 0.5
    uniform = prior.low + (prior.high - prior.low) * torch.rand(n, **kw)
    normal = prior.mean + prior.std * torch.randn(n, **kw)
    return torch.where(coin, uniform, normal)


PRIOR_DRAWS = {"fixed": _draw_fixed, "uniform": _draw_uniform, "normal": _draw_normal,
               "truncated_normal": _draw_truncated_normal, "hybrid": _draw_hybrid}
"""Each distribution family's draw, by name (``f(prior, n, tensor kwargs) -> [n]``)."""
PRIOR_KINDS: tuple[str, ...] = tuple(PRIOR_DRAWS)
BOUNDED_KINDS = frozenset({"uniform", "truncated_normal", "hybrid"})
"""Families that read ``low`` and ``high``."""


@dataclass(frozen=True)
class AnglePrior:
    """A distribution over one scalar (an angle in radians, or the radius in scene units).

    ``truncated_normal`` follows Carver: a normal sample *clamped* to [low, high], not a true
    truncated normal, so the tail mass piles up at the two bounds. ``hybrid`` flips a fair coin
    per sample between U(low, high) and N(mean, std) (pi-GAN's own ``hybrid`` mode flips one
    coin per batch; here it is per sample, so a batch is a true 50/50 mixture).
    """

    kind: PriorKind = "fixed"
    """Distribution family: fixed, uniform, normal, truncated_normal or hybrid."""
    mean: float = 0.0
    """The value of ``fixed``; the centre of ``normal``, ``truncated_normal`` and the normal half of ``hybrid``."""
    std: float = 0.0
    """Standard deviation of ``normal``, ``truncated_normal`` and the normal half of ``hybrid``."""
    low: float = 0.0
    """Lower bound of ``uniform`` and the uniform half of ``hybrid``; the clamp floor of ``truncated_normal``."""
    high: float = 0.0
    """Upper bound of ``uniform`` and the uniform half of ``hybrid``; the clamp ceiling of ``truncated_normal``."""

    def __post_init__(self) -> None:
        if self.kind not in PRIOR_DRAWS:
            raise ValueError(f"unknown prior kind {self.kind!r}; expected one of {PRIOR_KINDS}")
        if not (self.std >= 0 and math.isfinite(self.std)):
            raise ValueError(f"std must be finite and >= 0, got {self.std}")
        if self.kind in BOUNDED_KINDS and not self.low <= self.high:
            raise ValueError(f"{self.kind} prior needs low <= high, got [{self.low}, {self.high}]")

    @property
    def is_constant(self) -> bool:
        """It always gives ``mean``."""
        return PRIOR_DRAWS[self.kind] is _draw_fixed

    @classmethod
    def fixed(cls, value: float) -> AnglePrior:
        return cls("fixed", mean=value)

    @classmethod
    def uniform(cls, low: float, high: float) -> AnglePrior:
        return cls("uniform", low=low, high=high)

    @classmethod
    def normal(cls, mean: float, std: float) -> AnglePrior:
        return cls("normal", mean=mean, std=std)

    @classmethod
    def truncated_normal(cls, mean: float, std: float, low: float, high: float) -> AnglePrior:
        return cls("truncated_normal", mean=mean, std=std, low=low, high=high)

    @classmethod
    def hybrid(cls, mean: float, std: float, low: float, high: float) -> AnglePrior:
        return cls("hybrid", mean=mean, std=std, low=low, high=high)


@dataclass(frozen=True)
class PosePrior:
    """A camera prior: orbit angles, radius, look-at point and pinhole intrinsics.

    The defaults are EG3D's FFHQ visualisation camera (frontal, radius 2.7, pivot (0, 0, 0.2),
    focal 4.2647), for which :func:`sample_poses` reproduces :func:`ops.camera.orbit_label`.
    """

    yaw: AnglePrior = field(default_factory=lambda: AnglePrior.fixed(0.0))
    """Horizontal offset from the frontal view (radians; positive moves the camera to +x)."""
    pitch: AnglePrior = field(default_factory=lambda: AnglePrior.fixed(0.0))
    """Vertical offset from the frontal view (radians; positive moves the camera down), read in ``pitch_space``."""
    radius: AnglePrior = field(default_factory=lambda: AnglePrior.fixed(2.7))
    """Distance of the camera from the world origin (scene units); every sample must be > 0."""
    roll: AnglePrior = field(default_factory=lambda: AnglePrior.fixed(0.0))
    """Rotation of the camera about its viewing axis (radians); fixed 0 for every preset."""
    pitch_space: PitchSpace = "elevation"
    """``elevation``: pitch is the geometric polar offset; ``orbit``: pitch is EG3D's v-offset (see module doc)."""
    pivot: tuple[float, float, float] = (0.0, 0.0, 0.2)
    """World point the camera looks at (EG3D's ``avg_camera_pivot``; the origin for the presets)."""
    focal: float = FFHQ_FOCAL
    """Normalised focal length fx = fy (focal in pixels / image size); cx = cy = 0.5, no skew."""
    source: str = ""
    """One-line provenance note (methods.md section and the original config)."""

    def __post_init__(self) -> None:
        if self.pitch_space not in ("elevation", "orbit"):
            raise ValueError(f"pitch_space must be 'elevation' or 'orbit', got {self.pitch_space!r}")
        if not (self.focal > 0 and math.isfinite(self.focal)):
            raise ValueError(f"focal must be finite and > 0, got {self.focal}")
        if len(self.pivot) != 3:
            raise ValueError(f"pivot must have 3 coordinates, got {self.pivot}")

class PoseSample(NamedTuple):
    """Sampled cameras: the angles and radius drawn (each [N]) and the resulting labels.

    ``pitch`` is in the prior's ``pitch_space``; ``polar`` is the geometric polar angle from
    world +y that the camera actually has (Carver returns radius, polar and azimuth too).
    """

    yaw: torch.Tensor
    pitch: torch.Tensor
    roll: torch.Tensor
    radius: torch.Tensor
    polar: torch.Tensor
    label: torch.Tensor


def sample_angles(prior: AnglePrior, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw n float32 values from ``prior`` on the generator's device (CPU when None).

    Draw order is fixed per kind (hybrid: coin, uniform, normal), so a seeded generator gives
    the same values every time.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    device = generator.device if generator is not None else torch.device("cpu")
    kw = dict(generator=generator, device=device, dtype=torch.float32)
    return PRIOR_DRAWS[prior.kind](prior, n, kw)


def elevation_to_orbit_pitch(pitch: torch.Tensor) -> torch.Tensor:
    """Geometric pitch (phi = pi/2 + pitch) -> the pitch ``orbit_pose`` needs: (pi/2) sin(pitch).

    Pitch is clamped to [-pi/2, pi/2] first (beyond the poles the angle would fold back), as
    pi-GAN clamps its polar angle to (0, pi).
    """
    pitch = torch.clamp(pitch.to(torch.float64), -math.pi / 2, math.pi / 2)
    return (math.pi / 2) * torch.sin(pitch)


def orbit_pitch_to_polar(pitch: torch.Tensor) -> torch.Tensor:
    """EG3D orbit pitch -> the camera's geometric polar angle from +y: arccos(-2 pitch / pi)."""
    return torch.arccos(torch.clamp(-2 * pitch.to(torch.float64) / math.pi, -1.0, 1.0))


def _apply_roll(cam2world: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    cos, sin = torch.cos(roll)[:, None], torch.sin(roll)[:, None]
    right, down = cam2world[:, :3, 0], cam2world[:, :3, 1]
    rolled = cam2world.clone()
    rolled[:, :3, 0] = cos * right + sin * down
    rolled[:, :3, 1] = cos * down - sin * right
    return rolled


def sample_cameras(
    prior: PosePrior,
    n: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> PoseSample:
    """Draw n cameras from ``prior``: angles, radius and [N, 25] float32 EG3D labels.

    Draw order: yaw, pitch, radius, roll (each a full [n] draw), so adding a non-fixed roll
    leaves the other draws of a seed unchanged.
    """
    yaw = sample_angles(prior.yaw, n, generator)
    pitch = sample_angles(prior.pitch, n, generator)
    radius = sample_angles(prior.radius, n, generator)
    roll = sample_angles(prior.roll, n, generator)
    if bool((radius <= 0).any()):
        raise ValueError("radius prior produced a non-positive radius")
    if prior.pitch_space == "elevation":
        orbit_pitch = elevation_to_orbit_pitch(pitch)
        polar = math.pi / 2 + torch.clamp(pitch.to(torch.float64), -math.pi / 2, math.pi / 2)
    else:
        orbit_pitch = pitch
        polar = orbit_pitch_to_polar(pitch)
    yaw, orbit_pitch, radius, roll = (t.to(device) if device is not None else t
                                      for t in (yaw, orbit_pitch, radius, roll))
    # A scalar radius keeps orbit_pose's arithmetic identical to orbit_label's for fixed priors.
    radius_arg = float(prior.radius.mean) if prior.radius.is_constant else radius
    cam2world = orbit_pose(yaw, orbit_pitch, radius_arg, prior.pivot)
    if not prior.roll.is_constant or prior.roll.mean != 0.0:
        cam2world = _apply_roll(cam2world, roll.to(cam2world))
    label = pack_label(cam2world, intrinsics_from_focal(prior.focal).to(cam2world.device))
    out_device = label.device
    return PoseSample(yaw.to(out_device), pitch.to(out_device), roll.to(out_device),
                      radius.to(out_device), polar.to(torch.float32).to(out_device), label)


def sample_poses(
    prior: PosePrior,
    n: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """[n, 25] EG3D camera labels drawn from ``prior`` (see :func:`sample_cameras`)."""
    return sample_cameras(prior, n, generator, device).label


def _gaussian_prior(yaw_std: float, pitch_std: float, source: str, fov: float = 12.0) -> PosePrior:
    return PosePrior(
        yaw=AnglePrior.normal(0.0, yaw_std),
        pitch=AnglePrior.normal(0.0, pitch_std),
        radius=AnglePrior.fixed(1.0),
        pitch_space="elevation",
        pivot=(0.0, 0.0, 0.0),
        focal=fov_to_focal(fov),
        source=source,
    )


# Every "fov" below is a full field of view with the true pinhole relation (ops.camera.fov_to_focal):
# StyleSDF quotes a half angle of 6 deg with focal = 0.5 res / tan(6 deg), the same camera.
GRAF_V_RANGE = (0.329, 0.456)
"""GRAF CelebA polar parameter v, phi = arccos(1 - 2 v) in [70, 85] deg (methods.md §2, §3.6)."""
GIRAFFE_V_RANGE = (0.4167, 0.5)
"""GIRAFFE FFHQ polar parameter v, phi in [80.4, 90] deg (methods.md §3.7)."""
GIRAFFE_OBJECT_ROTATION = (0.40278, 0.59722)
"""GIRAFFE object rotation range as a fraction of 2 pi (methods.md §3.7); GUESS: its centre is the frontal view."""

def _graf_release_prior(u: tuple[float, float], polar_degrees: tuple[float, float], radius: tuple[float, float],
                        fov: float, source: str) -> PosePrior:
    """A GRAF yaml's uniform camera (``sample_pose``: azimuth 2 pi u, polar angle arccos(1 - 2 v)) in our world,
    whose axes the imported model reads as GRAF's z-up ones (``embedder.world_axes`` (2, 0, 1)): yaw = 2 pi u,
    orbit pitch = pi (v - 1/2)."""
    v = [(1 - math.cos(math.radians(d))) / 2 for d in polar_degrees]
    low, high = radius
    return PosePrior(yaw=AnglePrior.uniform(2 * math.pi * u[0], 2 * math.pi * u[1]),
                     pitch=AnglePrior.uniform(math.pi * (v[0] - 0.5), math.pi * (v[1] - 0.5)),
                     radius=AnglePrior.fixed(low) if low == high else AnglePrior.uniform(low, high),
                     pitch_space="orbit", pivot=(0.0, 0.0, 0.0), focal=fov_to_focal(fov), source=source)


POSE_PRIORS: dict[str, PosePrior] = {
    "pi_gan": _gaussian_prior(0.3, 0.155, "methods.md §3.5/§2: [P] curriculums.py CelebA, "
                                          "h~N(pi/2,0.3), v~N(pi/2,0.155), r=1, fov 12"),
    "gram": _gaussian_prior(0.3, 0.155, "methods.md §3.3/§2: [G] configs.py, h~N(pi/2,0.3), v~N(pi/2,0.155), r=1, fov 12"),
    "volumegan": _gaussian_prior(0.3, 0.155, "methods.md §3.2/§2: [V] volumegan_ffhq_config.py, "
                                             "yaw~N(pi/2,0.3), pitch~N(pi/2,0.155), r=1, fov 12"),
    "stylesdf": _gaussian_prior(0.3, 0.15, "methods.md §3.4/§2: [S] options.py, "
                                           "azim~N(0,0.3), elev~N(0,0.15), r=1, half-fov 6"),
    "stylesdf_carver": _gaussian_prior(0.3, 0.155, "methods.md §3.4/§5: [C] stylesdf_config.py "
                                                   "uses polar std 0.155 instead of 0.15"),
    "stylesdf_afhq": _gaussian_prior(0.15, 0.15, "methods.md §3.4: [S] AFHQ training options (stylesdf_ref "
                                                 "README), azim~N(0,0.15), elev~N(0,0.15), r=1, half-fov 6"),
    "stylenerf": _gaussian_prior(0.3, 0.155, "methods.md §3.8/§2: [SN] stylenerf_ffhq.yaml gaussian_camera, "
                                             "u~N(0,0.3), v~N(pi/2,0.155), r=1, fov 12"),
    "graf": PosePrior(
        # GUESS: GRAF's azimuth range u in [0, 0.25] (2 pi u in [0, 90] deg) is centred on the frontal view.
        yaw=AnglePrior.uniform(-math.pi / 4, math.pi / 4),
        pitch=AnglePrior.uniform(math.pi * (GRAF_V_RANGE[0] - 0.5), math.pi * (GRAF_V_RANGE[1] - 0.5)),
        radius=AnglePrior.uniform(9.5, 10.5),
        pitch_space="orbit",
        pivot=(0.0, 0.0, 0.0),
        focal=fov_to_focal(10.0),
        source="methods.md §3.6/§2: [GF] configs/celebA.yaml, u in [0,0.25], v in [0.329,0.456], r~U(9.5,10.5), fov 10",
    ),
    "graf_carla": _graf_release_prior((0.0, 1.0), (0.0, 85.0), (10.0, 10.0), 30.0,
                                      "methods.md §3.6: GRAF configs/carla.yaml: u in [0, 1], polar 0-85 deg, "
                                      "r 10, fov 30"),
    "graf_celeba": _graf_release_prior((0.0, 0.25), (70.0, 85.0), (9.5, 10.5), 10.0,
                                       "methods.md §3.6: GRAF configs/celebA.yaml, celebAHQ.yaml: u in [0, 0.25], "
                                       "polar 70-85 deg, r U(9.5, 10.5), fov 10"),
    "graf_cats": _graf_release_prior((0.0, 70 / 360), (70.0, 85.0), (10.0, 10.0), 10.0,
                                     "methods.md §3.6: GRAF configs/cats.yaml: u in [0, 0.1944], polar 70-85 deg, "
                                     "r 10, fov 10"),
    "graf_cub": _graf_release_prior((0.0, 1.0), (60.0, 95.0), (9.0, 11.0), 30.0,
                                    "methods.md §3.6: GRAF configs/cub.yaml: u in [0, 1], polar 60-95 deg, "
                                    "r U(9, 11), fov 30"),
    "graf_carver": _gaussian_prior(0.3, 0.155, "methods.md §3.6/§2: [C] graf_config.py shared FFHQ prior, "
                                               "azimuth std 0.3, polar std 0.155, r=1, fov 12"),
    "giraffe": PosePrior(
        # GIRAFFE rotates the object, not the camera; the equivalent camera yaw is minus the
        # rotation offset from the range centre, and the range is symmetric.
        yaw=AnglePrior.uniform(2 * math.pi * (GIRAFFE_OBJECT_ROTATION[0] - 0.5),
                               2 * math.pi * (GIRAFFE_OBJECT_ROTATION[1] - 0.5)),
        pitch=AnglePrior.uniform(math.pi * (GIRAFFE_V_RANGE[0] - 0.5), math.pi * (GIRAFFE_V_RANGE[1] - 0.5)),
        radius=AnglePrior.fixed(2.732),
        pitch_space="orbit",
        pivot=(0.0, 0.0, 0.0),
        focal=fov_to_focal(10.0),
        source="methods.md §3.7/§2: [GI] ffhq_256.yaml, r=2.732, u=0, v in [0.4167,0.5], "
               "object rotation U(0.40278,0.59722)*2pi, fov 10",
    ),
}
"""Pose priors of the prior-sampling methods (FFHQ/CelebA settings), keyed by method name."""

DATASET_POSE_METHODS: dict[str, str] = {
    "eg3d": "methods.md §3.1: fake poses are labels of random training images (training_set.get_label); no prior",
    "epigraf": "methods.md §3.9: dataset camera angles (dist: custom, FFHQ poses from GRAM), r=1, fov 12; no prior",
}
"""Methods whose generator poses come from the dataset rather than from a prior."""


def pose_prior(name: str) -> PosePrior:
    """The preset ``name`` from :data:`POSE_PRIORS`, with a helpful error for dataset-pose methods."""
    if name in POSE_PRIORS:
        return POSE_PRIORS[name]
    if name in DATASET_POSE_METHODS:
        raise KeyError(f"{name} samples dataset poses, not a prior ({DATASET_POSE_METHODS[name]})")
    raise KeyError(f"unknown pose prior {name!r}; known: {sorted(POSE_PRIORS)}")



def camera_angles(label: torch.Tensor, pivot: tuple[float, float, float] | torch.Tensor = (0.0, 0.0, 0.0)) -> torch.Tensor:
    """(yaw, elevation) [N, 2] of cameras [N, 25] seen from ``pivot``: the inverse of
    ``sample_cameras`` with an 'elevation' prior (yaw 0 = frontal on +z, positive elevation lowers
    the camera, as ``orbit_pose``'s pitch). This is the pose a pose-predicting discriminator
    regresses (pi-GAN, GRAM, StyleSDF)."""
    centre = label[:, [3, 7, 11]] - torch.as_tensor(pivot, dtype=label.dtype, device=label.device)
    x, y, z = centre.unbind(-1)
    yaw = torch.atan2(x, z)
    elevation = torch.asin(torch.clamp(-y / centre.norm(dim=-1).clamp_min(1e-8), -1.0, 1.0))
    return torch.stack([yaw, elevation], dim=-1)


def angles_to_label(angles: torch.Tensor, radius: float, focal: float,
                    pivot: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> torch.Tensor:
    """[N, 25] labels of cameras at (yaw, elevation) [N, 2] (``camera_angles``'s convention),
    ``radius`` from ``pivot``, looking at it: EpiGRAF's "custom" poses re-placed in its own world."""
    cam2world = orbit_pose(angles[:, 0], elevation_to_orbit_pitch(angles[:, 1]).float(), radius, pivot)
    return pack_label(cam2world, intrinsics_from_focal(focal).to(cam2world.device))
