"""Evaluation metrics: FID/KID statistics and the Inception loader (training/fid.py), reprojection
error, normal agreement and depth/normal SWD (training/view_metrics.py), and the CLI entry point
(training/evaluation.py).

Statistics are checked against closed forms and explicit loops; the Inception path runs a tiny
TorchScript network scripted here (the real one cannot be shipped); the view metrics run analytic
stand-in generators whose right answers are known, plus a smoke run of the bundled model.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from models import load_generator
from models.scene import MeshFields
from ops.camera import generate_rays, orbit_label, project_points, unpack_label
from ops.normals import world_to_camera_normals
from training import fid as fid_module
from training.dataset import DatasetError, ImageLabelDataset, write_dataset_zip
from training.evaluation import METRICS, append_results_jsonl, compute_metrics, evaluate
from training.fid import (
    InceptionError,
    feature_statistics,
    frechet_distance,
    frechet_distance_features,
    kernel_inception_distance,
    kid_subsets,
    load_inception,
    mmd2_unbiased,
    trace_sqrt_product,
)
from training.metrics import MetricOptions
from training.synthetic import read_geometry, write_synthetic_dataset
from training.view_metrics import (
    encode_depth_image,
    encode_normal_image,
    foreground_mask,
    geometry_metric,
    geometry_swd_metrics,
    ground_truth_maps,
    reprojection_errors,
    reprojection_metric,
)

BUNDLED = Path(__file__).resolve().parents[1] / "assets" / "default_generator.safetensors"


# --- FID statistics -----------------------------------------------------------------------------

def random_psd(d: int, seed: int, rank: int | None = None) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(d, rank or d))
    return a @ a.T


def test_frechet_distance_of_identical_statistics_is_zero():
    sigma = random_psd(6, 0)
    mu = np.arange(6.0)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-9
    # Fewer samples than features: a singular covariance. Its zero eigenvalues come out as ~1e-16
    # round-off, whose square roots (~1e-8) are the error floor of any matrix-square-root FID.
    singular = random_psd(6, 1, rank=2)
    assert abs(frechet_distance(mu, singular, mu, singular)) < 1e-6 * np.trace(singular)


def test_frechet_distance_of_diagonal_gaussians_has_the_closed_form():
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = rng.uniform(0.1, 3.0, 5), rng.uniform(0.1, 3.0, 5)
    expected = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_frechet_distance_hand_worked_2d_examples():
    """S1 = diag(4, 1), S2 = [[1, 1], [1, 2]] do not commute. S1^(1/2) S2 S1^(1/2) = [[4, 2], [2, 2]]
    has eigenvalues 3 +- sqrt(5), whose square roots (sqrt(5) +- 1) / sqrt(2) sum to sqrt(10). With
    means (0, 0) and (1, 2): FID = 5 + (5 + 3) - 2 sqrt(10)."""
    s1, s2 = np.diag([4.0, 1.0]), np.array([[1.0, 1.0], [1.0, 2.0]])
    assert trace_sqrt_product(s1, s2) == pytest.approx(math.sqrt(10), rel=1e-12)
    assert trace_sqrt_product(s2, s1) == pytest.approx(math.sqrt(10), rel=1e-12)
    assert frechet_distance([0, 0], s1, [1, 2], s2) == pytest.approx(13 - 2 * math.sqrt(10), rel=1e-12)
    # Singular S1 = diag(1, 0): S1^(1/2) S2 S1^(1/2) = diag(S2[0, 0], 0), so tr sqrt = sqrt(2).
    s3 = np.array([[2.0, 1.0], [1.0, 2.0]])
    assert frechet_distance([0, 0], np.diag([1.0, 0.0]), [0, 0], s3) == pytest.approx(1 + 4 - 2 * math.sqrt(2), rel=1e-12)


def test_trace_sqrt_product_matches_the_2x2_identity_and_scipy():
    """For 2 x 2: (sqrt(l1) + sqrt(l2))^2 = tr(S1 S2) + 2 sqrt(det S1 det S2); in 7-D, scipy's sqrtm."""
    for seed in range(5):
        s1, s2 = random_psd(2, seed), random_psd(2, seed + 10)
        expected = math.sqrt(np.trace(s1 @ s2) + 2 * math.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
        assert trace_sqrt_product(s1, s2) == pytest.approx(expected, rel=1e-10)
    linalg = pytest.importorskip("scipy.linalg")
    s1, s2 = random_psd(7, 20), random_psd(7, 21)
    assert trace_sqrt_product(s1, s2) == pytest.approx(float(np.trace(linalg.sqrtm(s1 @ s2)).real), rel=1e-8)


def test_fid_from_few_features_uses_the_exact_low_rank_form():
    """Fewer samples than features: the nuclear-norm form equals FID of the D x D statistics."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(7, 40)), rng.normal(size=(9, 40)) * 1.5 + 0.3
    expected = frechet_distance(*feature_statistics(a), *feature_statistics(b))
    # The D x D path carries the ~sqrt(round-off) error of the singular covariances' zero eigenvalues.
    assert frechet_distance_features(a, b) == pytest.approx(expected, rel=1e-7)
    assert frechet_distance_features(a, a) == pytest.approx(0.0, abs=1e-9)
    many_a, many_b = rng.normal(size=(60, 5)), rng.normal(size=(50, 5)) + 1.0  # N >= D: the statistics path
    expected = frechet_distance(*feature_statistics(many_a), *feature_statistics(many_b))
    assert frechet_distance_features(many_a, many_b) == pytest.approx(expected, rel=1e-12)


def test_feature_statistics_are_mean_and_unbiased_covariance():
    f = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]])
    mu, sigma = feature_statistics(torch.from_numpy(f))
    np.testing.assert_allclose(mu, [2.0, 2.0])
    # Deviations (-2, -1), (0, -1), (2, 2); sums of products / (N - 1) = 2.
    np.testing.assert_allclose(sigma, [[8 / 2, 6 / 2], [6 / 2, 6 / 2]])


def test_statistics_reject_bad_shapes():
    with pytest.raises(ValueError, match="D"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(np.zeros((1, 4)), np.zeros((5, 4)))


# --- KID ----------------------------------------------------------------------------------------

def kernel(a: np.ndarray, b: np.ndarray) -> float:
    return (float(a @ b) / a.shape[0] + 1.0) ** 3


def mmd2_by_loops(x: np.ndarray, y: np.ndarray) -> float:
    m, n = len(x), len(y)
    xx = sum(kernel(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(kernel(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(kernel(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_of_three_plus_three_points_matches_explicit_loops():
    x = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    y = np.array([[0.5, -1.0], [2.0, 0.0], [-1.0, 1.0]])
    expected = mmd2_by_loops(x, y)
    assert mmd2_unbiased(x, y) == pytest.approx(expected, rel=1e-12)
    # A subset as large as both sets takes them whole: every subset gives the same value.
    assert kernel_inception_distance(x, y, num_subsets=4, subset_size=10) == pytest.approx(expected, rel=1e-12)
    # Identical sets: the unbiased estimate is not exactly 0, but the formula still holds.
    assert mmd2_unbiased(x, x) == pytest.approx(mmd2_by_loops(x, x), rel=1e-12)


def test_kid_subsets_draw_without_replacement_from_a_seeded_generator():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(9, 3)), rng.normal(size=(7, 3)) + 0.5
    values = kid_subsets(a, b, num_subsets=3, subset_size=4, seed=11)
    draw = np.random.default_rng(11)
    expected = []
    for _ in range(3):
        ia, ib = draw.choice(9, 4, replace=False), draw.choice(7, 4, replace=False)
        expected.append(mmd2_by_loops(a[ia], b[ib]))
    np.testing.assert_allclose(values, expected, rtol=1e-12)
    assert kernel_inception_distance(a, b, 3, 4, seed=11) == pytest.approx(np.mean(expected), rel=1e-12)


def test_kid_separates_shifted_distributions():
    rng = np.random.default_rng(0)
    a, b, shifted = rng.normal(size=(200, 8)), rng.normal(size=(200, 8)), rng.normal(size=(200, 8)) + 1.0
    same = kernel_inception_distance(a, b, num_subsets=10, subset_size=100)
    different = kernel_inception_distance(a, shifted, num_subsets=10, subset_size=100)
    assert abs(same) < 0.05 < different


# --- the Inception network ----------------------------------------------------------------------

class FakeInception(nn.Module):
    """Called like inception-2015-12-05.pt: uint8 [N, 3, H, W] -> [N, 2048] with return_features."""

    def __init__(self, width: int = 2048):
        super().__init__()
        self.register_buffer("proj", torch.randn(6, width, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        f = x.float() / 255.0
        pooled = torch.cat([f.mean(dim=(2, 3)), (f * f).mean(dim=(2, 3))], dim=1)
        features = torch.tanh(pooled @ self.proj)
        if return_features:
            return features
        return features[:, :1008]


class NoFeaturesKeyword(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().mean(dim=(2, 3))


def script_to(module: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated, but it is the file format users have
        torch.jit.script(module).save(str(path))
    return path


@pytest.fixture(scope="module")
def inception_path(tmp_path_factory) -> Path:
    return script_to(FakeInception(), tmp_path_factory.mktemp("inception") / "inception.pt")


def test_load_inception_errors_are_one_line_and_name_the_file(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(InceptionError, match="nope.pt: no such file") as e:
        load_inception(missing)
    assert "\n" not in str(e.value)
    with pytest.raises(InceptionError, match="is a folder"):
        load_inception(tmp_path)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip at all" * 10)
    with pytest.raises(InceptionError, match="junk.pt: not a TorchScript file") as e:
        load_inception(junk)
    assert "\n" not in str(e.value)

    images = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    narrow = load_inception(script_to(FakeInception(width=10), tmp_path / "narrow.pt"))
    with pytest.raises(InceptionError, match=r"narrow.pt: returned \(2, 10\) for 2 images, expected \[2, 2048\]"):
        narrow(images)
    plain = load_inception(script_to(NoFeaturesKeyword(), tmp_path / "plain.pt"))
    with pytest.raises(InceptionError, match="plain.pt: calling net.*return_features=True.*failed") as e:
        plain(images)
    assert "\n" not in str(e.value)


def test_loaded_network_matches_the_module(inception_path):
    net = load_inception(inception_path)
    images = torch.randint(0, 256, (3, 3, 20, 20), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(net(images), FakeInception()(images, return_features=True))


class ConstantGenerator:
    """Stand-in whose every image is one uint8 colour image (stored exactly through the fakes'
    rounding: value u is rendered as (u - 127.5) / 127.5)."""

    z_dim = 4

    def __init__(self, image_uint8: torch.Tensor):
        self.image = (image_uint8.float() - 127.5) / 127.5

    def __call__(self, z, c, truncation_psi=1.0, noise_mode="const"):
        return {"image": self.image[None].expand(z.shape[0], -1, -1, -1)}


def pattern(seed: int, res: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (3, res, res), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def constant_zip(tmp_path_factory) -> Path:
    """Six labelled copies of one 32 px image."""
    path = tmp_path_factory.mktemp("constant") / "constant.zip"
    image = pattern(0).permute(1, 2, 0).numpy()
    with write_dataset_zip(path) as writer:
        for i in range(6):
            writer.add_image(f"img{i:08d}.png", image, orbit_label(0.1 * i, 0.0)[0])
    return path


def test_fid_and_kid_end_to_end_through_the_loader(constant_zip, inception_path):
    """All reals are one image A. Fakes equal to A: FID 0 and KID 0 (all features coincide). Fakes
    all B: zero covariances, so FID = |phi(A) - phi(B)|^2 and KID = k(a, a) + k(b, b) - 2 k(a, b),
    with phi the scripted module's features computed directly."""
    fid_module.clear_feature_cache()
    a, b = pattern(0), pattern(1)
    same = evaluate(ConstantGenerator(a), str(constant_zip), ["fid", "kid"], num=5, inception=str(inception_path),
                    batch=2, progress=False)
    assert set(same) == {"fid", "kid", "kid/std"}
    assert abs(same["fid"]) < 1e-6 and abs(same["kid"]) < 1e-9 and same["kid/std"] == 0

    other = evaluate(ConstantGenerator(b), str(constant_zip), ["kid", "fid"], num=5, inception=str(inception_path),
                     batch=3, progress=False)
    phi = FakeInception()(torch.stack([a, b]), return_features=True).double().numpy()
    assert other["fid"] == pytest.approx(float(((phi[0] - phi[1]) ** 2).sum()), rel=1e-5)
    k = lambda u, v: kernel(u, v)  # noqa: E731
    assert other["kid"] == pytest.approx(k(phi[0], phi[0]) + k(phi[1], phi[1]) - 2 * k(phi[0], phi[1]), rel=1e-5)
    assert other["fid"] > 1e-3


def test_fid_through_the_trainer_registry_needs_an_inception_file(constant_zip, inception_path):
    dataset = ImageLabelDataset(constant_zip)
    G = ConstantGenerator(pattern(1))
    with pytest.raises(ValueError, match="--inception PATH"):
        compute_metrics(["fid"], G, dataset, MetricOptions(num_images=4, batch=2))
    out = compute_metrics(["fid", "kid"], G, dataset, MetricOptions(num_images=4, batch=2, inception=str(inception_path)))
    assert out["fid"] > 1e-3 and math.isfinite(out["kid"])


# --- analytic stand-in scenes for the view metrics ----------------------------------------------

class SphereScene:
    """Stand-in generator: a textured ball of radius 0.25 at the origin in front of a backdrop at
    depth 3.3. Depth is the exact ray-sphere distance; the colour is a function of the world point
    (view-consistent), plus, when ``view_dependent``, an offset that follows the camera's x. The
    raw density grows inwards from ``density_centre`` (the sphere's centre unless moved)."""

    RADIUS, FAR = 0.25, 3.3

    def __init__(self, resolution: int = 64, view_dependent: bool = False, density_centre=(0.0, 0.0, 0.0)):
        self.rendering_kwargs = {"avg_camera_radius": 2.7, "avg_camera_pivot": [0.0, 0.0, 0.0], "ray_start": 2.0,
                                 "ray_end": self.FAR, "depth_resolution": 8, "depth_resolution_importance": 8,
                                 "density_noise": 0.0}
        self.z_dim, self.img_resolution, self.neural_rendering_resolution = 4, resolution, resolution
        self.view_dependent = view_dependent
        self.density_centre = torch.tensor(density_centre)

    def mapping(self, z, c, truncation_psi=1, truncation_cutoff=None):
        return torch.zeros(z.shape[0], 2, 4)

    def planes(self, ws, noise_mode="const"):
        return torch.zeros(ws.shape[0], 3, 1, 1, 1)

    def render_neural(self, planes, c, resolution, options=None):
        cam2world, intrinsics = unpack_label(c)
        o, d = generate_rays(cam2world, intrinsics, resolution)
        b = (o * d).sum(-1)
        disc = b * b - ((o * o).sum(-1) - self.RADIUS ** 2)
        hit = disc > 0
        t = torch.where(hit, -b - disc.clamp_min(0).sqrt(), torch.full_like(b, self.FAR))
        p = o + t[..., None] * d
        rgb = 0.5 * torch.sin(torch.stack([9 * p[..., 0] + 5 * p[..., 1], 7 * p[..., 1] - 6 * p[..., 2] + 1,
                                           8 * p[..., 2] + 4 * p[..., 0] + 2], dim=-1))
        if self.view_dependent:
            rgb = rgb + 0.4 * cam2world[:, None, 0:1, 3] / 2.7
        rgb = torch.where(hit[..., None], rgb, torch.full_like(rgb, -0.6))
        n, r = c.shape[0], resolution
        features = torch.zeros(n, 32, r, r)
        features[:, :3] = rgb.permute(0, 2, 1).reshape(n, 3, r, r)
        return features, t.reshape(n, 1, r, r)

    def buffers(self):
        yield self.density_centre

    def mesh_fields(self, planes):
        def density(points):
            return 10 * (self.RADIUS - (points - self.density_centre).norm(dim=-1))

        return MeshFields(density, lambda p: torch.zeros_like(p), (-1.0, 1.0), None)


def test_project_points_inverts_generate_rays():
    label = orbit_label(0.3, -0.2, 2.7, (0.0, 0.1, 0.2))
    label[0, 17] = 0.02  # a little skew
    cam2world, intrinsics = unpack_label(label)
    o, d = generate_rays(cam2world, intrinsics, 8)
    uv, z = project_points(o + 2.5 * d, cam2world, intrinsics)
    centres = (torch.stack(torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="xy"), -1).reshape(-1, 2) + 0.5) / 8
    torch.testing.assert_close(uv[0], centres, atol=1e-5, rtol=0)
    assert (z > 0).all()


def test_reprojection_of_a_view_onto_itself_is_exact_and_the_occlusion_test_bites():
    G = SphereScene(32)
    label = orbit_label(0.2, 0.0, 2.7, (0.0, 0.0, 0.0))
    features, depth = G.render_neural(None, label, 32)
    image = features[:, :3]
    error, valid = reprojection_errors(image, depth, label, image, depth, label)
    assert torch.equal(valid[0], foreground_mask(depth)[0, 0])
    assert valid.sum() > 200 and error.max() < 1e-2
    # B's depth 5 % nearer than the surface: every point counts as occluded in B.
    _, occluded = reprojection_errors(image, depth, label, image, depth * 0.95, label)
    assert not occluded.any()


def test_reprojection_error_is_near_zero_for_a_consistent_scene_and_large_otherwise():
    options = MetricOptions(num_images=1)
    consistent = reprojection_metric(SphereScene(), None, options)
    inconsistent = reprojection_metric(SphereScene(view_dependent=True), None, options)
    assert consistent["reprojection/valid"] > 0.2
    assert inconsistent["reprojection/valid"] == consistent["reprojection/valid"]  # same geometry, same mask
    assert consistent["reprojection"] < 0.5  # 0..255 scale: bilinear resampling error only
    # The colour offset 0.4 * x_cam / 2.7 = 0.4 sin(yaw) changes by 0.4 |sin a - sin b| between
    # adjacent views: 127.5 times that on the 0..255 scale (pairs weighted about equally).
    yaws = np.array([-0.4, -0.2, 0.0, 0.2, 0.4])
    expected = 127.5 * 0.4 * np.abs(np.diff(np.sin(yaws))).mean()  # ~9.9
    assert inconsistent["reprojection"] == pytest.approx(expected, abs=0.3)


def test_geometry_agreement_on_the_analytic_sphere():
    options = MetricOptions(num_images=1)
    exact = geometry_metric(SphereScene(), None, options)
    assert exact["geometry"] < 1.0 and exact["geometry/within10"] > 0.99
    moved = geometry_metric(SphereScene(density_centre=(0.2, 0.0, 0.0)), None, options)
    assert moved["geometry"] > 15.0 and moved["geometry/within10"] < 0.5


def test_view_metrics_through_the_registry_need_no_data():
    out = compute_metrics(["reprojection", "geometry"], SphereScene(32), None, MetricOptions(num_images=1))
    assert {"reprojection", "reprojection/valid", "geometry", "geometry/within10"} <= set(out)
    assert {"fid", "kid", "reprojection", "geometry", "swd-depth", "swd-normals", "swd"} <= set(METRICS)


# --- SWD on ground-truth depth and normals ------------------------------------------------------

@pytest.fixture(scope="module")
def synthetic_zip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("synthetic") / "heads.zip"
    write_synthetic_dataset(path, "heads", count=8, resolution=32, seed=1)
    return path


def test_depth_and_normal_encodings():
    depth = torch.tensor([2.0, 2.25, 2.775, 3.3, 4.0]).view(1, 1, 1, 5)
    encoded = encode_depth_image(depth, 2.25, 3.3)
    assert encoded.shape == (1, 3, 1, 5)
    torch.testing.assert_close(encoded[0, :, 0], torch.tensor([-1.0, -1.0, 0.0, 1.0, 1.0]).expand(3, 5))
    n = torch.nn.functional.normalize(torch.randn(2, 3, 4, 4), dim=1)
    # The colour n * 0.5 + 0.5, read by SWD as u / 127.5 - 1 on the 0..255 scale, is n itself.
    torch.testing.assert_close(encode_normal_image(n), ((n * 0.5 + 0.5) * 255) / 127.5 - 1)


def test_ground_truth_maps_are_camera_space_with_a_backdrop(synthetic_zip):
    dataset = ImageLabelDataset(synthetic_zip)
    depth, normals, mask = (torch.from_numpy(x) for x in read_geometry(synthetic_zip, dataset.image_names[2]))
    label = torch.from_numpy(dataset.get_label(2))[None]
    d, n = ground_truth_maps(depth[None, None], normals.permute(2, 0, 1)[None], mask[None, None], label, 3.3, 32)
    m = mask[None, None]
    assert torch.equal(d[~m], torch.full_like(d[~m], 3.3)) and torch.equal(d[m], depth[None, None][m])
    expected = world_to_camera_normals(normals.permute(2, 0, 1)[None], unpack_label(label)[0])
    torch.testing.assert_close(n[0][:, mask], expected[0][:, mask], atol=1e-5, rtol=0)
    assert (n[0, 2][mask] < 0).float().mean() > 0.95  # visible surfaces face the camera (-z)
    assert torch.equal(n[0][:, ~mask], torch.tensor([0.0, 0.0, -1.0])[:, None].expand(3, int((~mask).sum())))
    # Area resizing to a coarser grid keeps unit normals.
    _, half = ground_truth_maps(depth[None, None], normals.permute(2, 0, 1)[None], mask[None, None], label, 3.3, 16)
    torch.testing.assert_close(half.norm(dim=1), torch.ones(1, 16, 16), atol=1e-5, rtol=0)


class OracleDepth:
    """Stand-in that renders a dataset's ground-truth depth (background at ray_end) for its labels,
    or, with ``flat``, a plane at constant depth."""

    def __init__(self, dataset: ImageLabelDataset, zip_path: Path, flat: bool = False):
        self.z_dim, self.neural_rendering_resolution = 4, dataset.resolution
        self.rendering_kwargs = {"ray_start": 2.25, "ray_end": 3.3}
        self.labels = torch.from_numpy(dataset.labels)
        maps = []
        for name in dataset.image_names:
            depth, _, mask = read_geometry(zip_path, name)
            maps.append(torch.from_numpy(np.where(mask, depth, 3.3)).float())
        self.depths = torch.stack(maps)[:, None]
        self.flat = flat

    def mapping(self, z, c, truncation_psi=1.0):
        return c

    def planes(self, ws, noise_mode="const"):
        return ws

    def render_neural(self, planes, c, resolution, options=None):
        index = torch.cdist(c, self.labels).argmin(dim=1)
        depth = torch.full_like(self.depths[index], 2.7) if self.flat else self.depths[index]
        return torch.zeros(c.shape[0], 32, resolution, resolution), depth


def test_swd_depth_and_normals_score_the_ground_truth_best(synthetic_zip):
    dataset = ImageLabelDataset(synthetic_zip)
    options = MetricOptions(num_images=8, batch=3)
    oracle = geometry_swd_metrics(OracleDepth(dataset, synthetic_zip), dataset, options)
    flat = geometry_swd_metrics(OracleDepth(dataset, synthetic_zip, flat=True), dataset, options)
    assert set(oracle) == {"swd-depth", "swd-depth/16", "swd-depth/32", "swd-normals", "swd-normals/16",
                           "swd-normals/32"}
    assert oracle["swd-depth"] < 1e-6  # identical depth images, identical patch positions
    assert flat["swd-depth"] > 50.0
    # Depth-map normals differ from the analytic ones (finite differences at silhouettes) but far
    # less than a flat plane's.
    assert oracle["swd-normals"] * 2 < flat["swd-normals"]


def test_swd_geometry_needs_ground_truth(tmp_path):
    path = tmp_path / "plain.zip"
    write_synthetic_dataset(path, "heads", count=2, resolution=16, geometry=False)
    dataset = ImageLabelDataset(path)
    with pytest.raises(DatasetError, match=r"plain.zip: has no ground-truth depth and normals.*swd-depth") as e:
        geometry_swd_metrics(SimpleNamespace(z_dim=4, neural_rendering_resolution=16, rendering_kwargs={}), dataset,
                             MetricOptions(num_images=2))
    assert "\n" not in str(e.value)


# --- the CLI entry point ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundled():
    return load_generator(BUNDLED, device="cpu").eval()


def test_evaluate_smoke_on_the_bundled_model(bundled, synthetic_zip):
    out = evaluate(bundled, str(synthetic_zip), ["reprojection", "geometry", "swd-normals", "swd-depth"], num=4,
                   batch=4, progress=False)
    assert list(out)[:4] == ["reprojection", "reprojection/valid", "geometry", "geometry/within10"]
    assert {"swd-depth", "swd-normals"} <= set(out)
    assert all(math.isfinite(v) for v in out.values()), out
    assert 0 < out["reprojection/valid"] <= 1 and 0 <= out["geometry"] <= 180 and out["swd-depth"] > 0
    assert not bundled.training


def test_evaluate_validates_before_rendering(bundled, inception_path, tmp_path):
    known = "swd, fid, kid, reprojection, geometry, swd-depth, swd-normals"
    with pytest.raises(ValueError, match=rf"unknown metric\(s\) 'fdi'; known: {known}$") as e:
        evaluate(bundled, None, ["fdi", "geometry"], num=1)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"metric\(s\) swd-depth need a dataset"):
        evaluate(bundled, None, ["geometry", "swd-depth"], num=1)
    with pytest.raises(ValueError, match=r"fid need the Inception feature network"):
        evaluate(bundled, "data.zip", ["fid"], num=1)
    with pytest.raises(InceptionError, match="missing.pt"):
        evaluate(bundled, "data.zip", ["kid"], num=1, inception=str(tmp_path / "missing.pt"))
    with pytest.raises(DatasetError, match="nothing.zip: no such file"):
        evaluate(bundled, str(tmp_path / "nothing.zip"), ["swd"], num=1)
    with pytest.raises(ValueError, match="num and batch"):
        evaluate(bundled, None, ["geometry"], num=0)


def test_append_results_jsonl(tmp_path):
    path = tmp_path / "results.jsonl"
    record = {"model": "g.safetensors", "data": None, "seed": 3, "num": 4,
              "metrics": {"reprojection": float("nan"), "geometry": 12.5}}
    append_results_jsonl(path, record)
    append_results_jsonl(path, dict(record, seed=4, time="2024-01-01T00:00:00+00:00"))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"model", "data", "seed", "num", "metrics", "time"}
    assert first["metrics"] == {"reprojection": None, "geometry": 12.5}  # NaN -> null: strict JSON
    assert first["time"].endswith("+00:00") and second["time"] == "2024-01-01T00:00:00+00:00"
    assert second["seed"] == 4
    assert "NaN" not in path.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="lacks num, metrics"):
        append_results_jsonl(path, {"model": "m", "data": None, "seed": 0})
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2
