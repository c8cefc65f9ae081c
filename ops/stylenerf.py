"""StyleNeRF's camera, rays, samples and NeRF++ background, in the official float32 order.

StyleNeRF's world is z-up with the frontal camera on +x, its cameras are OpenGL-like (looking along
their -z, y up), and its rays are not normalised: a sample at depth t is ``camera + t * ray`` with
``ray`` reaching the image plane at camera z = -1, so t is a depth along the optical axis. Our
labels are EG3D's (y-up world, frontal camera on +z, OpenCV axes); the two worlds differ by the
cyclic axis permutation ``(x, y, z)_stylenerf = (z, x, y)_ours``, which is exact in floating point.
Facts: ``../shared/fixtures/stylenerf_ref/README.md`` ("Details that matter for exact reproduction").
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ops.camera import Y_UP_AXES, Z_UP_AXES, intrinsics_from_focal, pack_label, unpack_label


def to_stylenerf_world(points: torch.Tensor) -> torch.Tensor:
    """Our world points [..., 3] in StyleNeRF's z-up world."""
    return points[..., list(Z_UP_AXES)]


def from_stylenerf_world(points: torch.Tensor) -> torch.Tensor:
    """StyleNeRF world points [..., 3] in our y-up world."""
    return points[..., list(Y_UP_AXES)]


_FLIP = (1.0, -1.0, -1.0, 1.0)  # OpenCV <-> OpenGL camera axes (y and z negated)


def stylenerf_matrices(label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Official ``(world_mat, camera_mat)`` [N, 4, 4] of our labels [N, 25]: cam2world in the z-up
    world with OpenGL axes, and ``inverse(diag(f, f, 1, 1))`` with ``f = 1 / tan(fov / 2)``, twice
    our normalised focal (both exact: a permutation, sign flips and a power of two)."""
    cam2world, intrinsics = unpack_label(label)
    flip = cam2world.new_tensor(_FLIP)
    world = cam2world[:, [*Z_UP_AXES, 3], :] * flip
    f = 2 * intrinsics[:, 0, 0]
    camera = torch.diag_embed(torch.stack([1 / f, 1 / f, torch.ones_like(f), torch.ones_like(f)], -1))
    return world, camera


def label_from_stylenerf(world_mat: torch.Tensor, focal: float) -> torch.Tensor:
    """Our labels [N, 25] of official cam2world matrices [N, 4, 4] (z-up world, OpenGL axes) and a
    normalised focal (``0.5 / tan(fov / 2)``): the inverse of :func:`stylenerf_matrices`."""
    cam2world = (world_mat.float() * world_mat.new_tensor(_FLIP).float())[:, [*Y_UP_AXES, 3], :]
    return pack_label(cam2world, intrinsics_from_focal(focal))


def ndc_grid(resolution: int, full_resolution: int, align_corners: bool = True,
             device: torch.device | str | None = None) -> torch.Tensor:
    """[R] NDC coordinates of a row of R pixels. Corner-aligned (``ray_align_corner``): the full
    image's ``linspace(-1, 1, F)`` nearest-subsampled at ``i * F / R`` (not centred when F > R);
    else pixel centres ``linspace(-(1 - 1/R), 1 - 1/R, R)``."""
    if not align_corners:
        edge = 1 - 1 / resolution
        return torch.linspace(-edge, edge, resolution, device=device)
    if full_resolution % resolution or full_resolution < resolution:
        full_resolution = resolution
    full = torch.linspace(-1, 1, full_resolution, device=device)
    return full[:: full_resolution // resolution]


def stylenerf_rays(label: torch.Tensor, resolution: int, full_resolution: int,
                   align_corners: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Official rays of labels [N, 25] at R x R (raster order, row 0 at the top): camera centres
    [N, 3] and unnormalised rays [N, R * R, 3] to the image plane at camera z = -1, both in
    StyleNeRF's world. ``M = world_mat @ camera_mat`` is formed before the pixels are transformed."""
    world, camera = stylenerf_matrices(label)
    grid = ndc_grid(resolution, full_resolution, align_corners, device=label.device)
    ys, xs = torch.meshgrid(-grid, grid, indexing="ij")
    pixels = torch.stack([xs.reshape(-1), ys.reshape(-1), -torch.ones(xs.numel(), device=label.device),
                          torch.ones(xs.numel(), device=label.device)], 0)
    pixels = pixels.unsqueeze(0).expand(label.shape[0], -1, -1)
    pixel_world = torch.bmm(torch.bmm(world, camera), pixels)[:, :3].permute(0, 2, 1)
    centre = world[:, :3, 3]
    return centre, pixel_world - centre[:, None]


def axis_depths(s: torch.Tensor, near: float, far: float) -> torch.Tensor:
    """Depths of normalised sample positions s in [0, 1], as ``far * s + near * (1 - s)`` (this exact
    form: ``near + (far - near) s`` rounds differently)."""
    return far * s + near * (1 - s)


def ray_points(centre: torch.Tensor, rays: torch.Tensor, depths: torch.Tensor) -> torch.Tensor:
    """``centre + t * ray``: centre [N, 3], rays [N, M, 3], depths [N, M, K] -> [N, M, K, 3]."""
    return centre[:, None, None] + depths.unsqueeze(-1) * rays.unsqueeze(-2)


def volume_weights(sigma: torch.Tensor, dists: torch.Tensor, opaque_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """StyleNeRF's ``calc_volume_weights``: sigma, dists [N, M, K] -> (weights [N, M, K], the
    transmittance left after the samples before the last [N, M]). ``opaque_last``: the last alpha is
    1 (a background's 1e10 interval)."""
    alpha = 1.0 - torch.exp(-torch.relu(sigma) * dists)
    if opaque_last:
        alpha = torch.cat([alpha[..., :-1], torch.ones_like(alpha[..., -1:])], -1)
    shifted = torch.cat([torch.ones_like(alpha[..., :1]), 1.0 - alpha + 1e-10], -1)
    transmittance = torch.cumprod(shifted, -1)[..., :-1]
    return alpha * transmittance, transmittance[..., -1]


def inverse_sphere_points(centre: torch.Tensor, directions: torch.Tensor, inverse_radii: torch.Tensor) -> torch.Tensor:
    """NeRF++'s background points: for rays from ``centre`` along unit ``directions`` [N, M, 3], the 4-d
    points (unit-sphere point, inverse radius q) [N, M, K, 4] at ``inverse_radii`` [K] (the exit point of
    the unit sphere rotated towards the ray by asin(m) - asin(m q), m the ray's distance to the origin)."""
    n, m, _ = directions.shape
    k = inverse_radii.shape[0]
    o = centre[:, None, None].expand(n, m, k, 3)
    d = directions.unsqueeze(-2).expand(n, m, k, 3)
    q = inverse_radii.expand(n, m, k)
    d1 = -torch.sum(d * o, dim=-1) / torch.sum(d * d, dim=-1)
    p_mid = o + d1.unsqueeze(-1) * d
    p_mid_norm = torch.norm(p_mid, dim=-1)
    d2 = torch.sqrt(1.0 - p_mid_norm * p_mid_norm) * (1.0 / torch.norm(d, dim=-1))
    p_sphere = o + (d1 + d2).unsqueeze(-1) * d
    axis = torch.cross(o, p_sphere, dim=-1)
    axis = axis / torch.norm(axis, dim=-1, keepdim=True)
    angle = (torch.asin(p_mid_norm) - torch.asin(p_mid_norm * q)).unsqueeze(-1)
    rotated = (p_sphere * torch.cos(angle) + torch.cross(axis, p_sphere, dim=-1) * torch.sin(angle)
               + axis * torch.sum(axis * p_sphere, dim=-1, keepdim=True) * (1.0 - torch.cos(angle)))
    rotated = rotated / torch.norm(rotated, dim=-1, keepdim=True)
    return torch.cat([rotated, q.unsqueeze(-1)], -1)


def pi_positional_encoding(x: torch.Tensor, num_frequencies: int) -> torch.Tensor:
    """StyleNeRF's encoding: per frequency i, ``sin(2^i pi x)`` then ``cos(2^i pi x)`` (D values each), no
    raw input: [..., D] -> [..., 2 F D]. The factor ``2^i pi`` is one float32 constant, as officially."""
    parts = []
    for i in range(num_frequencies):
        scaled = x * ((2**i) * math.pi)
        parts += [torch.sin(scaled), torch.cos(scaled)]
    return torch.cat(parts, -1)


def stylenerf_camera(yaw: float, polar: float, radius: float = 1.0) -> torch.Tensor:
    """The official cam2world [1, 4, 4] (z-up world, OpenGL axes) of a camera at azimuth ``yaw`` and polar
    angle ``polar`` (float64 radians; frontal is yaw 0, polar pi/2, on +x) looking at the origin: the
    sphere point in float64, then float32, then the look-at with up +z in float32, as ``get_camera``."""
    eye = torch.from_numpy(np.array([np.sin(polar) * np.cos(yaw), np.sin(polar) * np.sin(yaw), np.cos(polar)],
                                    dtype=np.float64).astype(np.float32))[None] * torch.tensor(radius)

    def normalize(v: torch.Tensor) -> torch.Tensor:
        return v / torch.clamp(torch.norm(v, dim=-1, keepdim=True), min=1e-8)

    z = normalize(eye)
    x = normalize(torch.cross(torch.tensor([[0.0, 0.0, 1.0]]), z, dim=-1))
    y = normalize(torch.cross(z, x, dim=-1))
    world = torch.eye(4)[None].clone()
    world[:, :3, :3] = torch.stack([x, y, z], -1)
    world[:, :3, 3] = eye
    return world
