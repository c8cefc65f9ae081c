"""The camera path over the viewport, its preview timing and the depth colour bar (no window needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from renderers.render_args import CameraPose
from renderers.trajectories import CameraPath, Keyframe

RADIUS, PIVOT = 2.7, (0.0, 0.0, 0.2)
RECT = (100.0, 50.0, 400.0, 400.0)


def _label(pose: CameraPose) -> torch.Tensor:
    from renderers.renderer import camera_label

    return camera_label(pose, {"avg_camera_radius": RADIUS, "avg_camera_pivot": list(PIVOT)}, "cpu")[0]


def _path(*poses: CameraPose, loop: bool = False) -> CameraPath:
    return CameraPath([Keyframe(pose=p, time=float(i)) for i, p in enumerate(poses)], fps=10.0, loop=loop)


def test_a_keyframe_on_the_optical_axis_is_at_the_image_centre_and_one_behind_is_left_out():
    from app.path_view import project_path

    view = CameraPose(yaw=0.0, pitch=0.0, radius=6.0, fov_degrees=60.0)
    ahead = CameraPose(yaw=0.0, pitch=0.0, radius=2.0, fov_degrees=60.0)  # between the view and the pivot
    behind = CameraPose(yaw=0.0, pitch=0.0, radius=9.0, fov_degrees=60.0)  # behind the view camera
    drawn = project_path(_path(ahead, behind), _label(view), RECT, RADIUS, PIVOT)
    assert [m[0] for m in drawn.markers] == [0]
    _, x, y = drawn.markers[0]
    assert x == pytest.approx(300.0, abs=1e-3) and y == pytest.approx(250.0, abs=1e-3)
    # The straight segment from 2 to 9 passes through the view camera: only its visible part is drawn.
    assert len(drawn.curves) == 1
    assert drawn.curves[0][0] == pytest.approx((x, y), abs=1e-6)


def test_keyframes_to_the_side_land_on_either_side_and_the_curve_passes_through_them():
    from app.path_view import project_path

    view = CameraPose(yaw=0.0, pitch=0.0, radius=8.0, fov_degrees=60.0)
    keys = [CameraPose(yaw=y, pitch=0.0, fov_degrees=18.0) for y in (-0.4, 0.0, 0.4)]
    drawn = project_path(_path(*keys), _label(view), RECT, RADIUS, PIVOT)
    xs = [x for _, x, _ in drawn.markers]
    assert len(xs) == 3 and xs[0] < 300.0 - 20 < 300.0 + 20 < xs[2] or xs[2] < 300.0 - 20 < 300.0 + 20 < xs[0]
    assert xs[1] == pytest.approx(300.0, abs=1e-3)
    (curve,) = drawn.curves
    # An open path's curve starts on the first keyframe and ends on the last (the video's frames).
    assert curve[0] == pytest.approx(drawn.markers[0][1:], abs=1e-6)
    assert curve[-1] == pytest.approx(drawn.markers[2][1:], abs=1e-6)
    # ... and passes through the middle one
    assert min(math.dist(p, drawn.markers[1][1:]) for p in curve) < 1.0


def test_the_curve_is_the_videos_interpolation():
    """The polyline's points are the poses a video of the path is made of (CameraPath.sample), not a
    second spline: with as many samples as the video has frames they are the video's cameras."""
    from app.path_view import camera_centres, curve_poses

    keys = [CameraPose(yaw=y, pitch=p, fov_degrees=18.0) for y, p in ((-0.5, 0.1), (0.2, -0.2), (0.6, 0.3))]
    path = _path(*keys)
    poses = curve_poses(path, RADIUS, PIVOT, samples=1)
    assert len(poses) == path.n_frames
    assert poses == path.frame_poses(RADIUS, PIVOT)
    loop = _path(*keys, loop=True)
    closed = curve_poses(loop, RADIUS, PIVOT, samples=12)
    assert closed[-1] == closed[0]  # a loop's curve returns to its start
    centres = camera_centres(closed, RADIUS, PIVOT)
    # the cameras of the curve, on EG3D's orbit sphere of the model's radius around the world origin
    assert torch.allclose(centres.norm(dim=1), torch.full((len(closed),), RADIUS), atol=1e-5)


def test_preview_time_follows_the_video_frames_and_ends_on_the_last_frame():
    from app.path_view import preview_time

    path = CameraPath([Keyframe(CameraPose(yaw=0.0), 0.5), Keyframe(CameraPose(yaw=1.0), 2.0)])
    assert preview_time(path, 0.0) == 0.0 and preview_time(path, 1.0) == 1.0
    assert preview_time(path, 99.0) == path.duration == 2.0
    assert path.pose_at(preview_time(path, 99.0)).yaw == 1.0
    path.loop = True  # a loop plays one period from its first keyframe
    assert preview_time(path, 0.0) == 0.5 and preview_time(path, 99.0) == 0.5 + path.duration


@pytest.mark.parametrize("invert", [False, True])
def test_the_depth_bar_has_the_depth_images_colours(invert):
    from app.path_view import depth_bar_colors
    from renderers.colormaps import colorize_depth, colormap_lut

    near, far, rows = 2.2, 3.4, 50
    colours = np.array(depth_bar_colors(near, far, "turbo", invert, rows))
    depths = torch.linspace(near, far, rows)
    image = colorize_depth(depths.reshape(rows, 1), near, far, "turbo", invert)[:, 0].numpy()
    assert np.abs(colours.astype(int) - image.astype(int)).max() <= 3  # the same map (up to rounding)
    lut = colormap_lut("turbo")
    top, bottom = (lut[0], lut[-1]) if invert else (lut[-1], lut[0])  # near is the map's high end
    assert (colours[0] == top).all() and (colours[-1] == bottom).all()


def test_an_edited_path_is_projected_anew():
    """The keyframes' world positions are kept between UI frames; editing the path replaces them."""
    from app.path_view import project_path

    view = _label(CameraPose(yaw=0.0, pitch=0.0, radius=8.0, fov_degrees=60.0))
    path = _path(CameraPose(yaw=-0.3), CameraPose(yaw=0.3))
    before = project_path(path, view, RECT, RADIUS, PIVOT)
    assert project_path(path, view, RECT, RADIUS, PIVOT) == before
    path.keyframes[1].pose.yaw = 0.0  # moved onto the optical axis
    after = project_path(path, view, RECT, RADIUS, PIVOT)
    assert after.markers[0] == before.markers[0] and after.markers[1] != before.markers[1]
    assert after.markers[1][1] == pytest.approx(300.0, abs=1e-3)
    path.loop = True  # a loop adds the closing segment to the curve
    assert len(project_path(path, view, RECT, RADIUS, PIVOT).curves[0]) == len(after.curves[0]) + 1
