"""Latent panel: fractional 2-D seed (blended in W), animation, style mixing."""

from __future__ import annotations

import imgui

from widgets.panel import Panel


class LatentWidget(Panel):
    title = "Latent"
    open_by_default = True
    class_field: tuple[float, float, float, float] | None = None
    """Screen rectangle (x0, y0, x1, y1) of the class input, where one was drawn (tests click it)."""

    def draw(self) -> None:
        state = self.viz.state
        latent = state.args.latent
        imgui.push_item_width(140)
        seed = int(round(latent.seed_x)) + 100 * int(round(latent.seed_y))
        changed, seed = imgui.input_int("seed", seed)
        if changed:
            latent.seed_x, latent.seed_y = float(max(seed, 0)), 0.0
        _, latent.seed_x = imgui.drag_float("seed x", latent.seed_x, 0.01, 0.0, 1e6, "%.2f")
        imgui.same_line()
        _, latent.seed_y = imgui.drag_float("seed y", latent.seed_y, 0.01, 0.0, 1e6, "%.2f")
        imgui.pop_item_width()
        if imgui.button("snap"):
            latent.seed_x, latent.seed_y = float(round(latent.seed_x)), float(round(latent.seed_y))
        imgui.same_line()
        _, state.animate = imgui.checkbox("animate", state.animate)
        imgui.same_line()
        imgui.push_item_width(90)
        _, state.animate_speed = imgui.drag_float("seeds/s", state.animate_speed, 0.01, -10, 10, "%.2f")
        imgui.pop_item_width()
        imgui.text_disabled("fractional seeds blend the 4 nearest seeds in W")
        if state.model.num_classes:
            imgui.push_item_width(140)
            changed, index = imgui.input_int("class", latent.class_index or 0)
            self.class_field = (*imgui.get_item_rect_min(), *imgui.get_item_rect_max())
            imgui.pop_item_width()
            if changed:
                latent.class_index = min(max(index, 0), state.model.num_classes - 1)
            imgui.same_line()
            imgui.text_disabled(f"of {state.model.num_classes}")

        mixing = latent.mix_seed is not None
        clicked, mixing = imgui.checkbox("style mix", mixing)
        if clicked:
            latent.mix_seed = 0 if mixing else None
            if mixing and not latent.mix_layers:
                n = self.viz.state.model.num_ws or 14
                latent.mix_layers = tuple(range(n // 2, n))
        if latent.mix_seed is not None:
            imgui.same_line()
            imgui.push_item_width(100)
            changed, mix_seed = imgui.input_int("mix seed", latent.mix_seed)
            imgui.pop_item_width()
            if changed:
                latent.mix_seed = max(0, mix_seed)
            n = self.viz.state.model.num_ws
            layers = set(latent.mix_layers)
            for i in range(n):
                if i % 7:
                    imgui.same_line()
                clicked, on = imgui.checkbox(f"{i}##mix", i in layers)
                if clicked:
                    layers = layers | {i} if on else layers - {i}
            latent.mix_layers = tuple(sorted(layers))
