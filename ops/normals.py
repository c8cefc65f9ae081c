"""Surface normals from depth maps and from scalar fields, plus a small analytic SDF renderer.

Conventions are EG3D's (see ``ops.camera``): OpenCV camera axes, intrinsics normalised by image
size, pixel centres at ``(i + 0.5) / R``, and depth measured as distance along the unit ray.

``render_sdf`` is the reference path for analytic tests (a sphere must render where closed-form
geometry puts it) and a starting point for SDF renderers (StyleSDF); it renders no colour.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ops.camera import camera_directions, generate_rays
from ops.compositing import composite_last_delta, density_from_sdf_sigmoid
from ops.ray_sampling import stratified_depths

# --- normals from a depth map -----------------------------------------------------------------

def unproject_depth(
    depth: torch.Tensor, cam2world: torch.Tensor, intrinsics: torch.Tensor, ray_distance: bool = True
) -> torch.Tensor:
    """World-space points of every pixel centre of a depth map.

    Args:
        depth: [N, 1, H, W]; distance along the unit ray (EG3D) if ``ray_distance`` else camera z.
        cam2world: [N, 4, 4].
        intrinsics: [N, 3, 3] normalised by image size.

    Returns:
        [N, H, W, 3] world points.
    """
    n, _, h, w = depth.shape
    rays_cam = camera_directions(intrinsics.to(depth.dtype), h, w).reshape(n, h, w, 3)
    rotation = cam2world[:, :3, :3].to(depth.dtype)
    origin = cam2world[:, :3, 3].to(depth.dtype)
    rays_world = torch.einsum("nij,nhwj->nhwi", rotation, rays_cam)
    if ray_distance:
        # The rotation keeps lengths, so normalising in world space equals EG3D's order.
        rays_world = F.normalize(rays_world, dim=-1)
    return origin[:, None, None, :] + depth[:, 0, :, :, None] * rays_world


def _image_gradient(points: torch.Tensor, dim: int) -> torch.Tensor:
    """Central differences along ``dim`` of [N, H, W, 3] points; one-sided at the two borders."""
    size = points.shape[dim]
    if size < 2:
        raise ValueError("normals need depth maps of at least 2 x 2 pixels")
    first = points.narrow(dim, 1, 1) - points.narrow(dim, 0, 1)
    last = points.narrow(dim, size - 1, 1) - points.narrow(dim, size - 2, 1)
    # Halved so that interior and border differences are both per-pixel steps.
    middle = (points.narrow(dim, 2, size - 2) - points.narrow(dim, 0, size - 2)) * 0.5
    return torch.cat([first, middle, last], dim=dim)


def normals_from_depth(
    depth: torch.Tensor, cam2world: torch.Tensor, intrinsics: torch.Tensor, ray_distance: bool = True
) -> torch.Tensor:
    """World-space unit normals of the surface seen in a depth map, facing the camera.

    Each pixel centre is unprojected to a world point; the tangent vectors are image-space central
    differences of those points (one-sided at the borders) and the normal is their cross product.
    Pixels whose neighbours lie on another surface (silhouettes, background) get meaningless
    normals; degenerate ones (zero tangents) come out as zero vectors.

    Args:
        depth: [N, 1, H, W]; ray distance (EG3D ``image_depth``) if ``ray_distance`` else camera z.
        cam2world: [N, 4, 4].
        intrinsics: [N, 3, 3] normalised by image size.

    Returns:
        [N, 3, H, W] unit normals in world space.
    """
    points = unproject_depth(depth, cam2world, intrinsics, ray_distance)
    d_u = _image_gradient(points, dim=2)  # along image x (columns)
    d_v = _image_gradient(points, dim=1)  # along image y (rows)
    normals = F.normalize(torch.cross(d_u, d_v, dim=-1), dim=-1)
    # Flip every normal onto the camera's side of its tangent plane.
    to_camera = cam2world[:, None, None, :3, 3].to(points.dtype) - points
    facing = torch.sum(normals * to_camera, dim=-1, keepdim=True)
    normals = torch.where(facing < 0, -normals, normals)
    return normals.permute(0, 3, 1, 2)


def world_to_camera_normals(normals: torch.Tensor, cam2world: torch.Tensor) -> torch.Tensor:
    """Rotate world-space normal maps into camera space (OpenCV axes): ``R^T n`` per pixel.

    Args:
        normals: [N, 3, H, W] world-space vectors.
        cam2world: [N, 4, 4].

    Returns:
        [N, 3, H, W] camera-space vectors (lengths unchanged).
    """
    return torch.einsum("nji,njhw->nihw", cam2world[:, :3, :3].to(normals.dtype), normals)


# --- normals from a scalar field --------------------------------------------------------------

def normals_from_field(
    field_fn: Callable[[torch.Tensor], torch.Tensor],
    points: torch.Tensor,
    *,
    negate: bool = False,
    create_graph: bool = False,
    eps: float = 1e-12,
) -> torch.Tensor:
    """Unit normals as the normalised autograd gradient of a scalar field.

    For an SDF the gradient points out of the surface. A density increases inwards, so pass
    ``negate=True`` to get outward normals from it. Works inside a caller's ``torch.no_grad()``.

    Args:
        field_fn: maps [..., 3] points to [...] or [..., 1] values; must be differentiable.
        points: [..., 3].
        negate: flip the gradient (densities, occupancies).
        create_graph: keep the graph of the gradient (e.g. for an eikonal-style loss).
        eps: guards the normalisation where the gradient vanishes (result is then ~0).

    Returns:
        [..., 3] unit normals.
    """
    with torch.enable_grad():
        # A detached leaf: gradients w.r.t. the caller's inputs are not what is asked for here.
        query = points.detach().requires_grad_(True)
        values = field_fn(query)
        (gradient,) = torch.autograd.grad(values.sum(), query, create_graph=create_graph)
    if negate:
        gradient = -gradient
    return gradient / gradient.norm(dim=-1, keepdim=True).clamp_min(eps)


# --- analytic SDF rendering -------------------------------------------------------------------

def sphere_sdf(
    points: torch.Tensor, radius: float = 0.5, centre: Sequence[float] | torch.Tensor = (0.0, 0.0, 0.0)
) -> torch.Tensor:
    """Signed distance to a sphere: [..., 3] points -> [..., 1] (negative inside)."""
    centre = torch.as_tensor(centre, dtype=points.dtype, device=points.device)
    return torch.linalg.vector_norm(points - centre, dim=-1, keepdim=True) - radius


def render_sdf(
    sdf_fn: Callable[[torch.Tensor], torch.Tensor],
    cam2world: torch.Tensor,
    intrinsics: torch.Tensor,
    resolution: int,
    near: float,
    far: float,
    num_samples: int,
    alpha: float,
    *,
    last_delta: float = 1e10,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth and opacity of an SDF rendered as StyleSDF does (no colour).

    Samples are ``linspace(near, far, K)`` (no jitter), the density is
    ``sigmoid(-d / alpha) / alpha`` and compositing is the last-delta rule (the last sample owns an
    interval of ``last_delta``, StyleSDF's 1e10 by default). With that default, a ray whose SDF at
    ``far`` is within a few alpha of zero comes out opaque, so put ``far`` well past the surface
    for meaningful opacity. The depth is the unnormalised expected ray distance ``sum_i w_i t_i``, so
    it tends to 0 where the opacity does.

    Args:
        sdf_fn: maps [N, M, K, 3] world points to [N, M, K, 1] signed distances.
        cam2world: [N, 4, 4].
        intrinsics: [N, 3, 3] normalised by image size.
        resolution: R; the output is R x R.
        near, far: ray distance range.
        num_samples: K.
        alpha: sigmoid scale; the surface blurs over a few alpha.
        last_delta: interval owned by the last sample.

    Returns:
        depth [N, 1, R, R] and opacity [N, 1, R, R].
    """
    n = cam2world.shape[0]
    origins, directions = generate_rays(cam2world, intrinsics, resolution)  # [N, M, 3] each
    m = origins.shape[1]
    depths = stratified_depths(n, m, near, far, num_samples, jitter=False, device=cam2world.device)
    points = origins[:, :, None, :] + depths * directions[:, :, None, :]  # [N, M, K, 3]
    sdf = sdf_fn(points).reshape(n, m, num_samples, 1)
    densities = density_from_sdf_sigmoid(sdf, alpha)
    # Features of zero channels: only depth and weights are wanted.
    result = composite_last_delta(densities.new_zeros(n, m, num_samples, 0), densities, depths, last_delta=last_delta)
    opacity = result.weights.sum(dim=2)
    depth = result.depth.reshape(n, resolution, resolution, 1).permute(0, 3, 1, 2)
    opacity = opacity.reshape(n, resolution, resolution, 1).permute(0, 3, 1, 2)
    return depth, opacity
