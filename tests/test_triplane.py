"""Tri-plane sampling: both axis sets, against features placed at known plane texels."""

from __future__ import annotations

import pytest
import torch

from ops.triplane import plane_axes, project_onto_planes, sample_triplane, sample_triplane_mean


def test_official_axes_project_xy_xz_zx():
    points = torch.tensor([[[0.1, 0.2, 0.3]]])
    proj = project_onto_planes(plane_axes("official"), points)  # [N * P, M, 2]
    assert torch.allclose(proj[0], torch.tensor([[0.1, 0.2]]))
    assert torch.allclose(proj[1], torch.tensor([[0.1, 0.3]]))
    # EG3D's third plane: (z, x) -- the xz pair again, transposed; y-z is never seen (issues #53/#67).
    assert torch.allclose(proj[2], torch.tensor([[0.3, 0.1]]))


def test_corrected_axes_cover_every_axis_pair():
    points = torch.tensor([[[0.1, 0.2, 0.3]]])
    proj = project_onto_planes(plane_axes("corrected"), points)
    pairs = [tuple(round(v, 6) for v in p.tolist()) for p in proj[:, 0]]
    assert pairs == [(0.1, 0.2), (0.1, 0.3), (0.3, 0.2)]


def test_official_axes_are_blind_to_y_on_two_planes():
    """Moving a point along y changes only plane 0's sample with official axes."""
    torch.manual_seed(0)
    planes = torch.randn(1, 3, 4, 16, 16)
    a = torch.tensor([[[0.2, -0.3, 0.1]]])
    b = torch.tensor([[[0.2, 0.35, 0.1]]])
    fa = sample_triplane(plane_axes("official"), planes, a, box_warp=1.0)
    fb = sample_triplane(plane_axes("official"), planes, b, box_warp=1.0)
    assert not torch.allclose(fa[:, 0], fb[:, 0])
    assert torch.equal(fa[:, 1:], fb[:, 1:])
    fa = sample_triplane(plane_axes("corrected"), planes, a, box_warp=1.0)
    fb = sample_triplane(plane_axes("corrected"), planes, b, box_warp=1.0)
    assert not torch.allclose(fa[:, 2], fb[:, 2])


@pytest.mark.parametrize("axes", ["official", "corrected"])
def test_texel_centres_return_their_values(axes):
    """A point whose projection lands on a texel centre reads exactly that texel (bilinear, align_corners=False)."""
    res, box = 8, 1.6
    planes = torch.arange(3 * res * res, dtype=torch.float32).reshape(1, 3, 1, res, res)
    i, j = 5, 2  # row (second plane coordinate), column (first plane coordinate)
    u = (2 * j + 1) / res - 1  # normalised grid coordinates of the texel centre
    v = (2 * i + 1) / res - 1
    inverse_axes = plane_axes(axes)
    for p in range(3):
        # World point with plane-p coordinates (u, v): solve coords @ inv(M) = (u, v, 0) => coords = (u, v, 0) @ M.
        target = torch.tensor([u, v, 0.0]) @ inverse_axes[p] * (box / 2)
        feat = sample_triplane(inverse_axes, planes, target.reshape(1, 1, 3), box_warp=box)
        assert feat[0, p, 0, 0].item() == planes[0, p, 0, i, j].item()


def test_outside_the_box_is_zero():
    planes = torch.ones(2, 3, 5, 8, 8)
    points = torch.tensor([[[3.0, 0.0, 0.0]], [[0.0, 0.0, -3.0]]])
    feats = sample_triplane(plane_axes("corrected"), planes, points, box_warp=1.0)
    assert feats.shape == (2, 3, 1, 5)
    # x outside zeroes every plane that uses x (all but the zy one); z outside likewise.
    assert feats[0, 0].abs().max() == 0 and feats[0, 1].abs().max() == 0 and feats[0, 2].min() == 1
    assert feats[1, 1].abs().max() == 0 and feats[1, 2].abs().max() == 0 and feats[1, 0].min() == 1


def test_unknown_axes_name():
    with pytest.raises(ValueError, match="unknown tri-plane axes"):
        plane_axes("diagonal")


@pytest.mark.parametrize("align_corners", [False, True])
def test_the_averaged_sampling_equals_the_mean_of_the_per_plane_samples(align_corners):
    """``sample_triplane_mean`` (channels-last planes, averaged before the transpose) gives
    ``sample_triplane(...).mean(1)`` bit for bit, and the same gradients for planes and points."""
    g = torch.Generator().manual_seed(3)
    planes = torch.randn(2, 3, 8, 16, 16, generator=g, requires_grad=True)
    points = (torch.rand(2, 500, 3, generator=g) * 1.2 - 0.6).requires_grad_(True)
    axes = plane_axes("corrected")
    reference = sample_triplane(axes, planes, points, box_warp=1.0, align_corners=align_corners).mean(1)
    averaged = sample_triplane_mean(axes, planes, points, box_warp=1.0, align_corners=align_corners)
    assert averaged.shape == (2, 500, 8) and torch.equal(averaged, reference)
    weights = torch.randn(2, 500, 8, generator=g)
    grads_reference = torch.autograd.grad((reference * weights).sum(), (planes, points))
    grads_averaged = torch.autograd.grad((averaged * weights).sum(), (planes, points))
    for a, b in zip(grads_reference, grads_averaged):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
