"""EG3D camera conventions: labels, orbit poses, focal/FOV relations and ray generation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ops.camera import (
    FFHQ_FOCAL,
    LABEL_DIM,
    eg3d_focal_to_fov,
    eg3d_fov_to_focal,
    focal_to_fov,
    fov_to_focal,
    generate_rays,
    intrinsics_from_focal,
    lookat_pose,
    orbit_label,
    orbit_pose,
    pack_label,
    unpack_label,
)

FIXTURE = Path("/work/shared/fixtures/eg3d_ref128/cases.npz")
FIXTURE_ANGLES = [(0.0, 0.0), (0.4, -0.2), (-0.3, 0.15)]  # (yaw, pitch) of cases 0, 1, 2
EG3D_VISUALIZER_FOV = 18.837


def _random_rotation(n: int, generator: torch.Generator) -> torch.Tensor:
    """[n, 3, 3] proper rotations from QR of Gaussian matrices."""
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=generator))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    q[torch.det(q) < 0, :, 0] *= -1
    return q


# --- labels -----------------------------------------------------------------------------------

def test_pack_unpack_round_trip() -> None:
    g = torch.Generator().manual_seed(0)
    cam2world = torch.eye(4).repeat(3, 1, 1)
    cam2world[:, :3, :3] = _random_rotation(3, g)
    cam2world[:, :3, 3] = torch.randn(3, 3, generator=g)
    intrinsics = intrinsics_from_focal(4.2647).repeat(3, 1, 1)
    intrinsics[1, 0, 1] = 0.01  # skew must survive the row-major layout

    label = pack_label(cam2world, intrinsics)
    assert label.shape == (3, LABEL_DIM)
    # Row-major: entry 3 is the x translation, entry 16 is fx, entry 17 the skew.
    assert torch.equal(label[:, 3], cam2world[:, 0, 3])
    assert torch.equal(label[:, 16], intrinsics[:, 0, 0])
    assert label[1, 17] == pytest.approx(0.01)
    c2w_back, k_back = unpack_label(label)
    assert torch.equal(c2w_back, cam2world)
    assert torch.equal(k_back, intrinsics)

    # A single [3, 3] intrinsics matrix is shared by the batch.
    shared = pack_label(cam2world, intrinsics_from_focal(2.0))
    assert torch.equal(unpack_label(shared)[1], intrinsics_from_focal(2.0).expand(3, 3, 3))


def test_unpack_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError):
        unpack_label(torch.zeros(2, 24))
    with pytest.raises(ValueError):
        unpack_label(torch.zeros(25))


# --- poses ------------------------------------------------------------------------------------

def test_frontal_camera_axes() -> None:
    cam2world = orbit_pose(0.0, 0.0)[0]
    # float32 cos(pi/2) is ~-4e-8, so x is ~1e-7 rather than 0 (EG3D's labels show the same).
    assert torch.allclose(cam2world[:3, 3], torch.tensor([0.0, 0.0, 2.7]), atol=1e-6)
    right, down, forward = cam2world[:3, 0], cam2world[:3, 1], cam2world[:3, 2]
    # The pivot (0, 0, 0.2) is straight ahead, so the camera looks down -z ...
    assert torch.allclose(forward, torch.tensor([0.0, 0.0, -1.0]), atol=1e-6)
    # ... with OpenCV axes: camera y is world-down and camera x is world +x.
    assert torch.allclose(down, torch.tensor([0.0, -1.0, 0.0]), atol=1e-6)
    assert torch.allclose(right, torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    assert torch.equal(cam2world[3], torch.tensor([0.0, 0.0, 0.0, 1.0]))


@pytest.mark.parametrize("yaw,pitch", [(0.0, 0.0), (0.4, -0.2), (-1.1, 0.7), (2.5, -1.2)])
def test_pose_rotation_is_proper_and_orbits(yaw: float, pitch: float) -> None:
    pivot = torch.tensor([0.1, -0.05, 0.2])
    cam2world = orbit_pose(yaw, pitch, radius=2.7, pivot=pivot)[0].double()
    rotation = cam2world[:3, :3]
    assert torch.allclose(rotation.T @ rotation, torch.eye(3, dtype=torch.float64), atol=1e-6)
    assert torch.det(rotation).item() == pytest.approx(1.0, abs=1e-6)
    origin = cam2world[:3, 3]
    # EG3D orbits the world origin (not the pivot) and looks at the pivot.
    assert origin.norm().item() == pytest.approx(2.7, abs=1e-5)
    to_pivot = (pivot.double() - origin) / (pivot.double() - origin).norm()
    assert torch.allclose(rotation[:, 2], to_pivot, atol=1e-6)
    # Camera x stays horizontal (no roll) in a y-up world.
    assert abs(rotation[1, 0].item()) < 1e-6


def test_orbit_angle_mapping() -> None:
    """Yaw > 0 moves the camera towards +x (x = r sin(yaw) at pitch 0); pitch > 0 lowers it."""
    right = orbit_pose(0.5, 0.0)[0, :3, 3]
    assert right[0].item() == pytest.approx(2.7 * math.sin(0.5), abs=1e-5)
    assert abs(right[1].item()) < 1e-6
    low = orbit_pose(0.0, 0.3)[0, :3, 3]
    # phi = arccos(1 - 2v/pi): v = pi/2 + 0.3 gives y = r cos(phi) = -r * 0.6 / pi.
    assert low[1].item() == pytest.approx(-2.7 * 0.6 / math.pi, abs=1e-5)
    same = lookat_pose(math.pi / 2 - 0.5, math.pi / 2, 2.7, (0.0, 0.0, 0.2))
    assert torch.equal(same, orbit_pose(-0.5, 0.0))


@pytest.mark.skipif(not FIXTURE.exists(), reason="EG3D reference fixture not available")
def test_orbit_label_reproduces_eg3d_fixture() -> None:
    cases = np.load(FIXTURE)
    focal = eg3d_fov_to_focal(EG3D_VISUALIZER_FOV)
    for i, (yaw, pitch) in enumerate(FIXTURE_ANGLES):
        expected = torch.from_numpy(cases[f"{i}_c"])
        label = orbit_label(yaw, pitch, focal=focal)
        # Our float32 ops run in EG3D's order, so the labels agree bit for bit here. The bound
        # allows ~4 ulp at the largest entry (ulp(2.7) = 2.4e-7) for other libm sin/cos/acos
        # implementations; a formula difference (e.g. 3.14 for pi) is ~2e-3.
        assert torch.allclose(label, expected, rtol=0, atol=1e-6), (i, (label - expected).abs().max())


# --- focal length and field of view -----------------------------------------------------------

@pytest.mark.parametrize("fov", [5.0, 12.0, 18.837, 49.13, 90.0])
def test_fov_focal_round_trips(fov: float) -> None:
    assert focal_to_fov(fov_to_focal(fov)) == pytest.approx(fov, rel=1e-12)
    assert eg3d_focal_to_fov(eg3d_fov_to_focal(fov)) == pytest.approx(fov, rel=1e-12)


def test_eg3d_focal_differs_from_pinhole() -> None:
    eg3d = eg3d_fov_to_focal(EG3D_VISUALIZER_FOV)
    pinhole = fov_to_focal(EG3D_VISUALIZER_FOV)
    assert eg3d == pytest.approx(4.2634, abs=1e-4)
    # True pinhole: 1 / (2 tan(fov / 2)) = 3.0142; EG3D's extra 1/1.414 and missing 2 change it.
    assert pinhole == pytest.approx(1 / (2 * math.tan(math.radians(EG3D_VISUALIZER_FOV / 2))), rel=1e-12)
    assert pinhole == pytest.approx(3.0142, abs=1e-3)
    assert abs(eg3d - pinhole) > 1.0
    # FFHQ's focal 4.2647 is a 13.37 degree pinhole camera.
    assert focal_to_fov(FFHQ_FOCAL) == pytest.approx(13.37, abs=0.01)


# --- rays -------------------------------------------------------------------------------------

def _project(points: torch.Tensor, cam2world: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """World points [M, 3] -> normalised pixel coordinates (u, v) [M, 2] (float64 reference)."""
    world2cam = torch.linalg.inv(cam2world.double())
    cam = points.double() @ world2cam[:3, :3].T + world2cam[:3, 3]
    uvw = cam @ intrinsics.double().T
    return uvw[:, :2] / uvw[:, 2:]


def test_centre_ray_points_forward() -> None:
    cam2world = orbit_pose(torch.tensor([0.0, 0.3]), torch.tensor([0.0, -0.25]))
    intrinsics = intrinsics_from_focal(FFHQ_FOCAL).expand(2, 3, 3)
    resolution = 5
    origins, directions = generate_rays(cam2world, intrinsics, resolution)
    assert origins.shape == directions.shape == (2, resolution**2, 3)
    assert torch.allclose(origins, cam2world[:, None, :3, 3].expand_as(origins))
    centre = (resolution // 2) * resolution + resolution // 2  # raster order: row * R + column
    assert torch.allclose(directions[:, centre], cam2world[:, :3, 2], atol=1e-6)


def test_corner_ray_goes_up_left_and_directions_are_unit() -> None:
    cam2world = orbit_pose(torch.tensor([0.2]), torch.tensor([0.1]))
    intrinsics = intrinsics_from_focal(2.0)[None]
    resolution = 8
    _, directions = generate_rays(cam2world, intrinsics, resolution)
    assert torch.allclose(directions.norm(dim=-1), torch.ones(1, resolution**2), atol=1e-6)
    cam_dirs = directions[0] @ cam2world[0, :3, :3]  # world -> camera axes
    first, last_of_row, first_of_last_row = cam_dirs[0], cam_dirs[resolution - 1], cam_dirs[-resolution]
    # Pixel (0, 0) is the top-left: negative x_cam (left) and negative y_cam (up, as y is down).
    assert first[0] < 0 and first[1] < 0 and first[2] > 0
    # Columns run along +x_cam and rows along +y_cam.
    assert last_of_row[0] > 0 and last_of_row[1] < 0
    assert first_of_last_row[0] < 0 and first_of_last_row[1] > 0
    # Its pinhole slope is exactly the pixel centre's offset over the focal length.
    expected = (0.5 / resolution - 0.5) / 2.0
    assert (first[0] / first[2]).item() == pytest.approx(expected, abs=1e-6)
    assert (first[1] / first[2]).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("skew", [0.0, 0.07])
def test_ray_point_projects_to_its_pixel_centre(skew: float) -> None:
    cam2world = orbit_pose(torch.tensor([0.4]), torch.tensor([-0.2]))
    intrinsics = torch.tensor([[[3.1, skew, 0.46], [0.0, 2.9, 0.53], [0.0, 0.0, 1.0]]])
    resolution = 7
    origins, directions = generate_rays(cam2world, intrinsics, resolution)
    rows, cols = torch.tensor([0, 2, 6, 5]), torch.tensor([6, 1, 0, 3])  # asymmetric pixels
    index = rows * resolution + cols
    depths = torch.tensor([2.0, 2.5, 3.1, 0.7])[:, None]
    points = origins[0, index] + depths * directions[0, index]
    uv = _project(points, cam2world[0], intrinsics[0])
    expected = torch.stack(((cols + 0.5) / resolution, (rows + 0.5) / resolution), dim=-1).double()
    # float32 rays at distance ~3 carry ~1e-7 relative error; in pixels that is far below 1e-5.
    assert torch.allclose(uv, expected, atol=1e-5), (uv - expected).abs().max()
