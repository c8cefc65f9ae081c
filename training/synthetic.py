"""Procedurally generated 3D scenes with exact ground truth, for training and testing 3D-aware GANs.

Every sample is an analytic signed-distance function (SDF) built from a few primitives
(ellipsoids with an optional cutting plane, capsules, rounded boxes) joined by a smooth union, and
rendered by sphere tracing along the exact rays of an EG3D camera label. Besides RGB we get:

* depth: distance along the unit ray (EG3D's ``image_depth`` convention), 0 on the background;
* a foreground mask;
* world-space unit normals from the SDF gradient (autograd, `ops.normals.normals_from_field`).

Two kinds of scenes:

* ``"heads"``: head-like shapes for EG3D's FFHQ cameras (radius 2.7, pivot (0, 0, 0.2), focal
  4.2647), inside the unit cube, facing +z. Poses are frontal-ish: yaw ~ N(0, 0.3) clipped to
  +-0.8 and pitch ~ N(0, 0.15) clipped to +-0.4 (radians, EG3D user angles).
* ``"objects"``: cars or chairs (chosen per sample) for EG3D's ShapeNet cameras (radius 1.7, pivot
  at the origin, focal 1.7074) inside the box_warp 1.6 cube, white background. Yaw is uniform in
  [-pi, pi); user pitch is uniform in [-1.0, 0.15] (EG3D's negative pitch is *above*), i.e.
  elevations from about -5 to +40 degrees.

Sample ``i`` depends only on ``(kind, seed, i)``: scene and camera parameters come from a
per-sample generator, and every rendering step is per ray, so batching does not change results.

``write_synthetic_dataset`` writes an EG3D-format zip (``img%08d.png`` + ``dataset.json``) plus
ground truth in ``geometry/img%08d.npz`` (uint16 depth, uint8 RGBA normals); ``read_geometry``
decodes them. Ground truth is deliberately not stored as PNG: EG3D's loader takes every image file
in a zip for a training image, so only the training images may be PNGs.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ops.camera import (
    FFHQ_FOCAL,
    SHAPENET_FOCAL,
    generate_rays,
    intrinsics_from_focal,
    orbit_pose,
    pack_label,
    unpack_label,
)
from ops.normals import normals_from_field
from training.dataset import write_dataset_zip

KINDS = ("heads", "objects")

# --- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KindSpec:
    """Camera rig, scene bounds and ground-truth encoding range of one scene kind."""

    radius: float
    """Camera distance from the world origin (EG3D orbit radius)."""
    pivot: tuple[float, float, float]
    """Point the cameras look at."""
    focal: float
    """Normalised focal length written into the labels."""
    bound_radius: float
    """Radius of a sphere around the origin containing every primitive (rays start there)."""
    depth_near: float
    """Depth mapped to uint16 value 1 (every visible surface is farther)."""
    depth_far: float
    """Depth mapped to uint16 value 65535 (every visible surface is nearer)."""
    slots: tuple[int, int, int]
    """Fixed primitive counts (ellipsoids, capsules, boxes) so that samples batch together."""
    scale: float
    """Multiplies the builders' nominal sizes so that objects fill the frame like EG3D's data."""


SPECS: dict[str, KindSpec] = {
    # Unit cube corners are 0.866 from the origin; camera at 2.7 -> depths within [1.83, 3.57].
    "heads": KindSpec(2.7, (0.0, 0.0, 0.2), FFHQ_FOCAL, 0.87, 1.8, 3.6, (8, 2, 0), 1.1),
    # box_warp 1.6 cube corners are 1.386 away; camera at 1.7 -> depths within [0.31, 3.09].
    "objects": KindSpec(1.7, (0.0, 0.0, 0.0), SHAPENET_FOCAL, 1.39, 0.2, 3.2, (6, 4, 10), 0.75),
}


@dataclass(frozen=True)
class TraceConfig:
    """Sphere-tracing and shading settings."""

    steps: int = 64
    """Fixed maximum number of sphere-tracing steps per ray."""
    relax: float = 0.9
    """Step = relax * SDF; below 1 because the ellipsoid distance is only approximately Euclidean."""
    converge_eps: float = 5e-5
    """A ray stops once |SDF| falls below this (world units)."""
    hit_eps: float = 2e-3
    """After the last step a ray counts as a hit if |SDF| is below this (grazing rays)."""
    color_tau: float = 4e-3
    """Softness of the per-primitive colour blend (softmin over primitive distances)."""
    supersample: int = 1
    """RGB is averaged over supersample^2 sub-pixel rays (geometry is always at pixel centres)."""


# --- scenes -------------------------------------------------------------------------------------

_ELL_W, _CAP_W, _BOX_W = 13, 10, 10  # packed floats per primitive (see Scene)
_FAR = 50.0  # unused slots sit here, far outside every bound


@dataclass
class Scene:
    """A batch of N analytic scenes; primitives are packed per type into fixed slots."""

    ellipsoids: torch.Tensor
    """[N, E, 13]: centre (3), radii (3), cut plane normal (3) and offset (1), colour (3)."""
    capsules: torch.Tensor
    """[N, C, 10]: end a (3), end b (3), radius (1), colour (3)."""
    boxes: torch.Tensor
    """[N, B, 10]: centre (3), half-size (3), rounding radius (1), colour (3)."""
    blend: torch.Tensor
    """[N] smooth-union radius."""
    light: torch.Tensor
    """[N, 3] unit direction towards the light."""
    ambient: torch.Tensor
    """[N] ambient fraction of the Lambert shading."""
    background: torch.Tensor
    """[N, 3] background RGB in [0, 1]."""
    bound_radius: float = 1.0
    """Every primitive lies inside this sphere around the origin."""

    def __len__(self) -> int:
        return self.ellipsoids.shape[0]


@dataclass
class _Builder:
    """Collects one sample's primitives as plain floats, then pads them into Scene slots."""

    ells: list[list[float]] = field(default_factory=list)
    caps: list[list[float]] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)

    def ellipsoid(self, c, r, color, cut: Sequence[float] = (0.0, 0.0, 0.0, 1e3)) -> None:
        # Default cut (n = 0, offset 1e3) gives a plane distance of -1e3: no cut.
        self.ells.append([*c, *r, *cut, *color])

    def capsule(self, a, b, radius: float, color) -> None:
        self.caps.append([*a, *b, radius, *color])

    def box(self, c, half, rounding: float, color) -> None:
        self.boxes.append([*c, *half, rounding, *color])

    def packed(self, slots: tuple[int, int, int], scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Slot tensors with all lengths multiplied by ``scale`` (builders work in nominal units)."""

        def pad(rows: list[list[float]], count: int, dummy: list[float], width: int) -> torch.Tensor:
            if len(rows) > count:
                raise ValueError("too many primitives for the scene layout")
            rows = rows + [dummy] * (count - len(rows))
            return torch.tensor(rows, dtype=torch.float32).reshape(count, width)

        far = [0.0, _FAR / scale, 0.0]
        ells = pad(self.ells, slots[0], far + [0.01] * 3 + [0.0, 0.0, 0.0, 1e3] + [0.0] * 3, _ELL_W)
        caps = pad(self.caps, slots[1], far + far + [0.01] + [0.0] * 3, _CAP_W)
        boxes = pad(self.boxes, slots[2], far + [0.01] * 3 + [0.0] + [0.0] * 3, _BOX_W)
        # Everything but colours (and plane normals) is a length.
        ells[:, 0:6] *= scale
        ells[:, 9] *= scale
        caps[:, 0:7] *= scale
        boxes[:, 0:7] *= scale
        return ells, caps, boxes


class _Rng:
    """Scalar draws from a torch generator (keeps per-sample streams reproducible)."""

    def __init__(self, seed: int):
        self.g = torch.Generator().manual_seed(seed)

    def u(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * torch.rand((), generator=self.g).item()

    def n(self) -> float:
        return torch.randn((), generator=self.g).item()

    def pick(self, options: Sequence):
        return options[int(torch.randint(len(options), (), generator=self.g).item())]

    def jitter(self, color: Sequence[float], amount: float) -> list[float]:
        return [min(max(c + self.u(-amount, amount), 0.0), 1.0) for c in color]


def _sample_seed(kind: str, seed: int, index: int, stream: str) -> int:
    # Stable across processes and Python versions (unlike hash()).
    return zlib.crc32(f"{kind}:{seed}:{index}:{stream}".encode()) | (int(seed) & 0xFFFF) << 32


_SKIN = [(0.96, 0.80, 0.69), (0.87, 0.67, 0.53), (0.76, 0.57, 0.42), (0.55, 0.38, 0.26), (0.36, 0.24, 0.16)]
_HAIR = [(0.08, 0.06, 0.05), (0.30, 0.18, 0.10), (0.75, 0.60, 0.35), (0.55, 0.22, 0.10), (0.62, 0.62, 0.64)]


def _head(r: _Rng, b: _Builder) -> None:
    """Skull, jaw, ears, eyes, nose, mouth, neck and a hair cap, facing +z."""
    rx, ry, rz = r.u(0.16, 0.205), r.u(0.21, 0.25), r.u(0.20, 0.24)
    cy, cz = r.u(0.0, 0.04), r.u(-0.06, -0.02)
    skin = r.jitter(r.pick(_SKIN), 0.05)

    def front(x: float, y: float) -> float:
        # z of the skull surface in front of (x, y): features sit on it.
        s = 1.0 - (x / rx) ** 2 - ((y - cy) / ry) ** 2
        return cz + rz * math.sqrt(max(s, 0.0))

    b.ellipsoid((0, cy, cz), (rx, ry, rz), skin)
    jaw_y = cy - r.u(0.10, 0.13)
    jaw = (rx * r.u(0.68, 0.85), r.u(0.10, 0.13), rz * r.u(0.62, 0.78))
    jaw_z = cz + rz - jaw[2] - r.u(0.0, 0.03)
    b.ellipsoid((0, jaw_y, jaw_z), jaw, skin)
    ear = (0.025, r.u(0.045, 0.065), r.u(0.03, 0.045))
    for s in (-1, 1):
        b.ellipsoid((s * rx * 0.97, cy - 0.01, cz - 0.01), ear, [c * 0.95 for c in skin])
    eye_y, eye_x, eye_r = cy + r.u(0.0, 0.04), r.u(0.06, 0.08), r.u(0.02, 0.027)
    eye_color = r.jitter((0.08, 0.07, 0.07), 0.05)
    for s in (-1, 1):
        b.ellipsoid((s * eye_x, eye_y, front(eye_x, eye_y) - eye_r * 0.6), (eye_r,) * 3, eye_color)
    mouth_y = jaw_y + r.u(-0.01, 0.02)
    mouth_z = max(front(0, mouth_y), jaw_z + jaw[2] * math.sqrt(max(1 - ((mouth_y - jaw_y) / jaw[1]) ** 2, 0)))
    b.ellipsoid((0, mouth_y, mouth_z - 0.006), (r.u(0.035, 0.055), 0.011, 0.014), r.jitter((0.65, 0.25, 0.25), 0.08))
    # Hair: a larger ellipsoid cut by a plane that keeps y >= slope * z + c (hairline on the forehead).
    if r.u(0, 1) < 0.9:
        hr = (rx + r.u(0.012, 0.04), ry + r.u(0.012, 0.05), rz + r.u(0.01, 0.03))
        hc = (0, cy + r.u(0.0, 0.03), cz - r.u(0.0, 0.02))
        hairline = cy + r.u(0.06, 0.13)
        slope = r.u(0.5, 2.0)
        c = hairline - slope * (cz + rz)
        norm = math.sqrt(1 + slope * slope)
        b.ellipsoid(hc, hr, r.jitter(r.pick(_HAIR), 0.05), (0.0, -1.0 / norm, slope / norm, -c / norm))
    nose_y0, nose_y1 = eye_y - 0.01, eye_y - r.u(0.06, 0.09)
    nose_r = r.u(0.016, 0.026)
    b.capsule((0, nose_y0, front(0, nose_y0) - 0.01), (0, nose_y1, front(0, nose_y1) + r.u(0.03, 0.055)), nose_r, skin)
    b.capsule((0, jaw_y - 0.04, cz - 0.05), (0, -0.42, cz - 0.08), r.u(0.085, 0.11), [c * 0.88 for c in skin])


_PAINT = [(0.75, 0.08, 0.08), (0.10, 0.25, 0.70), (0.90, 0.90, 0.88), (0.15, 0.15, 0.16), (0.85, 0.65, 0.10),
          (0.20, 0.50, 0.25), (0.55, 0.55, 0.58)]
_WOOD = [(0.55, 0.35, 0.18), (0.35, 0.22, 0.12), (0.80, 0.65, 0.45), (0.20, 0.20, 0.22), (0.85, 0.85, 0.82)]
_FABRIC = [(0.70, 0.15, 0.15), (0.15, 0.30, 0.55), (0.30, 0.55, 0.30), (0.85, 0.75, 0.55), (0.25, 0.25, 0.27)]


def _car(r: _Rng, b: _Builder) -> None:
    """Rounded body, cabin (glass), four disc wheels and two headlights; length along z."""
    half_l, half_w, half_h = r.u(0.48, 0.68), r.u(0.22, 0.30), r.u(0.06, 0.10)
    wheel = r.u(0.085, 0.12)
    ground = r.u(-0.38, -0.30)
    body_y = ground + wheel * r.u(1.0, 1.4) + half_h * 0.5
    paint = r.jitter(r.pick(_PAINT), 0.06)
    b.box((0, body_y, 0), (half_w, half_h, half_l), r.u(0.02, 0.05), paint)
    cab_h = r.u(0.06, 0.10)
    cab_z = half_l * r.u(-0.25, 0.05)
    b.box((0, body_y + half_h + cab_h * 0.8, cab_z), (half_w * r.u(0.75, 0.9), cab_h, half_l * r.u(0.35, 0.6)),
          r.u(0.03, 0.05), r.jitter((0.15, 0.18, 0.24), 0.04))
    tyre = r.jitter((0.08, 0.08, 0.08), 0.03)
    wheel_z = half_l * r.u(0.58, 0.74)
    for sx in (-1, 1):
        for sz in (-1, 1):
            b.ellipsoid((sx * (half_w - 0.01), ground + wheel, sz * wheel_z), (0.045, wheel, wheel), tyre)
    for sx in (-1, 1):
        b.ellipsoid((sx * half_w * 0.62, body_y + half_h * 0.2, half_l + 0.005), (0.045, 0.022, 0.02), (0.95, 0.92, 0.7))


def _chair(r: _Rng, b: _Builder) -> None:
    """Seat, backrest, four legs (square or round) and optional armrests; the back is at -z."""
    sw, st, sd = r.u(0.20, 0.30), r.u(0.02, 0.045), r.u(0.20, 0.28)
    seat_y = r.u(-0.12, 0.02)
    floor = -0.6
    seat_c = r.jitter(r.pick(_FABRIC), 0.06)
    frame_c = r.jitter(r.pick(_WOOD), 0.05)
    b.box((0, seat_y, 0), (sw, st, sd), r.u(0.005, 0.02), seat_c)
    back_h, back_t = r.u(0.18, 0.30), r.u(0.015, 0.035)
    lean = r.u(0.0, 0.06)
    b.box((0, seat_y + st + back_h, -sd + back_t - lean * 0.5), (sw * r.u(0.8, 1.0), back_h, back_t), 0.01,
          seat_c if r.u(0, 1) < 0.5 else frame_c)
    leg = r.u(0.014, 0.03)
    round_legs = r.u(0, 1) < 0.5
    inset = r.u(0.0, 0.04)
    for sx in (-1, 1):
        for sz in (-1, 1):
            x, z = sx * (sw - leg - inset), sz * (sd - leg - inset)
            if round_legs:
                splay = r.u(0.0, 0.04)
                b.capsule((x, seat_y, z), (x + sx * splay, floor + leg, z + sz * splay), leg, frame_c)
            else:
                b.box((x, (seat_y + floor) / 2, z), (leg, (seat_y - floor) / 2, leg), 0.004, frame_c)
    if r.u(0, 1) < 0.45:
        arm_y = seat_y + r.u(0.12, 0.18)
        for sx in (-1, 1):
            b.box((sx * sw, arm_y, -0.02), (0.022, 0.018, sd * 0.9), 0.008, frame_c)
            b.box((sx * sw, (arm_y + seat_y) / 2, sd * 0.75), (0.018, (arm_y - seat_y) / 2, 0.018), 0.005, frame_c)


def sample_scenes(kind: str, seed: int, indices: Sequence[int]) -> Scene:
    """Scenes for sample ``indices`` of ``(kind, seed)``; each depends only on its own index."""
    spec = _spec(kind)
    ells, caps, boxes, blend, light, ambient, background = [], [], [], [], [], [], []
    for index in indices:
        r = _Rng(_sample_seed(kind, seed, int(index), "scene"))
        b = _Builder()
        if kind == "heads":
            _head(r, b)
            blend.append(r.u(0.015, 0.03))
            l = (r.u(-1, 1), r.u(0.1, 1.0), r.u(0.4, 1.2))
            ambient.append(r.u(0.25, 0.5))
            background.append([r.u(0.15, 0.9)] * 3 if r.u(0, 1) < 0.5 else [r.u(0.15, 0.9) for _ in range(3)])
        else:
            (_car if r.u(0, 1) < 0.5 else _chair)(r, b)
            blend.append(r.u(0.005, 0.015))
            l = (r.u(-1, 1), r.u(0.6, 1.6), r.u(-1, 1))
            ambient.append(r.u(0.3, 0.5))
            background.append([1.0, 1.0, 1.0])  # EG3D ShapeNet renders have white backgrounds
        norm = math.sqrt(sum(x * x for x in l))
        light.append([x / norm for x in l])
        e, c, bx = b.packed(spec.slots, spec.scale)
        ells.append(e), caps.append(c), boxes.append(bx)
    return Scene(
        torch.stack(ells), torch.stack(caps), torch.stack(boxes), torch.tensor(blend), torch.tensor(light),
        torch.tensor(ambient), torch.tensor(background), spec.bound_radius,
    )


def sphere_scene(center: Sequence[float], radius: float, color: Sequence[float] = (0.8, 0.5, 0.3),
                 background: Sequence[float] = (1.0, 1.0, 1.0), bound_radius: float = 1.5) -> Scene:
    """A one-sphere scene (exact SDF), for analytic tests."""
    b = _Builder()
    b.ellipsoid(center, (radius,) * 3, color)
    e, c, bx = b.packed((1, 0, 0))
    return Scene(e[None], c[None], bx[None], torch.tensor([0.01]), torch.tensor([[0.0, 1.0, 0.0]]),
                 torch.tensor([0.4]), torch.tensor([list(background)]), bound_radius)


def sample_cameras(kind: str, seed: int, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EG3D labels for the samples, from an independent per-sample stream.

    Returns:
        labels [N, 25], yaw [N], pitch [N] (EG3D user angles, radians; negative pitch = above).
    """
    spec = _spec(kind)
    yaws, pitches = [], []
    for index in indices:
        r = _Rng(_sample_seed(kind, seed, int(index), "camera"))
        if kind == "heads":
            yaws.append(min(max(0.3 * r.n(), -0.8), 0.8))
            pitches.append(min(max(0.15 * r.n(), -0.4), 0.4))
        else:
            yaws.append(r.u(-math.pi, math.pi))
            pitches.append(r.u(-1.0, 0.15))
    yaw, pitch = torch.tensor(yaws), torch.tensor(pitches)
    # One pose at a time so a label never depends on its batch neighbours.
    cam2world = torch.cat([orbit_pose(y, p, spec.radius, spec.pivot) for y, p in zip(yaw, pitch)])
    return pack_label(cam2world, intrinsics_from_focal(spec.focal)), yaw, pitch


def _spec(kind: str) -> KindSpec:
    if kind not in SPECS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return SPECS[kind]


# --- signed distances ---------------------------------------------------------------------------


def _smin(a: torch.Tensor, b: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Polynomial smooth minimum (exact min where |a - b| >= k)."""
    h = torch.clamp(k - (a - b).abs(), min=0.0) / k
    return torch.minimum(a, b) - h * h * k * 0.25


def primitive_distances(scene: Scene, points: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Signed distance of each point to each primitive of its own scene.

    Args:
        points: [K, 3] world points.
        image: [K] long, which scene of the batch each point belongs to.

    Returns:
        [K, P] with P = E + C + B, in slot order (ellipsoids, capsules, boxes).
    """
    parts = []
    p = points[:, None, :]
    if scene.ellipsoids.shape[1]:
        e = scene.ellipsoids[image]
        radii = e[..., 3:6]
        q = (p - e[..., 0:3]) / radii
        k0 = q.norm(dim=-1)
        k1 = (q / radii).norm(dim=-1).clamp_min(1e-9)
        # Quilez's ellipsoid bound: exact for spheres, close to Euclidean for mild ellipsoids.
        d = k0 * (k0 - 1.0) / k1
        plane = (p * e[..., 6:9]).sum(-1) - e[..., 9]
        parts.append(torch.maximum(d, plane))
    if scene.capsules.shape[1]:
        c = scene.capsules[image]
        pa, ba = p - c[..., 0:3], c[..., 3:6] - c[..., 0:3]
        h = ((pa * ba).sum(-1) / (ba * ba).sum(-1).clamp_min(1e-12)).clamp(0.0, 1.0)
        parts.append((pa - ba * h[..., None]).norm(dim=-1) - c[..., 6])
    if scene.boxes.shape[1]:
        bx = scene.boxes[image]
        rounding = bx[..., 6]
        q = (p - bx[..., 0:3]).abs() - (bx[..., 3:6] - rounding[..., None])
        outside = q.clamp_min(0.0).norm(dim=-1)
        inside = q.max(dim=-1).values.clamp_max(0.0)
        parts.append(outside + inside - rounding)
    return torch.cat(parts, dim=1)


def scene_sdf(scene: Scene, points: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """[K] smooth-union SDF of [K, 3] points, each in scene ``image[k]``."""
    d = primitive_distances(scene, points, image)
    k = scene.blend[image]
    out = d[:, 0]
    for j in range(1, d.shape[1]):
        out = _smin(out, d[:, j], k)
    return out


def _colors(scene: Scene, points: torch.Tensor, image: torch.Tensor, tau: float) -> torch.Tensor:
    """[K, 3] albedo: primitive colours blended by a softmin of their distances."""
    d = primitive_distances(scene, points, image)
    colors = torch.cat([scene.ellipsoids[image][..., 10:13], scene.capsules[image][..., 7:10],
                        scene.boxes[image][..., 7:10]], dim=1)
    w = torch.softmax(-d / tau, dim=1)
    return (w[..., None] * colors).sum(1)


# --- rendering ----------------------------------------------------------------------------------


def trace(scene: Scene, origins: torch.Tensor, dirs: torch.Tensor, cfg: TraceConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Sphere-trace rays against their scenes.

    Args:
        origins, dirs: [N, M, 3] ray origins and unit directions (scene n for rays [n]).

    Returns:
        t [N, M] distance along the ray to the surface (0 where missed), hit [N, M] bool.
    """
    n, m, _ = origins.shape
    o, d = origins.reshape(-1, 3), dirs.reshape(-1, 3)
    image = torch.arange(n).repeat_interleave(m)
    # Start at the bounding sphere; rays that miss it are background without any SDF evaluation.
    b = (o * d).sum(-1)
    disc = b * b - ((o * o).sum(-1) - scene.bound_radius ** 2)
    inside = disc > 0
    root = disc.clamp_min(0.0).sqrt()
    t = (-b - root).clamp_min(0.0)
    t_exit = -b + root
    active = inside.nonzero().squeeze(1)
    for _ in range(cfg.steps):
        if active.numel() == 0:
            break
        ta = t[active]
        dist = scene_sdf(scene, o[active] + ta[:, None] * d[active], image[active])
        ta = ta + dist * cfg.relax
        t[active] = ta
        # Compact: converged and escaped rays leave the working set.
        keep = (dist.abs() >= cfg.converge_eps) & (ta <= t_exit[active])
        active = active[keep]
    hit = inside & (t <= t_exit)
    cand = hit.nonzero().squeeze(1)
    if cand.numel():
        final = scene_sdf(scene, o[cand] + t[cand, None] * d[cand], image[cand])
        hit[cand] = final.abs() < cfg.hit_eps
    t = torch.where(hit, t, torch.zeros_like(t))
    return t.reshape(n, m), hit.reshape(n, m)


def _shade(scene: Scene, points: torch.Tensor, image: torch.Tensor, cfg: TraceConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Lambert + ambient colour and unit normals at surface points ([K, 3] each)."""
    normals = normals_from_field(lambda q: scene_sdf(scene, q, image), points)
    albedo = _colors(scene, points, image, cfg.color_tau)
    amb = scene.ambient[image][:, None]
    lambert = (normals * scene.light[image]).sum(-1, keepdim=True).clamp_min(0.0)
    return albedo * (amb + (1.0 - amb) * lambert), normals


def render(scene: Scene, labels: torch.Tensor, resolution: int, cfg: TraceConfig = TraceConfig()) -> dict[str, torch.Tensor]:
    """Render scenes from EG3D labels.

    Args:
        scene: N scenes.
        labels: [N, 25] EG3D camera labels (cam2world + normalised intrinsics).
        resolution: R.

    Returns:
        dict with ``rgb`` [N, 3, R, R] in [0, 1], ``depth`` [N, 1, R, R] (ray distance, 0 on the
        background), ``mask`` [N, 1, R, R] bool and ``normals`` [N, 3, R, R] (world, 0 on background).
    """
    n = labels.shape[0]
    cam2world, intrinsics = unpack_label(labels.to(torch.float32))

    def rays(res: int) -> tuple[torch.Tensor, torch.Tensor]:
        # Per camera, so a ray never depends on its batch neighbours (bit-exact determinism).
        pairs = [generate_rays(cam2world[i:i + 1], intrinsics[i:i + 1], res) for i in range(n)]
        return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])

    def shade_all(o: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, ...]:
        t, hit = trace(scene, o, d, cfg)
        m = o.shape[1]
        rgb = scene.background[:, None, :].expand(n, m, 3).clone()
        normals = torch.zeros(n, m, 3)
        idx = hit.reshape(-1).nonzero().squeeze(1)
        if idx.numel():
            pts = o.reshape(-1, 3)[idx] + t.reshape(-1)[idx, None] * d.reshape(-1, 3)[idx]
            col, nrm = _shade(scene, pts, idx // m, cfg)
            rgb.view(-1, 3)[idx] = col
            normals.view(-1, 3)[idx] = nrm
        return rgb, t, hit, normals

    r = resolution
    o, d = rays(r)
    rgb, t, hit, normals = shade_all(o, d)
    rgb = rgb.reshape(n, r, r, 3).permute(0, 3, 1, 2)
    ss = cfg.supersample
    if ss > 1:
        # Sub-pixel centres of the ss*R grid average back exactly onto the R grid's pixels.
        so, sd = rays(r * ss)
        srgb = shade_all(so, sd)[0].reshape(n, r * ss, r * ss, 3).permute(0, 3, 1, 2)
        rgb = F.avg_pool2d(srgb, ss)
    return {
        "rgb": rgb.clamp(0.0, 1.0),
        "depth": t.reshape(n, 1, r, r),
        "mask": hit.reshape(n, 1, r, r),
        "normals": normals.reshape(n, r, r, 3).permute(0, 3, 1, 2),
    }


def generate(kind: str, seed: int, indices: Sequence[int], resolution: int,
             cfg: TraceConfig = TraceConfig()) -> dict[str, torch.Tensor]:
    """Scenes, cameras and renders for sample ``indices``: ``render``'s dict plus labels/yaw/pitch."""
    scene = sample_scenes(kind, seed, indices)
    labels, yaw, pitch = sample_cameras(kind, seed, indices)
    out = render(scene, labels, resolution, cfg)
    out.update(labels=labels, yaw=yaw, pitch=pitch)
    return out


# --- ground-truth encodings ---------------------------------------------------------------------

DEPTH_ENCODING = "uint16 linear, 0 = background, 1..65535 = near..far"
NORMAL_ENCODING = "uint8 (n+1)/2*255, alpha = foreground"


def encode_depth(depth: np.ndarray, mask: np.ndarray, near: float, far: float) -> np.ndarray:
    """[H, W] float depth -> [H, W] uint16: 0 background, else 1 + round((d - near) / step).

    The step is (far - near) / 65534, so decoding errs by at most step / 2 inside [near, far].
    """
    q = np.rint((np.clip(depth, near, far) - near) / (far - near) * 65534.0) + 1.0
    return np.where(mask, q, 0.0).astype(np.uint16)


def decode_depth(code: np.ndarray, near: float, far: float) -> np.ndarray:
    """Inverse of :func:`encode_depth`: [H, W] float32 depth, 0 on the background."""
    code = code.astype(np.float64)
    depth = near + (code - 1.0) * ((far - near) / 65534.0)
    return np.where(code > 0, depth, 0.0).astype(np.float32)


def encode_normals(normals: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[H, W, 3] unit normals -> [H, W, 4] uint8 RGBA, alpha 255 on the foreground."""
    rgb = np.rint((np.clip(normals, -1.0, 1.0) + 1.0) * 0.5 * 255.0)
    rgb = np.where(mask[..., None], rgb, 0.0)
    alpha = np.where(mask, 255.0, 0.0)[..., None]
    return np.concatenate([rgb, alpha], axis=-1).astype(np.uint8)


def decode_normals(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_normals`: ([H, W, 3] float32 unit normals, [H, W] bool mask)."""
    mask = rgba[..., 3] >= 128
    n = rgba[..., :3].astype(np.float32) / 255.0 * 2.0 - 1.0
    n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-8)
    return np.where(mask[..., None], n, 0.0).astype(np.float32), mask


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def geometry_member(image_name: str) -> str:
    """Zip member holding the ground truth of a training image (``img00000000.png`` -> ``geometry/img00000000.npz``)."""
    return f"geometry/{os.path.splitext(image_name)[0]}.npz"


# --- dataset writer / reader --------------------------------------------------------------------


def write_synthetic_dataset(out_zip: str | os.PathLike, kind: str, count: int, resolution: int, seed: int = 0,
                            batch: int = 16, cfg: TraceConfig = TraceConfig(), geometry: bool = True) -> None:
    """Write an EG3D-format uncompressed zip of ``count`` samples (indices 0..count-1).

    Contents: ``img%08d.png`` (RGB8), ``dataset.json`` with ``labels`` (EG3D) and ``geometry``
    (encoding metadata), and, when ``geometry``, ``geometry/img%08d.npz`` with ``depth`` (uint16)
    and ``normals`` (uint8 RGBA). Official EG3D code trains on the zip as it is: its loader sees
    only the PNGs. Written atomically (`training.dataset.write_dataset_zip`).
    """
    spec = _spec(kind)
    with write_dataset_zip(out_zip, png_compress_level=1) as writer:
        for start in range(0, count, batch):
            indices = list(range(start, min(start + batch, count)))
            out = generate(kind, seed, indices, resolution, cfg)
            rgb = (out["rgb"].permute(0, 2, 3, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
            depth = out["depth"][:, 0].numpy()
            mask = out["mask"][:, 0].numpy()
            normals = out["normals"].permute(0, 2, 3, 1).numpy()
            for j, index in enumerate(indices):
                name = f"img{index:08d}.png"
                writer.add_image(name, rgb[j], out["labels"][j])
                if geometry:
                    writer.add_file(geometry_member(name), _npz(
                        depth=encode_depth(depth[j], mask[j], spec.depth_near, spec.depth_far),
                        normals=encode_normals(normals[j], mask[j])))
        writer.metadata["geometry"] = {
            "kind": kind,
            "seed": seed,
            "depth": {"near": spec.depth_near, "far": spec.depth_far, "encoding": DEPTH_ENCODING,
                      "convention": "distance along the unit ray"},
            "normals": {"space": "world", "encoding": NORMAL_ENCODING},
        }


def read_geometry(zip_path: str | os.PathLike | zipfile.ZipFile, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode ground truth for image ``name`` (e.g. ``img00000000.png``) of a synthetic zip.

    Returns:
        depth float32 [H, W] (0 on the background), normals float32 [H, W, 3] (world, unit on the
        foreground, 0 elsewhere), mask bool [H, W].
    """
    zf = zip_path if isinstance(zip_path, zipfile.ZipFile) else zipfile.ZipFile(zip_path)
    try:
        meta = json.loads(zf.read("dataset.json"))["geometry"]
        data = zf.read(geometry_member(name))
    finally:
        if zf is not zip_path:
            zf.close()
    return decode_geometry(data, meta)


def decode_geometry(npz: bytes, meta: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode one ``geometry/*.npz`` member given the ``geometry`` entry of its ``dataset.json``.

    Returns what :func:`read_geometry` returns. Callers reading many images (e.g. through a
    ``training.dataset.DatasetSource``, which also reads extracted folders) parse the metadata once.
    """
    with np.load(io.BytesIO(npz), allow_pickle=False) as arrays:
        code = arrays["depth"].astype(np.uint16)
        rgba = arrays["normals"]
    depth = decode_depth(code, meta["depth"]["near"], meta["depth"]["far"])
    normals, mask = decode_normals(rgba)
    return depth, normals, mask & (code > 0)
