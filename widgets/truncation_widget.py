"""Truncation panel: psi and cutoff."""

from __future__ import annotations

import imgui

from widgets.controls import label_space, note, tooltip
from widgets.panel import Panel

PSI_TIP = ("Truncation psi: pulls w towards the average w. 1 = no truncation (full variety, more artefacts); "
           "0.5-0.7 = typical, cleaner and more average faces; 0 = the average face; negative = the 'opposite'.")
CUTOFF_TIP = ("Truncation cutoff: truncate only the first K of the generator's w vectors (the early layers: "
              "shape and pose) and leave the later ones (colour, fine detail) untouched. All = truncate every "
              "layer (no cutoff), as psi alone.")


class TruncationWidget(Panel):
    title = "Truncation"
    open_by_default = True

    def draw(self) -> None:
        latent = self.viz.state.args.latent
        n = self.viz.state.model.num_ws or 14
        imgui.push_item_width(label_space("psi", "cutoff"))
        _, latent.psi = imgui.slider_float("psi", latent.psi, -1.0, 2.0, "%.2f")
        tooltip(PSI_TIP)
        cutoff = n if latent.trunc_cutoff is None else latent.trunc_cutoff
        changed, cutoff = imgui.slider_int("cutoff", cutoff, 0, n)
        tooltip(CUTOFF_TIP)
        imgui.pop_item_width()
        if changed:
            latent.trunc_cutoff = None if cutoff >= n else cutoff
        note("cutoff: truncate only the first ws (all = no cutoff)")
