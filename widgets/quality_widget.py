"""Quality panel: neural resolution, samples per ray, super-resolution, adaptive resolution."""

from __future__ import annotations

import imgui

from widgets.panel import Panel


class QualityWidget(Panel):
    title = "Quality"
    open_by_default = False

    def draw(self) -> None:
        q = self.viz.state.args.quality
        model = self.viz.state.model
        adaptive = self.viz.state.adaptive
        imgui.push_item_width(-150)
        r = q.neural_resolution or model.neural_resolution
        changed, r = imgui.slider_int("neural resolution", r, 8, max(512, model.neural_resolution))
        if changed:
            r = max(8, int(r) // 4 * 4)
            q.neural_resolution = None if r == model.neural_resolution else r
        d = q.depth_samples or model.depth_samples
        changed, d = imgui.slider_int("samples/ray", d, 2, 192)
        if changed:
            q.depth_samples = None if d == model.depth_samples else d
        i = model.importance_samples if q.importance_samples is None else q.importance_samples
        changed, i = imgui.slider_int("importance/ray", i, 0, 192)
        if changed:
            q.importance_samples = None if i == model.importance_samples else i
        imgui.pop_item_width()
        _, q.superres = imgui.checkbox("super-resolution", q.superres)
        if imgui.radio_button("exact (fp32)", q.precision == "exact"):
            q.precision = "exact"
        imgui.same_line()
        if imgui.radio_button("fast (bf16)", q.precision == "fast"):
            q.precision = "fast"
        if imgui.is_item_hovered():
            imgui.set_tooltip("bf16 convolutions and channels-last activations for the backbone and\n"
                              "super-resolution; the field, compositing, normals and meshes stay fp32.\n"
                              "Exact matches the official code; the default on the CPU is fast.")
        if imgui.button("model defaults"):
            q.neural_resolution = q.depth_samples = q.importance_samples = None
            q.superres = True
        imgui.separator()
        _, adaptive.enabled = imgui.checkbox("adaptive resolution while the camera moves", adaptive.enabled)
        imgui.push_item_width(-150)
        _, adaptive.target_fps = imgui.slider_float("target fps", adaptive.target_fps, 5.0, 240.0, "%.0f")
        imgui.pop_item_width()
        imgui.text_disabled("while dragging: no super-resolution, the largest neural\n"
                            "resolution that fits the frame budget; full quality on release")
