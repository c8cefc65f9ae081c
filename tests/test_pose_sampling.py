"""Pose priors: each distribution's moments against closed forms, and the labels' geometry."""

from __future__ import annotations

import math

import pytest
import torch

from ops.camera import FFHQ_FOCAL, fov_to_focal, intrinsics_from_focal, orbit_label, unpack_label
from ops.pose_sampling import (
    DATASET_POSE_METHODS,
    POSE_PRIORS,
    AnglePrior,
    PosePrior,
    pose_prior,
    sample_angles,
    sample_cameras,
    sample_poses,
)

N = 20000
Z = 5.0  # tolerance in standard errors: a false failure is a ~1e-6 event


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def phi(x: float) -> float:
    """Standard normal CDF."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def f32(value: float) -> float:
    """The value rounded to float32, as the samples store it."""
    return float(torch.tensor(value, dtype=torch.float32))


def moments(x: torch.Tensor) -> tuple[float, float, float]:
    """Sample mean, variance and fourth central moment (float64)."""
    x = x.double()
    mean = float(x.mean())
    centred = x - mean
    return mean, float((centred ** 2).mean()), float((centred ** 4).mean())


def assert_mean_var(x: torch.Tensor, mean: float, var: float, mu4: float) -> None:
    """Sample mean and variance agree with (mean, var) within Z standard errors (mu4: 4th central moment)."""
    n = x.numel()
    m, v, _ = moments(x)
    assert abs(m - mean) <= Z * math.sqrt(var / n), (m, mean)
    assert abs(v - var) <= Z * math.sqrt((mu4 - var ** 2) / n), (v, var)


def test_fixed_prior_gives_the_exact_value():
    x = sample_angles(AnglePrior("fixed", mean=0.3, std=5.0, low=-1.0, high=1.0), 7, gen())
    assert x.dtype == torch.float32 and x.shape == (7,)
    assert torch.equal(x, torch.full((7,), 0.3))


def test_uniform_prior_range_mean_and_variance():
    a, b = -0.4, 1.1
    x = sample_angles(AnglePrior.uniform(a, b), N, gen(1))
    assert float(x.min()) >= f32(a) and float(x.max()) <= f32(b)
    assert_mean_var(x, (a + b) / 2, (b - a) ** 2 / 12, (b - a) ** 4 / 80)


def test_normal_prior_mean_and_std():
    mu, sigma = 0.7, 0.155
    x = sample_angles(AnglePrior.normal(mu, sigma), N, gen(2))
    assert_mean_var(x, mu, sigma ** 2, 3 * sigma ** 4)


def test_truncated_normal_is_a_clamp_with_normal_tail_mass_at_the_bounds():
    mu, sigma, low, high = 0.2, 0.5, -0.3, 0.9
    x = sample_angles(AnglePrior.truncated_normal(mu, sigma, low, high), N, gen(3))
    # The same seed's normal draws, clamped: nothing is redrawn (not a true truncated normal).
    raw = sample_angles(AnglePrior.normal(mu, sigma), N, gen(3))
    assert torch.equal(x, torch.clamp(raw, low, high))
    assert float(x.min()) == f32(low) and float(x.max()) == f32(high)
    for bound, p in ((low, phi((low - mu) / sigma)), (high, 1 - phi((high - mu) / sigma))):
        mass = float((x == f32(bound)).double().mean())
        assert abs(mass - p) <= Z * math.sqrt(p * (1 - p) / N), (bound, mass, p)


def test_hybrid_is_a_fifty_fifty_mixture():
    mu, sigma, low, high = -1.0, 0.5, 0.0, 2.0
    x = sample_angles(AnglePrior.hybrid(mu, sigma, low, high), N, gen(4))
    mean_u, var_u = (low + high) / 2, (high - low) ** 2 / 12
    mean = 0.5 * mean_u + 0.5 * mu
    var = 0.5 * (var_u + (mean_u - mean) ** 2) + 0.5 * (sigma ** 2 + (mu - mean) ** 2)
    _, _, mu4_hat = moments(x)
    assert_mean_var(x, mean, var, mu4_hat)
    # Below 0 only the normal half contributes: P = 0.5 * Phi((0 - mu) / sigma).
    p = 0.5 * phi((0.0 - mu) / sigma)
    frac = float((x < 0).double().mean())
    assert abs(frac - p) <= Z * math.sqrt(p * (1 - p) / N)


def test_seeded_sampling_is_deterministic():
    prior = PosePrior(yaw=AnglePrior.hybrid(0.0, 0.3, -0.5, 0.5), pitch=AnglePrior.normal(0.0, 0.2),
                      radius=AnglePrior.uniform(2.0, 3.0), roll=AnglePrior.normal(0.0, 0.1))
    assert torch.equal(sample_poses(prior, 64, gen(5)), sample_poses(prior, 64, gen(5)))
    assert not torch.equal(sample_poses(prior, 64, gen(5)), sample_poses(prior, 64, gen(6)))
    for kind in ("uniform", "normal", "truncated_normal", "hybrid"):
        angle = AnglePrior(kind, mean=0.1, std=0.3, low=-0.2, high=0.4)
        assert torch.equal(sample_angles(angle, 100, gen(7)), sample_angles(angle, 100, gen(7)))


def test_invalid_priors_are_rejected():
    with pytest.raises(ValueError):
        AnglePrior("laplace")
    with pytest.raises(ValueError):
        AnglePrior.uniform(1.0, 0.0)
    with pytest.raises(ValueError):
        AnglePrior.normal(0.0, -0.1)
    with pytest.raises(ValueError):
        PosePrior(pitch_space="polar")
    with pytest.raises(ValueError):
        sample_poses(PosePrior(radius=AnglePrior.uniform(-1.0, -0.5)), 4, gen())


def cam_parts(label: torch.Tensor):
    cam2world, intrinsics = unpack_label(label)
    return cam2world[:, :3, :3].double(), cam2world[:, :3, 3].double(), intrinsics


def test_sampled_labels_are_valid_cameras():
    pivot = (0.05, -0.1, 0.2)
    prior = PosePrior(yaw=AnglePrior.normal(0.0, 0.5), pitch=AnglePrior.normal(0.0, 0.3),
                      radius=AnglePrior.uniform(2.0, 3.0), pivot=pivot, focal=3.3)
    sample = sample_cameras(prior, 512, gen(8), device="cpu")
    assert sample.label.shape == (512, 25) and sample.label.dtype == torch.float32
    rot, centre, intrinsics = cam_parts(sample.label)
    eye = torch.eye(3, dtype=torch.float64).expand(512, 3, 3)
    assert torch.allclose(rot.transpose(1, 2) @ rot, eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(512, dtype=torch.float64), atol=1e-5)
    # The camera orbits the world origin at the sampled radius ...
    assert torch.allclose(centre.norm(dim=1), sample.radius.double(), rtol=1e-5)
    # ... and its forward axis (third column, OpenCV z) points at the pivot.
    to_pivot = torch.tensor(pivot, dtype=torch.float64) - centre
    assert torch.allclose(rot[:, :, 2], to_pivot / to_pivot.norm(dim=1, keepdim=True), atol=1e-5)
    # World up projects to image up: the camera's down axis has a negative world-y component.
    assert bool((rot[:, 1, 1] < 0).all())
    assert torch.equal(intrinsics, intrinsics_from_focal(3.3).expand(512, 3, 3))


def test_frontal_fixed_prior_reproduces_orbit_label_exactly():
    assert torch.equal(sample_poses(PosePrior(), 3, gen()), orbit_label(0.0, 0.0).expand(3, 25))
    explicit = PosePrior(yaw=AnglePrior.fixed(0.0), pitch=AnglePrior.fixed(0.0), radius=AnglePrior.fixed(2.7),
                         pivot=(0.0, 0.0, 0.2), focal=FFHQ_FOCAL)
    assert torch.equal(sample_poses(explicit, 1, gen()), orbit_label(0.0, 0.0, 2.7, (0.0, 0.0, 0.2), FFHQ_FOCAL))
    # In orbit pitch space the pitch goes to orbit_label unchanged.
    orbit = PosePrior(yaw=AnglePrior.fixed(0.25), pitch=AnglePrior.fixed(-0.2), pitch_space="orbit")
    assert torch.equal(sample_poses(orbit, 2, gen()), orbit_label(0.25, -0.2).expand(2, 25))


def test_elevation_pitch_is_the_geometric_angle():
    prior = PosePrior(yaw=AnglePrior.uniform(-1.0, 1.0), pitch=AnglePrior.uniform(-1.2, 1.2),
                      radius=AnglePrior.fixed(1.0), pivot=(0.0, 0.0, 0.0))
    sample = sample_cameras(prior, 256, gen(9))
    _, centre, _ = cam_parts(sample.label)
    yaw, pitch = sample.yaw.double(), sample.pitch.double()
    expected = torch.stack((torch.cos(pitch) * torch.sin(yaw), -torch.sin(pitch), torch.cos(pitch) * torch.cos(yaw)), 1)
    assert torch.allclose(centre, expected, atol=2e-5)
    assert torch.allclose(sample.polar.double(), math.pi / 2 + pitch, atol=1e-6)


def test_orbit_pitch_space_uniform_is_spherical_uniform():
    prior = PosePrior(yaw=AnglePrior.uniform(-math.pi, math.pi), pitch=AnglePrior.uniform(-math.pi / 2, math.pi / 2),
                      radius=AnglePrior.fixed(1.0), pitch_space="orbit", pivot=(0.0, 0.0, 0.0))
    sample = sample_cameras(prior, N, gen(10))
    _, centre, _ = cam_parts(sample.label)
    # Uniform on the sphere: every coordinate is U(-1, 1) (Archimedes).
    assert_mean_var(centre[:, 1], 0.0, 1 / 3, 1 / 5)
    assert torch.allclose(torch.cos(sample.polar.double()), centre[:, 1], atol=1e-5)


def test_roll_turns_the_camera_about_its_viewing_axis():
    base = PosePrior(yaw=AnglePrior.normal(0.0, 0.3), pitch=AnglePrior.normal(0.0, 0.2), pivot=(0.0, 0.0, 0.0))
    rolled_prior = PosePrior(yaw=base.yaw, pitch=base.pitch, pivot=base.pivot, roll=AnglePrior.uniform(-1.0, 1.0))
    plain = sample_cameras(base, 64, gen(11))
    rolled = sample_cameras(rolled_prior, 64, gen(11))
    r0, c0, _ = cam_parts(plain.label)
    r1, c1, _ = cam_parts(rolled.label)
    assert torch.equal(c0, c1) and torch.equal(r0[:, :, 2], r1[:, :, 2])
    roll = rolled.roll.double()[:, None]
    assert torch.allclose(r1[:, :, 0], torch.cos(roll) * r0[:, :, 0] + torch.sin(roll) * r0[:, :, 1], atol=1e-6)
    assert torch.allclose(r1[:, :, 1], torch.cos(roll) * r0[:, :, 1] - torch.sin(roll) * r0[:, :, 0], atol=1e-6)
    assert torch.allclose(r1.transpose(1, 2) @ r1, torch.eye(3, dtype=torch.float64).expand(64, 3, 3), atol=1e-5)


# Documented values, written out independently of the presets (methods.md §2 and §3.x):
# (yaw std, pitch std, pitch space, radius range, fov degrees).
UNIFORM = 1 / math.sqrt(12)
DOCUMENTED = {
    "pi_gan": (0.3, 0.155, "elevation", (1.0, 1.0), 12.0),
    "gram": (0.3, 0.155, "elevation", (1.0, 1.0), 12.0),
    "volumegan": (0.3, 0.155, "elevation", (1.0, 1.0), 12.0),
    "stylesdf": (0.3, 0.15, "elevation", (1.0, 1.0), 12.0),
    "stylesdf_carver": (0.3, 0.155, "elevation", (1.0, 1.0), 12.0),
    "stylesdf_afhq": (0.15, 0.15, "elevation", (1.0, 1.0), 12.0),
    "stylenerf": (0.3, 0.155, "elevation", (1.0, 1.0), 12.0),
    "graf_carver": (0.3, 0.155, "elevation", (1.0, 1.0), 12.0),
    # GRAF: azimuth u in [0, 0.25] of 2 pi; v in [0.329, 0.456] is uniform in EG3D v-space (pi * v).
    "graf": (2 * math.pi * 0.25 * UNIFORM, math.pi * (0.456 - 0.329) * UNIFORM, "orbit", (9.5, 10.5), 10.0),
    # GRAF's released models: u, v ranges of their yaml files (v = (1 - cos polar) / 2).
    **{name: (2 * math.pi * (u1 - u0) * UNIFORM,
              math.pi * (math.cos(math.radians(p0)) - math.cos(math.radians(p1))) / 2 * UNIFORM, "orbit", r, fov)
       for name, (u0, u1), (p0, p1), r, fov in (
           ("graf_carla", (0.0, 1.0), (0.0, 85.0), (10.0, 10.0), 30.0),
           ("graf_celeba", (0.0, 0.25), (70.0, 85.0), (9.5, 10.5), 10.0),
           ("graf_cats", (0.0, 70 / 360), (70.0, 85.0), (10.0, 10.0), 10.0),
           ("graf_cub", (0.0, 1.0), (60.0, 95.0), (9.0, 11.0), 30.0))},
    # GIRAFFE: object rotation U(0.40278, 0.59722) of 2 pi; v in [0.4167, 0.5].
    "giraffe": (2 * math.pi * (0.59722 - 0.40278) * UNIFORM, math.pi * (0.5 - 0.4167) * UNIFORM, "orbit",
                (2.732, 2.732), 10.0),
}
YAW_MEAN = {"graf_carla": math.pi, "graf_celeba": math.pi / 4, "graf_cats": math.pi * 70 / 360, "graf_cub": math.pi}
"""Mean yaw of the priors not centred on the frontal view (GRAF's releases: azimuth 2 pi u from u = 0)."""
POLAR_DEGREES = {"graf": (70.0, 85.0), "giraffe": (80.4, 90.0), "graf_carla": (0.0, 85.0),
                 "graf_celeba": (70.0, 85.0), "graf_cats": (70.0, 85.0), "graf_cub": (60.0, 95.0)}


def test_every_method_is_covered():
    methods = {"pi_gan", "gram", "volumegan", "stylesdf", "stylenerf", "graf", "giraffe"}
    assert methods <= set(POSE_PRIORS) and set(POSE_PRIORS) == set(DOCUMENTED)
    assert set(DATASET_POSE_METHODS) == {"eg3d", "epigraf"}
    assert all(prior.source.startswith("methods.md §") for prior in POSE_PRIORS.values())
    assert pose_prior("gram") is POSE_PRIORS["gram"]
    with pytest.raises(KeyError, match="dataset poses"):
        pose_prior("eg3d")


def std_tol(sigma: float, kurtosis: float, n: int) -> float:
    """Z standard errors of a sample standard deviation."""
    return Z * sigma * math.sqrt((kurtosis - 1) / (4 * n))


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_preset_samples_with_the_documented_spread(name):
    yaw_std, pitch_std, space, (r_low, r_high), fov = DOCUMENTED[name]
    prior = POSE_PRIORS[name]
    n = 50000
    sample = sample_cameras(prior, n, gen(12))
    assert sample.label.shape == (n, 25) and bool(torch.isfinite(sample.label).all())
    assert prior.pitch_space == space
    kurtosis = 3.0 if space == "elevation" else 1.8  # normal presets vs uniform presets
    assert abs(float(sample.yaw.double().std()) - yaw_std) <= std_tol(yaw_std, kurtosis, n)
    assert abs(float(sample.pitch.double().std()) - pitch_std) <= std_tol(pitch_std, kurtosis, n)
    assert abs(float(sample.yaw.double().mean()) - YAW_MEAN.get(name, 0.0)) <= Z * yaw_std / math.sqrt(n)
    rot, centre, intrinsics = cam_parts(sample.label)
    radius = centre.norm(dim=1)
    assert float(radius.min()) >= r_low * (1 - 1e-5) and float(radius.max()) <= r_high * (1 + 1e-5)
    assert torch.allclose(rot[:, :, 2], -centre / radius[:, None], atol=1e-5)  # looks at the origin
    assert torch.allclose(intrinsics[0], intrinsics_from_focal(fov_to_focal(fov)))
    polar = torch.rad2deg(torch.arccos(centre[:, 1] / radius))
    if space == "elevation":
        # The camera's geometric elevation has the documented spread (the v-space conversion works).
        elevation = -torch.asin(centre[:, 1] / radius)
        assert abs(float(elevation.std()) - pitch_std) <= std_tol(pitch_std, 3.0, n) + 1e-5
    else:
        low, high = POLAR_DEGREES[name]
        assert float(polar.min()) >= low - 0.1 and float(polar.max()) <= high + 0.1
        assert float(polar.max()) - float(polar.min()) > 0.9 * (high - low)
