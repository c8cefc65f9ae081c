"""The app in a real window (Xvfb + Mesa in CI): session scripts end to end, and injected input.

Input is injected through the window's own glfw callbacks (``AppWindow.*_callback``), the functions
glfw calls for real events, so a test drag takes exactly the path of a user's drag. Every check
reads back real output: screenshots from the GL framebuffer, the written mesh and video files.
Without a display or an OpenGL 3.3 context the module is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO_ROOT

BUNDLED = REPO_ROOT / "assets" / "default_generator.safetensors"
WINDOW = (900, 600)

pytestmark = pytest.mark.skipif(not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")),
                                reason="no display (run under xvfb-run, as `make test` does)")


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.float32)


# --- session scripts through the command line ---------------------------------------------------

@pytest.fixture(scope="module")
def scripted_session(tmp_path_factory):
    """One `visualizer.py --script S.json --exit` run that visits every mode and capture."""
    out = tmp_path_factory.mktemp("session")
    actions = [
        {"wait": True},
        {"frames": 3},
        {"panels": {"Capture": True, "Performance": True}},
        {"screenshot": str(out / "rgb.png")},
        {"screenshot": str(out / "window.png"), "what": "window"},
        {"drag": [150, 0]},
        {"wait": True},
        {"screenshot": str(out / "rgb_dragged.png")},
        {"key": "R"},
        {"set": {"mode": "depth", "colormap": "turbo"}},
        {"screenshot": str(out / "depth.png")},
        {"set": {"mode": "normals"}},
        {"screenshot": str(out / "normals.png")},
        {"set": {"mode": "raw"}},
        {"screenshot": str(out / "raw.png")},
        {"set": {"mode": "side"}},
        {"screenshot": str(out / "side.png")},
        {"set": {"mode": "mesh", "mesh_resolution": 64}},
        {"screenshot": str(out / "mesh.png"), "what": "window"},
        {"set": {"mode": "rgb"}},
        {"export_mesh": str(out / "mesh.ply"), "res": 64},
        {"video": str(out / "orbit.mp4"), "frames": 9, "trajectory": "orbit", "fps": 10},
        {"video": str(out / "side.mp4"), "frames": 4, "trajectory": "yaw", "mode": "side"},
        {"screenshot": str(out / "rgb512.png"), "height": 512},
        {"video": str(out / "orbit512.mp4"), "frames": 3, "trajectory": "orbit", "height": 512},
    ]
    script = out / "session.json"
    script.write_text(json.dumps(actions))
    cmd = [sys.executable, str(REPO_ROOT / "visualizer.py"), str(BUNDLED), "--script", str(script), "--exit",
           "--device", "cpu", "--size", f"{WINDOW[0]}x{WINDOW[1]}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result


def test_script_screenshots_show_the_image_at_native_size(scripted_session):
    out, result = scripted_session
    rgb = _png(out / "rgb.png")
    assert rgb.shape == (64, 64, 3)  # the bundled model's native size
    assert rgb.std() > 10, "the image is flat"
    assert "script finished" in result.stdout


def test_script_captures_the_bundled_model_at_512_pixels(scripted_session):
    """Issue 16: a 512-px screenshot and a 512-px video of the bundled (64 px) model from a script,
    resampled from the native image rather than repeated pixels."""
    import imageio_ffmpeg

    out, _ = scripted_session
    big = _png(out / "rgb512.png")
    assert big.shape == (512, 512, 3)
    blocks = big.reshape(64, 8, 64, 8, 3)
    assert (blocks != blocks[:, :1, :, :1]).any()  # not a nearest-neighbour enlargement
    reader = imageio_ffmpeg.read_frames(str(out / "orbit512.mp4"))
    assert next(reader)["size"] == (512, 512)
    assert sum(1 for _ in reader) == 3


def test_script_window_screenshot_is_the_whole_window(scripted_session):
    out, _ = scripted_session
    window = _png(out / "window.png")
    assert window.shape == (WINDOW[1], WINDOW[0], 3)
    # The viewport (right of the 390 px panel) holds the model's image; the panel is darker UI.
    viewport, panel = window[:, 400:], window[:, :380]
    assert viewport.std() > 10 and panel.std() > 5


def test_script_drag_changes_the_view(scripted_session):
    out, _ = scripted_session
    before, after = _png(out / "rgb.png"), _png(out / "rgb_dragged.png")
    assert np.abs(before - after).mean() > 5, "dragging the camera did not change the image"


def test_script_modes_differ_and_have_their_layouts(scripted_session):
    out, _ = scripted_session
    rgb, depth, normals, raw = (_png(out / f"{m}.png") for m in ("rgb", "depth", "normals", "raw"))
    side = _png(out / "side.png")
    assert depth.shape == normals.shape == raw.shape == (64, 64, 3)
    assert side.shape == (64, 128, 3)
    assert np.abs(depth - rgb).mean() > 20, "depth view looks like the RGB view"
    assert np.abs(normals - depth).mean() > 20
    # side by side: the left half is the RGB image, the right half the depth colormap.
    assert np.abs(side[:, :64] - rgb).mean() < 2
    assert np.abs(side[:, 64:] - depth).mean() < 2
    # depth goes through a colormap: strongly coloured, unlike a grey ramp.
    assert (depth.max(axis=2) - depth.min(axis=2)).mean() > 40


def test_script_mesh_view_and_export(scripted_session):
    import trimesh

    out, result = scripted_session
    shot = _png(out / "mesh.png")
    background = np.array([0.11, 0.11, 0.13]) * 255
    lit = np.abs(shot[:, 400:] - background).sum(axis=2) > 30
    assert lit.mean() > 0.05, "the mesh view shows (almost) nothing"
    mesh = trimesh.load(out / "mesh.ply", force="mesh")
    assert len(mesh.faces) > 100
    lo, hi = mesh.bounds
    assert (lo >= -0.5 - 1e-4).all() and (hi <= 0.5 + 1e-4).all(), "mesh leaves the tri-plane box"
    assert (hi - lo).min() > 0.2, f"implausibly small mesh: extent {hi - lo}"
    assert "mesh.ply" in result.stdout


def test_script_videos_have_the_requested_frames(scripted_session):
    import imageio_ffmpeg

    out, _ = scripted_session
    for name, frames, size in (("orbit.mp4", 9, (64, 64)), ("side.mp4", 4, (128, 64))):
        reader = imageio_ffmpeg.read_frames(str(out / name))
        meta = next(reader)
        decoded = list(reader)
        assert len(decoded) == frames, name
        assert tuple(meta["size"]) == size, name
        assert meta["codec"] == "h264", name


def test_bad_script_exits_with_status_1_and_names_the_action(tmp_path):
    script = tmp_path / "bad.json"
    script.write_text(json.dumps([{"wait": True}, {"load": str(tmp_path / "missing.safetensors")}]))
    cmd = [sys.executable, str(REPO_ROOT / "visualizer.py"), str(BUNDLED), "--script", str(script), "--exit",
           "--device", "cpu", "--size", "640x480"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "script action 1" in result.stderr and "missing.safetensors" in result.stderr


def test_a_script_whose_model_fails_to_load_fails_its_waits_at_once(tmp_path):
    """Bug: a script whose model failed to load waited for a frame that never came (600 s)."""
    script = tmp_path / "s.json"
    script.write_text(json.dumps([{"wait": True}, {"screenshot": str(tmp_path / "x.png")}, {"set": {"seed": 2}}]))
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    cmd = [sys.executable, str(REPO_ROOT / "visualizer.py"), str(corrupt), "--script", str(script), "--exit",
           "--device", "cpu", "--size", "640x480"]
    started = time.monotonic()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert time.monotonic() - started < 120
    assert result.returncode == 1
    failed = [line for line in result.stderr.splitlines() if line.startswith("error: script action")]
    assert len(failed) == 2 and "action 0" in failed[0] and "action 1" in failed[1], result.stderr
    assert all("no model is loaded" in line for line in failed)


def test_unknown_script_setting_is_refused_before_the_window_opens(tmp_path):
    script = tmp_path / "bad.json"
    script.write_text(json.dumps([{"set": {"sead": 3}}]))
    cmd = [sys.executable, str(REPO_ROOT / "visualizer.py"), "--script", str(script), "--exit"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "unknown setting(s) sead" in result.stderr


# --- one app in this process, driven by injected events ------------------------------------------

@pytest.fixture(scope="module")
def viz(tmp_path_factory):
    from app.viewer import Visualizer

    app = Visualizer(str(BUNDLED), device="cpu", size=WINDOW)
    app.state.capture.out_dir = str(tmp_path_factory.mktemp("captures"))
    run_until(app, app.settled)
    yield app
    app.close()


def run_until(app, condition, timeout: float = 120.0) -> None:
    """Draw UI frames until ``condition()`` holds (fails after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the app did not get there in time"
        app.draw_frame()


def settle(app) -> np.ndarray:
    """Frames until the newest request is on screen at full quality; returns the image screenshot."""
    app.draw_frame()
    run_until(app, app.settled)
    return app.viewport.render_image(app.state.display, app.view_camera()).astype(np.float32)


def inject_drag(app, dx: float, dy: float, button: int | None = None, steps: int = 6) -> None:
    """Press in the viewport, move, release: through the glfw callbacks, a UI frame per move."""
    import glfw

    button = glfw.MOUSE_BUTTON_LEFT if button is None else button
    window, handle = app.window, app.window.handle
    x, y, w, h = app.viewport_rect()
    cx, cy = x + w / 2, y + h / 2
    window.cursor_callback(handle, cx, cy)
    app.draw_frame()
    window.mouse_button_callback(handle, button, glfw.PRESS, 0)
    for i in range(1, steps + 1):
        window.cursor_callback(handle, cx + dx * i / steps, cy + dy * i / steps)
        app.draw_frame()
    window.mouse_button_callback(handle, button, glfw.RELEASE, 0)


def test_left_drag_orbits_and_the_image_follows(viz):
    from app import camera_control

    camera_control.reset(viz.state.args.view)
    before = settle(viz)
    inject_drag(viz, 120, -40)
    view = viz.state.args.view
    assert view.yaw < -0.1 and view.pitch > 0.05  # drag right turns the subject's right side away
    after = settle(viz)
    assert np.abs(after - before).mean() > 5


def test_drag_frames_are_fast_previews_then_full_quality(viz):
    """While dragging, frames come without super-resolution; once still, at full quality."""
    seen = []
    original = viz.worker.request

    def spy(args):
        seen.append((args.quality.superres, args.quality.neural_resolution))
        return original(args)

    viz.worker.request = spy
    try:
        inject_drag(viz, 60, 0)
        settle(viz)
    finally:
        viz.worker.request = original
    assert any(superres is False for superres, _ in seen), seen
    assert seen[-1][0] is True
    assert viz.frame.args.quality.superres is True


def test_right_drag_pans_wheel_zooms_and_r_resets(viz):
    import glfw

    view = viz.state.args.view
    inject_drag(viz, 40, 0, button=glfw.MOUSE_BUTTON_RIGHT)
    assert view.pivot is not None and view.pivot != tuple(viz.state.model.avg_camera_pivot)
    x, y, w, h = viz.viewport_rect()
    viz.window.cursor_callback(viz.window.handle, x + w / 2, y + h / 2)
    viz.window.scroll_callback(viz.window.handle, 0.0, 2.0)
    assert view.radius == pytest.approx(viz.state.model.avg_camera_radius * 0.81)
    viz.window.key_callback(viz.window.handle, glfw.KEY_R, 0, glfw.PRESS, 0)
    assert (view.yaw, view.pitch, view.radius, view.pivot) == (0.0, 0.0, None, None)


def test_drag_over_the_panel_does_not_move_the_camera(viz):
    import glfw

    viz.draw_frame()
    before = (viz.state.args.view.yaw, viz.state.args.view.pitch)
    window, handle = viz.window, viz.window.handle
    x = viz.panel_pixels() - 12  # over the panel, right of the controls (labels, scrollbar): no control the camera has
    window.cursor_callback(handle, x, 300)
    viz.draw_frame()
    window.mouse_button_callback(handle, glfw.MOUSE_BUTTON_LEFT, glfw.PRESS, 0)
    assert viz._drag is None
    window.cursor_callback(handle, x + 100, 350)
    viz.draw_frame()
    window.mouse_button_callback(handle, glfw.MOUSE_BUTTON_LEFT, glfw.RELEASE, 0)
    assert (viz.state.args.view.yaw, viz.state.args.view.pitch) == before


def test_number_keys_switch_modes_and_every_mode_draws(viz):
    import glfw

    from renderers.render_args import RENDER_MODES

    viz.state.args.mesh_resolution = 48
    shots = {}
    for i, mode in enumerate(RENDER_MODES):
        viz.window.key_callback(viz.window.handle, glfw.KEY_1 + i, 0, glfw.PRESS, 0)
        assert viz.state.args.mode == mode
        shots[mode] = settle(viz)
        assert viz.state.viewport_error is None, viz.state.viewport_error
        assert shots[mode].std() > 5, f"{mode} view is flat"
    assert shots["side"].shape[1] == 2 * shots["side"].shape[0]
    viz.state.args.mode = "rgb"


def test_render_errors_show_in_the_viewport_and_the_app_recovers(viz):
    renderer = viz.worker.renderer
    original = renderer.render

    def broken(args, ws=None):
        raise RuntimeError("the decoder exploded")

    renderer.render = broken
    try:
        viz.state.args.latent.seed_x += 1
        run_until(viz, lambda: viz.state.viewport_error is not None)
        assert "the decoder exploded" in viz.state.viewport_error
        for _ in range(3):
            viz.draw_frame()  # the UI keeps drawing
    finally:
        renderer.render = original
    viz.state.args.latent.seed_x += 1
    settle(viz)
    assert viz.state.viewport_error is None


def test_load_errors_keep_the_previous_model(viz, tmp_path):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(BUNDLED.read_bytes()[:5000])
    job = viz.load(str(corrupt))
    run_until(viz, lambda: job.finished and job not in viz.jobs)
    assert viz.state.model.error and "corrupt.safetensors" in viz.state.model.error
    assert viz.state.model.label.startswith(BUNDLED.name)
    viz.state.args.latent.seed_x += 1
    settle(viz)
    assert viz.frame.error is None

    assert viz.load(str(tmp_path / "nothing-here.pkl")) is None
    assert "nothing-here.pkl" in viz.state.model.error
    assert any(m.level == "error" and "nothing-here.pkl" in m.text for m in viz.state.messages)


def test_dropped_file_is_opened(viz, tmp_path):
    copy = tmp_path / "dropped.safetensors"
    shutil.copy(BUNDLED, copy)
    viz.window.drop_callback(viz.window.handle, [str(copy)])
    run_until(viz, lambda: viz.state.model.loading is None and not viz.jobs)
    assert viz.state.model.label == "dropped.safetensors"
    assert viz.state.model.recent[0] == str(copy)


def test_run_directory_is_followed_and_hot_reloaded(viz, tmp_path):
    from models.checkpoint import atomic_output
    from training.run_dir import snapshot_name

    run = tmp_path / "00000-tiny-run"
    run.mkdir()
    shutil.copy(BUNDLED, run / snapshot_name(4000))
    job = viz.load(str(run))
    run_until(viz, lambda: job.finished and job not in viz.jobs)
    assert viz.state.model.run_dir == str(run)
    assert viz.state.model.snapshot_kimg == 4

    with atomic_output(run / snapshot_name(8000)) as f:  # as the trainer writes it
        f.write(BUNDLED.read_bytes())
    run_until(viz, lambda: viz.state.model.snapshot_kimg == 8 and viz.state.model.loading is None, timeout=60)
    assert viz.state.model.newest_kimg == 8
    assert "@ 8 kimg" in viz.state.model.label
    settle(viz)
    assert viz.frame.error is None

    # A snapshot that fails to load is reported once, not retried every poll; the model stays.
    with atomic_output(run / snapshot_name(12000)) as f:
        f.write(b"not a checkpoint")
    run_until(viz, lambda: viz.state.model.error is not None and viz.state.model.loading is None, timeout=60)
    assert snapshot_name(12000) in viz.state.model.error
    deadline = time.monotonic() + 2.5  # the follower polls every second
    while time.monotonic() < deadline:
        viz.draw_frame()
    failures = [m for m in viz.state.messages if m.level == "error" and snapshot_name(12000) in m.text]
    assert len(failures) == 1
    assert viz.state.model.snapshot_kimg == 8
    viz.state.model.error = None


def test_numbered_screenshots_never_overwrite(viz):
    first = viz.screenshot()
    second = viz.screenshot()
    assert first != second and first.exists() and second.exists()
    assert first.name == "screenshot-0000.png" and second.name == "screenshot-0001.png"


def test_unwritable_screenshot_is_a_message_not_a_crash(viz, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    viz.screenshot(blocker / "shot.png")
    assert viz.state.messages[-1].level == "error"
    assert "screenshot not saved" in viz.state.messages[-1].text
    viz.draw_frame()


def test_video_can_be_aborted_without_leaving_a_file(viz, tmp_path):
    target = tmp_path / "aborted.mp4"
    job = viz.start_video(target, frames=400, trajectory="circle")
    run_until(viz, lambda: job.done >= 2)
    job.cancel()
    run_until(viz, lambda: job.finished and job not in viz.jobs)
    assert job.cancelled and not target.exists()
    assert not list(tmp_path.glob("*.mp4*")), "a partial file was left behind"


def _drive_job_with_a_camera_move(viz, job, move_after: int):
    """Draw UI frames until ``job`` ends, timing each; once its progress passes ``move_after``, turn
    the camera (as a drag does). Returns (frame times, job seconds, overlay texts seen, whether the
    moved view was rendered and shown while the job still ran)."""
    from app import camera_control

    start, times, texts = time.monotonic(), [], set()
    moved_id = None
    shown_during_job = False
    while not (job.finished and job not in viz.jobs):
        t0 = time.perf_counter()
        viz.draw_frame()
        times.append(time.perf_counter() - t0)
        if not job.finished:
            texts.update(_overlay_texts(viz))
        if moved_id is None and job.done > move_after:
            viz.state.args.view.yaw += 0.5
            viz.state.adaptive.note_camera_input(time.monotonic())
            viz.draw_frame()  # sends the request
            moved_id = viz.last_request_id
        elif moved_id is not None and not job.finished and viz.frame.request_id >= moved_id:
            shown_during_job = shown_during_job or viz.frame.error is None
    seconds = time.monotonic() - start
    camera_control.reset(viz.state.args.view, viz.state.model.camera_fov)
    settle(viz)
    return times, seconds, texts, shown_during_job


def _video_frames(path: Path) -> list[np.ndarray]:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    width, height = next(reader)["size"]
    return [np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader]


def test_the_viewport_keeps_drawing_during_a_video_export(viz, tmp_path):
    """Issue 16, improvement 7: a video export no longer stops the viewport. The UI draws at its pace,
    the overlay counts the frames ("12/60 frames"), a camera move during the export is rendered and
    shown before it ends (the worker renders it between two video frames), and the video is the same
    as one recorded without touching the camera."""
    settle(viz)
    n = 48  # about 2 s on the 2-core CPU (24 frames took 0.97 s once rendering got faster)
    job = viz.start_video(tmp_path / "busy.mp4", frames=n, trajectory="orbit", fps=10)
    times, seconds, texts, shown = _drive_job_with_a_camera_move(viz, job, move_after=2)
    assert job.error is None and not job.cancelled
    print(f"video export: {len(times)} UI frames in {seconds:.2f} s, longest {1000 * max(times):.0f} ms")
    assert seconds > 1.0, "the export was too short to tell"
    assert shown, "the camera move was not shown until the export ended"
    assert len(times) >= 10 and max(times) < 0.25, (len(times), max(times))
    assert any(re.search(rf"busy\.mp4  \d+/{n} frames \(\d+%\)", text) for text in texts), texts

    quiet = viz.start_video(tmp_path / "quiet.mp4", frames=n, trajectory="orbit", fps=10)
    run_until(viz, lambda: quiet.finished and quiet not in viz.jobs)
    busy, still = _video_frames(tmp_path / "busy.mp4"), _video_frames(tmp_path / "quiet.mp4")
    assert len(busy) == len(still) == n
    assert all(np.array_equal(a, b) for a, b in zip(busy, still)), "the camera move changed the video"


def test_the_viewport_keeps_drawing_during_a_mesh_export(viz, tmp_path):
    """The same for a mesh export: the worker renders interactive frames between chunks of the grid."""
    settle(viz)
    job = viz.export_mesh(tmp_path / "busy.ply", res=96)
    times, seconds, texts, shown = _drive_job_with_a_camera_move(viz, job, move_after=0)
    assert job.error is None and not job.cancelled and (tmp_path / "busy.ply").exists()
    print(f"mesh export: {len(times)} UI frames in {seconds:.2f} s, longest {1000 * max(times):.0f} ms")
    assert seconds > 1.0, "the export was too short to tell"
    assert shown, "the camera move was not shown until the export ended"
    assert len(times) >= 10 and max(times) < 0.25, (len(times), max(times))
    assert any(re.search(r"busy\.ply \d+%", text) for text in texts), texts


def test_an_export_failing_midway_is_a_message_and_the_viewport_goes_on(viz, tmp_path, monkeypatch):
    """An error inside a running export ends the job with a notice in the viewport, leaves no file,
    and the app renders on."""
    import renderers.sequences as sequences

    real, calls = sequences.frame_to_rgb, []

    def fails_on_the_third_frame(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(sequences, "frame_to_rgb", fails_on_the_third_frame)
    job = viz.start_video(tmp_path / "failed.mp4", frames=8, trajectory="orbit")
    run_until(viz, lambda: job.finished and job not in viz.jobs)
    assert "RuntimeError: disk on fire" in job.error
    notice = next(m for m in viz.state.messages if m.level == "error" and "failed.mp4 failed" in m.text)
    assert any("disk on fire" in text for text in _overlay_texts(viz))
    assert not list(tmp_path.glob("*.mp4*")), "a partial file was left behind"
    viz.state.dismiss(notice)
    viz.state.args.view.yaw += 0.3
    settle(viz)
    assert viz.frame.error is None
    viz.state.args.view.yaw -= 0.3


def test_script_video_height_sets_the_frame_size(viz, tmp_path):
    """A script ``video`` action with ``"height": 128`` records 128-pixel-high frames (side mode: twice
    as wide), the native frames resampled; the panel's size does not apply to scripts; a bad height
    fails its action."""
    import imageio_ffmpeg

    from app.script import ScriptPlayer
    from renderers.images import resize_to_height

    viz.state.capture.height = 512  # the capture panel's size: scripts give their own
    actions = [{"video": str(tmp_path / "native.mp4"), "frames": 2, "trajectory": "yaw", "mode": "side"},
               {"video": str(tmp_path / "tall.mp4"), "frames": 2, "trajectory": "yaw", "mode": "side", "height": 128},
               {"video": str(tmp_path / "bad.mp4"), "frames": 2, "height": 1.5}]
    viz.script = ScriptPlayer(viz, actions)
    try:
        run_until(viz, lambda: viz.script.done)
    finally:
        errors, viz.script, viz.state.capture.height = viz.script.errors, None, None
    assert len(errors) == 1 and "action 2" in errors[0] and "bad height 1.5" in errors[0], errors
    assert not (tmp_path / "bad.mp4").exists()
    frames = {}
    for name in ("native", "tall"):
        reader = imageio_ffmpeg.read_frames(str(tmp_path / f"{name}.mp4"))
        width, height = next(reader)["size"]
        frames[name] = [np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader]
    assert [f.shape for f in frames["native"]] == [(64, 128, 3)] * 2
    assert [f.shape for f in frames["tall"]] == [(128, 256, 3)] * 2
    for native, tall in zip(frames["native"], frames["tall"]):
        assert np.abs(resize_to_height(native, 128).astype(int) - tall.astype(int)).mean() < 6  # H.264 noise


def test_keyframe_camera_path_is_recorded_saved_and_reloaded(viz, tmp_path):
    """Keyframes added from the current view (as the capture panel's '+ view' does), a JSON round
    trip, and a 'path' video with the path's own frame count (duration x fps)."""
    import imageio_ffmpeg

    from app.script import ScriptPlayer
    from renderers.trajectories import CameraPath

    saved = tmp_path / "path.json"
    viz.state.camera_path = CameraPath(fps=8.0)
    actions = [{"set": {"yaw": -0.3, "pitch": 0.0}}, {"keyframe": "add"},
               {"set": {"yaw": 0.3, "pitch": 0.1}}, {"keyframe": "add", "duration": 1.0},
               {"save_camera_path": str(saved)}, {"set": {"yaw": 0.0}},
               {"load_camera_path": str(saved)}]
    viz.script = ScriptPlayer(viz, actions)
    try:
        run_until(viz, lambda: viz.script.done)
    finally:
        error, viz.script = viz.script.error, None
    assert error is None
    path = viz.state.camera_path
    assert [k.pose.yaw for k in path.keyframes] == [-0.3, 0.3] and path.n_frames == 8

    target = tmp_path / "path.mp4"
    job = viz.start_video(target, trajectory="path")
    run_until(viz, lambda: job.finished and job not in viz.jobs)
    assert job.error is None and not job.cancelled
    reader = imageio_ffmpeg.read_frames(str(target))
    next(reader)
    frames = [np.frombuffer(f, np.uint8).reshape(64, 64, 3).astype(np.float32) for f in reader]
    assert len(frames) == 8
    assert np.abs(frames[0] - frames[-1]).mean() > 5  # the camera moved from yaw -0.3 to 0.3


def test_a_failed_script_action_is_recorded_and_the_script_goes_on(viz, tmp_path):
    """A screenshot that cannot be written fails its action; the script records it and runs the rest
    (the next screenshot is still written), and ends with status 1 naming every failed action."""
    from app.script import ScriptPlayer

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for what in ("image", "window"):
        good = tmp_path / f"good-{what}.png"
        viz.script = ScriptPlayer(viz, [{"screenshot": str(blocker / f"{what}.png"), "what": what},
                                        {"load": str(tmp_path / "corrupt.safetensors")},
                                        {"screenshot": str(good), "what": what}], exit_when_done=True)
        (tmp_path / "corrupt.safetensors").write_bytes(b"\x00" * 64)
        try:
            run_until(viz, lambda: viz.script.done)
        finally:
            errors, viz.script, viz.exit_code = viz.script.errors, None, None
        assert len(errors) == 2, errors
        assert "action 0" in errors[0] and "screenshot not saved" in errors[0], what
        assert "action 1" in errors[1] and "corrupt.safetensors" in errors[1], what
        assert good.is_file(), what


CTRL_S_BEFORE_THE_FIRST_FRAME = """
import sys
from pathlib import Path
import glfw
from app.viewer import Visualizer
from tests.test_app import BUNDLED, WINDOW, run_until

out = Path(sys.argv[1])
app = Visualizer(str(BUNDLED), device="cpu", size=WINDOW)
try:
    app.state.capture.out_dir = str(out)
    assert app.viewport.frame is None
    app.window.key_callback(app.window.handle, glfw.KEY_S, 0, glfw.PRESS, glfw.MOD_CONTROL)
    assert any("nothing to save yet" in m.text and m.level == "error" for m in app.state.messages)
    assert list(out.iterdir()) == []

    def broken(*_):
        raise RuntimeError("handler bug")

    app.window.on_scroll = broken
    app.window.scroll_callback(app.window.handle, 0.0, 1.0)  # must not raise
    assert app.state.messages[-1].text == "RuntimeError: handler bug" and app.state.messages[-1].level == "error"
    run_until(app, app.settled)  # and the app goes on to draw its first frame
    app.window.key_callback(app.window.handle, glfw.KEY_S, 0, glfw.PRESS, glfw.MOD_CONTROL)
    assert [p.name for p in out.iterdir()] == ["screenshot-0000.png"]
finally:
    app.close()
print("ok")
"""


def test_ctrl_s_before_the_first_frame_is_a_message_not_a_crash(tmp_path):
    """Bug: Ctrl+S (or the Screenshot button) before any frame existed raised out of the glfw key
    callback and ended the app. Now it is a message, and any exception an input handler raises
    becomes a message too. (In its own process: a second window's close terminates glfw.)"""
    result = subprocess.run([sys.executable, "-c", CTRL_S_BEFORE_THE_FIRST_FRAME, str(tmp_path)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stdout + result.stderr


def test_page_down_from_seed_zero_stays_at_zero(viz):
    """Bug: PgDn from seed 0 gave seed -1, although the seed fields clamp at 0."""
    import glfw

    latent = viz.state.args.latent
    saved = latent.seed_x
    try:
        latent.seed_x = 1.0
        for _ in range(3):
            viz.window.key_callback(viz.window.handle, glfw.KEY_PAGE_DOWN, 0, glfw.PRESS, 0)
        assert latent.seed_x == 0.0
        viz.window.key_callback(viz.window.handle, glfw.KEY_PAGE_UP, 0, glfw.PRESS, 0)
        assert latent.seed_x == 1.0
    finally:
        latent.seed_x = saved


def test_a_window_shot_after_a_panels_action_shows_the_new_panels(viz, tmp_path, monkeypatch):
    """Bug: a window screenshot right after a `panels` action was read one frame before the panels
    changed: the script runs after this frame's panels are drawn, and panel requests apply when the
    panels are next drawn."""
    saved_at = []
    original = viz._save_png

    def spy(target, pixels, on_done):
        saved_at.append(dict(viz.panel_requests))  # requests still waiting = the shot shows old panels
        original(target, pixels, on_done)

    class Script:  # what a session script's step does for [{"panels": ...}, {"screenshot": ..., "what": "window"}]
        done = False

        def step(self):
            if not self.done:
                self.done = True
                viz.panel_requests.update({"Capture": True, "Latent": False})
                viz.screenshot(tmp_path / "w.png", what="window")

    monkeypatch.setattr(viz, "_save_png", spy)
    monkeypatch.setattr(viz, "script", Script())
    viz.draw_frame()
    viz.draw_frame()
    assert saved_at == [{}] and (tmp_path / "w.png").is_file()
    viz.panel_requests.update({"Latent": True})
    viz.draw_frame()


def test_the_message_overlay_fits_its_text_in_the_frame_it_appears(viz, monkeypatch):
    """Bug: the overlay auto-resized a frame late, so a new line showed half drawn. It is now sized
    from the current frame's text before it is drawn."""
    import imgui

    from app.overlay import overlay_size

    sizes = []
    original = imgui.set_next_window_size
    monkeypatch.setattr(imgui, "set_next_window_size", lambda w, h, *a: (sizes.append((w, h)), original(w, h, *a)))
    viz.state.notify("a new and rather long notice that must be fully visible in its first frame " * 2)
    viz.draw_frame()
    assert sizes, "the overlay set no size of its own"
    width, height = sizes[-1]
    wrap = max(viz.viewport_rect()[2] - 56.0, 64.0)
    assert (width, height) == overlay_size(_overlay_texts(viz), wrap)
    assert height > imgui.get_text_line_height() * 2  # the long line wraps, and the window holds both rows


def _overlay_texts(viz) -> list[str]:
    from app.overlay import _lines

    return [text for text, _, _ in _lines(viz)]


@pytest.mark.parametrize("setting,message", [
    ({"depth_samples": 0}, "depth_samples 0 is outside [1, 1024]"),
    ({"seed": 10**30}, "seed_x"),
    ({"yaw": float("nan")}, "view.yaw nan is outside"),
    ({"psi": float("inf")}, "psi inf is outside"),
])
def test_script_set_checks_ranges_before_anything_renders(viz, setting, message):
    """Bugs: a script `set` of depth_samples 0 showed an internal reshape error, a huge seed a
    traceback, and yaw NaN hung the app. Each is now refused by the action with a one-line message."""
    from app.script import ScriptError, apply_settings

    before = viz.state.args.copy()
    with pytest.raises(ScriptError, match=re.escape(message)):
        apply_settings(viz, setting)
    viz.state.args = before
    settle(viz)  # and the app renders on
