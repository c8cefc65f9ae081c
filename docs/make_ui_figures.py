"""Regenerate the README's window-size, help and tooltip screenshots:
``xvfb-run -a -s "-screen 0 2000x1200x24" python docs/make_ui_figures.py``.

Drives the real app on the bundled model (through its input callbacks, as the tests do) with every
panel open, at 700x450 and at 1800x1000: ``docs/app_700x450.png``, ``docs/app_1800x1000.png``;
the help overlay (F1): ``docs/app_help.png``; the tooltip of "normals from" in normals mode, hovered:
``docs/app_tooltip.png``. Settings are not read or written (no settings file).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    import glfw
    import imgui

    from app.viewer import Visualizer

    os.chdir(REPO)  # paths in the pictures relative to the repository
    viz = Visualizer("assets/default_generator.safetensors", device="cpu", size=(700, 450))

    def frames(n: int = 3) -> None:
        for _ in range(n):
            viz.draw_frame()

    def settle() -> None:
        deadline = time.monotonic() + 120
        viz.draw_frame()
        while not viz.settled() and time.monotonic() < deadline:
            viz.draw_frame()
        frames()

    def shot(name: str) -> None:
        viz.state.messages.clear()  # the pictures show the app, not the notices of the earlier shots
        viz.screenshot(DOCS / name, what="window")
        frames(2)

    def resize(w: int, h: int) -> None:
        glfw.set_window_size(viz.window.handle, w, h)
        deadline = time.monotonic() + 10
        while tuple(viz.window.window_size()) != (w, h) and time.monotonic() < deadline:
            viz.draw_frame()
        settle()

    try:
        viz.state.args.latent.seed_x = 1.0
        viz.state.args.view.yaw = 0.35
        viz.panel_requests.update({w.title: True for w in viz.widgets})
        settle()
        shot("app_700x450.png")
        resize(1800, 1000)
        shot("app_1800x1000.png")
        resize(1100, 700)
        viz.handle_key(glfw.KEY_F1)
        frames()
        shot("app_help.png")
        viz.handle_key(glfw.KEY_F1)
        viz.state.args.mode = "normals"
        viz.state.args.normals_source = "density"
        viz.panel_requests.update({"Latent": False, "Truncation": False, "Camera": False, "Capture": False,
                                   "Quality": False, "Performance": False})
        settle()
        rects = []
        combo = imgui.combo

        def spy(label, *args, **kwargs):
            result = combo(label, *args, **kwargs)
            if label == "normals from":
                rects.append((imgui.get_item_rect_min(), imgui.get_item_rect_max()))
            return result

        imgui.combo = spy
        frames(2)
        imgui.combo = combo
        (x0, y0), (x1, y1) = rects[-1]
        viz.window.cursor_callback(viz.window.handle, (x0 + x1) / 2, (y0 + y1) / 2)
        frames(3)
        shot("app_tooltip.png")
    finally:
        viz.close()
    print("wrote docs/app_700x450.png, app_1800x1000.png, app_help.png, app_tooltip.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
