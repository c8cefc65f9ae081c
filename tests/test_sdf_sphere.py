"""Analytic sphere: rendered depth, silhouette and normals against closed-form geometry.

A sphere of radius 0.5 at the origin is rendered with StyleSDF's sigmoid SDF density from two
EG3D orbit cameras (frontal and yaw 0.4 / pitch -0.2, radius 2.7, pivot (0, 0, 0.2)). A wide
ShapeNet focal (1.7074, 32.7 degree FOV) keeps the whole sphere (10.7 degree angular radius) in
frame. Every tolerance below is derived in the comments. Depth and normal errors come out at
60-98% of theirs, so none is loose enough to hide a convention error (half-pixel shift, flipped
axis, wrong integrator); the silhouette bounds are rigorous and looser (~10x).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace

import pytest
import torch

from ops.camera import SHAPENET_FOCAL, generate_rays, intrinsics_from_focal, orbit_pose
from ops.compositing import density_from_sdf_sigmoid
from ops.normals import normals_from_depth, normals_from_field, render_sdf, sphere_sdf, unproject_depth

RADIUS = 0.5
ALPHA = 0.005  # sigmoid scale: the surface blurs over a few alpha
NEAR, FAR, SAMPLES = 2.1, 3.7, 801
SPACING = (FAR - NEAR) / (SAMPLES - 1)  # h = 0.002 = 0.4 alpha
RESOLUTION = 64
FOCAL = SHAPENET_FOCAL
MIN_COS = 0.5  # incidence up to 60 degrees; the rim itself is tested through the silhouette
FLOAT32_DEPTH = 1e-5  # round-off of a float32 depth ~2.5 summed over hundreds of weights
EULER_GAMMA = 0.5772156649015329


def _harmonic(k: torch.Tensor) -> torch.Tensor:
    """H_k = digamma(k + 1) + gamma, the harmonic number for real k."""
    return torch.special.digamma(k + 1) + EULER_GAMMA


def _planar_bias(k: torch.Tensor) -> torch.Tensor:
    """Expected-depth offset of the sigmoid SDF density at a plane seen at incidence 1/k = cos.

    Along the ray, sdf = -cos * s (s = t - t0), so sigma = sigmoid(y) / alpha with y = cos s /
    alpha. The optical depth is softplus(y) / cos, so T = sigmoid(-y)^k and P(Y > y) = S^k for
    S = sigmoid(-Y): S^k is uniform. E[Y] = E[-log S] + E[log(1 - S)] = 1/k - H_k (the second
    term is the Beta(k, 1) log-moment psi(1) - psi(k + 1)). So E[s] = alpha k E[Y] =
    alpha (1 - k H_k): zero head-on, -2 alpha at 60 degrees (the ray crosses the blurred shell
    obliquely and stops early).
    """
    return ALPHA * (1 - k * _harmonic(k))


def _continuous_offset(
    cos: torch.Tensor, sdf_along_ray: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    span: float = 40.0, n: int = 4001,
) -> torch.Tensor:
    """E[t - t0] of the continuous sigmoid-density model, by a dense float64 1-D integral.

    Independent of the code under test: sigma = sigmoid(-d / alpha) / alpha written out, the
    optical depth by cumulative trapezoids, weights sigma * T. The window +-span alpha / cos
    leaves exp(-40)-sized tails; the step 0.02 alpha / cos makes trapezoid errors ~1e-8 alpha.

    Args:
        cos: [B] incidence cosines.
        sdf_along_ray: (s [B, n], cos [B, 1]) -> signed distance at ray offset s from the hit.

    Returns:
        [B] expected offsets.
    """
    c = cos.double().reshape(-1, 1)
    s = torch.linspace(-1.0, 1.0, n, dtype=torch.float64) * (span * ALPHA / c)
    sigma = torch.sigmoid(-sdf_along_ray(s, c) / ALPHA) / ALPHA
    optical = torch.cat([torch.zeros_like(c), torch.cumulative_trapezoid(sigma, s, dim=1)], dim=1)
    weight = sigma * torch.exp(-optical)
    return torch.trapezoid(weight * s, s, dim=1) / torch.trapezoid(weight, s, dim=1)


def _plane_profile(s: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return -c * s


def _sphere_profile(s: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    # |p0 + s d - centre|^2 = r^2 + 2 r s (n . d) + s^2 with n . d = -cos.
    return torch.sqrt(RADIUS**2 - 2 * RADIUS * c * s + s * s) - RADIUS


def _angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle in radians between unit vectors along the last axis (atan2: accurate near 0)."""
    return torch.atan2(torch.linalg.cross(a, b, dim=-1).norm(dim=-1), (a * b).sum(-1))


def _erode(mask: torch.Tensor) -> torch.Tensor:
    """[N, M] pixel mask -> pixels whose whole 3x3 neighbourhood is in the mask."""
    image = mask.reshape(-1, 1, RESOLUTION, RESOLUTION).double()
    return (-torch.nn.functional.max_pool2d(-image, 3, 1, 1)).reshape(mask.shape) > 0.5


def _intersect(origins: torch.Tensor, directions: torch.Tensor) -> SimpleNamespace:
    """Closed-form ray-sphere geometry in float64 for [N, M, 3] rays."""
    o, d = origins.double(), directions.double()
    along = (o * d).sum(-1)
    closest = o - along[..., None] * d  # cancellation-free closest approach to the centre
    miss_distance = closest.norm(dim=-1)
    hit = miss_distance < RADIUS
    half_chord = torch.sqrt((RADIUS**2 - miss_distance**2).clamp_min(0))
    t0 = -along - half_chord
    point = o + t0[..., None] * d
    return SimpleNamespace(
        hit=hit, t0=t0, normal=point / RADIUS, cos=half_chord / RADIUS, miss_distance=miss_distance,
    )


@pytest.fixture(scope="module")
def scene() -> SimpleNamespace:
    cam2world = orbit_pose(torch.tensor([0.0, 0.4]), torch.tensor([0.0, -0.2]))
    intrinsics = intrinsics_from_focal(FOCAL).expand(2, 3, 3)
    with torch.no_grad():
        depth, opacity = render_sdf(
            lambda p: sphere_sdf(p, RADIUS), cam2world, intrinsics, RESOLUTION, NEAR, FAR, SAMPLES, ALPHA
        )
    origins, directions = generate_rays(cam2world, intrinsics, RESOLUTION)
    geometry = _intersect(origins, directions)
    good = geometry.hit & (geometry.cos > MIN_COS)
    offset = torch.zeros_like(geometry.t0)
    offset[good] = _continuous_offset(geometry.cos[good], _sphere_profile)
    # Surface footprint of one pixel: lateral t / (f R), stretched by 1 / cos on the surface.
    footprint = geometry.t0 / (FOCAL * RESOLUTION * geometry.cos.clamp_min(1e-3))
    return SimpleNamespace(
        cam2world=cam2world, intrinsics=intrinsics, origins=origins, directions=directions,
        depth=depth.reshape(2, -1).double(), opacity=opacity.reshape(2, -1).double(),
        depth_image=depth, good=good, offset=offset, footprint=footprint, **vars(geometry),
    )


# --- the depth bias of the sigmoid density ----------------------------------------------------

@pytest.mark.parametrize("k", [1.0, 1.25, 1.5, 2.0, 3.0])
def test_planar_depth_bias_closed_form(k: float) -> None:
    measured = _continuous_offset(torch.tensor([1 / k]), _plane_profile).item()
    expected = _planar_bias(torch.tensor(k, dtype=torch.float64)).item()
    assert measured == pytest.approx(expected, abs=1e-4 * ALPHA)
    if k == 1.0:
        assert abs(measured) < 1e-6 * ALPHA  # head-on, the weight is a symmetric logistic pdf


# --- rendered depth ---------------------------------------------------------------------------

def test_depth_matches_ray_sphere_intersection(scene: SimpleNamespace) -> None:
    good = scene.good
    assert good.sum() > 1500  # both views, most of the disk
    assert torch.all(scene.opacity[good] > 1 - 1e-6)  # so sum w t is the expected depth
    error = scene.depth[good] - scene.t0[good]
    k = 1 / scene.cos[good]

    # Quadrature: with the last-delta (left-point) rule, assigning each termination to its
    # sample (-h/2) and holding sigma at the left end of each interval (+h/2) cancel at first
    # order. Euler-Maclaurin on E = t_near + h sum_i T_i leaves (h^2 / 24) * E_w[sigma] with
    # E_w[sigma] = 1 / (alpha (k + 1)) (sigmoid(Y) has mean 1 / (k + 1) under T = S^k).
    quadrature = SPACING**2 / (24 * ALPHA * (k + 1))  # <= 1.7e-5 here
    residual = error - scene.offset[good]
    assert residual.abs().max().item() <= (quadrature + FLOAT32_DEPTH).max().item()
    assert torch.all(residual.abs() <= quadrature + FLOAT32_DEPTH)

    # The sphere's SDF along a ray is >= its tangent plane's (|p - c| >= r - cos s), so its
    # density is pointwise lower, T pointwise higher and E = t_near + int T dt larger: the planar
    # bias alpha (1 - k H_k) is a strict lower bound.
    assert torch.all(error >= _planar_bias(k) - quadrature - FLOAT32_DEPTH)
    # Curvature itself is second order: the offset stays within 0.3 alpha of the planar value
    # (|s| ~ alpha / cos and d'' = sin^2 / r give an SDF change ~ alpha^2 sin^2 / (r cos^3)).
    assert torch.all((scene.offset[good] - _planar_bias(k)).abs() <= 0.3 * ALPHA)
    # Not vacuous: the raw error reaches ~2 alpha, far beyond the quadrature tolerance.
    assert error.abs().max().item() > 1.5 * ALPHA


# --- silhouette -------------------------------------------------------------------------------

MARGIN = 12 * ALPHA  # distance from the rim (in world units, measured at closest approach)


def _miss_opacity_bound(margin: float) -> float:
    """Upper bound on the opacity of a ray passing the sphere at distance >= r + margin.

    Along the ray, |x - c| >= max(r + margin, |s|) (s from the closest approach), and
    sigmoid(-d / alpha) <= exp(-d / alpha), so the optical depth is at most
    exp(-margin / alpha) (2 (r + margin) / alpha + 2), plus one left-Riemann overshoot of at most
    h * max sigma. The 1e10 last interval adds nothing: at t = far the SDF is >= 0.5 = 100 alpha.
    """
    decay = math.exp(-margin / ALPHA)
    return decay * (2 * (RADIUS + margin) / ALPHA + 2 + SPACING / ALPHA)


def _hit_opacity_bound(miss_distance: torch.Tensor, margin: float) -> torch.Tensor:
    """Lower bound on the opacity of rays passing at distance <= r - margin from the centre.

    Inside the ball of radius r - margin/2 the SDF is <= -margin/2, so sigma >=
    sigmoid(margin / (2 alpha)) / alpha over a chord of 2 sqrt((r - margin/2)^2 - D^2), less
    one sample spacing for the discrete sum.
    """
    chord = 2 * torch.sqrt(((RADIUS - margin / 2) ** 2 - miss_distance**2).clamp_min(0)) - SPACING
    tau = chord * torch.sigmoid(torch.tensor(margin / (2 * ALPHA), dtype=torch.float64)) / ALPHA
    return 1 - torch.exp(-tau)


def test_frontal_silhouette_is_the_projected_disk(scene: SimpleNamespace) -> None:
    # Independent of generate_rays: the frontal camera sits at 2.7 on +z looking down the axis
    # through the sphere centre, so the pixel at normalised radius q from (0.5, 0.5) sees a ray
    # at angle atan(q / f), which passes the centre at distance 2.7 sin(atan(q / f)).
    centres = (torch.arange(RESOLUTION, dtype=torch.float64) + 0.5) / RESOLUTION - 0.5
    q = torch.sqrt(centres[:, None] ** 2 + centres[None, :] ** 2).reshape(-1)
    miss_distance = 2.7 * torch.sin(torch.atan(q / FOCAL))
    assert torch.allclose(miss_distance, scene.miss_distance[0], atol=1e-5)
    opacity = scene.opacity[0]
    inside = miss_distance <= RADIUS - MARGIN
    outside = miss_distance >= RADIUS + MARGIN
    # The sphere's disk has pixel radius f R tan(asin(r / 2.7)) = 20.6; the two sets are disks
    # of radius 18.1 and complements of radius 23.1. A disk of radius rho holds pi rho^2 pixel
    # centres, give or take less than its perimeter 2 pi rho (Gauss' circle problem, crudely).
    for radius, count in ((RADIUS - MARGIN, inside.sum()), (RADIUS + MARGIN, RESOLUTION**2 - outside.sum())):
        rho = FOCAL * RESOLUTION * math.tan(math.asin(radius / 2.7))
        assert abs(count.item() - math.pi * rho**2) < 2 * math.pi * rho
    assert torch.all(opacity[inside] >= _hit_opacity_bound(miss_distance[inside], MARGIN) - 1e-6)
    assert opacity[outside].max().item() <= _miss_opacity_bound(MARGIN) + 1e-6  # 1.4e-3


def test_oblique_silhouette_follows_closest_approach(scene: SimpleNamespace) -> None:
    distance, opacity = scene.miss_distance[1], scene.opacity[1]
    inside, outside = distance <= RADIUS - MARGIN, distance >= RADIUS + MARGIN
    assert inside.sum() > 1000 and outside.sum() > 2000
    assert torch.all(opacity[inside] >= _hit_opacity_bound(distance[inside], MARGIN) - 1e-6)
    assert opacity[outside].max().item() <= _miss_opacity_bound(MARGIN) + 1e-6
    # Misses also render at depth ~0 (the depth is unnormalised: sum w t).
    assert scene.depth[1][outside].max().item() < 3.7 * _miss_opacity_bound(MARGIN) + 1e-6


# --- normals from depth -----------------------------------------------------------------------

def test_unprojection_uses_the_ray_pixel_centres() -> None:
    cam2world = orbit_pose(torch.tensor([0.3]), torch.tensor([0.1]))
    intrinsics = torch.tensor([[[2.2, 0.05, 0.47], [0.0, 2.0, 0.52], [0.0, 0.0, 1.0]]])
    points = unproject_depth(torch.ones(1, 1, 9, 9), cam2world, intrinsics)
    origins, directions = generate_rays(cam2world, intrinsics, 9)
    assert torch.allclose(points.reshape(1, -1, 3), origins + directions, atol=1e-6)
    # Non-square maps: row i and column j project back to ((j + 0.5) / W, (i + 0.5) / H).
    flat = unproject_depth(torch.full((1, 1, 3, 5), 2.0), cam2world, intrinsics)
    world2cam = torch.linalg.inv(cam2world[0])
    cam = flat[0] @ world2cam[:3, :3].T + world2cam[:3, 3]
    uvw = cam @ intrinsics[0].T
    uv = uvw[..., :2] / uvw[..., 2:]
    expected_u = ((torch.arange(5) + 0.5) / 5).expand(3, 5)
    expected_v = ((torch.arange(3) + 0.5) / 3)[:, None].expand(3, 5)
    assert torch.allclose(uv[..., 0], expected_u, atol=1e-5)
    assert torch.allclose(uv[..., 1], expected_v, atol=1e-5)
    assert torch.allclose((flat[0] - cam2world[0, :3, 3]).norm(dim=-1), torch.full((3, 5), 2.0), atol=1e-5)


def test_normals_of_a_plane_are_exact_and_face_the_camera() -> None:
    cam2world = orbit_pose(torch.tensor([0.4]), torch.tensor([-0.2])).double()
    intrinsics = intrinsics_from_focal(FOCAL).double()[None]
    origins, directions = generate_rays(cam2world, intrinsics, 16)
    # Plane n . x = 0.1 with n pointing away from the camera: the result must flip it.
    away = torch.nn.functional.normalize(torch.tensor([-0.3, 0.2, -1.0], dtype=torch.float64), dim=0)
    depth = (0.1 - origins @ away) / (directions @ away)
    normals = normals_from_depth(depth.reshape(1, 1, 16, 16), cam2world, intrinsics)
    # Differences of points on a plane lie in it, so even the one-sided borders are exact.
    assert torch.allclose(normals, -away.reshape(1, 3, 1, 1).expand(1, 3, 16, 16), atol=1e-9)
    # Camera z-depth gives the same normals when told so.
    z_depth = depth * (directions @ cam2world[0, :3, 2])
    same = normals_from_depth(z_depth.reshape(1, 1, 16, 16), cam2world, intrinsics, ray_distance=False)
    assert torch.allclose(same, normals, atol=1e-9)


def test_normals_from_analytic_depth_are_second_order(scene: SimpleNamespace) -> None:
    # float64 rays and depths isolate the operator from float32 round-off (whose ~3e-7 relative
    # position error over a 1e-2 footprint would otherwise be a ~1e-4 rad floor).
    cam2world, intrinsics = scene.cam2world.double(), scene.intrinsics.double()
    origins, directions = generate_rays(cam2world, intrinsics, RESOLUTION)
    geometry = _intersect(origins, directions)
    depth = torch.where(geometry.hit, geometry.t0, torch.full_like(geometry.t0, 3.0))
    normals = normals_from_depth(depth.reshape(2, 1, RESOLUTION, RESOLUTION), cam2world, intrinsics)
    normals = normals.permute(0, 2, 3, 1).reshape(2, -1, 3)
    pixels = _erode(geometry.hit & (geometry.cos > MIN_COS))
    error = _angle(normals, geometry.normal)[pixels]
    footprint = (geometry.t0 / (FOCAL * RESOLUTION * geometry.cos))[pixels]
    curvature_step = footprint / RADIUS  # kappa s: the arc angle of one pixel, up to 0.074 rad
    # A tangent from central differences is P' + P'''/6 + ...; on a circle the part of P''' normal
    # to the curve is 3 kappa l' l'', so the tangent turns by kappa l'' / 2, where l'' = ds/du is
    # how fast the footprint grows: s ~ 1 / cos gives l'' = kappa s^2 tan(theta) and an error of
    # (kappa s)^2 tan(theta) / 2 <= 0.87 (kappa s)^2 up to 60 degrees. A one-sided difference or a
    # half-pixel shift would cost ~kappa s / 2, ~10x more.
    assert torch.all(error <= curvature_step**2), (error / curvature_step**2).max()
    assert error.max().item() < 0.25 * curvature_step.max().item()


def test_normals_from_rendered_depth(scene: SimpleNamespace) -> None:
    normals = normals_from_depth(scene.depth_image, scene.cam2world, scene.intrinsics)
    normals = normals.permute(0, 2, 3, 1).reshape(2, -1, 3).double()
    pixels = _erode(scene.good)
    error = _angle(normals, scene.normal)[pixels]
    cos, t0 = scene.cos[pixels], scene.t0[pixels]
    footprint = scene.footprint[pixels]
    k, sin = 1 / cos, torch.sqrt(1 - cos**2)
    # (1) The operator's own error on the exact surface: (kappa s)^2 (previous test).
    operator = (footprint / RADIUS) ** 2
    # (2) The rendered surface is displaced along each ray by the bias b(theta), which varies
    # across the disk and tilts it. For a height field seen along the view axis, the slope changes
    # by db/dx = b'(theta) / (r cos), i.e. the normal turns by b'(theta) cos / r. From the planar
    # closed form, b'(theta) = -alpha (H_k + k psi_1(k + 1)) k tan(theta). (Curvature lowers the
    # actual variation; 0.030 rad at 60 degrees is the planar value.)
    slope = ALPHA * (_harmonic(k) + k * torch.special.polygamma(1, k + 1)) * k * sin / RADIUS
    # (3) Perspective: rays diverge by ~s / t per pixel, so a displacement b along them turns
    # tangents by at most |b| / t.
    perspective = _planar_bias(k).abs() / t0
    # (4) float32 depth noise eps over the central-difference baseline 2 s: eps / s; eps =
    # 2 x the per-pixel depth allowance, since the quadrature part is smooth and cancels.
    noise = 2 * FLOAT32_DEPTH / footprint
    tolerance = operator + slope + perspective + noise
    assert torch.all(error <= tolerance), (error / tolerance).max()
    assert error.max().item() > 0.01  # the bias tilt is really there (~1.5 degrees)


# --- normals from the field -------------------------------------------------------------------

def test_normals_from_field_at_rendered_points(scene: SimpleNamespace) -> None:
    good = scene.good
    points = scene.origins.double() + scene.depth[..., None] * scene.directions.double()
    with torch.no_grad():  # the caller may be in inference mode; gradients are enabled inside
        normals = normals_from_field(lambda p: sphere_sdf(p, RADIUS), points[good])
    assert not normals.requires_grad
    assert torch.allclose(normals.norm(dim=-1), torch.ones(int(good.sum()), dtype=torch.float64))
    error = _angle(normals, scene.normal[good])
    # The SDF gradient at any point is exactly (p - c) / |p - c|. The rendered point is the true
    # hit moved by dt along the ray, which turns the radial direction by
    # atan(|dt| sin(theta) / (r - |dt|)); |dt| is bounded as in the depth test.
    k = 1 / scene.cos[good]
    shift = scene.offset[good].abs() + SPACING**2 / (24 * ALPHA * (k + 1)) + FLOAT32_DEPTH
    sin = torch.sqrt(1 - scene.cos[good] ** 2)
    tolerance = torch.atan(shift * sin / (RADIUS - shift)) + 1e-7
    assert torch.all(error <= tolerance)
    assert error.max().item() > 0.005


def test_normals_from_field_density_and_graph() -> None:
    centre = torch.tensor([0.1, -0.2, 0.3], requires_grad=True)
    points = torch.randn(200, 3, generator=torch.Generator().manual_seed(0)) * 0.3 + centre.detach()
    points = points[(points - centre.detach()).norm(dim=-1) > 0.05]
    radial = torch.nn.functional.normalize(points - centre.detach(), dim=-1)
    with torch.no_grad():
        from_sdf = normals_from_field(lambda p: sphere_sdf(p, 0.25, centre), points)
        # A density falls outwards, so its gradient points in; negate flips it out.
        from_density = normals_from_field(
            lambda p: density_from_sdf_sigmoid(sphere_sdf(p, 0.25, centre), 0.05), points, negate=True
        )
    assert torch.allclose(from_sdf, radial, atol=1e-6)
    assert torch.allclose(from_density, radial, atol=1e-5)
    # create_graph keeps the dependence on the field's parameters (e.g. for an eikonal-type loss).
    with_graph = normals_from_field(lambda p: sphere_sdf(p, 0.25, centre), points, create_graph=True)
    assert with_graph.requires_grad
    (gradient,) = torch.autograd.grad(with_graph[:, 0].sum(), centre)
    assert gradient.abs().sum() > 0
    # Scalar fields may return [...] or [..., 1].
    flat = normals_from_field(lambda p: (p - centre.detach()).norm(dim=-1), points)
    assert torch.allclose(flat, radial, atol=1e-6)
