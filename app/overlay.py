"""Text drawn over the viewport: render errors, loading and job progress, recent notices."""

from __future__ import annotations

import time

import imgui

NOTICE_SECONDS = 6.0


def draw_overlay(viz) -> None:
    """A transparent, input-free window in the viewport's top-left corner."""
    x, y, w, h = viz.viewport_rect()
    lines = _lines(viz)
    if not lines:
        return
    # Sized from this frame's text (imgui's auto-resize would use last frame's, so a new or longer
    # line would show clipped for a frame).
    wrap = max(w - 56.0, 64.0)
    width, height = overlay_size([text for text, _ in lines], wrap)
    imgui.set_next_window_position(x + 8, y + 8)
    imgui.set_next_window_size(width, height)
    imgui.set_next_window_bg_alpha(0.55)
    flags = (imgui.WINDOW_NO_DECORATION | imgui.WINDOW_NO_SAVED_SETTINGS | imgui.WINDOW_NO_FOCUS_ON_APPEARING
             | imgui.WINDOW_NO_NAV | imgui.WINDOW_NO_MOVE | imgui.WINDOW_NO_INPUTS | imgui.WINDOW_NO_SCROLLBAR)
    imgui.begin("overlay", flags=flags)
    imgui.push_text_wrap_pos(imgui.get_cursor_pos_x() + wrap)
    for text, color in lines:
        imgui.text_colored(text, *color)
    imgui.pop_text_wrap_pos()
    imgui.end()


def overlay_size(texts: list[str], wrap: float) -> tuple[float, float]:
    """(width, height) of the overlay window holding these lines wrapped at ``wrap`` pixels."""
    style = imgui.get_style()
    sizes = [imgui.calc_text_size(text, False, wrap) for text in texts]
    width = max(size.x for size in sizes) + 2 * style.window_padding.x
    height = sum(size.y for size in sizes) + style.item_spacing.y * (len(sizes) - 1) + 2 * style.window_padding.y
    return float(width), float(height)


def _lines(viz) -> list[tuple[str, tuple[float, float, float, float]]]:
    state, now = viz.state, time.monotonic()
    white, amber, red = (0.9, 0.9, 0.9, 1.0), (1.0, 0.85, 0.3, 1.0), (1.0, 0.45, 0.45, 1.0)
    lines = []
    model = state.model
    if model.label:
        kimg = f"  [{model.snapshot_kimg:g} kimg]" if model.snapshot_kimg is not None else ""
        lines.append((model.label + kimg, white))
    if model.label.startswith("fresh tiny"):
        lines.append(("untrained stand-in model: expect noise", amber))
    if model.loading:
        lines.append((f"loading {model.loading} ...", amber))
    if state.viewport_error:
        lines.append((f"render error: {state.viewport_error}", red))
    for job in viz.jobs:
        pct = f" {100 * job.fraction:.0f}%" if job.total else ""
        lines.append((f"{job.name}{pct}", amber))
    for message in state.messages[-3:]:
        if now - message.time < NOTICE_SECONDS:
            lines.append((message.text, red if message.level == "error" else white))
    return lines
