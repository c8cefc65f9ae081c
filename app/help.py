"""The help overlay (F1 or ?): every key and mouse action of the app, drawn over the window."""

from __future__ import annotations

import imgui

from renderers.render_args import RENDER_MODES

KEYS: tuple[tuple[str, str], ...] = (
    ("left drag", "orbit the camera around the pivot"),
    ("right or middle drag", "pan: move the pivot"),
    ("mouse wheel", "zoom: camera radius"),
    ("arrow keys", "orbit in steps"),
    ("R", "reset the camera to the model's own view"),
    ("F", "mesh mode: frame the mesh (fit the camera to its bounds)"),
    ("PgUp / PgDn", "next / previous seed"),
    ("Space", "animate: drift the seed"),
    (f"1 - {len(RENDER_MODES)}", "render mode: " + ", ".join(RENDER_MODES)),
    ("Ctrl+S", "screenshot (what and where: Capture panel)"),
    ("Tab", "hide or show the control panel"),
    ("Ctrl+plus / Ctrl+minus", "larger or smaller text and controls"),
    ("Ctrl+0", "automatic UI size (from the window and the monitor)"),
    ("drag the panel's right edge", "resize the control panel"),
    ("hover a control", "what it does (tooltip)"),
    ("click a message", "dismiss it (errors stay until dismissed)"),
    ("drop a file on the window", "open a checkpoint or run folder"),
    ("F1 or ?", "this help; Esc or a click closes it"),
)
"""(key or mouse action, what it does), in the order shown."""

TITLE = "Keys and mouse (F1 or ? toggles, Esc or a click closes)"


def help_layout(width: float, height: float) -> tuple[float, float, float, float, float]:
    """(x, y, w, h, key column width) of the help window for a window of this size."""
    style = imgui.get_style()
    margin = 16.0
    key_column = max(imgui.calc_text_size(key).x for key, _ in KEYS) + 2 * style.item_spacing.x
    text_width = max(imgui.calc_text_size(text).x for _, text in KEYS)
    w = min(width - 2 * margin, max(key_column + text_width, imgui.calc_text_size(TITLE).x) + 2 * style.window_padding.x)
    wrap = w - 2 * style.window_padding.x - key_column
    rows = sum(max(imgui.calc_text_size(text, False, max(wrap, 32.0)).y, imgui.get_text_line_height())
               for _, text in KEYS)
    h = rows + style.item_spacing.y * (len(KEYS) + 1) + imgui.get_text_line_height() * 2 + 2 * style.window_padding.y
    h = min(h, height - 2 * margin)
    return (width - w) / 2, (height - h) / 2, w, h, key_column


def draw_help(viz) -> None:
    if not viz.state.ui.help_open:
        return
    x, y, w, h, key_column = help_layout(*viz.window.window_size())
    imgui.set_next_window_position(x, y)
    imgui.set_next_window_size(w, h)
    imgui.set_next_window_bg_alpha(0.92)
    flags = imgui.WINDOW_NO_DECORATION | imgui.WINDOW_NO_SAVED_SETTINGS | imgui.WINDOW_NO_MOVE | imgui.WINDOW_NO_NAV
    imgui.begin("help", flags=flags)
    imgui.push_text_wrap_pos(0.0)
    imgui.text_colored(TITLE, 1.0, 0.85, 0.3)
    imgui.separator()
    start = imgui.get_cursor_pos_x()
    for key, text in KEYS:
        imgui.text(key)
        imgui.same_line(start + key_column)
        imgui.text_wrapped(text)
    imgui.pop_text_wrap_pos()
    imgui.end()
