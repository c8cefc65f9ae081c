"""Small input controls and layout helpers that more than one panel uses."""

from __future__ import annotations

import imgui

TOOLTIP_EM = 32.0
"""Tooltip text wraps at this many font heights."""


def tooltip(text: str) -> bool:
    """Show ``text`` as a tooltip when the last drawn item is hovered; True if shown.

    Call right after the control it explains (every control in the panels has one)."""
    if not imgui.is_item_hovered():
        return False
    imgui.begin_tooltip()
    imgui.push_text_wrap_pos(imgui.get_font_size() * TOOLTIP_EM)
    imgui.text_unformatted(text)
    imgui.pop_text_wrap_pos()
    imgui.end_tooltip()
    return True


def note(text: str) -> None:
    """Greyed explanatory text, wrapped at the panel's edge (never clipped)."""
    imgui.push_text_wrap_pos(0.0)
    imgui.text_disabled(text)
    imgui.pop_text_wrap_pos()


def label_space(*labels: str) -> float:
    """Negative item width that leaves room for the longest of these labels after a control
    (``imgui.push_item_width(label_space(...))``), so labels are never clipped at any UI scale."""
    style = imgui.get_style()
    widest = max(imgui.calc_text_size(label.split("##")[0]).x for label in labels)
    return -(widest + style.item_inner_spacing.x + style.window_padding.x * 0.5)


def item_width(label: str, control_ems: float) -> float:
    """Width in pixels of a control ``control_ems`` font heights wide plus its label (for rows of
    controls joined with ``same_line_if_fits``)."""
    return control_ems * imgui.get_font_size() + imgui.get_style().item_inner_spacing.x \
        + imgui.calc_text_size(label.split("##")[0]).x


def same_line_if_fits(next_width: float) -> None:
    """``imgui.same_line()`` if an item ``next_width`` pixels wide still fits on this row; else a new row."""
    last = imgui.get_item_rect_max().x
    right = imgui.get_window_position().x + imgui.get_window_content_region_max().x
    if last + imgui.get_style().item_spacing.x + next_width <= right:
        imgui.same_line()


def button_width(label: str) -> float:
    return imgui.calc_text_size(label.split("##")[0]).x + 2 * imgui.get_style().frame_padding.x


def checkbox_width(label: str) -> float:
    style = imgui.get_style()
    return imgui.get_frame_height() + style.item_inner_spacing.x + imgui.calc_text_size(label.split("##")[0]).x


ISO_LEVEL_TIP = ("Iso level: the density value whose surface (marching cubes) becomes the mesh. 'auto' picks "
                 "the level from the rendered depth, so the mesh matches the surface the image shows; a higher "
                 "level gives a tighter surface, a lower one a puffier surface.")


def iso_level_input(label: str, level: float | None, auto_value: float | None) -> float | None:
    """An 'auto' checkbox and, when unchecked, the level; returns None for auto."""
    auto = imgui.checkbox(f"auto##{label}", level is None)[1]
    tooltip(ISO_LEVEL_TIP)
    same_line_if_fits(imgui.calc_text_size(f"{label}: from the rendered surface").x)
    if auto:
        shown = f"{auto_value:.2f}" if auto_value is not None else "from the rendered surface"
        imgui.text_disabled(f"{label}: {shown}")
        tooltip(ISO_LEVEL_TIP)
        return None
    start = level if level is not None else (auto_value if auto_value is not None else 10.0)
    imgui.push_item_width(label_space(label))
    value = imgui.drag_float(label, start, 0.1, -100.0, 200.0, "%.2f")[1]
    imgui.pop_item_width()
    tooltip(ISO_LEVEL_TIP)
    return value
