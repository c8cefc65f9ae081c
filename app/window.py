"""The glfw window with an OpenGL 3.3 core context and pyimgui on top.

Input reaches the app through callbacks registered here (mouse buttons, cursor, wheel, keys,
dropped files); each one first feeds imgui, then the app's handler. Tests inject events by calling
these same callbacks, so an injected drag takes the path of a real one.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable

import glfw
import imgui
import OpenGL.GL as gl
from imgui.integrations.glfw import GlfwRenderer


class WindowError(RuntimeError):
    """No window or GL context could be made (no display, no OpenGL 3.3)."""


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


DISPLAY_RETRIES = (0.25, 0.5, 1.0, 2.0)
"""Seconds to wait before each retry when the display refuses a connection."""


def init_glfw() -> None:
    """Initialise glfw; without an X/Wayland display, fall back to its null platform (EGL/OSMesa).

    A display that refuses the connection is retried a few times: an X server can turn a client
    away for a moment while it is still tearing down the previous one (seen with Xvfb when a
    window closes and another opens straight after, as the test suite does)."""
    if not has_display() and hasattr(glfw, "PLATFORM_NULL"):
        glfw.init_hint(glfw.PLATFORM, glfw.PLATFORM_NULL)
    for delay in (*DISPLAY_RETRIES, None):
        with warnings.catch_warnings():
            if delay is not None:  # only the last attempt's failure is worth a warning
                warnings.simplefilter("ignore", glfw.GLFWError)
            if glfw.init():
                return
        description = glfw.get_error()[1] if hasattr(glfw, "get_error") else None
        if delay is None or not has_display():
            break
        time.sleep(delay)
    raise WindowError(f"glfw could not start ({description or 'no display?'}); run under Xvfb "
                      "(xvfb-run) or on a desktop")


class AppWindow:
    """One window: GL context, imgui context and input callbacks."""

    def __init__(self, title: str, width: int, height: int, visible: bool = True, vsync: bool = False):
        if visible and not has_display():
            raise WindowError("no display to open the window on (DISPLAY and WAYLAND_DISPLAY are unset): run on a "
                              "desktop, or under a virtual one: xvfb-run -a python visualizer.py ...")
        init_glfw()
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
        glfw.window_hint(glfw.VISIBLE, visible)
        glfw.window_hint(glfw.DEPTH_BITS, 24)
        self.handle = glfw.create_window(width, height, title, None, None)
        if not self.handle:
            raise WindowError("could not create an OpenGL 3.3 core window")
        glfw.make_context_current(self.handle)
        self.set_vsync(vsync)
        self.gl_renderer = gl.glGetString(gl.GL_RENDERER).decode(errors="replace")
        imgui.create_context()
        imgui.get_io().ini_file_name = None  # layout is ours; don't litter the working folder
        self.imgui = GlfwRenderer(self.handle, attach_callbacks=False)
        self.on_mouse_button: Callable[[int, int, int], None] | None = None
        self.on_cursor: Callable[[float, float], None] | None = None
        self.on_scroll: Callable[[float, float], None] | None = None
        self.on_key: Callable[[int, int, int], None] | None = None
        self.on_drop: Callable[[list[str]], None] | None = None
        self.on_error: Callable[[BaseException], None] | None = None
        """Where an exception raised by an input handler goes (glfw would re-raise it out of the main
        loop and end the app); without one it is printed."""
        # imgui sees the mouse through these (not by polling glfw), so injected events reach it too.
        self.cursor = (-1.0, -1.0)
        self.buttons = [False, False, False]
        glfw.set_mouse_button_callback(self.handle, self.mouse_button_callback)
        glfw.set_cursor_pos_callback(self.handle, self.cursor_callback)
        glfw.set_scroll_callback(self.handle, self.scroll_callback)
        glfw.set_key_callback(self.handle, self.key_callback)
        glfw.set_char_callback(self.handle, self.imgui.char_callback)
        glfw.set_window_size_callback(self.handle, self.imgui.resize_callback)
        glfw.set_drop_callback(self.handle, self.drop_callback)

    # --- callbacks (also the injection points for tests) ---------------------------------------

    def _dispatch(self, handler: Callable[..., None] | None, *args) -> None:
        """Run an input handler; nothing it raises may leave a glfw callback."""
        if handler is None:
            return
        try:
            handler(*args)
        except Exception as error:  # noqa: BLE001 - any handler error becomes a message, the app goes on
            if self.on_error is not None:
                self.on_error(error)
            else:
                print(f"error: {type(error).__name__}: {error}", file=sys.stderr)

    def mouse_button_callback(self, window, button: int, action: int, mods: int) -> None:
        if 0 <= button < len(self.buttons):
            self.buttons[button] = action == glfw.PRESS
        self._dispatch(self.on_mouse_button, button, action, mods)

    def cursor_callback(self, window, x: float, y: float) -> None:
        self.cursor = (float(x), float(y))
        self._dispatch(self.on_cursor, x, y)

    def scroll_callback(self, window, dx: float, dy: float) -> None:
        self.imgui.scroll_callback(window, dx, dy)
        self._dispatch(self.on_scroll, dx, dy)

    def key_callback(self, window, key: int, scancode: int, action: int, mods: int) -> None:
        self.imgui.keyboard_callback(window, key, scancode, action, mods)
        self._dispatch(self.on_key, key, action, mods)

    def drop_callback(self, window, paths: list[str]) -> None:
        self._dispatch(self.on_drop, list(paths))

    # --- frame ----------------------------------------------------------------------------------

    def set_vsync(self, on: bool) -> None:
        glfw.swap_interval(1 if on else 0)

    def should_close(self) -> bool:
        return bool(glfw.window_should_close(self.handle))

    def close(self) -> None:
        glfw.set_window_should_close(self.handle, True)

    def framebuffer_size(self) -> tuple[int, int]:
        return glfw.get_framebuffer_size(self.handle)

    def window_size(self) -> tuple[int, int]:
        return glfw.get_window_size(self.handle)

    def content_scale(self) -> float:
        """The monitor's content scale (e.g. 2 on a HiDPI screen set to 200%); 1 where unknown."""
        try:
            x, y = glfw.get_window_content_scale(self.handle)
        except Exception:  # noqa: BLE001 - older glfw or the null platform
            return 1.0
        scale = max(float(x), float(y))
        return scale if 0.25 <= scale <= 8.0 else 1.0

    def set_title(self, title: str) -> None:
        glfw.set_window_title(self.handle, title)

    def begin_frame(self) -> None:
        glfw.poll_events()
        self.imgui.process_inputs()
        io = imgui.get_io()
        io.mouse_pos = self.cursor
        for i, down in enumerate(self.buttons):
            io.mouse_down[i] = down
        imgui.new_frame()

    def end_frame_ui(self) -> None:
        imgui.render()
        self.imgui.render(imgui.get_draw_data())

    def swap(self) -> None:
        glfw.swap_buffers(self.handle)

    def destroy(self) -> None:
        self.imgui.shutdown()
        glfw.destroy_window(self.handle)
        glfw.terminate()
