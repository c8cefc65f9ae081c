"""Quality panel: neural resolution, samples per ray, super-resolution, adaptive resolution."""

from __future__ import annotations

import imgui

from widgets.controls import checkbox_width, label_space, note, same_line_if_fits, tooltip
from widgets.panel import Panel

LABELS = ("neural resolution", "samples/ray", "importance/ray", "target fps")


class QualityWidget(Panel):
    title = "Quality"
    open_by_default = False

    def draw(self) -> None:
        q = self.viz.state.args.quality
        model = self.viz.state.model
        adaptive = self.viz.state.adaptive
        imgui.push_item_width(label_space(*LABELS))
        r = q.neural_resolution or model.neural_resolution
        changed, r = imgui.slider_int("neural resolution", r, 8, max(512, model.neural_resolution))
        tooltip("Volume-rendering resolution r: the raw image (and depth) are r x r pixels, which "
                f"super-resolution then upsamples. Cost grows with r squared. The model's own: "
                f"{model.neural_resolution}.")
        if changed:
            r = max(8, int(r) // 4 * 4)
            q.neural_resolution = None if r == model.neural_resolution else r
        d = q.depth_samples or model.depth_samples
        changed, d = imgui.slider_int("samples/ray", d, 2, 192)
        tooltip("Coarse samples per ray: points spaced evenly (stratified) between the near and far planes, "
                f"where the density is evaluated. Fewer: faster, with banding. The model's own: {model.depth_samples}.")
        if changed:
            q.depth_samples = None if d == model.depth_samples else d
        i = model.importance_samples if q.importance_samples is None else q.importance_samples
        changed, i = imgui.slider_int("importance/ray", i, 0, 192)
        tooltip("Importance samples per ray: a second pass that places extra samples where the coarse pass "
                "found density (near the surface), for sharper surfaces at little cost. 0 turns the second pass "
                f"off. The model's own: {model.importance_samples}.")
        if changed:
            q.importance_samples = None if i == model.importance_samples else i
        imgui.pop_item_width()
        _, q.superres = imgui.checkbox("super-resolution", q.superres)
        tooltip("Run the 2-D super-resolution network on the raw neural image (off: the raw image is just "
                "upsampled; compare with the 'raw' render mode).")
        if imgui.radio_button("exact (fp32)", q.precision == "exact"):
            q.precision = "exact"
        tooltip("fp32 everywhere, as the official code: bit-exact with the reference fixtures.")
        same_line_if_fits(checkbox_width("fast (bf16)"))
        if imgui.radio_button("fast (bf16)", q.precision == "fast"):
            q.precision = "fast"
        tooltip("bf16 convolutions for the backbone and super-resolution; the "
                "field, compositing, normals and meshes stay fp32. The default on the CPU (several times faster "
                "there); README 'Performance' gives its error.")
        if imgui.button("model defaults"):
            q.neural_resolution = q.depth_samples = q.importance_samples = None
            q.superres = True
        tooltip("Back to the model's own resolution and samples, with super-resolution.")
        imgui.separator()
        _, adaptive.enabled = imgui.checkbox("adaptive resolution while the camera moves", adaptive.enabled)
        tooltip("While you drag, render at a lower neural resolution (and without super-resolution) so the "
                "view keeps up; full quality once the camera rests.")
        imgui.push_item_width(label_space(*LABELS))
        _, adaptive.target_fps = imgui.slider_float("target fps", adaptive.target_fps, 5.0, 240.0, "%.0f")
        imgui.pop_item_width()
        tooltip("Frame rate adaptive resolution aims for while the camera moves.")
        note("while dragging: no super-resolution, the largest neural resolution that fits the frame budget; "
             "full quality on release")
