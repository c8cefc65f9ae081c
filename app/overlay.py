"""Text drawn over the viewport: render errors, loading and job progress, recent notices."""

from __future__ import annotations

import time

import imgui

NOTICE_SECONDS = 6.0


def draw_overlay(viz) -> None:
    """A transparent, input-free window in the viewport's top-left corner."""
    x, y, w, h = viz.viewport_rect()
    imgui.set_next_window_position(x + 8, y + 8)
    imgui.set_next_window_bg_alpha(0.55)
    flags = (imgui.WINDOW_NO_DECORATION | imgui.WINDOW_ALWAYS_AUTO_RESIZE | imgui.WINDOW_NO_SAVED_SETTINGS
             | imgui.WINDOW_NO_FOCUS_ON_APPEARING | imgui.WINDOW_NO_NAV | imgui.WINDOW_NO_MOVE
             | imgui.WINDOW_NO_INPUTS)
    lines = _lines(viz)
    if not lines:
        return
    imgui.begin("overlay", flags=flags)
    imgui.push_text_wrap_pos(w - 40)
    for text, color in lines:
        imgui.text_colored(text, *color)
    imgui.pop_text_wrap_pos()
    imgui.end()


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
