"""The Latent panel's class control for class-conditional models (EpiGRAF's Megascans releases), in a
real window: a click on the field and typed digits go through the window's own glfw callbacks, and the
rendered class changes (typed characters go to the callback glfw calls, ``imgui.char_callback``).
Unconditional models show no control. Skipped without a display."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from tests.conftest import SHARED_DIR, require
from tests.test_app import run_until

pytestmark = pytest.mark.skipif(not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")),
                                reason="no display (run under xvfb-run, as `make test` does)")

CLASSES = 3


@pytest.fixture(scope="module")
def conditional_checkpoint(tmp_path_factory):
    """The EpiGRAF fixture's architecture, class-conditional (3 classes, random weights), saved in our format."""
    from models import load_generator
    from models.checkpoint import save_generator
    from models.pipeline import PipelineGenerator

    G = load_generator(require(SHARED_DIR / "fixtures" / "epigraf_ref" / "network.pkl"), settings={"img_resolution": 32})
    config = G.config.copy()
    config.mapping.classes = CLASSES
    torch.manual_seed(0)
    conditional = PipelineGenerator(config)
    path = tmp_path_factory.mktemp("classes") / "conditional.safetensors"
    save_generator(conditional, path)
    return path



def test_typing_a_class_renders_that_class(conditional_checkpoint):
    import glfw

    from app.viewer import Visualizer
    from widgets.latent_widget import LatentWidget

    app = Visualizer(str(conditional_checkpoint), device="cpu", size=(900, 700))
    try:
        run_until(app, lambda: app.state.model.num_classes == CLASSES and app.settled())
        panel = next(w for w in app.widgets if isinstance(w, LatentWidget))
        app.panel_requests[panel.title] = True  # open whatever an earlier window in this process left it
        run_until(app, lambda: panel.class_field is not None)
        latent = app.state.args.latent
        assert latent.class_index is None  # the model's own class (0 at load)
        before = app.viewport.render_image(app.state.display, app.view_camera()).astype(np.float32)

        window, handle = app.window, app.window.handle

        def type_class(text: str) -> None:
            """Click the field's text, type (the field selects its text on focus), press Enter."""
            x0, y0, x1, y1 = panel.class_field
            window.cursor_callback(handle, x0 + 20, (y0 + y1) / 2)  # left of the -/+ buttons
            app.draw_frame()
            window.mouse_button_callback(handle, glfw.MOUSE_BUTTON_LEFT, glfw.PRESS, 0)
            app.draw_frame()
            window.mouse_button_callback(handle, glfw.MOUSE_BUTTON_LEFT, glfw.RELEASE, 0)
            app.draw_frame()
            for char in text:
                window.imgui.char_callback(handle, ord(char))
                app.draw_frame()
            window.key_callback(handle, glfw.KEY_ENTER, 0, glfw.PRESS, 0)
            app.draw_frame()
            window.key_callback(handle, glfw.KEY_ENTER, 0, glfw.RELEASE, 0)
            app.draw_frame()

        type_class("1")
        assert latent.class_index == 1
        run_until(app, app.settled)
        after = app.viewport.render_image(app.state.display, app.view_camera()).astype(np.float32)
        assert np.abs(after - before).mean() > 0.5  # another class, another identity

        type_class("9")  # past the last class: clamped to it
        assert latent.class_index == CLASSES - 1

        from app.script import apply_settings

        apply_settings(app, {"class_index": 0})  # a session script's {"set": {"class_index": 0}}
        assert app.state.args.latent.class_index == 0
    finally:
        app.close()


def test_unconditional_models_show_no_class_control():
    from app.viewer import Visualizer
    from tests.test_app import BUNDLED
    from widgets.latent_widget import LatentWidget

    app = Visualizer(str(BUNDLED), device="cpu", size=(900, 600))
    try:
        run_until(app, app.settled)
        assert app.state.model.num_classes == 0
        assert next(w for w in app.widgets if isinstance(w, LatentWidget)).class_field is None
    finally:
        app.close()
