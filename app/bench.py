"""App-pipeline benchmark: what one displayed frame costs, stage by stage, in a hidden window.

Stages of a frame, each timed with the device synchronised so it is charged its own work:

* **render**: ``GeneratorRenderer.render`` on the render device (mapping, backbone unless cached,
  volume rendering, super-resolution);
* **convert**: outputs -> texture layouts (``renderers.display_frame.to_display_frame``);
* **upload**: into the GL textures, by the uploader the app would use (CUDA-GL interop or the
  host upload), up to ``glFinish``;
* **draw**: the viewport's shader pass into the window's framebuffer, up to ``glFinish``.

Scenarios: ``camera`` (only the camera moves, full quality: orbiting a still identity),
``drag preview`` (what the adaptive policy renders while the camera is dragged: no
super-resolution, at the resolution ``app.adaptive.AdaptiveQuality`` picks for its target FPS from
the measured camera frames), and ``full`` (the seed changes every frame, so the tri-plane is
rebuilt). FPS is 1000 / median of the per-frame sum of the stages: the frame rate of a loop that
does them one after another. In the app, rendering runs on its own thread beside the UI, so the
displayed rate can exceed this figure by the overlap of render with upload and draw.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import time
from dataclasses import dataclass, field

import torch

from app.adaptive import AdaptiveQuality
from models.scene import generator_device
from renderers.display_frame import to_display_frame
from renderers.render_args import DisplayArgs, RenderArgs
from renderers.renderer import DeviceClock, GeneratorRenderer
from renderers.worker import RenderWorker

APP_STAGES = ("render", "convert", "upload", "draw")


@dataclass
class ScenarioTimes:
    """Per-frame stage times (ms) of one scenario."""

    name: str
    """camera, drag preview or full."""
    neural_resolution: int
    """Volume-rendering resolution of its frames."""
    superres: bool
    """Whether super-resolution ran."""
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in APP_STAGES})
    """Wall time of each stage, one entry per timed frame."""
    volume_ms: list[float] = field(default_factory=list)
    """The volume-rendering part of ``render`` per frame (what the adaptive policy predicts)."""

    def total_ms(self) -> list[float]:
        return [sum(parts) for parts in zip(*(self.stage_ms[s] for s in APP_STAGES))]

    def medians(self) -> dict[str, float]:
        out = {s: statistics.median(v) for s, v in self.stage_ms.items()}
        out["total"] = statistics.median(self.total_ms())
        return out


@dataclass
class AppBenchResult:
    """All scenarios of one run."""

    device: str
    """Render device."""
    uploader: str
    """Upload path and why (as in the performance panel)."""
    gl_renderer: str
    """GL_RENDERER of the context."""
    window: tuple[int, int]
    """Framebuffer size drawn into."""
    frames: int
    """Timed frames per scenario."""
    scenarios: list[ScenarioTimes] = field(default_factory=list)

    def report(self) -> str:
        lines = [f"app pipeline: render device {self.device}, {self.uploader}, GL {self.gl_renderer}, "
                 f"{self.window[0]}x{self.window[1]} viewport, medians over {self.frames} frames",
                 f"  {'scenario':<28}" + "".join(f"{s:>10}" for s in (*APP_STAGES, "total")) + f"{'fps':>9}"]
        for sc in self.scenarios:
            m = sc.medians()
            label = f"{sc.name} (r={sc.neural_resolution}{'' if sc.superres else ', no SR'})"
            lines.append(f"  {label:<28}" + "".join(f"{m[s]:8.2f}ms" for s in (*APP_STAGES, "total"))
                         + f"{1000 / m['total']:9.1f}")
        return "\n".join(lines)


@contextlib.contextmanager
def _hidden_viewport(title: str, size: int, interop: str, device: torch.device):
    """A hidden ``size`` x ``size`` window with the app's uploader and viewport: yields (window,
    uploader note, viewport, (framebuffer width, height)); everything is released afterwards."""
    from app.interop import make_uploader
    from app.viewport import Viewport
    from app.window import AppWindow

    window = AppWindow(title, size, size, visible=False)
    uploader = viewport = None
    try:
        uploader, note = make_uploader(interop, device)
        viewport = Viewport(uploader)
        yield window, note, viewport, window.framebuffer_size()
    finally:
        if viewport is not None:
            viewport.delete()
        if uploader is not None:
            uploader.close()
        window.destroy()


def benchmark_app(G, frames: int = 10, warmup: int = 2, interop: str = "auto", size: int = 1024,
                  neural_resolution: int | None = None, target_fps: float = 30.0) -> AppBenchResult:
    """Time the scenarios in a hidden ``size`` x ``size`` window (raises ``app.window.WindowError``
    where no OpenGL 3.3 context can be made)."""
    import OpenGL.GL as gl

    device = generator_device(G)
    with _hidden_viewport("3D-GAN Studio bench", size, interop, device) as (window, note, viewport, (fb_w, fb_h)):
        renderer = GeneratorRenderer(G)
        display = DisplayArgs()
        sync = DeviceClock(device)
        full_r = int(neural_resolution or G.neural_rendering_resolution)
        result = AppBenchResult(str(device), note, window.gl_renderer, (fb_w, fb_h), frames)

        def run(name: str, r: int, superres: bool, new_seed_each_frame: bool) -> ScenarioTimes:
            times = ScenarioTimes(name, r, superres)
            args = RenderArgs()
            args.quality = dataclasses.replace(args.quality, neural_resolution=r, superres=superres)
            for i in range(warmup + frames):
                args.view.yaw = 0.5 * ((i % 9) / 8 - 0.5)  # never the same camera twice in a row
                if new_seed_each_frame:
                    args.latent.seed_x = float(1000 + i)
                t0 = sync.now()
                output = renderer.render(args.copy())
                t1 = sync.now()
                frame = to_display_frame(output)
                t2 = sync.now()
                viewport.set_frame(frame)
                gl.glFinish()
                t3 = sync.now()
                gl.glViewport(0, 0, fb_w, fb_h)
                gl.glClear(gl.GL_COLOR_BUFFER_BIT)
                viewport.draw((0, 0, fb_w, fb_h), fb_h, display, None)
                gl.glFinish()
                t4 = time.perf_counter()
                if i >= warmup:
                    times.volume_ms.append(output.timings_ms.get("render", 0.0))
                    for stage, (a, b) in zip(APP_STAGES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4))):
                        times.stage_ms[stage].append(1000 * (b - a))
            return times

        with torch.no_grad():
            camera = run("camera", full_r, True, False)
            adaptive = AdaptiveQuality(target_fps=target_fps)
            adaptive.observe(statistics.median(camera.volume_ms), full_r)
            preview_r = adaptive.interactive_resolution(full_r)
            result.scenarios = [camera, run("drag preview", preview_r, False, False), run("full", full_r, True, True)]
        return result


def benchmark_worker_handoff(G, frames: int = 20, warmup: int = 2, interop: str = "auto", size: int = 1024,
                             neural_resolution: int | None = None) -> dict[str, float]:
    """Displayed frames per second of the app's threaded loop, camera moving at full quality: a
    ``RenderWorker`` renders while this (UI) thread uploads and draws the newest frame, asking for the
    next camera as soon as a frame arrives. Run twice: with the worker handing each CUDA frame on with
    its event (the app) and with it waiting for the frame on the CPU first (``synchronize_frames``).
    Returns ``{"event_fps", "sync_fps", "event_ms", "sync_ms"}`` (medians of the frame-to-frame times; on
    the CPU both ways are the same code)."""
    import OpenGL.GL as gl

    figures: dict[str, float] = {}
    with _hidden_viewport("3D-GAN Studio worker bench", size, interop, generator_device(G)) as (
            _, _, viewport, (fb_w, fb_h)):
        display = DisplayArgs()
        for label, synchronize in (("event", False), ("sync", True)):
            worker = RenderWorker(GeneratorRenderer(G), name=f"bench-{label}", synchronize_frames=synchronize)
            try:
                args = RenderArgs()
                if neural_resolution:
                    args.quality = dataclasses.replace(args.quality, neural_resolution=int(neural_resolution))
                gaps, last, shown = [], None, 0
                worker.request(args.copy())
                deadline = time.monotonic() + 600
                while shown < warmup + frames and time.monotonic() < deadline:
                    frame = worker.poll()
                    if frame is None:
                        time.sleep(0.0005)
                        continue
                    if frame.error:
                        raise RuntimeError(frame.error)
                    args.view.yaw = 0.5 * ((shown % 9) / 8 - 0.5)
                    worker.request(args.copy())  # the next camera renders while this frame is shown
                    viewport.set_frame(frame.display, ready_event=frame.ready_event)
                    gl.glViewport(0, 0, fb_w, fb_h)
                    gl.glClear(gl.GL_COLOR_BUFFER_BIT)
                    viewport.draw((0, 0, fb_w, fb_h), fb_h, display, None)
                    gl.glFinish()
                    now = time.perf_counter()
                    if last is not None and shown > warmup:
                        gaps.append(1000 * (now - last))
                    last, shown = now, shown + 1
            finally:
                worker.close()
            median = statistics.median(gaps) if gaps else float("nan")
            figures[f"{label}_ms"], figures[f"{label}_fps"] = median, 1000 / median
    return figures
