"""Latent panel: fractional 2-D seed (blended in W), animation, style mixing."""

from __future__ import annotations

import imgui

from widgets.controls import checkbox_width, item_width, label_space, note, same_line_if_fits, tooltip
from widgets.panel import Panel

SEED_TIP = ("The identity: integer seed x + 100 y picks the latent z. PgUp / PgDn step it. Fractional seed x "
            "and y blend the four nearest seeds' w vectors, so dragging them morphs smoothly between identities.")


class LatentWidget(Panel):
    title = "Latent"
    open_by_default = True
    class_field: tuple[float, float, float, float] | None = None
    """Screen rectangle (x0, y0, x1, y1) of the class input, where one was drawn (tests click it)."""

    def draw(self) -> None:
        state = self.viz.state
        latent = state.args.latent
        imgui.push_item_width(label_space("seed x", "seed y", "seed"))
        seed = int(round(latent.seed_x)) + 100 * int(round(latent.seed_y))
        changed, seed = imgui.input_int("seed", seed)
        tooltip(SEED_TIP)
        if changed:
            latent.seed_x, latent.seed_y = float(max(seed, 0)), 0.0
        _, latent.seed_x = imgui.drag_float("seed x", latent.seed_x, 0.01, 0.0, 1e6, "%.2f")
        tooltip("Fractional seed along x: drag to morph between neighbouring seeds (blended in W).")
        _, latent.seed_y = imgui.drag_float("seed y", latent.seed_y, 0.01, 0.0, 1e6, "%.2f")
        tooltip("Fractional seed along y (steps of 100 seeds): a second direction to morph in.")
        imgui.pop_item_width()
        if imgui.button("snap"):
            latent.seed_x, latent.seed_y = float(round(latent.seed_x)), float(round(latent.seed_y))
        tooltip("Round the fractional seed to the nearest whole seeds.")
        same_line_if_fits(checkbox_width("animate"))
        _, state.animate = imgui.checkbox("animate", state.animate)
        tooltip("Drift seed x continuously at the speed below (Space toggles).")
        speed_width = item_width("seeds/s", 5)
        same_line_if_fits(speed_width)
        imgui.push_item_width(5 * imgui.get_font_size())
        _, state.animate_speed = imgui.drag_float("seeds/s", state.animate_speed, 0.01, -10, 10, "%.2f")
        imgui.pop_item_width()
        tooltip("Animation speed in seeds per second (negative runs backwards).")
        note("fractional seeds blend the 4 nearest seeds in W")
        if state.model.num_classes:
            imgui.push_item_width(item_width("class", 6))
            changed, index = imgui.input_int("class", latent.class_index or 0)
            tooltip(f"The class a class-conditional model (EpiGRAF Megascans) renders: 0 to {state.model.num_classes - 1}.")
            self.class_field = (*imgui.get_item_rect_min(), *imgui.get_item_rect_max())
            imgui.pop_item_width()
            if changed:
                latent.class_index = min(max(index, 0), state.model.num_classes - 1)
            same_line_if_fits(imgui.calc_text_size(f"of {state.model.num_classes}").x)
            imgui.text_disabled(f"of {state.model.num_classes}")

        mixing = latent.mix_seed is not None
        clicked, mixing = imgui.checkbox("style mix", mixing)
        tooltip("Style mixing: the layers ticked below take their w from the mix seed instead of the main seed "
                "(early layers: shape and pose; late layers: colour and fine detail).")
        if clicked:
            latent.mix_seed = 0 if mixing else None
            if mixing and not latent.mix_layers:
                n = self.viz.state.model.num_ws or 14
                latent.mix_layers = tuple(range(n // 2, n))
        if latent.mix_seed is not None:
            same_line_if_fits(item_width("mix seed", 7))
            imgui.push_item_width(7 * imgui.get_font_size())
            changed, mix_seed = imgui.input_int("mix seed", latent.mix_seed)
            imgui.pop_item_width()
            tooltip("The seed whose w replaces the main seed's at the ticked layers.")
            if changed:
                latent.mix_seed = max(0, mix_seed)
            n = self.viz.state.model.num_ws
            layers = set(latent.mix_layers)
            for i in range(n):
                if i:
                    same_line_if_fits(checkbox_width(str(n - 1)))
                clicked, on = imgui.checkbox(f"{i}##mix", i in layers)
                tooltip(f"Layer {i} of {n} (ws index): ticked takes its w from the mix seed.")
                if clicked:
                    layers = layers | {i} if on else layers - {i}
            latent.mix_layers = tuple(sorted(layers))
