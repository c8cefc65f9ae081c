"""Feature-volume sampling conventions (ops/feature_volume.py) and VolumeGAN's FeatureVolume generator
(models/feature_volume.py)."""

from __future__ import annotations

import pytest
import torch

from models.feature_volume import FeatureVolume
from ops.feature_volume import (
    VOLUMEGAN_FFHQ_BOUNDS,
    normalize_to_bounds,
    sample_feature_volume,
    voxel_centres,
)

BOUNDS = VOLUMEGAN_FFHQ_BOUNDS  # deliberately asymmetric, so min/max mix-ups show


def _random_volume(n: int = 2, c: int = 3, d: int = 5, h: int = 6, w: int = 7) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(n, c, d, h, w, dtype=torch.float64)


def test_voxel_centres_return_the_voxels() -> None:
    volume = _random_volume()
    n, c, d, h, w = volume.shape
    centres = voxel_centres((d, h, w), BOUNDS, dtype=torch.float64)  # [D, H, W, 3]
    points = centres.reshape(1, -1, 3).expand(n, -1, -1)
    sampled = sample_feature_volume(volume, points, BOUNDS)
    expected = volume.reshape(n, c, -1).transpose(1, 2)  # [N, D*H*W, C], same (d, h, w) order
    # Exact up to float64 round-off in the coordinate normalisation (weights 1 - O(1e-16)).
    assert sampled.shape == (n, d * h * w, c)
    assert torch.allclose(sampled, expected, rtol=0, atol=1e-12)


def test_voxel_centres_float32() -> None:
    volume = _random_volume().float()
    n, c, d, h, w = volume.shape
    points = voxel_centres((d, h, w), BOUNDS).reshape(1, -1, 3).expand(n, -1, -1)
    sampled = sample_feature_volume(volume, points, BOUNDS)
    assert torch.allclose(sampled, volume.reshape(n, c, -1).transpose(1, 2), rtol=0, atol=1e-5)


@pytest.mark.parametrize("axis", [0, 1, 2])  # world x, y, z
def test_midpoint_between_neighbours_is_their_mean(axis: int) -> None:
    volume = _random_volume(n=1)
    _, c, d, h, w = volume.shape
    centres = voxel_centres((d, h, w), BOUNDS, dtype=torch.float64)
    grid_dim = {0: 2, 1: 1, 2: 0}[axis]  # x -> W, y -> H, z -> D in the [D, H, W] index
    index = [1, 2, 3]
    a = tuple(index)
    index[grid_dim] += 1
    b = tuple(index)
    mid = ((centres[a] + centres[b]) / 2).reshape(1, 1, 3)
    sampled = sample_feature_volume(volume, mid, BOUNDS)[0, 0]
    expected = (volume[0, :, a[0], a[1], a[2]] + volume[0, :, b[0], b[1], b[2]]) / 2
    assert torch.allclose(sampled, expected, rtol=0, atol=1e-12)


def test_points_outside_the_bounds_are_zero_and_the_boundary_is_inside() -> None:
    volume = _random_volume(n=1) + 10  # no voxel near zero
    _, c, d, h, w = volume.shape
    lo, hi = torch.tensor(BOUNDS, dtype=torch.float64)
    extent = hi - lo
    centre = (lo + hi) / 2
    outside = []
    for axis in range(3):
        for side, sign in ((lo, -1.0), (hi, 1.0)):
            p = centre.clone()
            # 1% of the box: well under half a voxel, where grid_sample's padding alone is not zero.
            p[axis] = side[axis] + sign * 0.01 * extent[axis]
            outside.append(p)
    outside.append(centre + 5 * extent)
    outside = torch.stack(outside)[None]
    sampled = sample_feature_volume(volume, outside, BOUNDS)
    assert torch.equal(sampled, torch.zeros(1, outside.shape[1], c, dtype=torch.float64))

    # The corners of the box are the corner voxels themselves.
    corners = torch.stack([lo, hi])[None]
    sampled = sample_feature_volume(volume, corners, BOUNDS)[0]
    assert torch.allclose(sampled[0], volume[0, :, 0, 0, 0], rtol=0, atol=1e-12)
    assert torch.allclose(sampled[1], volume[0, :, -1, -1, -1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_axis_convention_x_w_y_h_z_d(axis: int) -> None:
    d, h, w = 5, 6, 7
    size = {0: w, 1: h, 2: d}[axis]
    ramp = torch.arange(size, dtype=torch.float64)  # voxel value = its index along one grid axis
    shape = [1, 1, 1, 1, 1]
    shape[{0: 4, 1: 3, 2: 2}[axis]] = size
    volume = ramp.reshape(shape).expand(2, 1, d, h, w).contiguous()

    torch.manual_seed(1)
    lo, hi = torch.tensor(BOUNDS, dtype=torch.float64)
    points = lo + (hi - lo) * torch.rand(2, 50, 3, dtype=torch.float64)
    sampled = sample_feature_volume(volume, points, BOUNDS)[..., 0]
    # Trilinear interpolation of a linear ramp is exact: fractional index along the varying axis.
    expected = (points[..., axis] - lo[axis]) / (hi[axis] - lo[axis]) * (size - 1)
    assert torch.allclose(sampled, expected, rtol=0, atol=1e-10)

    # Moving along the two other world axes changes nothing.
    moved = points.clone()
    for other in {0, 1, 2} - {axis}:
        moved[..., other] = lo[other] + (hi[other] - lo[other]) * torch.rand(2, 50, dtype=torch.float64)
    assert torch.allclose(sample_feature_volume(volume, moved, BOUNDS)[..., 0], sampled, rtol=0, atol=1e-10)


def test_normalize_to_bounds_maps_the_box_to_unit_cube_and_checks_bounds() -> None:
    lo, hi = torch.tensor(BOUNDS)
    assert torch.allclose(normalize_to_bounds(torch.stack([lo, hi]), BOUNDS), torch.tensor([[-1.0] * 3, [1.0] * 3]))
    with pytest.raises(ValueError):
        normalize_to_bounds(lo[None], [[0, 0, 0], [1, 1, 0]])
    with pytest.raises(ValueError):
        sample_feature_volume(torch.zeros(2, 1, 2, 2, 2), torch.zeros(1, 4, 3), BOUNDS)


# --- FeatureVolume (VolumeGAN) -----------------------------------------------------------------

@pytest.fixture(scope="module")
def feature_volume() -> FeatureVolume:
    torch.manual_seed(0)
    return FeatureVolume(w_dim=512).eval()


def test_feature_volume_shape_and_structure(feature_volume: FeatureVolume) -> None:
    assert feature_volume.stage_channels == [256, 128, 64, 32]
    assert [conv.out_channels for conv in feature_volume.convs] == [256, 128, 64, 32]
    assert all(conv.kernel_size == (3, 3, 3) for conv in feature_volume.convs)
    # One linear layer predicts every stage's scale and shift.
    assert feature_volume.affine.out_features == 2 * (256 + 128 + 64 + 32)
    with torch.no_grad():
        out = feature_volume(torch.randn(2, 512))
    assert out.shape == (2, 32, 32, 32, 32)
    assert torch.isfinite(out).all()


def test_feature_volume_is_modulated_by_w0_and_starts_from_a_learned_constant(feature_volume: FeatureVolume) -> None:
    names = dict(feature_volume.named_parameters())
    assert "const" in names and names["const"].shape == (1, 256, 4, 4, 4)

    torch.manual_seed(2)
    ws = torch.randn(2, 12, 512)  # VolumeGAN: 12 ws; only ws[:, 0] drives the volume
    with torch.no_grad():
        a = feature_volume(ws)
        b = feature_volume(ws[:, 0])
        other_layers = ws.clone()
        other_layers[:, 1:] = torch.randn(2, 11, 512)
        c = feature_volume(other_layers)
        swapped = ws.flip(0)
        e = feature_volume(swapped)
    assert torch.equal(a, b)
    assert torch.equal(a, c)
    assert (a[0] - a[1]).abs().max() > 1e-3  # different w, different volume (AdaIN)
    assert torch.allclose(e, a.flip(0))

    # The constant and the style layer both receive gradients.
    feature_volume.zero_grad()
    feature_volume(ws[:1, 0]).square().mean().backward()
    assert names["const"].grad is not None and names["const"].grad.abs().sum() > 0
    assert names["affine.weight"].grad.abs().sum() > 0
    feature_volume.zero_grad()


def test_feature_volume_output_samples_over_ffhq_bounds(feature_volume: FeatureVolume) -> None:
    with torch.no_grad():
        volume = feature_volume(torch.randn(1, 512))
    points = voxel_centres((32, 32, 32), BOUNDS)[5, 6, 7].reshape(1, 1, 3)
    features = sample_feature_volume(volume, points, BOUNDS)
    assert features.shape == (1, 1, 32)
    assert torch.allclose(features[0, 0], volume[0, :, 5, 6, 7], atol=1e-5)


# --- VolumeGAN's official variants ------------------------------------------------------------------

def test_border_mode_clamps_to_the_border_voxels() -> None:
    """``outside='border'`` (VolumeGAN's own sampler): grid_sample with border padding inside and outside
    the box, and a point beyond a face reads the face's value."""
    import torch.nn.functional as F

    volume = _random_volume()
    n, c = volume.shape[:2]
    lo, hi = torch.tensor(BOUNDS[0], dtype=torch.float64), torch.tensor(BOUNDS[1], dtype=torch.float64)
    torch.manual_seed(1)
    points = lo + (hi - lo) * (torch.rand(n, 200, 3, dtype=torch.float64) * 1.4 - 0.2)  # ~half outside
    ours = sample_feature_volume(volume, points, BOUNDS, outside="border")
    grid = normalize_to_bounds(points, BOUNDS)[:, :, None, None, :]
    reference = F.grid_sample(volume, grid, mode="bilinear", padding_mode="border", align_corners=True)
    assert torch.allclose(ours, reference.reshape(n, c, -1).transpose(1, 2), atol=1e-12)
    beyond = points.clone()
    beyond[..., 0] = hi[0] + 1.0
    on_face = points.clone()
    on_face[..., 0] = hi[0]
    inside = ((on_face >= lo) & (on_face <= hi)).all(-1)
    got = sample_feature_volume(volume, beyond, BOUNDS, outside="border")[inside]
    want = sample_feature_volume(volume, on_face, BOUNDS, outside="border")[inside]
    assert torch.allclose(got, want, atol=1e-12)
    with pytest.raises(ValueError, match="outside"):
        sample_feature_volume(volume, points, BOUNDS, outside="wrap")


def test_explicit_instance_norm_matches_torch() -> None:
    torch.manual_seed(0)
    a = FeatureVolume(32, resolution=8, base_channels=8, out_channels=4)
    b = FeatureVolume(32, resolution=8, base_channels=8, out_channels=4, norm="explicit")
    b.load_state_dict(a.state_dict())
    w = torch.randn(2, 32)
    assert torch.allclose(a(w), b(w), atol=1e-5)
    with pytest.raises(ValueError, match="norm"):
        FeatureVolume(32, resolution=8, norm="batch")
