"""The Scene panel of compositional models (GIRAFFE) in a real window, driven by injected input:
dragging an object's slider through the glfw callbacks moves the object in the rendered image, the
object count removes it, reset brings the defaults back; other models do not list the panel. The
batch tools take the same scene settings."""

from __future__ import annotations

import math
import os
import shutil

import numpy as np
import pytest

from models.scene import SceneControls
from tests.conftest import REPO_ROOT, SHARED_DIR, require
from tests.test_app import run_until, settle

GIRAFFE = SHARED_DIR / "fixtures" / "giraffe_ref" / "model_best.pt"
RELEASE = "giraffe-compcars64"
WINDOW = (900, 1000)

pytestmark = pytest.mark.skipif(not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")),
                                reason="no display (run under xvfb-run, as `make test` does)")


@pytest.fixture(scope="module")
def viz(tmp_path_factory):
    from app.viewer import Visualizer

    folder = tmp_path_factory.mktemp("giraffe")
    path = folder / "model_best.pt"
    shutil.copy(require(GIRAFFE), path)
    app = Visualizer(str(path), device="cpu", size=WINDOW, release=RELEASE)
    run_until(app, app.settled)
    yield app
    app.close()




def scene_panel(app):
    panel = next(w for w in app.widgets if w.title == "Scene")
    # only the Scene panel expanded, so its controls are on screen
    app.panel_requests.update({w.title: w.title == "Scene" for w in app.widgets})
    for _ in range(3):
        app.draw_frame()
    return panel


def drag_control(app, rect, fraction_from: float, fraction_to: float, steps: int = 6) -> None:
    """Press on a control at a fraction of its width, move to another, release: glfw callbacks."""
    import glfw

    window, handle = app.window, app.window.handle
    x0, y0, x1, y1 = rect
    y = (y0 + y1) / 2
    start, end = x0 + (x1 - x0) * fraction_from, x0 + (x1 - x0) * fraction_to
    window.cursor_callback(handle, start, y)
    app.draw_frame()
    window.mouse_button_callback(handle, glfw.MOUSE_BUTTON_LEFT, glfw.PRESS, 0)
    app.draw_frame()
    for i in range(1, steps + 1):
        window.cursor_callback(handle, start + (end - start) * i / steps, y)
        app.draw_frame()
    window.mouse_button_callback(handle, glfw.MOUSE_BUTTON_LEFT, glfw.RELEASE, 0)
    app.draw_frame()


def click(app, rect) -> None:
    drag_control(app, rect, 0.5, 0.5, steps=1)


def test_the_panel_is_listed_for_compositional_models_only(viz):
    defaults = viz.state.model.scene_defaults
    assert defaults is not None and len(defaults.objects) == 1
    assert viz.state.args.scene == SceneControls()
    assert next(w for w in viz.widgets if w.title == "Scene").shown()
    viz.state.model.scene_defaults = None
    try:
        assert not next(w for w in viz.widgets if w.title == "Scene").shown()
        viz.draw_frame()
    finally:
        viz.state.model.scene_defaults = defaults


def test_dragging_an_object_slider_moves_the_object_in_the_image(viz):
    panel = scene_panel(viz)
    viz.state.args.scene = SceneControls()
    before = settle(viz)
    home = viz.state.model.scene_defaults.objects[0]
    assert "object 0 y" in panel.rects
    drag_control(viz, panel.rects["object 0 y"], 0.5, 0.8)
    moved = viz.state.args.scene.objects[0]
    assert moved.translation[1] > home.translation[1] + 0.2
    assert moved.translation[0] == pytest.approx(home.translation[0]) and moved.scale == pytest.approx(home.scale)
    after = settle(viz)
    change = np.abs(after - before).max(-1)
    # where the object was or went (its opacity alone, from the generator at the app's identity and view)
    occupied = np.zeros(change.shape, dtype=bool)
    for scene in (SceneControls(), viz.state.args.scene):
        alpha = object_alpha(viz, scene)
        occupied |= np.kron(alpha, np.ones((change.shape[0] // alpha.shape[0],) * 2)) > 0.5
    assert occupied.any() and (~occupied).any()
    assert change[occupied].mean() > 20 and change[occupied].mean() > 3 * change[~occupied].mean()


def object_alpha(app, scene: SceneControls) -> np.ndarray:
    """[r, r] opacity of object 0 alone as the app's request renders it."""
    import torch

    from models import load_generator
    from models.scene import RenderOptions
    from renderers.renderer import GeneratorRenderer

    G = load_generator(app.state.model.path, release=RELEASE)
    renderer, args = GeneratorRenderer(G), app.state.args
    with torch.no_grad():
        ws = renderer.latent_ws(args.latent, args.cond)
        camera = renderer.camera(args.view)
        alpha = G.embedder.alpha_maps(G, G.planes(ws), camera, G.neural_rendering_resolution,
                                      RenderOptions(scene=scene))
    return alpha[0, 0].numpy()


def test_object_count_and_reset(viz):
    panel = scene_panel(viz)
    viz.state.args.scene = SceneControls()
    default = settle(viz)
    drag_control(viz, panel.rects["objects"], 0.9, 0.0)
    assert viz.state.args.scene.objects == ()
    without = settle(viz)
    assert np.abs(without - default).mean() > 1.0
    for _ in range(2):
        viz.draw_frame()
    drag_control(viz, panel.rects["background"], 0.5, 0.75)
    assert viz.state.args.scene.background_rotation == pytest.approx(math.pi / 2, abs=0.2)
    click(viz, panel.rects["reset"])
    assert viz.state.args.scene == SceneControls()
    assert np.abs(settle(viz) - default).max() < 1e-3


def test_batch_tools_take_scene_settings(tmp_path):
    import subprocess
    import sys

    from PIL import Image

    path = tmp_path / "model_best.pt"
    shutil.copy(require(GIRAFFE), path)

    def images(*extra: str) -> np.ndarray:
        out = tmp_path / f"img{len(list(tmp_path.iterdir()))}"
        result = subprocess.run([sys.executable, str(REPO_ROOT / "visualizer.py"), "images", str(path), "--seeds", "0",
                                 "--views", "1", "--out", str(out), "--release", RELEASE, *extra],
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        return np.asarray(Image.open(out / "seed0000.png")).astype(np.float32)

    default = images()
    moved = images("--object", "0:t=0.2,0.3,0:s=0.25:r=40")
    gone = images("--objects", "0")
    assert np.abs(moved - default).mean() > 1.0 and np.abs(gone - default).mean() > 1.0
    result = subprocess.run([sys.executable, str(REPO_ROOT / "visualizer.py"), "images", str(path), "--views", "1",
                             "--out", str(tmp_path / "bad"), "--release", RELEASE, "--object", "3:t=0,0,0"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 2 and "object 3" in result.stderr and result.stderr.count("\n") == 1, result.stderr
