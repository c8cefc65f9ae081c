"""Text drawn over the viewport: render errors, loading and job progress, recent notices.

Repeated notices are collapsed into one line ("(x3)"), info notices fade out after
``NOTICE_SECONDS``, errors stay until dismissed, and a click on a notice dismisses it (the app's
mouse handler asks ``overlay_hit`` which notice, if any, is under the cursor).
"""

from __future__ import annotations

import time

import imgui

from app.state import NOTICE_SECONDS, Message

__all__ = ["NOTICE_SECONDS", "draw_overlay", "job_text", "overlay_hit", "overlay_size"]

MAX_NOTICES = 4
"""Notices shown at once (the newest)."""


def draw_overlay(viz) -> None:
    """A transparent, input-free window in the viewport's top-left corner."""
    x, y, w, h = viz.viewport_rect()
    lines = _lines(viz)
    viz.overlay_hits = []
    if not lines:
        return
    # Sized from this frame's text (imgui's auto-resize would use last frame's, so a new or longer
    # line would show clipped for a frame).
    wrap = max(w - 56.0, 64.0)
    width, height = overlay_size([text for text, _, _ in lines], wrap)
    imgui.set_next_window_position(x + 8, y + 8)
    imgui.set_next_window_size(width, height)
    imgui.set_next_window_bg_alpha(0.55 * max(color[3] for _, color, _ in lines))
    flags = (imgui.WINDOW_NO_DECORATION | imgui.WINDOW_NO_SAVED_SETTINGS | imgui.WINDOW_NO_FOCUS_ON_APPEARING
             | imgui.WINDOW_NO_NAV | imgui.WINDOW_NO_MOVE | imgui.WINDOW_NO_INPUTS | imgui.WINDOW_NO_SCROLLBAR)
    imgui.begin("overlay", flags=flags)
    imgui.push_text_wrap_pos(imgui.get_cursor_pos_x() + wrap)
    for text, color, message in lines:
        imgui.text_colored(text, *color)
        if message is not None:
            (x0, y0), (x1, y1) = imgui.get_item_rect_min(), imgui.get_item_rect_max()
            viz.overlay_hits.append(((x0, y0, x1, y1), message))
    imgui.pop_text_wrap_pos()
    imgui.end()


def overlay_hit(viz, x: float, y: float) -> Message | None:
    """The notice drawn under (x, y) window pixels in the last frame, if any."""
    for (x0, y0, x1, y1), message in getattr(viz, "overlay_hits", []):
        if x0 <= x <= x1 and y0 <= y <= y1:
            return message
    return None


def overlay_size(texts: list[str], wrap: float) -> tuple[float, float]:
    """(width, height) of the overlay window holding these lines wrapped at ``wrap`` pixels."""
    style = imgui.get_style()
    sizes = [imgui.calc_text_size(text, False, wrap) for text in texts]
    width = max(size.x for size in sizes) + 2 * style.window_padding.x
    height = sum(size.y for size in sizes) + style.item_spacing.y * (len(sizes) - 1) + 2 * style.window_padding.y
    return float(width), float(height)


def message_text(message: Message) -> str:
    count = f" (x{message.count})" if message.count > 1 else ""
    hint = "   [click to dismiss]" if message.level == "error" else ""
    return f"{message.text}{count}{hint}"


def job_text(job) -> str:
    """A running job's line: "video v.mp4  12/60 frames (20%)", or its percentage alone when what it
    counts means nothing to people (a mesh's grid points)."""
    if not job.total:
        return job.name
    pct = f"{100 * job.fraction:.0f}%"
    return f"{job.name}  {job.done}/{job.total} {job.unit} ({pct})" if job.unit else f"{job.name} {pct}"


def _lines(viz) -> list[tuple[str, tuple[float, float, float, float], Message | None]]:
    state, now = viz.state, time.monotonic()
    white, amber, red = (0.9, 0.9, 0.9, 1.0), (1.0, 0.85, 0.3, 1.0), (1.0, 0.45, 0.45, 1.0)
    lines = []
    model = state.model
    if model.label:
        kimg = f"  [{model.snapshot_kimg:g} kimg]" if model.snapshot_kimg is not None else ""
        lines.append((model.label + kimg, white, None))
    if model.label.startswith("fresh tiny"):
        lines.append(("untrained stand-in model: expect noise", amber, None))
    if model.loading:
        lines.append((f"loading {model.loading} ...", amber, None))
    if state.viewport_error:
        lines.append((f"render error: {state.viewport_error}", red, None))
    for job in viz.jobs:
        lines.append((job_text(job), amber, None))
    showing = [m for m in state.messages if m.showing(now)]
    for message in showing[-MAX_NOTICES:]:
        r, g, b, _ = red if message.level == "error" else white
        lines.append((message_text(message), (r, g, b, message.opacity(now)), message))
    return lines
