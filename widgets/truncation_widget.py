"""Truncation panel: psi and cutoff."""

from __future__ import annotations

import imgui

from widgets.panel import Panel


class TruncationWidget(Panel):
    title = "Truncation"
    open_by_default = True

    def draw(self) -> None:
        latent = self.viz.state.args.latent
        n = self.viz.state.model.num_ws or 14
        imgui.push_item_width(-90)
        _, latent.psi = imgui.slider_float("psi", latent.psi, -1.0, 2.0, "%.2f")
        cutoff = n if latent.trunc_cutoff is None else latent.trunc_cutoff
        changed, cutoff = imgui.slider_int("cutoff", cutoff, 0, n)
        imgui.pop_item_width()
        if changed:
            latent.trunc_cutoff = None if cutoff >= n else cutoff
        imgui.text_disabled("cutoff: truncate only the first ws (all = no cutoff)")
