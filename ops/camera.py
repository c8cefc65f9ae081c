"""Cameras in EG3D conventions.

Conventions (see ``shared/docs/eg3d_compat.md``):

* World frame is y-up. Camera frame is OpenCV: x right, y down, z forward.
* A camera is a 25-float *label*: ``cam2world`` 4x4 row-major (16) followed by the intrinsics 3x3
  row-major (9), normalised by image size so that ``cx = cy = 0.5``.
* Orbit angles follow EG3D's ``LookAtPoseSampler``: horizontal angle ``h`` and vertical angle
  ``v``; the frontal view is ``h = v = pi/2``. User-facing yaw and pitch are offsets from it.

Float32 arithmetic is written in the same order as the official code so that labels we make agree
with EG3D's to the last bits (the reference fixtures depend on it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

LABEL_DIM = 25
"""Length of an EG3D camera label: 16 (cam2world) + 9 (normalised intrinsics)."""

FFHQ_FOCAL = 4.2647
"""Normalised focal length of the FFHQ and AFHQ camera labels (2985.29 / 700)."""

SHAPENET_FOCAL = 1.7074
"""Normalised focal length of EG3D's ShapeNet camera labels."""

Z_UP_AXES = (2, 0, 1)
"""Our y-up world's axes in the order of the z-up worlds of GRAF and StyleNeRF (frontal camera on +x):
``p_z_up = p_ours[..., Z_UP_AXES]``, exact (a permutation)."""
Y_UP_AXES = (1, 2, 0)
"""The inverse: ``p_ours = p_z_up[..., Y_UP_AXES]``."""

FRONTAL = math.pi / 2
"""The EG3D orbit angle (both h and v) of the frontal view."""


def pack_label(cam2world: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Pack poses into EG3D labels.

    Args:
        cam2world: [N, 4, 4] camera-to-world matrices (OpenCV camera axes).
        intrinsics: [N, 3, 3] or [3, 3] intrinsics normalised by image size.

    Returns:
        [N, 25] labels.
    """
    n = cam2world.shape[0]
    intrinsics = intrinsics.expand(n, 3, 3) if intrinsics.ndim == 2 else intrinsics
    return torch.cat([cam2world.reshape(n, 16), intrinsics.reshape(n, 9).to(cam2world)], dim=1)


def unpack_label(label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split [N, 25] labels into ([N, 4, 4] cam2world, [N, 3, 3] intrinsics)."""
    if label.ndim != 2 or label.shape[1] != LABEL_DIM:
        raise ValueError(f"camera label must have shape [N, {LABEL_DIM}], got {list(label.shape)}")
    return label[:, :16].view(-1, 4, 4), label[:, 16:25].view(-1, 3, 3)


def intrinsics_from_focal(focal: float, cx: float = 0.5, cy: float = 0.5) -> torch.Tensor:
    """[3, 3] normalised pinhole intrinsics with square pixels and no skew."""
    return torch.tensor([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]], dtype=torch.float32)


def fov_to_focal(fov_degrees: float) -> float:
    """True pinhole relation: normalised focal length of a camera with this full field of view."""
    return 1.0 / (2.0 * math.tan(math.radians(fov_degrees) / 2.0))


def focal_to_fov(focal: float) -> float:
    """Inverse of :func:`fov_to_focal`: full field of view in degrees."""
    return math.degrees(2.0 * math.atan(1.0 / (2.0 * focal)))


def corner_aligned_focal(fov_degrees: float, resolution: int) -> float:
    """Normalised focal of an R x R camera whose field of view spans the centres of the outer pixels
    (``linspace(-1, 1, R)`` pixel grids: pi-GAN, GRAM, EpiGRAF, GIRAFFE, StyleNeRF), in our
    pixel-centre intrinsics: (R - 1) / (2 R tan(fov / 2)). It depends on R."""
    return (resolution - 1) / (2.0 * resolution * math.tan(math.radians(fov_degrees) / 2.0))


def polar_orbit_label(theta: float, phi: float, radius: float, focal: float) -> torch.Tensor:
    """[1, 25] label of pi-GAN's camera: at radius x (sin phi cos theta, cos phi, sin phi sin theta)
    (phi the polar angle from +y; theta = phi = pi/2 is frontal on +z, a larger theta moves it
    towards -x), looking at the origin with world up +y."""
    origin = torch.tensor([[math.sin(phi) * math.cos(theta), math.cos(phi), math.sin(phi) * math.sin(theta)]],
                          dtype=torch.float32) * radius
    return pack_label(look_at(origin, torch.zeros(3)), intrinsics_from_focal(focal))


def polar_to_orbit_angles(theta: float, phi: float) -> tuple[float, float]:
    """Our orbit (yaw, pitch) (:func:`orbit_pose`, EG3D's v-space pitch) of pi-GAN's camera angles
    (azimuth ``theta``, polar angle ``phi``; frontal pi/2, pi/2): the same camera centre and view,
    so an official model faces the viewer at yaw 0, pitch 0. pi-GAN's azimuth runs the other way
    (a larger theta moves the camera towards -x, our positive yaw towards +x)."""
    return -(theta - FRONTAL), FRONTAL * math.sin(phi - FRONTAL)


def eg3d_fov_to_focal(fov_degrees: float) -> float:
    """EG3D's ``FOV_to_intrinsics`` focal, with its approximate pi and extra 1/1.414 factor.

    It is *not* the pinhole relation (18.837 deg gives 4.2634, not 3.01); the official visualizer
    and scripts use it, so presets that quote an EG3D "fov" go through here.
    """
    return float(1 / (math.tan(fov_degrees * 3.14159 / 360) * 1.414))


def eg3d_focal_to_fov(focal: float) -> float:
    """Inverse of :func:`eg3d_fov_to_focal`."""
    return math.atan(1 / (focal * 1.414)) * 360 / 3.14159


def _normalize(vectors: torch.Tensor) -> torch.Tensor:
    # Plain division by the norm (no epsilon), as EG3D's math_utils does.
    return vectors / torch.norm(vectors, dim=-1, keepdim=True)


def look_at(origin: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Camera-to-world matrices for cameras at ``origin`` looking at ``target`` (world y-up).

    Args:
        origin: [N, 3] camera centres.
        target: [N, 3] or [3] look-at points.

    Returns:
        [N, 4, 4] cam2world with rotation columns (right, down, forward): OpenCV axes.
    """
    forward = _normalize(_normalize(target - origin))
    world_up = torch.tensor([0.0, 1.0, 0.0], dtype=origin.dtype, device=origin.device).expand_as(forward)
    right = -_normalize(torch.cross(world_up, forward, dim=-1))
    up = _normalize(torch.cross(forward, right, dim=-1))
    n = forward.shape[0]
    rotation = torch.eye(4, dtype=origin.dtype, device=origin.device).unsqueeze(0).repeat(n, 1, 1)
    rotation[:, :3, :3] = torch.stack((right, up, forward), dim=-1)
    translation = torch.eye(4, dtype=origin.dtype, device=origin.device).unsqueeze(0).repeat(n, 1, 1)
    translation[:, :3, 3] = origin
    return translation @ rotation


def orbit_origin(h: torch.Tensor, v: torch.Tensor, radius: float | torch.Tensor) -> torch.Tensor:
    """Camera centres on EG3D's orbit sphere around the world origin.

    ``v`` is clamped to (0, pi) and mapped through ``phi = arccos(1 - 2 v / pi)`` exactly as
    ``LookAtPoseSampler`` does, so equal steps in ``v`` are equal steps in cos(phi).

    Args:
        h: [N] horizontal angles (radians).
        v: [N] vertical angles (radians).
        radius: scalar or [N].

    Returns:
        [N, 3] camera centres.
    """
    h = h.reshape(-1, 1).to(torch.float32)
    v = torch.clamp(v.reshape(-1, 1).to(torch.float32), 1e-5, math.pi - 1e-5)
    theta = h
    phi = torch.arccos(1 - 2 * (v / math.pi))
    if isinstance(radius, torch.Tensor):
        radius = radius.reshape(-1, 1).to(h)
    origin = torch.zeros((h.shape[0], 3), dtype=torch.float32, device=h.device)
    origin[:, 0:1] = radius * torch.sin(phi) * torch.cos(math.pi - theta)
    origin[:, 2:3] = radius * torch.sin(phi) * torch.sin(math.pi - theta)
    origin[:, 1:2] = radius * torch.cos(phi)
    return origin


def lookat_pose(
    h: torch.Tensor | float,
    v: torch.Tensor | float,
    radius: float | torch.Tensor,
    lookat: Sequence[float] | torch.Tensor = (0.0, 0.0, 0.0),
) -> torch.Tensor:
    """EG3D ``LookAtPoseSampler.sample`` without noise: [N, 4, 4] cam2world.

    The camera orbits the world origin (not the look-at point) and looks at ``lookat``.
    """
    h = torch.as_tensor(h, dtype=torch.float32).reshape(-1)
    v = torch.as_tensor(v, dtype=torch.float32, device=h.device).reshape(-1)
    lookat = torch.as_tensor(lookat, dtype=torch.float32, device=h.device)
    origin = orbit_origin(h, v, radius)
    return look_at(origin, lookat)


def orbit_pose(
    yaw: torch.Tensor | float,
    pitch: torch.Tensor | float,
    radius: float | torch.Tensor = 2.7,
    pivot: Sequence[float] | torch.Tensor = (0.0, 0.0, 0.2),
) -> torch.Tensor:
    """[N, 4, 4] cam2world from user yaw/pitch (radians, 0 = frontal), as EG3D's tools map them."""
    yaw = torch.as_tensor(yaw, dtype=torch.float32).reshape(-1)
    pitch = torch.as_tensor(pitch, dtype=torch.float32).reshape(-1)
    return lookat_pose(FRONTAL + yaw, FRONTAL + pitch, radius, pivot)


def orbit_label(
    yaw: torch.Tensor | float,
    pitch: torch.Tensor | float,
    radius: float = 2.7,
    pivot: Sequence[float] = (0.0, 0.0, 0.2),
    focal: float = FFHQ_FOCAL,
) -> torch.Tensor:
    """[N, 25] EG3D labels for orbit cameras with the given normalised focal length."""
    cam2world = orbit_pose(yaw, pitch, radius, pivot)
    return pack_label(cam2world, intrinsics_from_focal(focal))


EPIGRAF_WORLD = ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (-1.0, 0.0, 0.0))
"""EpiGRAF's world coordinates of a point of ours, ``p_epigraf = EPIGRAF_WORLD @ p``: both are y up, its
front view is on +x and ours on +z (a signed permutation, so exact in float)."""


def epigraf_focal(fov_degrees: float | torch.Tensor) -> float:
    """The normalised focal of EpiGRAF's rays, in its float32 order: its camera vector is
    ``(x, y, -1 / tan(fov_rad / 2))`` with ``fov_rad = fov / 360 * 2 pi`` a float32 tensor, i.e. 2 f."""
    fov_rad = torch.as_tensor(fov_degrees, dtype=torch.float32) / 360 * 2 * math.pi
    return float((1 / torch.tan(fov_rad * 0.5)) / 2)


def epigraf_pose(angles: torch.Tensor, radius: float | torch.Tensor = 1.0) -> torch.Tensor:
    """[N, 4, 4] OpenCV cam2world, in our world, of EpiGRAF cameras at (yaw, pitch[, roll]) [N, 2 or 3]
    (``compute_cam2world_matrix`` in its float32 order): in its world (y up) the camera sits at
    ``r (sin p cos y, cos p, sin p sin y)`` (yaw 0, pitch pi/2: on +x, our +z) looking at the origin;
    roll is ignored and pitch clamped to [1e-5, pi - 1e-5]. The official matrix, with OpenGL columns
    (-left, up, -forward), is ``E @ pose @ diag(1, -1, -1, 1)`` with E = :data:`EPIGRAF_WORLD` (exact)."""
    angles = angles.to(torch.float32)
    yaw, pitch = angles[:, 0], angles[:, 1].clamp(1e-5, math.pi - 1e-5)
    origin = torch.stack([pitch.sin() * yaw.cos(), pitch.cos(), pitch.sin() * yaw.sin()], dim=-1) * radius
    forward = _normalize(_normalize(-origin))
    world_up = torch.tensor([0.0, 1.0, 0.0], device=origin.device).expand_as(forward)
    left = _normalize(torch.cross(world_up, forward, dim=-1))
    up = _normalize(torch.cross(forward, left, dim=-1))
    n = origin.shape[0]
    rotation = torch.eye(4, device=origin.device).repeat(n, 1, 1)
    rotation[:, :3, :3] = torch.stack((-left, up, -forward), dim=-1)
    translation = torch.eye(4, device=origin.device).repeat(n, 1, 1)
    translation[:, :3, 3] = origin
    to_ours = torch.eye(4, device=origin.device)
    to_ours[:3, :3] = torch.tensor(EPIGRAF_WORLD, device=origin.device).T
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], device=origin.device))
    return to_ours @ (translation @ rotation) @ flip


def pixel_centers(height: int, width: int | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """[H * W, 2] normalised (u, v) pixel centres ``(i + 0.5) / size`` in raster order (row-major)."""
    width = height if width is None else width
    rows = torch.arange(height, dtype=torch.float32, device=device) * (1.0 / height) + (0.5 / height)
    cols = torch.arange(width, dtype=torch.float32, device=device) * (1.0 / width) + (0.5 / width)
    v, u = torch.meshgrid(rows, cols, indexing="ij")
    return torch.stack((u, v), dim=-1).reshape(-1, 2)


def pixel_corners(height: int, width: int | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """[H * W, 2] normalised (u, v) of a corner-aligned pixel grid, ``i / (size - 1)``: the outer pixel
    centres lie on the field-of-view edge (pi-GAN's ``linspace(-1, 1, R)``), so a label's focal means
    the field of view across the outer pixel centres at every resolution."""
    width = height if width is None else width
    rows = torch.linspace(0, 1, height, device=device) if height > 1 else torch.full((1,), 0.5, device=device)
    cols = torch.linspace(0, 1, width, device=device) if width > 1 else torch.full((1,), 0.5, device=device)
    v, u = torch.meshgrid(rows, cols, indexing="ij")
    return torch.stack((u, v), dim=-1).reshape(-1, 2)


def pixel_integers(height: int, width: int | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """[H * W, 2] normalised (u, v) = ``i / size`` in raster order: rays through integer pixel
    coordinates, half a pixel off the centres (GRAF's ``(i - W/2) / f``, no +0.5)."""
    width = height if width is None else width
    rows = torch.arange(height, dtype=torch.float32, device=device) / height
    cols = torch.arange(width, dtype=torch.float32, device=device) / width
    v, u = torch.meshgrid(rows, cols, indexing="ij")
    return torch.stack((u, v), dim=-1).reshape(-1, 2)


PIXEL_GRIDS = {"centers": pixel_centers, "corners": pixel_corners, "integers": pixel_integers}
"""Where an image's pixels sample the camera's normalised image plane, by name."""


def camera_directions(intrinsics: torch.Tensor, height: int, width: int | None = None,
                      grid: str = "centers") -> torch.Tensor:
    """Camera-space directions (x, y, 1) through every pixel centre, skew honoured (not normalised).

    Args:
        intrinsics: [N, 3, 3] normalised by image size.
        grid: the pixel grid (``PIXEL_GRIDS``): 'centers' (EG3D) or 'corners' (pi-GAN).

    Returns:
        [N, H * W, 3] in raster order.
    """
    n = intrinsics.shape[0]
    uv = PIXEL_GRIDS[grid](height, width, intrinsics.device)
    return lift_uv(intrinsics, uv.unsqueeze(0).expand(n, -1, -1))


def lift_uv(intrinsics: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Camera-space directions (x, y, 1) through normalised image points uv [N, M, 2] (skew
    honoured, not normalised): [N, M, 3]."""
    fx, fy = intrinsics[:, 0, 0, None], intrinsics[:, 1, 1, None]
    cx, cy = intrinsics[:, 0, 2, None], intrinsics[:, 1, 2, None]
    skew = intrinsics[:, 0, 1, None]
    x_cam, y_cam = uv[:, :, 0], uv[:, :, 1]
    z_cam = torch.ones_like(x_cam)
    # EG3D's arithmetic order, so rays agree with the official ones to the last bit.
    x_lift = (x_cam - cx + cy * skew / fy - skew * y_cam / fy) / fx * z_cam
    y_lift = (y_cam - cy) / fy * z_cam
    return torch.stack((x_lift, y_lift, z_cam), dim=-1)


def generate_rays(
    cam2world: torch.Tensor, intrinsics: torch.Tensor, resolution: int, grid: str = "centers"
) -> tuple[torch.Tensor, torch.Tensor]:
    """One ray per pixel centre, as EG3D's ``RaySampler``.

    Args:
        cam2world: [N, 4, 4].
        intrinsics: [N, 3, 3] normalised by image size (skew honoured).
        resolution: R; rays come in raster order, M = R * R.
        grid: the pixel grid (``PIXEL_GRIDS``).

    Returns:
        origins [N, M, 3] and unit directions [N, M, 3] in world space.
    """
    return _world_rays(cam2world, camera_directions(intrinsics, resolution, grid=grid))


def image_plane_points(cam2world: torch.Tensor, intrinsics: torch.Tensor, resolution: int,
                       grid: str = "centers") -> torch.Tensor:
    """World points of every pixel on the image plane at unit depth along the optical axis, in raster
    order: [N, R * R, 3] (GRAF's and GIRAFFE's rays are these points minus the camera centre, with
    depths along the axis in their units). Skew is ignored.

    Computed in GIRAFFE's order so that its box masks see the same points: image coordinates
    ``2 a / (R - 1) - 1`` ('corners', or ``(2 a + 1) / R - 1`` for 'centers') from the pixel index a,
    lifted by ``(cam2world @ diag(1 / 2fx, 1 / 2fy, 1, 1)) @ (x - (2 cx - 1), y - (2 cy - 1), 1, 1)``."""
    r = resolution
    index = torch.arange(r, dtype=torch.float32, device=cam2world.device)
    signed = 2 * index / (r - 1) - 1 if grid == "corners" and r > 1 else (2 * index + 1) / r - 1
    y, x = torch.meshgrid(signed, signed, indexing="ij")
    x = x.reshape(1, -1) - (2 * intrinsics[:, 0, 2:3] - 1)
    y = y.reshape(1, -1) - (2 * intrinsics[:, 1, 2:3] - 1)
    one = torch.ones_like(x)
    lift = torch.diag_embed(torch.stack([1 / (2 * intrinsics[:, 0, 0]), 1 / (2 * intrinsics[:, 1, 1]),
                                         one[:, 0], one[:, 0]], -1))
    points = (cam2world @ lift) @ torch.stack([x, y, one, one], 1)  # [N, 4, M]
    return points[:, :3].transpose(1, 2)


def camera_frame_rays(cam2world: torch.Tensor, intrinsics: torch.Tensor,
                      resolution: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """VolumeGAN's rays on the corner-aligned grid, in its float32 order: the camera vector
    ``(x, y, 2 f)`` with x, y = ``linspace(-1, 1, R)`` (shifted by the principal point, y scaled by
    fx / fy, skew honoured; exactly the official ``(x, y, -1 / tan(fov / 2))`` for a centred label, up
    to the OpenGL/OpenCV sign flips, which are exact) is normalised in the camera frame and rotated.

    Returns:
        origins, unit world directions and unit camera-frame directions, each [N, R * R, 3]; the
        coarse points of :func:`camera_frame_points` are formed from the last.
    """
    n = intrinsics.shape[0]
    fx, fy = intrinsics[:, 0, 0, None], intrinsics[:, 1, 1, None]
    cx, cy, skew = intrinsics[:, 0, 2, None], intrinsics[:, 1, 2, None], intrinsics[:, 0, 1, None]
    grid = torch.linspace(-1, 1, resolution, device=intrinsics.device) if resolution > 1 \
        else torch.zeros(1, device=intrinsics.device)
    rows, cols = torch.meshgrid(grid, grid, indexing="ij")
    xs, ys = cols.reshape(1, -1), rows.reshape(1, -1)
    y = (ys - (2 * cy - 1)) * (fx / fy)
    x = xs - (2 * cx - 1) - skew * y / fy
    z = (2 * fx).expand_as(x)
    unit = torch.nn.functional.normalize(torch.stack((x, y, z), dim=-1), dim=2)
    directions = torch.bmm(cam2world[:, :3, :3], unit.permute(0, 2, 1)).permute(0, 2, 1)
    origins = cam2world[:, :3, 3].unsqueeze(1).repeat(1, unit.shape[1], 1)
    return origins, directions, unit.expand(n, -1, -1)


def camera_frame_points(cam2world: torch.Tensor, unit_cam: torch.Tensor, depths: torch.Tensor) -> torch.Tensor:
    """VolumeGAN's coarse points: ``cam2world @ [d_cam z, 1]`` in one homogeneous product.
    unit_cam [N, M, 3], depths [N, M, K, 1] -> [N, M * K, 3]."""
    n = depths.shape[0]
    points = (unit_cam.unsqueeze(-2) * depths).reshape(n, -1, 3)
    homogeneous = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)
    return torch.bmm(cam2world, homogeneous.permute(0, 2, 1)).permute(0, 2, 1)[..., :3]


def axis_rays(cam2world: torch.Tensor, intrinsics: torch.Tensor, resolution: int,
              grid: str = "integers") -> tuple[torch.Tensor, torch.Tensor]:
    """nerf-pytorch's ``get_rays`` (GRAF) in its float32 order: the camera vector ``((i - R cx) / (R fx),
    (j - R cy) / (R fy), 1)`` of pixel coordinates (i, j) on ``grid`` (OpenCV axes: exactly the official
    OpenGL ``(x, -y, -1)`` with the sign flips folded into the cam2world), rotated as a sum of products
    and not normalised: its component along the optical axis is 1, so ``o + rays t`` is at depth t.

    Returns:
        origins and rays, each [N, R * R, 3].
    """
    size = float(resolution)
    pixels = PIXEL_GRIDS[grid](resolution, resolution, intrinsics.device) * size  # exact for powers of two
    fx, fy = intrinsics[:, 0, 0, None] * size, intrinsics[:, 1, 1, None] * size
    cx, cy = intrinsics[:, 0, 2, None] * size, intrinsics[:, 1, 2, None] * size
    x = (pixels[None, :, 0] - cx) / fx
    y = (pixels[None, :, 1] - cy) / fy
    camera = torch.stack((x, y, torch.ones_like(x)), dim=-1)  # [N, M, 3]
    rays = torch.sum(camera[..., None, :] * cam2world[:, None, :3, :3], -1)
    return cam2world[:, None, :3, 3].expand_as(rays), rays


RAY_MODES: tuple[str, ...] = ("world", "camera_frame", "axis")
"""How rays and their coarse points are formed: 'world' (``generate_rays``, points ``o + d z``),
'camera_frame' (VolumeGAN: :func:`camera_frame_rays`, coarse points :func:`camera_frame_points`) or
'axis' (GRAF: :func:`axis_rays`, coarse points ``o + rays t`` with t the depth along the optical axis)."""


def rays_through(cam2world: torch.Tensor, intrinsics: torch.Tensor, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """World rays through arbitrary normalised image points uv [N, M, 2] (e.g. random sub-pixel
    locations): origins and unit directions [N, M, 3]; at pixel centres equal to ``generate_rays``."""
    return _world_rays(cam2world, lift_uv(intrinsics, uv))


def _world_rays(cam2world: torch.Tensor, directions_cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    cam_centres = cam2world[:, :3, 3]
    cam_points = torch.cat([directions_cam, torch.ones_like(directions_cam[..., :1])], dim=-1)
    world_points = torch.bmm(cam2world, cam_points.permute(0, 2, 1)).permute(0, 2, 1)[:, :, :3]
    directions = torch.nn.functional.normalize(world_points - cam_centres[:, None, :], dim=2)
    origins = cam_centres.unsqueeze(1).repeat(1, directions.shape[1], 1)
    return origins, directions


def project_points(
    points: torch.Tensor, cam2world: torch.Tensor, intrinsics: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """World points -> normalised image coordinates: the inverse of ``generate_rays``.

    A point on the ray through pixel centre ``(i + 0.5) / R`` projects back to exactly that
    ``(u, v)``, for any R (skew honoured), so ``2 * uv - 1`` is the point's ``grid_sample``
    coordinate with ``align_corners=False``.

    Args:
        points: [N, M, 3] world points.
        cam2world: [N, 4, 4].
        intrinsics: [N, 3, 3] normalised by image size.

    Returns:
        uv [N, M, 2] (u right, v down, the image spans [0, 1]) and the camera-space depth z
        [N, M] (positive in front of the camera; uv is meaningless where z <= 0).
    """
    rotation = cam2world[:, :3, :3].to(points.dtype)
    centre = cam2world[:, :3, 3].to(points.dtype)
    cam = torch.einsum("nji,nmj->nmi", rotation, points - centre[:, None, :])  # R^T (p - o)
    x, y, z = cam.unbind(dim=-1)
    xn, yn = x / z, y / z
    k = intrinsics.to(points.dtype)
    fx, fy = k[:, 0, 0, None], k[:, 1, 1, None]
    cx, cy, skew = k[:, 0, 2, None], k[:, 1, 2, None], k[:, 0, 1, None]
    return torch.stack((fx * xn + skew * yn + cx, fy * yn + cy), dim=-1), z


def mirror_label(label: torch.Tensor) -> torch.Tensor:
    """Label of the horizontally flipped image: the camera mirrored through the world plane x = 0.

    cam2world becomes ``diag(-1, 1, 1, 1) @ cam2world @ diag(-1, 1, 1, 1)``: entries (0, 1), (0, 2),
    (1, 0), (2, 0) and the x-translation (0, 3) change sign, exactly as EG3D's mirrored datasets.
    Flipping pixels maps u to 1 - u, so the intrinsics' cx becomes 1 - cx and the skew changes
    sign; for the centred, skew-free intrinsics of EG3D data these are unchanged. An involution.

    Args:
        label: [..., 25] labels.

    Returns:
        [..., 25] mirrored labels (a new tensor).
    """
    if label.shape[-1] != LABEL_DIM:
        raise ValueError(f"camera label must have {LABEL_DIM} values in its last dimension, got {list(label.shape)}")
    mirrored = label.clone()
    negated = [1, 2, 3, 4, 8, 16 + 1]  # cam2world (0,1) (0,2) (0,3) (1,0) (2,0); intrinsics skew (0,1)
    mirrored[..., negated] = -label[..., negated]
    mirrored[..., 16 + 2] = 1 - label[..., 16 + 2]  # cx
    return mirrored


def opengl_matrices(label: torch.Tensor, near: float, far: float) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenGL view and projection matrices that draw geometry exactly where this camera sees it.

    The view matrix is world -> OpenGL eye space (x right, y up, looking down -z): the inverse
    cam2world with the y and z axes flipped from OpenCV's. The projection maps the normalised
    pinhole (fx, fy, cx, cy; no skew) to clip space, so a world point lands on the same pixel as
    the ray through it in ``generate_rays`` (pixel centres at (i + 0.5) / R, row 0 at the top).

    Args:
        label: [25] one camera label.
        near, far: clip distances along the viewing axis.

    Returns:
        view [4, 4] and projection [4, 4], float32, row-major (transpose for GL's column-major).
    """
    cam2world, intrinsics = unpack_label(label.reshape(1, LABEL_DIM).float())
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))
    view = flip @ torch.linalg.inv(cam2world[0])
    fx, fy = float(intrinsics[0, 0, 0]), float(intrinsics[0, 1, 1])
    cx, cy = float(intrinsics[0, 0, 2]), float(intrinsics[0, 1, 2])
    projection = torch.tensor([
        [2 * fx, 0.0, 2 * cx - 1, 0.0],
        [0.0, 2 * fy, 1 - 2 * cy, 0.0],
        [0.0, 0.0, -(far + near) / (far - near), -2 * far * near / (far - near)],
        [0.0, 0.0, -1.0, 0.0],
    ])
    return view, projection
