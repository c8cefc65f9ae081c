"""Small input controls that more than one panel uses."""

from __future__ import annotations

import imgui


def iso_level_input(label: str, level: float | None, auto_value: float | None) -> float | None:
    """An 'auto' checkbox and, when unchecked, the level; returns None for auto."""
    auto = imgui.checkbox(f"auto##{label}", level is None)[1]
    imgui.same_line()
    if auto:
        shown = f"{auto_value:.2f}" if auto_value is not None else "from the rendered surface"
        imgui.text_disabled(f"{label}: {shown}")
        return None
    start = level if level is not None else (auto_value if auto_value is not None else 10.0)
    return imgui.drag_float(label, start, 0.1, -100.0, 200.0, "%.2f")[1]
