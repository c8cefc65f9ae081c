"""Named camera trajectories, keyframe camera paths (spline, JSON files) and latent interpolation."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from renderers.render_args import CameraPose
from renderers.trajectories import (
    PATH_FORMAT,
    TRAJECTORIES,
    CameraPath,
    CameraPathError,
    Keyframe,
    catmull_rom_weights,
    hermite_weights,
    interpolate_latents,
    load_trajectory,
    trajectory_poses,
)

BASE = CameraPose(yaw=0.1, pitch=-0.05, radius=2.7, fov_degrees=18.837, pivot=(0.0, 0.0, 0.2))


def _angles(poses):
    return [p.yaw for p in poses], [p.pitch for p in poses]


# --- named trajectories ---------------------------------------------------------------------


@pytest.mark.parametrize("name", TRAJECTORIES)
def test_trajectory_frame_count_and_fixed_fields(name):
    poses = trajectory_poses(name, 24, BASE)
    assert len(poses) == 24
    for p in poses:
        assert (p.radius, p.fov_degrees, p.pivot) == (BASE.radius, BASE.fov_degrees, BASE.pivot)
    assert len(trajectory_poses(name, 1, BASE)) == 1


@pytest.mark.parametrize("name", ["orbit", "yaw"])
def test_trajectory_is_periodic(name):
    # Frame n would equal frame 0: sampling 2n frames, the second half repeats the first.
    n = 30
    once = trajectory_poses(name, n, BASE)
    twice = trajectory_poses(name, 2 * n, BASE)
    assert twice[0].yaw == pytest.approx(BASE.yaw + 0.0)
    for f in range(n):
        assert twice[2 * f].yaw == pytest.approx(once[f].yaw, abs=1e-12)
        assert twice[2 * f].pitch == pytest.approx(once[f].pitch, abs=1e-12)
    # Step from the last frame to the first is as small as a normal step (a seamless loop).
    yaws, pitches = _angles(once)
    steps = [math.hypot(yaws[i + 1] - yaws[i], pitches[i + 1] - pitches[i]) for i in range(n - 1)]
    wrap = math.hypot(yaws[0] - yaws[-1], pitches[0] - pitches[-1])
    assert wrap <= max(steps) + 1e-12


def test_orbit_matches_eg3d_ellipse():
    n = 40
    yaws, pitches = _angles(trajectory_poses("orbit", n, BASE))
    assert max(yaws) == pytest.approx(BASE.yaw + 0.35)
    assert min(yaws) == pytest.approx(BASE.yaw - 0.35)
    assert max(pitches) == pytest.approx(BASE.pitch + 0.25)
    assert min(pitches) == pytest.approx(BASE.pitch - 0.25)
    # EG3D: yaw = 0.35 sin(2 pi t), pitch = 0.25 cos(2 pi t)
    assert pitches[0] == pytest.approx(BASE.pitch + 0.25) and yaws[0] == pytest.approx(BASE.yaw)
    assert yaws[n // 4] == pytest.approx(BASE.yaw + 0.35)
    custom = trajectory_poses("orbit", n, BASE, yaw_range=0.5, pitch_range=0.1)
    assert max(p.yaw for p in custom) == pytest.approx(BASE.yaw + 0.5)


def test_yaw_sweep_keeps_pitch():
    yaws, pitches = _angles(trajectory_poses("yaw", 40, BASE, yaw_range=0.6))
    assert set(pitches) == {BASE.pitch}
    assert max(yaws) == pytest.approx(BASE.yaw + 0.6) and min(yaws) == pytest.approx(BASE.yaw - 0.6)


def test_circle_covers_full_turn():
    n = 36
    yaws, pitches = _angles(trajectory_poses("circle", n, BASE))
    assert set(pitches) == {BASE.pitch}
    steps = [yaws[i + 1] - yaws[i] for i in range(n - 1)]
    assert all(s == pytest.approx(2 * math.pi / n) for s in steps)
    # One more step would complete exactly one turn.
    assert yaws[-1] + 2 * math.pi / n - yaws[0] == pytest.approx(2 * math.pi)


def test_trajectory_errors():
    with pytest.raises(ValueError, match="orbit, yaw, circle"):
        trajectory_poses("spiral", 10, BASE)
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="frames"):
            trajectory_poses("orbit", bad, BASE)


# --- spline weights ---------------------------------------------------------------------------


def _curve(times, values, t, **kw):
    return sum(w * values[i] for i, w in hermite_weights(times, t, **kw))


def test_hermite_passes_through_keys_and_is_c1_with_uneven_times():
    times = [0.0, 0.7, 1.0, 2.5, 3.0]
    values = [0.0, 1.0, -0.5, 2.0, 0.3]
    for loop in (False, True):
        period = 4.0 if loop else None
        for ti, v in zip(times, values):
            assert _curve(times, values, ti, loop=loop, period=period) == v  # exact
        for ti in times[1:-1] + ([times[0], times[-1]] if loop else []):
            eps = 1e-6
            left = (_curve(times, values, ti, loop=loop, period=period)
                    - _curve(times, values, ti - eps, loop=loop, period=period)) / eps
            right = (_curve(times, values, ti + eps, loop=loop, period=period)
                     - _curve(times, values, ti, loop=loop, period=period)) / eps
            assert left == pytest.approx(right, abs=1e-4), (loop, ti)


def test_weights_sum_to_one_and_linear_option():
    times = [0.0, 1.0, 3.0]
    for t in (-1.0, 0.3, 1.7, 2.99, 5.0):
        for interp in ("spline", "linear"):
            for loop in (False, True):
                w = hermite_weights(times, t, loop=loop, period=4.5, interpolation=interp)
                assert sum(x for _, x in w) == pytest.approx(1.0)
    assert _curve(times, [0.0, 2.0, 6.0], 2.0, interpolation="linear") == pytest.approx(4.0)
    assert catmull_rom_weights(1, 0.4) == [(0, 1.0)]


# --- latent interpolation ---------------------------------------------------------------------


def test_interpolate_latents_loop_hits_keys_and_wraps():
    torch.manual_seed(0)
    keys = torch.randn(4, 3, 8)  # [K, num_ws, w_dim]
    n = 40
    out = interpolate_latents(keys, n, loop=True)
    assert out.shape == (n, 3, 8) and out.dtype == keys.dtype
    for k in range(4):
        torch.testing.assert_close(out[k * n // 4], keys[k], rtol=0, atol=1e-6)
    # Frame n would equal frame 0: sampled twice as densely, frame 2n wraps to frame 0.
    dense = interpolate_latents(keys, 2 * n, loop=True)
    torch.testing.assert_close(dense[::2], out, rtol=0, atol=1e-6)
    # The step from the last frame back to frame 0 is an ordinary step (no jump at the wrap).
    steps = (out[1:] - out[:-1]).flatten(1).norm(dim=1)
    assert (out[0] - out[-1]).norm() <= steps.max()


def test_interpolate_latents_is_c1_at_keys():
    torch.manual_seed(1)
    keys = torch.randn(5, 6, dtype=torch.float64)
    n = 5 * 2000
    out = interpolate_latents(keys, n, loop=True)
    for k in range(5):
        i = k * n // 5
        left = out[i] - out[i - 1]
        right = out[(i + 1) % n] - out[i]
        torch.testing.assert_close(left, right, rtol=0, atol=1e-5)  # O(h^2) vs O(h) steps


def test_interpolate_latents_open_and_single_key():
    torch.manual_seed(2)
    keys = torch.randn(3, 5)
    out = interpolate_latents(keys, 9, loop=False)
    torch.testing.assert_close(out[0], keys[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(out[4], keys[1], rtol=0, atol=1e-6)
    torch.testing.assert_close(out[8], keys[2], rtol=0, atol=1e-6)
    single = interpolate_latents(keys[:1], 4)
    torch.testing.assert_close(single, keys[:1].expand(4, 5))
    torch.testing.assert_close(interpolate_latents(keys, 1, loop=False), keys[:1])
    with pytest.raises(ValueError):
        interpolate_latents(keys, 0)


# --- camera paths -----------------------------------------------------------------------------


def _path(loop=False, interpolation="spline") -> CameraPath:
    return CameraPath(
        keyframes=[
            Keyframe(CameraPose(yaw=0.0, pitch=0.0), 0.0),
            Keyframe(CameraPose(yaw=0.5, pitch=0.2, fov_degrees=20.0), 1.0, seed=(3.0, 0.0)),
            Keyframe(CameraPose(yaw=-0.4, pitch=-0.1, fov_degrees=15.0), 2.5),
        ],
        fps=10.0,
        loop=loop,
        interpolation=interpolation,
    )


@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("interpolation", ["spline", "linear"])
def test_path_passes_through_keyframes(loop, interpolation):
    path = _path(loop, interpolation)
    for k in path.keyframes:
        pose = path.pose_at(k.time)
        assert (pose.yaw, pose.pitch, pose.fov_degrees) == (k.pose.yaw, k.pose.pitch, k.pose.fov_degrees)
        assert pose.radius is None and pose.pivot is None


def test_open_path_clamps_and_frame_rule():
    path = _path()
    assert path.duration == 2.5 and path.n_frames == 25
    assert path.pose_at(-1.0) == path.keyframes[0].pose
    assert path.pose_at(99.0).yaw == path.keyframes[-1].pose.yaw
    poses = path.frame_poses()
    assert len(poses) == 25
    assert poses[0].yaw == 0.0 and poses[-1].yaw == -0.4  # starts and ends on the keyframes
    assert len(path.sample(7)) == 7


def test_loop_path_wraps_smoothly():
    path = _path(loop=True)
    # Closing segment lasts the mean spacing (2.5 / 2), so the period is 3.75 s.
    assert path.duration == pytest.approx(3.75)
    assert path.n_frames == round(3.75 * 10)
    for t in (0.3, 1.7, 3.0):
        assert path.pose_at(t + path.duration).yaw == pytest.approx(path.pose_at(t).yaw, abs=1e-12)
    # C1 across the wrap point (t = 0) and the last keyframe.
    for t in (0.0, 2.5):
        eps = 1e-6
        left = (path.pose_at(t).yaw - path.pose_at(t - eps).yaw) / eps
        right = (path.pose_at(t + eps).yaw - path.pose_at(t).yaw) / eps
        assert left == pytest.approx(right, abs=1e-4)
    # Frames cover one period, end exclusive: the step back to frame 0 is a normal step.
    yaws = [p.yaw for p in path.frame_poses()]
    steps = [abs(b - a) for a, b in zip(yaws, yaws[1:])]
    assert abs(yaws[0] - yaws[-1]) <= max(steps) + 1e-12


def test_single_keyframe_is_constant():
    pose = CameraPose(yaw=0.3, pitch=0.1, radius=2.5)
    for loop in (False, True):
        path = CameraPath([Keyframe(pose, 0.0)], loop=loop)
        assert path.n_frames == 1
        assert path.pose_at(5.0) == pose
        path.retime(2.0)
        assert path.duration == 2.0 and len(path.frame_poses()) == 60
        assert all(p == pose for p in path.frame_poses())


def test_mixed_none_radius_and_pivot():
    path = CameraPath(
        [
            Keyframe(CameraPose(radius=None, pivot=None), 0.0),
            Keyframe(CameraPose(radius=3.0, pivot=(0.0, 0.1, 0.0)), 1.0),
            Keyframe(CameraPose(radius=None, pivot=None), 2.0),
        ]
    )
    # No defaults: Nones take the nearest keyframe's value -> constant, never an error.
    pose = path.pose_at(0.5)
    assert pose.radius == pytest.approx(3.0) and pose.pivot == pytest.approx((0.0, 0.1, 0.0))
    # With the model's averages as defaults, Nones mean those.
    pose = path.pose_at(0.0, radius_default=2.7, pivot_default=(0.0, 0.0, 0.2))
    assert pose.radius == 2.7 and pose.pivot == (0.0, 0.0, 0.2)
    assert path.pose_at(1.0, radius_default=2.7).radius == 3.0


def test_blend_weights_match_pose():
    path = _path()
    w = path.blend_weights_at(0.6)
    assert sum(x for _, x in w) == pytest.approx(1.0)
    assert sum(x * path.keyframes[i].pose.yaw for i, x in w) == pytest.approx(path.pose_at(0.6).yaw)


def test_editing_keeps_times_sorted():
    path = CameraPath()
    for yaw in (0.0, 0.1, 0.2):
        path.add(CameraPose(yaw=yaw))
    assert [k.time for k in path.keyframes] == [0.0, 1.0, 2.0]
    path.add(CameraPose(yaw=0.05), after=0)
    assert [k.pose.yaw for k in path.keyframes] == [0.0, 0.05, 0.1, 0.2]
    assert [k.time for k in path.keyframes] == [0.0, 0.5, 1.0, 2.0]
    assert path.move(1, +1) == 2  # move down: poses swap, times stay in their slots
    assert [k.pose.yaw for k in path.keyframes] == [0.0, 0.1, 0.05, 0.2]
    assert path.move(0, -1) == 0  # moving past the top does nothing
    path.remove(0)
    assert [k.pose.yaw for k in path.keyframes] == [0.1, 0.05, 0.2]
    path.retime(6.0)
    assert [k.time for k in path.keyframes] == [0.0, 3.0, 6.0] and path.duration == 6.0
    path.loop = True
    path.retime(6.0)
    assert [k.time for k in path.keyframes] == [0.0, 2.0, 4.0] and path.duration == pytest.approx(6.0)
    path.add(CameraPose(yaw=0.3), after=-1)  # insert at the top while the first key is at 0
    assert [k.time for k in path.keyframes] == [0.0, 1.0, 3.0, 5.0]  # others shifted by one step
    path.validate()


def test_json_round_trip(tmp_path):
    path = _path(loop=True)
    path.keyframes[0].pose.radius = 2.7
    path.keyframes[0].pose.pivot = (0.0, 0.0, 0.2)
    file = tmp_path / "path.json"
    path.save(file)
    data = json.loads(file.read_text())
    assert data["format"] == PATH_FORMAT and data["version"] == 1
    loaded = CameraPath.load(file)
    assert loaded == path
    assert loaded.keyframes[1].seed == (3.0, 0.0)
    assert [p.yaw for p in loaded.frame_poses()] == [p.yaw for p in path.frame_poses()]


def _write(tmp_path, data, name="bad.json"):
    file = tmp_path / name
    file.write_text(data if isinstance(data, str) else json.dumps(data))
    return file


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d.pop("keyframes"), "keyframes"),
        (lambda d: d.update(format="something-else"), "format"),
        (lambda d: d.update(version=2), "version"),
        (lambda d: d.update(fps=0), "fps"),
        (lambda d: d.update(interpolation="bezier"), "interpolation"),
        (lambda d: d.update(keyframes=[]), "keyframes"),
        (lambda d: d["keyframes"][1].update(time=0.0), "keyframes[1].time"),
        (lambda d: d["keyframes"][2]["pose"].pop("yaw"), "keyframes[2].pose"),
        (lambda d: d["keyframes"][0]["pose"].update(yaw="left"), "keyframes[0].pose.yaw"),
        (lambda d: d["keyframes"][0]["pose"].update(yw=1.0), "keyframes[0].pose"),
        (lambda d: d["keyframes"][0]["pose"].update(pivot=[0, 1]), "keyframes[0].pose.pivot"),
        (lambda d: d["keyframes"][1].update(seed=[1, 2, 3]), "keyframes[1].seed"),
    ],
)
def test_bad_json_errors_name_file_and_field(tmp_path, mutate, field):
    data = _path().to_json()
    mutate(data)
    file = _write(tmp_path, data)
    with pytest.raises(CameraPathError) as info:
        CameraPath.load(file)
    message = str(info.value)
    assert str(file) in message and field in message, message
    assert "\n" not in message


def test_non_finite_and_malformed_files(tmp_path):
    text = json.dumps(_path().to_json()).replace('"yaw": 0.5', '"yaw": NaN')
    with pytest.raises(CameraPathError, match=r"keyframes\[1\]\.pose\.yaw: must be finite"):
        CameraPath.load(_write(tmp_path, text))
    with pytest.raises(CameraPathError, match="not valid JSON"):
        CameraPath.load(_write(tmp_path, "{ not json"))
    with pytest.raises(CameraPathError, match="cannot read"):
        CameraPath.load(tmp_path / "missing.json")
    assert issubclass(CameraPathError, ValueError)


def test_load_trajectory(tmp_path):
    assert len(load_trajectory("orbit", 16, BASE)) == 16
    with pytest.raises(ValueError, match="orbit, yaw, circle"):
        load_trajectory("nope", 16, BASE)
    file = tmp_path / "path.json"
    path = _path()
    path.keyframes[1].pose.radius = 3.0
    path.save(file)
    own = load_trajectory(str(file), None, BASE)
    assert len(own) == path.n_frames
    resampled = load_trajectory(str(file), 16, BASE)
    assert len(resampled) == 16
    assert resampled[0].yaw == 0.0 and resampled[-1].yaw == -0.4
    # Keyframes without a radius take the base camera's (the model's average).
    assert resampled[0].radius == BASE.radius and resampled[0].pivot is None
    assert dataclasses.replace(resampled[0], radius=None) == dataclasses.replace(path.keyframes[0].pose)
