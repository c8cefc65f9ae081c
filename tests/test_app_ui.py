"""The app for daily use (issue 16, improvements 1-5), in a real window driven through its input
callbacks: UI scale and panel layout, labels that fit, the help overlay, tooltips, messages, and
settings that survive a restart.

Truncation is measured, not eyeballed: while a frame is drawn, every imgui item the panels draw is
recorded with its rectangle, and an item whose right edge passes the visible edge of its window
(content region plus half the window padding, where imgui clips) is cut off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO_ROOT
from tests.test_app import run_until

BUNDLED = REPO_ROOT / "assets" / "default_generator.safetensors"

pytestmark = pytest.mark.skipif(not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")),
                                reason="no display (run under xvfb-run, as `make test` does)")

ITEMS = ("text", "text_colored", "text_disabled", "text_wrapped", "button", "checkbox", "radio_button",
         "slider_float", "slider_int", "drag_float", "drag_float2", "drag_float3", "input_int", "input_float",
         "input_text", "combo", "selectable", "collapsing_header", "progress_bar", "plot_lines")
"""imgui functions that draw one item (measured for truncation)."""
CONTROLS = ("button", "checkbox", "radio_button", "slider_float", "slider_int", "drag_float", "drag_float2",
            "drag_float3", "input_int", "input_float", "input_text", "combo", "selectable", "plot_lines")
"""Items a user operates or reads a value from: each needs a tooltip."""
FULL_WIDTH = ("selectable", "collapsing_header")


class Recorder:
    """Wraps the imgui item functions (the widgets call them through the ``imgui`` module)."""

    def __init__(self, monkeypatch):
        import imgui

        self.items: list[dict] = []
        self.untipped: list[str] = []
        self.tooltips: list[str] = []
        for name in ITEMS:
            monkeypatch.setattr(imgui, name, self._wrap(name, getattr(imgui, name)))
        hovered = imgui.is_item_hovered

        def is_item_hovered(*args):  # widgets.controls.tooltip asks this right after its control
            if self.untipped:
                self.untipped.pop()
            return hovered(*args)

        monkeypatch.setattr(imgui, "is_item_hovered", is_item_hovered)
        unformatted = imgui.text_unformatted
        monkeypatch.setattr(imgui, "text_unformatted", lambda text: (self.tooltips.append(text), unformatted(text)))

    def _wrap(self, name, function):
        import imgui

        def wrapped(*args, **kwargs):
            result = function(*args, **kwargs)
            (x0, y0), (x1, y1) = imgui.get_item_rect_min(), imgui.get_item_rect_max()
            window_x = imgui.get_window_position().x
            visible = window_x + imgui.get_window_content_region_max().x + imgui.get_style().window_padding.x * 0.5
            label = str(args[0]) if args else ""
            if name in FULL_WIDTH:  # these span the row whatever their text: measure the text itself
                arrow = imgui.get_font_size() + 2 * imgui.get_style().frame_padding.x if name != "selectable" else 0
                x1 = x0 + arrow + imgui.calc_text_size(label.split("##")[0]).x
            self.items.append({"fn": name, "label": label, "rect": (x0, y0, x1, y1), "right": visible})
            if name in CONTROLS:
                self.untipped = [u for u in self.untipped] + [f"{name} {label!r}"]
            return result

        return wrapped

    def start(self) -> None:
        self.items, self.untipped, self.tooltips = [], [], []

    def truncated(self) -> list[str]:
        return [f"{i['fn']} {i['label'][:60]!r}: right edge {i['rect'][2]:.0f} > visible {i['right']:.0f}"
                for i in self.items if i["rect"][2] > i["right"] + 0.5]

    def rect(self, fn: str, label: str) -> tuple[float, float, float, float]:
        return next(i["rect"] for i in self.items if i["fn"] == fn and i["label"] == label)


@pytest.fixture(scope="module")
def viz(tmp_path_factory):
    from app.viewer import Visualizer

    app = Visualizer(str(BUNDLED), device="cpu", size=(900, 600))
    app.state.capture.out_dir = str(tmp_path_factory.mktemp("captures"))
    run_until(app, app.settled)
    yield app
    app.close()



def resize(app, width: int, height: int) -> None:
    import glfw

    glfw.set_window_size(app.window.handle, width, height)
    run_until(app, lambda: tuple(app.window.window_size()) == (width, height), timeout=20)
    for _ in range(2):
        app.draw_frame()


def press(app, key: int, mods: int = 0) -> None:
    import glfw

    app.window.key_callback(app.window.handle, key, 0, glfw.PRESS, mods)
    app.window.key_callback(app.window.handle, key, 0, glfw.RELEASE, mods)
    app.draw_frame()


def click(app, x: float, y: float) -> None:
    import glfw

    window = app.window
    window.cursor_callback(window.handle, x, y)
    app.draw_frame()
    window.mouse_button_callback(window.handle, glfw.MOUSE_BUTTON_LEFT, glfw.PRESS, 0)
    app.draw_frame()
    window.mouse_button_callback(window.handle, glfw.MOUSE_BUTTON_LEFT, glfw.RELEASE, 0)
    app.draw_frame()


def open_everything(app) -> None:
    app.panel_requests.update({widget.title: True for widget in app.widgets})
    app.draw_frame()
    app.draw_frame()


# --- 1. window size and scaling -----------------------------------------------------------------

def test_font_and_panel_scale_with_the_window(viz):
    import imgui

    resize(viz, 700, 450)
    small_font, small_panel = imgui.get_io().font_global_scale, viz.panel_pixels()
    assert small_panel <= 0.5 * 700, "the panel takes over half of a small window"
    resize(viz, 1800, 1000)
    large_font, large_panel = imgui.get_io().font_global_scale, viz.panel_pixels()
    assert large_font >= 1.15 * small_font, "the text does not grow with the window"
    assert large_panel >= 1.15 * small_panel
    resize(viz, 900, 600)


def test_a_hidpi_monitor_scales_text_and_panel_by_its_content_scale(viz, monkeypatch):
    import imgui

    viz.draw_frame()
    before = imgui.get_io().font_global_scale, viz.panel_pixels()
    monkeypatch.setattr(viz.window, "content_scale", lambda: 1.5)  # what glfw reports on a 150% monitor
    viz.draw_frame()
    assert imgui.get_io().font_global_scale == pytest.approx(1.5 * before[0])
    assert viz.panel_pixels() > before[1]
    monkeypatch.undo()
    viz.draw_frame()


def test_ctrl_plus_and_minus_scale_the_ui_and_ctrl_0_resets(viz):
    import glfw
    import imgui

    before = imgui.get_io().font_global_scale, viz.panel_pixels()
    press(viz, glfw.KEY_EQUAL, glfw.MOD_CONTROL)
    press(viz, glfw.KEY_EQUAL, glfw.MOD_CONTROL)
    bigger = imgui.get_io().font_global_scale, viz.panel_pixels()
    assert bigger[0] > before[0] * 1.15 and bigger[1] > before[1]
    press(viz, glfw.KEY_MINUS, glfw.MOD_CONTROL)
    press(viz, glfw.KEY_MINUS, glfw.MOD_CONTROL)
    press(viz, glfw.KEY_MINUS, glfw.MOD_CONTROL)
    assert imgui.get_io().font_global_scale < before[0]
    press(viz, glfw.KEY_0, glfw.MOD_CONTROL)
    assert imgui.get_io().font_global_scale == pytest.approx(before[0])


def test_tab_hides_the_panel_and_the_viewport_takes_the_window(viz):
    import glfw

    assert viz.viewport_rect()[0] > 0
    press(viz, glfw.KEY_TAB)
    try:
        assert viz.viewport_rect()[0] == 0 and viz.viewport_rect()[2] == viz.window.window_size()[0]
        # A drag where the panel was now orbits the camera.
        yaw = viz.state.args.view.yaw
        window = viz.window
        window.cursor_callback(window.handle, 40, 300)
        viz.draw_frame()
        window.mouse_button_callback(window.handle, glfw.MOUSE_BUTTON_LEFT, glfw.PRESS, 0)
        for x in (60, 90, 120):
            window.cursor_callback(window.handle, x, 300)
            viz.draw_frame()
        window.mouse_button_callback(window.handle, glfw.MOUSE_BUTTON_LEFT, glfw.RELEASE, 0)
        assert viz.state.args.view.yaw != yaw
    finally:
        press(viz, glfw.KEY_TAB)
        press(viz, glfw.KEY_R)
    assert viz.viewport_rect()[0] > 0


def test_dragging_the_panel_edge_resizes_it(viz):
    import glfw

    edge = viz.panel_pixels()
    window = viz.window
    window.cursor_callback(window.handle, edge + 1, 300)
    viz.draw_frame()
    window.mouse_button_callback(window.handle, glfw.MOUSE_BUTTON_LEFT, glfw.PRESS, 0)
    for x in (edge + 20, edge + 40, edge + 60):
        window.cursor_callback(window.handle, x, 300)
        viz.draw_frame()
    window.mouse_button_callback(window.handle, glfw.MOUSE_BUTTON_LEFT, glfw.RELEASE, 0)
    viz.draw_frame()
    assert viz.panel_pixels() == pytest.approx(edge + 60, abs=1)
    assert viz.viewport_rect()[0] == viz.panel_pixels()
    viz.state.ui.panel_width = 390.0


# --- 2. every label fits ------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(700, 450), (1800, 1000)])
def test_no_text_is_cut_off_with_every_panel_open(viz, monkeypatch, size):
    state = viz.state
    saved = state.args.copy(), state.capture.video_trajectory
    resize(viz, *size)
    open_everything(viz)
    recorder = Recorder(monkeypatch)
    state.args.latent.mix_seed, state.args.latent.mix_layers = 3, (1, 2)
    state.camera_path.add(state.args.view.__class__(yaw=0.3), seed=(12.0, 0.0))
    problems = []
    for mode, trajectory in (("rgb", "path"), ("depth", "latent"), ("normals", "orbit"), ("mesh", "orbit")):
        state.args.mode, state.capture.video_trajectory = mode, trajectory
        state.args.normals_source = "density"
        viz.draw_frame()
        recorder.start()
        viz.draw_frame()
        assert any(i["label"] == "Capture" for i in recorder.items), "the panels were not drawn"
        problems += [f"{mode}: {p}" for p in recorder.truncated()]
    state.args.latent.mix_seed = None
    state.args = saved[0]
    state.capture.video_trajectory = saved[1]
    state.camera_path.keyframes.clear()
    resize(viz, 900, 600)
    assert not problems, "cut-off text:\n" + "\n".join(problems)


def test_f1_and_question_mark_show_a_help_overlay_with_every_key_that_fits(viz, monkeypatch):
    import glfw

    from app.help import KEYS

    resize(viz, 700, 450)
    recorder = Recorder(monkeypatch)
    press(viz, glfw.KEY_F1)
    assert viz.state.ui.help_open
    recorder.start()
    viz.draw_frame()
    shown = [i["label"] for i in recorder.items]
    for key, text in KEYS:
        assert key in shown and text in shown
    for key in ("Tab", "Ctrl+S", "F1 or ?", "PgUp / PgDn", "R", "Space", "left drag", "mouse wheel"):
        assert key in shown
    assert not recorder.truncated(), recorder.truncated()
    press(viz, glfw.KEY_SLASH, glfw.MOD_SHIFT)  # ? closes it again
    assert not viz.state.ui.help_open
    press(viz, glfw.KEY_SLASH, glfw.MOD_SHIFT)
    assert viz.state.ui.help_open
    yaw = viz.state.args.view.yaw
    x, y, w, h = viz.viewport_rect()
    click(viz, x + w / 2, y + h / 2)  # a click closes it and does not move the camera
    assert not viz.state.ui.help_open and viz.state.args.view.yaw == yaw
    resize(viz, 900, 600)


# --- 3. tooltips --------------------------------------------------------------------------------

def test_every_control_has_a_tooltip(viz, monkeypatch):
    state = viz.state
    saved = state.args.copy(), state.capture.video_trajectory
    open_everything(viz)
    recorder = Recorder(monkeypatch)
    state.args.latent.mix_seed, state.args.latent.mix_layers = 3, (1, 2)
    state.camera_path.add(state.args.view.__class__(yaw=0.3), seed=(12.0, 0.0))
    missing = set()
    for mode, trajectory, fixed in (("rgb", "path", False), ("depth", "latent", True), ("normals", "orbit", False),
                                    ("mesh", "orbit", False)):
        state.args.mode, state.capture.video_trajectory = mode, trajectory
        state.display.depth_range = "fixed" if fixed else "auto"
        state.args.mesh_level = 5.0 if mode == "mesh" else None
        state.args.cond_follows_view = mode != "rgb"
        viz.draw_frame()
        recorder.start()
        viz.draw_frame()
        missing |= set(recorder.untipped)
    state.args.latent.mix_seed = None
    state.args = saved[0]
    state.capture.video_trajectory = saved[1]
    state.display.depth_range = "auto"
    state.camera_path.keyframes.clear()
    assert not missing, f"controls without a tooltip: {sorted(missing)}"


@pytest.mark.parametrize("mode,fn,label,words", [
    ("rgb", "slider_int", "cutoff", "truncate only the first"),
    ("rgb", "checkbox", "condition on the view camera", "conditioned on a camera"),
    ("normals", "combo", "normals from", "looks dark"),
    ("mesh", "checkbox", "auto##iso level", "Iso level"),
    ("raw", "radio_button", "raw", "before super-resolution"),
])
def test_hovering_a_control_shows_its_explanation(viz, monkeypatch, mode, fn, label, words):
    saved = viz.state.args.copy()
    viz.state.args.mode = mode
    viz.panel_requests.update({"Truncation": True, "Camera": True, "Render mode": True, "Capture": False,
                               "Performance": False, "Quality": False, "Latent": False})
    viz.draw_frame()
    recorder = Recorder(monkeypatch)
    recorder.start()
    viz.draw_frame()
    x0, y0, x1, y1 = recorder.rect(fn, label)
    viz.window.cursor_callback(viz.window.handle, (x0 + x1) / 2, (y0 + y1) / 2)
    viz.draw_frame()
    recorder.start()
    viz.draw_frame()
    viz.window.cursor_callback(viz.window.handle, -1, -1)
    viz.state.args = saved
    viz.draw_frame()
    assert any(words in text for text in recorder.tooltips), recorder.tooltips


# --- 4. messages --------------------------------------------------------------------------------

def _overlay_texts(app) -> list[str]:
    from app.overlay import _lines

    return [text for text, _, _ in _lines(app)]


def test_repeated_messages_collapse_into_one_line(viz):
    viz.state.messages.clear()
    for _ in range(3):
        viz.state.notify("the same notice")
    viz.draw_frame()
    lines = [t for t in _overlay_texts(viz) if "the same notice" in t]
    assert lines == ["the same notice (x3)"]


def test_notices_fade_and_go_but_errors_stay(viz):
    from app.overlay import _lines
    from app.state import NOTICE_SECONDS

    viz.state.messages.clear()
    viz.state.notify("an info notice")
    viz.state.notify("an error", "error")
    info, error = viz.state.messages
    info.time = error.time = time.monotonic() - (NOTICE_SECONDS - 0.5)
    alphas = {text: color[3] for text, color, _ in _lines(viz)}
    assert 0.0 < alphas["an info notice"] < 1.0, "the notice does not fade"
    assert alphas[next(t for t in alphas if t.startswith("an error"))] == 1.0
    info.time = error.time = time.monotonic() - 1000
    texts = _overlay_texts(viz)
    assert not any("an info notice" in t for t in texts)
    assert any(t.startswith("an error") for t in texts), "an error went away by itself"
    viz.state.messages.clear()


def test_a_click_on_a_message_dismisses_it_and_does_not_move_the_camera(viz):
    viz.state.messages.clear()
    viz.state.notify("something failed", "error")
    viz.state.notify("keep me", "error")
    viz.draw_frame()
    (x0, y0, x1, y1), message = next(hit for hit in viz.overlay_hits if hit[1].text == "something failed")
    view = viz.state.args.view.to_dict()
    click(viz, (x0 + x1) / 2, (y0 + y1) / 2)
    assert [m.text for m in viz.state.messages] == ["keep me"]
    assert viz.state.args.view.to_dict() == view
    viz.state.messages.clear()


# --- 5. settings survive a restart -----------------------------------------------------------------

def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.float32)


def _session(tmp_path: Path, name: str, actions: list[dict], *extra: str) -> subprocess.CompletedProcess:
    script = tmp_path / f"{name}.json"
    script.write_text(json.dumps(actions))
    cmd = [sys.executable, str(REPO_ROOT / "visualizer.py"), str(BUNDLED), "--script", str(script), "--exit",
           "--device", "cpu", "--settings", str(tmp_path / "settings.json"), *extra]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_settings_survive_a_restart(tmp_path):
    """First session: a window size, Ctrl+plus, a hidden panel, a turned camera, a quality setting and a
    mode. The second session, started without --size, comes back the same way."""
    _session(tmp_path, "first", [
        {"wait": True},
        {"key": "EQUAL", "ctrl": True},
        {"set": {"yaw": 0.5, "pitch": -0.1, "depth_samples": 20, "mode": "depth"}},
        {"panels": {"Quality": True}},
        {"wait": True},
        {"screenshot": str(tmp_path / "first.png")},
        {"key": "TAB"},
        {"frames": 2},
    ], "--size", "800x500")
    saved = json.loads((tmp_path / "settings.json").read_text())
    assert saved["window_size"] == [800, 500]
    assert saved["ui"]["panel_visible"] is False and saved["ui"]["user_scale"] > 1.0
    assert str(BUNDLED) in saved["recent"]
    _session(tmp_path, "second", [
        {"wait": True},
        {"screenshot": str(tmp_path / "second.png")},
        {"screenshot": str(tmp_path / "window.png"), "what": "window"},
    ])
    window = _png(tmp_path / "window.png")
    assert window.shape == (500, 800, 3), "the window size was not restored"
    first, second = _png(tmp_path / "first.png"), _png(tmp_path / "second.png")
    assert np.abs(first - second).mean() < 1.0, "camera, quality or mode were not restored"
    # The panel stayed hidden: the window's left edge shows the image's colours, not the dark panel.
    assert window[:, :100].std() > 10
    again = json.loads((tmp_path / "settings.json").read_text())
    assert again["ui"] == saved["ui"] and again["view"] == saved["view"] and again["quality"] == saved["quality"]


def test_the_default_settings_file_is_used_without_a_script_and_not_with_one(tmp_path):
    """Without --settings the app uses the user's configuration folder ($XDG_CONFIG_HOME here); a session
    script alone leaves it alone, so scripts play the same everywhere."""
    config = tmp_path / "config"
    env = {**os.environ, "XDG_CONFIG_HOME": str(config), "OMP_NUM_THREADS": "1"}
    base = [sys.executable, str(REPO_ROOT / "visualizer.py"), str(BUNDLED), "--device", "cpu", "--size", "640x400"]
    script = tmp_path / "s.json"
    script.write_text(json.dumps([{"wait": True}]))
    result = subprocess.run([*base, "--script", str(script), "--exit"], capture_output=True, text=True, timeout=300,
                            env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (config / "3dgan-studio" / "settings.json").exists()
    result = subprocess.run([*base, "--max-frames", "5"], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    saved = json.loads((config / "3dgan-studio" / "settings.json").read_text())
    assert saved["window_size"] == [640, 400]


def test_a_damaged_settings_file_is_reported_and_replaced(tmp_path):
    (tmp_path / "settings.json").write_text("{not json")
    result = _session(tmp_path, "damaged", [{"wait": True}])
    assert "settings" in result.stdout and "not read" in result.stdout
    assert json.loads((tmp_path / "settings.json").read_text())["version"] == 1


def test_out_of_range_settings_are_skipped_one_by_one(tmp_path):
    from app.settings import apply_settings

    class Viz:  # apply_settings needs the state, the panel titles and the request queue
        def __init__(self):
            from app.state import AppState

            self.state, self.widgets, self.panel_requests = AppState(), [], {}

    viz = Viz()
    apply_settings(viz, {"ui": {"user_scale": 1e9, "panel_width": 300}, "view": {"yaw": float("nan")},
                         "quality": {"depth_samples": 24}, "mode": "no-such-mode", "recent": ["a", 3, "b"]})
    assert viz.state.ui.user_scale == 1.0 and viz.state.ui.panel_width == 300
    assert viz.state.args.view.yaw == 0.0 and viz.state.args.quality.depth_samples == 24
    assert viz.state.args.mode == "rgb" and viz.state.model.recent == ["a", "b"]


def test_capture_size_and_show_path_are_remembered():
    """The capture panel's size and the camera panel's "show path" go into the settings file and come
    back; a size the resize would refuse, or a show flag that is not a bool, is skipped."""
    from app.settings import apply_settings, collect_settings
    from app.state import AppState

    class Viz:
        def __init__(self):
            self.state, self.widgets, self.panel_requests = AppState(), [], {}
            self.window = type("Window", (), {"window_size": lambda self: (800, 600)})()

    first = Viz()
    first.state.capture.height, first.state.path_view.show = 720, not first.state.path_view.show
    saved = json.loads(json.dumps(collect_settings(first)))
    second = Viz()
    apply_settings(second, saved)
    assert second.state.capture.height == 720 and second.state.path_view.show == first.state.path_view.show
    third = Viz()
    apply_settings(third, {"capture": {"height": 10**6, "show_path": "yes"}})
    assert third.state.capture.height is None and third.state.path_view.show == AppState().path_view.show
    apply_settings(third, {"capture": {"height": None}})
    assert third.state.capture.height is None


# --- 9. frame the mesh --------------------------------------------------------------------------

def test_f_frames_the_mesh_so_that_all_of_it_is_in_view(viz):
    """Zoomed right into the mesh, the view is one flat wall; F fits the camera to the mesh's bounds:
    the mesh is then whole in view (background all round the image's border) and fills a good part of it."""
    import glfw

    state = viz.state
    saved = state.args.copy()
    background = np.array([0.11, 0.11, 0.13]) * 255
    try:
        state.args.mode, state.args.mesh_resolution = "mesh", 64
        run_until(viz, lambda: viz.settled() and viz.shown_mesh_level() is not None)
        state.args.view.radius = 0.3  # inside the head: a wall
        viz.draw_frame()
        wall = viz.viewport.render_image(state.display, viz.view_camera()).astype(np.float32)
        border = np.concatenate([wall[0], wall[-1], wall[:, 0], wall[:, -1]])
        assert (np.abs(border - background).max(axis=1) > 8).mean() > 0.5, "the zoomed-in view is not a wall"
        press(viz, glfw.KEY_F)
        shot = viz.viewport.render_image(state.display, viz.view_camera()).astype(np.float32)
        border = np.concatenate([shot[0], shot[-1], shot[:, 0], shot[:, -1]])
        assert (np.abs(border - background).max(axis=1) < 8).all(), "the framed mesh touches the border"
        covered = (np.abs(shot - background).max(axis=2) > 8).mean()
        # A head and neck framed by its bounding sphere covers ~16% (the SDF default, 64 px window).
        assert covered > 0.12, f"the framed mesh is tiny ({covered:.0%} of the image)"
    finally:
        state.args = saved
        press(viz, glfw.KEY_R)


def test_f_outside_the_mesh_mode_says_what_to_do(viz):
    import glfw

    view = viz.state.args.view.to_dict()
    press(viz, glfw.KEY_F)
    assert viz.state.args.view.to_dict() == view
    assert "mesh mode" in viz.state.messages[-1].text


# --- 5. older snapshots of a followed run, and what is loaded ------------------------------------

def test_an_older_snapshot_is_opened_from_the_model_panels_list(viz, tmp_path, monkeypatch):
    import shutil

    import imgui

    from training.run_dir import snapshot_name

    run = tmp_path / "00001-tiny-run"
    run.mkdir()
    for kimg in (1000, 2000, 3000):
        shutil.copy(BUNDLED, run / snapshot_name(kimg))
    job = viz.load(str(run))
    run_until(viz, lambda: job.finished and job not in viz.jobs)
    assert viz.state.model.snapshot_kimg == 3
    viz.panel_requests["Model"] = True
    combo = imgui.combo
    offered = []

    def choose(label, current, items, *args):  # the user picks the oldest entry of the snapshot list
        if label == "snapshot":
            offered.append(list(items))
            return True, len(items) - 1
        return combo(label, current, items, *args)

    monkeypatch.setattr(imgui, "combo", choose)
    viz.draw_frame()
    viz.draw_frame()
    monkeypatch.setattr(imgui, "combo", combo)
    assert offered and offered[0] == ["3 kimg", "2 kimg", "1 kimg"]
    run_until(viz, lambda: viz.state.model.snapshot_kimg == 1 and viz.state.model.loading is None, timeout=60)
    deadline = time.monotonic() + 2.5  # following stopped: the newest snapshot does not come back
    while time.monotonic() < deadline:
        viz.draw_frame()
    assert viz.state.model.snapshot_kimg == 1 and viz.state.model.follow is False
    assert viz.state.model.method and viz.state.model.path == str(run)
    recorder = Recorder(monkeypatch)
    recorder.start()
    viz.draw_frame()
    shown = [i["label"] for i in recorder.items]
    assert str(run) in shown and any(t.startswith(f"method: {viz.state.model.method}, 1 kimg") for t in shown)
    job = viz.load(str(BUNDLED))
    run_until(viz, lambda: job.finished and job not in viz.jobs)
    viz.state.model.follow = True


def test_a_bundled_model_opens_from_the_model_panels_list(viz, tmp_path, monkeypatch):
    import shutil

    import imgui

    import renderers.model_source as model_source

    zoo = tmp_path / "zoo"
    zoo.mkdir()
    shutil.copy(REPO_ROOT / "assets" / "zoo" / "eg3d.safetensors", zoo / "eg3d.safetensors")
    (zoo / "broken.safetensors").write_bytes(b"\xff" * 16)  # unreadable files are left out of the list
    monkeypatch.setattr(model_source, "ZOO_DIR", zoo)
    for panel in viz.widgets:
        if hasattr(panel, "_bundled_at"):
            panel._bundled_at = -1e9  # list again now
    viz.panel_requests["Model"] = True
    combo = imgui.combo
    offered = []

    def choose(label, current, items, *args):  # the user picks the first bundled model
        if label == "##bundled":
            offered.append(list(items))
            return True, 1
        return combo(label, current, items, *args)

    monkeypatch.setattr(imgui, "combo", choose)
    viz.draw_frame()
    monkeypatch.setattr(imgui, "combo", combo)
    assert offered == [["bundled models ...", "eg3d (6 kimg, SWD 443.0 -> 136.2)"]]  # the zoo's EG3D
    run_until(viz, lambda: viz.state.model.path == str(zoo / "eg3d.safetensors") and viz.state.model.loading is None,
              timeout=60)
    assert viz.state.model.error is None


# --- 6. captures at any size (improvement 6) -----------------------------------------------------

def test_the_capture_panels_size_sets_the_image_screenshots_height(viz, monkeypatch):
    """Picking 512 px in the Capture panel's size combo makes image screenshots (the Screenshot
    button, Ctrl+S) 512 pixels high: the native image resampled by the shared Lanczos filter."""
    import imgui

    from renderers.images import resize_to_height

    viz.state.args.mode = "rgb"
    viz.panel_requests["Capture"] = True
    run_until(viz, viz.settled)
    combo = imgui.combo
    offered = []

    def choose(label, current, items, *args):  # the user picks 512 px in the size combo
        if label == "size":
            offered.append(list(items))
            return True, items.index("512 px")
        return combo(label, current, items, *args)

    monkeypatch.setattr(imgui, "combo", choose)
    viz.draw_frame()
    monkeypatch.setattr(imgui, "combo", combo)
    try:
        assert offered and offered[0][0] == "native" and viz.state.capture.height == 512
        native = viz.viewport.render_image(viz.state.display, viz.view_camera())
        assert native.shape == (64, 64, 3)
        shot = np.asarray(Image.open(viz.screenshot()))  # what the Screenshot button does
        assert shot.shape == (512, 512, 3)
        assert np.array_equal(shot, resize_to_height(native, 512))
        assert (shot[:, 1:] != shot[:, :-1]).any(axis=2).mean() > 0.5  # smooth, not 8x8 blocks (nearest: 1/8)
    finally:
        viz.state.capture.height = None
    assert np.asarray(Image.open(viz.screenshot())).shape == (64, 64, 3)  # native again


# --- 8. the camera path and the depth range are visible (improvement 8) --------------------------

def _window_shot(app, path: Path) -> np.ndarray:
    """The whole window as the next UI frame draws it."""
    app.screenshot(path, what="window")
    app.draw_frame()
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _keyframe_path(yaws=(-0.4, 0.0, 0.4), seconds: float = 1.0):
    from renderers.render_args import CameraPose
    from renderers.trajectories import CameraPath, Keyframe

    last = len(yaws) - 1
    return CameraPath([Keyframe(CameraPose(yaw=y, pitch=0.0), time=seconds * i / last) for i, y in enumerate(yaws)])


def test_the_camera_path_is_drawn_over_the_viewport(viz, tmp_path):
    """Seen from further out with a wide lens, the keyframes are numbered markers where their cameras
    project and the spline joins them; a keyframe behind the view camera is left out; 'show path'
    off draws nothing."""
    from app.path_view import MARKER_COLOR
    from renderers.render_args import CameraPose

    saved = viz.state.args.copy()
    viz.state.args.mode = "rgb"
    viz.state.args.view = CameraPose(yaw=0.0, pitch=0.0, radius=8.0, fov_degrees=60.0)
    path = _keyframe_path()
    path.add(CameraPose(yaw=0.0, pitch=0.0, radius=12.0))  # behind the view camera
    viz.state.camera_path = path
    try:
        run_until(viz, viz.settled)
        shown = _window_shot(viz, tmp_path / "shown.png")
        drawn = viz.path_drawn
        assert [i for i, _, _ in drawn.markers] == [0, 1, 2]
        xs = [x for _, x, _ in drawn.markers]
        x, y, w, h = viz.viewport_rect()
        assert x < min(xs) and max(xs) < x + w and abs(xs[1] - (x + w / 2)) < 1  # the middle key is ahead
        amber = np.array(MARKER_COLOR[:3]) * 255
        for _, mx, my in drawn.markers:
            assert np.abs(shown[int(my), int(mx)] - amber).max() < 12, "no marker where the keyframe projects"
        between = drawn.curves[0][len(drawn.curves[0]) // 4]  # on the curve, between keys 1 and 2

        viz.state.path_view.show = False
        hidden = _window_shot(viz, tmp_path / "hidden.png")
        assert viz.path_drawn is None
        for _, mx, my in drawn.markers:
            patch = (slice(int(my) - 2, int(my) + 3), slice(int(mx) - 2, int(mx) + 3))
            assert np.abs(shown[patch] - hidden[patch]).mean() > 20
        bx, by = int(round(between[0])), int(round(between[1]))
        line = (slice(by - 1, by + 2), slice(bx - 1, bx + 2))
        assert np.abs(shown[line] - hidden[line]).max() > 40, "no curve between the keyframes"
    finally:
        viz.state.path_view.show = True
        viz.state.camera_path = type(path)()
        viz.state.args = saved
        viz.draw_frame()


def _press_camera_button(app, monkeypatch, label: str) -> None:
    """One UI frame in which the camera panel's button ``label`` is clicked."""
    import imgui

    button = imgui.button
    pressed = []

    def press(text, *args, **kwargs):
        if text == label and not pressed:
            pressed.append(text)
            return True
        return button(text, *args, **kwargs)

    monkeypatch.setattr(imgui, "button", press)
    app.draw_frame()
    monkeypatch.setattr(imgui, "button", button)
    assert pressed, f"the camera panel has no {label!r} button"


def test_the_play_button_moves_the_camera_through_the_keyframes(viz, monkeypatch):
    """The preview's clock advances 1/8 s a UI frame here, so the frames land on known path times."""
    from app import path_view

    ticks = iter([0.0] + [i / 8 for i in range(10_000)])  # the click and the click's frame: both t = 0
    monkeypatch.setattr(path_view, "clock", lambda: next(ticks))
    saved = viz.state.args.copy()
    viz.state.args.mode = "rgb"
    yaws = (-0.4, 0.1, 0.5)
    viz.state.camera_path = _keyframe_path(yaws, seconds=1.5)
    viz.panel_requests["Camera"] = True
    viz.draw_frame()
    requested = []
    request = viz.worker.request
    monkeypatch.setattr(viz.worker, "request", lambda args: (requested.append(args.view.yaw), request(args))[1])
    try:
        _press_camera_button(viz, monkeypatch, "play path")
        assert viz.state.path_view.playing_since is not None
        seen = []  # from the click's frame (t = 0) on, one yaw a UI frame

        def step():
            seen.append(viz.state.args.view.yaw)
            return viz.state.path_view.playing_since is None

        run_until(viz, step, timeout=30)
        assert len(seen) == 13  # t = 0, 1/8, ..., 1.5 s: the path's duration
        assert seen[0] == yaws[0], "the preview does not start on the first keyframe"
        assert seen[6] == yaws[1], "the camera did not pass the middle keyframe (t = 0.75 s)"
        assert all(b > a for a, b in zip(seen, seen[1:])), "the camera stood still or went back"
        assert seen[-1] == viz.state.args.view.yaw == yaws[2], "the preview does not end on the last keyframe"
        # through the app's ordinary render requests: the viewport shows the path's end
        assert len(set(requested)) >= 3
        run_until(viz, viz.settled)
        assert viz.frame.args.view.yaw == yaws[2]

        _press_camera_button(viz, monkeypatch, "play path")  # play again, then stop halfway
        run_until(viz, lambda: viz.state.args.view.yaw > yaws[1], timeout=30)
        _press_camera_button(viz, monkeypatch, "stop##path")
        stopped = viz.state.args.view.yaw
        for _ in range(5):
            viz.draw_frame()
        assert viz.state.path_view.playing_since is None and viz.state.args.view.yaw == stopped < yaws[2]
    finally:
        viz.state.path_view.playing_since = None
        viz.state.camera_path = type(viz.state.camera_path)()
        viz.state.args = saved
        viz.draw_frame()


def _lut_indices(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest turbo entry of each pixel and its distance."""
    from renderers.colormaps import colormap_lut

    lut = colormap_lut("turbo").astype(int)
    distance = np.abs(pixels[:, None, :] - lut[None]).sum(-1)
    return distance.argmin(1), distance.min(1)


def test_the_depth_mode_shows_a_colour_bar_with_its_range(viz, monkeypatch, tmp_path):
    from renderers.display_frame import depth_limits

    saved, display = viz.state.args.copy(), viz.state.display
    viz.state.args.mode = "depth"
    display.colormap, display.depth_range, display.depth_invert = "turbo", "auto", False
    try:
        run_until(viz, viz.settled)
        viz.draw_frame()
        recorder = Recorder(monkeypatch)
        recorder.start()
        shot = _window_shot(viz, tmp_path / "depth.png")
        near, far = depth_limits(viz.viewport.frame, display)
        assert (near, far) == viz.viewport.frame.depth_range and near < far  # the auto range of this image
        texts = [i["label"] for i in recorder.items if i["fn"] == "text"]
        assert f"near {near:.3f}" in texts and f"far {far:.3f}" in texts, texts
        assert not recorder.truncated(), recorder.truncated()
        x0, y0, x1, y1 = viz.depth_bar_rect
        x, y, w, h = viz.viewport_rect()
        assert x + w * 0.8 < x0 < x1 <= x + w and h * 0.2 < y0 < y1 < h * 0.8  # at the right edge
        column = shot[int(y0) + 1:int(y1) - 1, int((x0 + x1) / 2)]
        index, distance = _lut_indices(column)
        assert distance.max() < 12, "the bar's colours are not the colormap's"
        assert index[0] > 245 and index[-1] < 10  # near (top) is the map's high end, far its low end
        assert (np.diff(index) <= 0).all(), "the bar is not the colormap in order"
        bar = viz.depth_bar_rect

        display.depth_range, display.depth_near, display.depth_far = "fixed", 2.0, 3.5
        recorder.start()
        viz.draw_frame()
        texts = [i["label"] for i in recorder.items if i["fn"] == "text"]
        assert "near 2.000" in texts and "far 3.500" in texts

        viz.state.args.mode = "rgb"
        run_until(viz, viz.settled)
        viz.draw_frame()
        recorder.start()
        shot = _window_shot(viz, tmp_path / "rgb.png")
        assert viz.depth_bar_rect is None
        assert not any(i["label"].startswith(("near ", "far ")) for i in recorder.items)
        index, distance = _lut_indices(shot[int(bar[1]) + 1:int(bar[3]) - 1, int((bar[0] + bar[2]) / 2)])
        assert not (distance.max() < 12 and (np.diff(index) <= 0).all()), "a colour bar in the rgb mode"
    finally:
        display.depth_range = "auto"
        viz.state.args = saved
        viz.draw_frame()


def test_a_window_shot_does_not_wait_for_a_panel_this_model_does_not_list(viz, tmp_path):
    """Bug: a request to open a panel that is not listed (the Scene panel of a non-compositional
    model) stayed pending forever, and window screenshots wait for pending panel requests."""
    hidden = [w.title for w in viz.widgets if not w.shown()]
    assert hidden, "every panel is listed for this model"
    viz.panel_requests.update({title: True for title in hidden})
    viz.screenshot(tmp_path / "w.png", what="window")
    viz.draw_frame()
    assert (tmp_path / "w.png").is_file() and not viz.panel_requests
    assert all(viz.state.ui.panels_open[title] for title in hidden)
