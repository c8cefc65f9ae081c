"""Performance panel: FPS, per-stage times and their plots, FPS cap, vsync, upload path."""

from __future__ import annotations

import array
import statistics

import imgui

from widgets.controls import label_space, note, tooltip
from widgets.panel import Panel


def _median(values) -> float:
    return statistics.median(values) if values else 0.0


class PerformanceWidget(Panel):
    title = "Performance"
    open_by_default = False

    def draw(self) -> None:
        perf = self.viz.state.perf
        frame_ms = _median(list(perf.frame_ms)[-60:])
        imgui.push_text_wrap_pos(0.0)
        imgui.text(f"UI {1000 / frame_ms if frame_ms else 0:.1f} fps ({frame_ms:.1f} ms/frame)")
        tooltip("Frames the window draws per second (median of the last 60), capped by 'fps cap'.")
        render = _median(list(perf.render_ms)[-30:])
        imgui.text(f"render {render:.1f} ms ({1000 / render if render else 0:.1f} fps), neural res "
                   f"{perf.neural_resolution_shown}")
        tooltip("Generator time per displayed frame (median of the last 30) and the neural resolution of the "
                "frame on screen (lower while dragging with adaptive resolution).")
        convert, upload = _median(list(perf.convert_ms)[-30:]), _median(list(perf.upload_ms)[-30:])
        draw, present = _median(list(perf.draw_ms)[-60:]), _median(list(perf.present_ms)[-60:])
        imgui.text(f"convert {convert:.2f} ms  upload {upload:.2f} ms")
        tooltip("convert: output to texture layout; upload: texture upload or GPU interop copy.")
        imgui.text(f"draw {draw:.2f} ms  present {present:.2f} ms")
        tooltip("draw: viewport drawing (CPU side); present: the buffer swap.")
        imgui.pop_text_wrap_pos()
        if perf.last_stage_ms:
            note("  ".join(f"{k} {v:.1f}" for k, v in perf.last_stage_ms.items()))
            tooltip("Per-stage milliseconds of the newest frame (mapping, rendering, super-resolution ...).")
        graph_width = max(imgui.get_content_region_available_width() - imgui.calc_text_size("render ms").x
                          - imgui.get_style().item_inner_spacing.x, 40.0)
        for label, values in (("frame ms", perf.frame_ms), ("render ms", perf.render_ms)):
            if values:
                data = array.array("f", values)
                imgui.plot_lines(label, data, scale_min=0.0, scale_max=max(data) * 1.1,
                                 graph_size=(graph_width, 3 * imgui.get_font_size()))
                tooltip(f"{label} over the last {len(data)} frames.")
        imgui.push_item_width(label_space("fps cap (0: none)"))
        _, perf.fps_cap = imgui.slider_float("fps cap (0: none)", perf.fps_cap, 0.0, 240.0, "%.0f")
        imgui.pop_item_width()
        tooltip("Upper bound on UI frames per second, to spare the CPU/GPU (0: as fast as possible).")
        changed, perf.vsync = imgui.checkbox("vsync", perf.vsync)
        tooltip("Wait for the display's refresh on each buffer swap.")
        if changed:
            self.viz.window.set_vsync(perf.vsync)
        note(f"upload path: {perf.interop}")
        if perf.interop_note:
            note(perf.interop_note)
        note(f"device {self.viz.device}, GL {self.viz.window.gl_renderer}")
