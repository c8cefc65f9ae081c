"""Performance panel: FPS, per-stage times and their plots, FPS cap, vsync, upload path."""

from __future__ import annotations

import array
import statistics

import imgui

from widgets.panel import Panel


def _median(values) -> float:
    return statistics.median(values) if values else 0.0


class PerformanceWidget(Panel):
    title = "Performance"
    open_by_default = False

    def draw(self) -> None:
        perf = self.viz.state.perf
        frame_ms = _median(list(perf.frame_ms)[-60:])
        imgui.text(f"UI {1000 / frame_ms if frame_ms else 0:.1f} fps ({frame_ms:.1f} ms/frame)")
        render = _median(list(perf.render_ms)[-30:])
        imgui.text(f"render {render:.1f} ms ({1000 / render if render else 0:.1f} fps), neural res "
                   f"{perf.neural_resolution_shown}")
        convert, upload = _median(list(perf.convert_ms)[-30:]), _median(list(perf.upload_ms)[-30:])
        draw, present = _median(list(perf.draw_ms)[-60:]), _median(list(perf.present_ms)[-60:])
        imgui.text(f"convert {convert:.2f} ms   upload {upload:.2f} ms   draw {draw:.2f} ms   present {present:.2f} ms")
        if perf.last_stage_ms:
            imgui.text_disabled("  ".join(f"{k} {v:.1f}" for k, v in perf.last_stage_ms.items()))
        for label, values in (("frame ms", perf.frame_ms), ("render ms", perf.render_ms)):
            if values:
                data = array.array("f", values)
                imgui.plot_lines(label, data, scale_min=0.0, scale_max=max(data) * 1.1, graph_size=(260, 40))
        imgui.push_item_width(-150)
        _, perf.fps_cap = imgui.slider_float("fps cap (0: none)", perf.fps_cap, 0.0, 240.0, "%.0f")
        imgui.pop_item_width()
        changed, perf.vsync = imgui.checkbox("vsync", perf.vsync)
        if changed:
            self.viz.window.set_vsync(perf.vsync)
        imgui.text(f"upload path: {perf.interop}")
        if perf.interop_note:
            imgui.text_disabled(perf.interop_note)
        imgui.text_disabled(f"device {self.viz.device}, GL {self.viz.window.gl_renderer}")
