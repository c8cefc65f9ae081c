"""The visualizer: window, main loop and the actions that widgets, input and scripts share.

Each UI frame: poll input, draw the panels (which edit ``state.args``), move the camera for any
drag, send the render worker the newest request if it changed (a faster one while the camera
moves, see ``app.adaptive``), take the newest finished frame, upload it, draw the viewport and
the panels, fulfil a pending window screenshot, swap. The generator runs only on the worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import glfw
import imgui
import numpy as np
import torch

from app import camera_control, path_view
from app.interop import make_uploader
from app.state import AppState
from app.viewport import Viewport, read_pixels
from app.window import AppWindow
from models.precision import check_precision, default_precision
from models.scene import SceneControls
from renderers.model_source import ModelSource, RunFollower, SourceError, resolve_source
from renderers.render_args import RENDER_MODES, model_fov
from renderers.renderer import GeneratorRenderer, camera_label
from renderers.worker import Frame, Job, RenderWorker

ScreenshotCallback = Callable[[Path, "str | None"], None]
"""Called with (path, None) once a screenshot is written, or (path, error) if it could not be."""

PANEL_WIDTH = 390
"""Default width of the control panel on the left (window pixels at UI scale 1)."""
MAX_PANEL_FRACTION = 0.5
"""The control panel never takes more than this part of the window's width."""
MIN_PANEL_PIXELS = 160
EDGE_GRAB = 5
"""Pixels either side of the panel's right edge where a drag resizes the panel."""
REFERENCE_WINDOW = (1400, 860)
"""Window size at which the automatic UI scale is 1 (times the monitor's content scale)."""
AUTO_SCALE_RANGE = (0.85, 2.0)
SCALE_STEP = 1.1
"""Ctrl+plus / Ctrl+minus multiply or divide the user's UI scale by this."""
_SCALED_STYLE = ("window_padding", "frame_padding", "item_spacing", "item_inner_spacing", "touch_extra_padding",
                 "indent_spacing", "scrollbar_size", "grab_min_size", "columns_min_spacing", "window_min_size")


@dataclass
class _Drag:
    button: int
    x: float
    y: float



def release_alternatives(name: str | None) -> tuple[str, ...]:
    """The releases whose files have the same format as ``name``'s (what the Model panel offers)."""
    from models.releases import RELEASES

    if name not in RELEASES:
        return ()
    fmt = RELEASES[name].file_format
    return tuple(other for other, release in RELEASES.items() if release.file_format == fmt)

class Visualizer:
    """The app. Construct on the main thread; ``run()`` until the window closes."""

    def __init__(self, path: str | None = None, device: str | None = None, interop: str = "auto",
                 visible: bool = True, size: tuple[int, int] | None = None, release: str | None = None,
                 settings_path: str | Path | None = None, precision: str | None = None):
        """``precision``: the Quality panel's starting precision (default: the remembered one, else fast on
        the CPU and exact on CUDA)."""
        from app import settings as app_settings

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.state = AppState()
        self.state.args.quality.precision = default_precision(self.device)
        self.settings_path = Path(settings_path) if settings_path else None
        """Where the settings are read at start and written at close (None: not remembered)."""
        saved, settings_problem = app_settings.load_settings(self.settings_path) if self.settings_path else ({}, None)
        size = size or app_settings.saved_window_size(saved) or REFERENCE_WINDOW
        self.window = AppWindow("3D-GAN Studio", *size, visible=visible, vsync=self.state.perf.vsync)
        style = imgui.get_style()
        self._base_style = {name: getattr(style, name) for name in _SCALED_STYLE}
        self._applied_scale: float | None = None
        self._resizing_panel = False
        self.overlay_hits: list = []
        """(rect, message) of the notices drawn last frame (a click dismisses one)."""
        self.path_drawn = None
        """``app.path_view.PathProjection`` of the camera path drawn over the viewport last frame."""
        self.depth_bar_rect: tuple[float, float, float, float] | None = None
        """(x0, y0, x1, y1) of the depth colour bar drawn last frame (None: none)."""
        self.uploader, note = make_uploader(interop, self.device)
        self.state.perf.interop, self.state.perf.interop_note = self.uploader.name, note
        self.viewport = Viewport(self.uploader)
        self.worker = RenderWorker(None)
        self.follower: RunFollower | None = None
        self.frame: Frame | None = None
        self._frame_awaiting_timings: Frame | None = None  # shown, stage times not yet recorded
        self.last_request_id = 0
        self._last_request = None
        self._drag: _Drag | None = None
        self._cursor = (0.0, 0.0)
        self._pending_window_shots: list[tuple[Path, ScreenshotCallback | None]] = []
        self.jobs: list[Job] = []
        self.panel_requests: dict[str, bool] = {}
        """Panels to expand (True) or collapse on the next UI frame, by title (session scripts)."""
        self.frame_count = 0
        self._last_frame_time = time.perf_counter()
        self.script = None
        self.exit_code: int | None = None
        self.window.on_mouse_button = self._on_mouse_button
        self.window.on_cursor = self._on_cursor
        self.window.on_scroll = self._on_scroll
        self.window.on_key = self._on_key
        self.window.on_drop = self._on_drop
        self.window.on_error = lambda error: self.state.notify(f"{type(error).__name__}: {error}", "error")
        from widgets import build_widgets

        self.widgets = build_widgets(self)
        app_settings.apply_settings(self, saved)
        if precision is not None:  # the command line wins over the remembered setting
            self.state.args.quality.precision = check_precision(precision)
        if settings_problem:
            self.state.notify(settings_problem, "error")
        self.load(path or "", release=release)

    # --- model ----------------------------------------------------------------------------------

    def load(self, path: str, release: str | None = None) -> Job | None:
        """Open a checkpoint, run directory or ('' ) the default model, off the UI thread. ``release``:
        the settings of an official release the file cannot tell apart (``models.releases``)."""
        try:
            source = resolve_source(path)
        except SourceError as e:
            self.state.model.error = str(e)
            self.state.notify(str(e), "error")
            return None
        return self._load_source(source, user_path=path, release=release)

    def _load_source(self, source: ModelSource, user_path: str, release: str | None = None) -> Job:
        from models.checkpoint import open_generator

        device = self.device
        worker = self.worker

        def fn(job: Job, _renderer):
            G = open_generator(source.load_path, device=device, release=release)
            worker.replace_renderer(GeneratorRenderer(G))
            return source, G

        self.state.model.loading = source.load_path
        job = self.worker.submit(Job(f"loading {source.label}", fn))
        job.on_done = lambda j: self._loaded(j, user_path, source)
        self.jobs.append(job)
        return job

    def _loaded(self, job: Job, user_path: str, source: ModelSource) -> None:
        model = self.state.model
        model.loading = None
        if job.error:
            model.error = job.error
            self.state.notify(f"load failed: {job.error}", "error")
            if source.kind == "run" and self.follower is not None and self.follower.run_dir == source.run_dir:
                self.follower.loaded_kimg = source.kimg  # don't retry this snapshot every poll; wait for a newer one
            return
        source, G = job.result
        opts = G.rendering_kwargs
        model.error = None
        model.path = user_path
        model.label = source.label
        model.image_resolution = int(G.img_resolution)
        model.neural_resolution = int(G.neural_rendering_resolution)
        model.num_ws = int(G.num_ws)
        model.num_classes = int(getattr(G, "num_classes", 0))
        model.release = getattr(G.config, "extra", {}).get("release")
        model.release_choices = release_alternatives(model.release)
        embedder = getattr(G, "embedder", None)
        defaults = embedder.default_controls() if getattr(embedder, "compositional", False) else None
        if defaults != model.scene_defaults:
            self.state.args.scene = SceneControls()  # another scene: its own objects at their defaults
        model.scene_defaults = defaults
        config = getattr(G, "config", None)
        model.method = str(getattr(config, "preset", None) or getattr(config, "method", None) or type(G).__name__)
        model.depth_samples = int(opts["depth_resolution"])
        model.importance_samples = int(opts["depth_resolution_importance"])
        model.avg_camera_radius = float(opts["avg_camera_radius"])
        model.avg_camera_pivot = tuple(float(v) for v in opts["avg_camera_pivot"])
        fov = model_fov(opts)
        if fov != model.camera_fov:  # another family of model: frame it with its own lens
            self.state.args.view.fov_degrees = self.state.args.cond.fov_degrees = fov
        model.camera_fov = fov
        if source.kind == "run":
            model.run_dir, model.snapshot_kimg = str(source.run_dir), source.kimg
            if self.follower is None or self.follower.run_dir != source.run_dir:
                self.follower = RunFollower(source.run_dir, source.kimg)
            self.follower.loaded_kimg = source.kimg
            model.newest_kimg = self.follower.newest_kimg
        else:
            model.run_dir = model.snapshot_kimg = model.newest_kimg = None
            self.follower = None
        if user_path:
            self.state.remember(user_path)
        self.window.set_title(f"3D-GAN Studio - {source.label}")
        self.state.notify(f"loaded {source.label}")
        self._last_request = None  # re-render with the new model

    def open_snapshot(self, kimg: float) -> Job | None:
        """Open an older (or any) snapshot of the followed run; following stops, so it stays on screen."""
        from renderers.model_source import list_snapshots

        model = self.state.model
        if not model.run_dir:
            return None
        found = [path for k, path in list_snapshots(Path(model.run_dir)) if k == kimg]
        if not found:
            self.state.notify(f"no snapshot at {kimg:g} kimg in {model.run_dir}", "error")
            return None
        model.follow = False
        source = ModelSource("run", str(found[0]), run_dir=Path(model.run_dir), kimg=kimg,
                             label=f"{Path(model.run_dir).name} @ {kimg:g} kimg")
        return self._load_source(source, user_path=model.path)

    def _follow_run(self) -> None:
        if self.follower is None or self.state.model.loading:
            return
        newer = self.follower.poll() if self.state.model.follow else None
        self.state.model.newest_kimg = self.follower.newest_kimg
        if newer is not None:
            self._load_source(newer, user_path=self.state.model.path)

    # --- camera input ---------------------------------------------------------------------------

    def ui_scale(self) -> float:
        """Size of text and controls: grows with the window (1 at ``REFERENCE_WINDOW``, within
        ``AUTO_SCALE_RANGE``), times the monitor's content scale, times the user's Ctrl+plus/minus factor."""
        w, h = self.window.window_size()
        fit = min(w / REFERENCE_WINDOW[0], h / REFERENCE_WINDOW[1])
        fit = min(max(fit, AUTO_SCALE_RANGE[0]), AUTO_SCALE_RANGE[1])
        # Where window coordinates are already points (macOS: the framebuffer is larger than the window),
        # the system scales them; elsewhere they are pixels and the monitor's content scale applies.
        content = self.window.content_scale() if self.window.framebuffer_size()[0] <= w else 1.0
        return min(max(fit * content * self.state.ui.user_scale, 0.5), 4.0)

    def panel_pixels(self) -> int:
        """Width of the control panel in window pixels (0 while hidden)."""
        ui = self.state.ui
        if not ui.panel_visible:
            return 0
        w = self.window.window_size()[0]
        return int(min(max(ui.panel_width * self.ui_scale(), MIN_PANEL_PIXELS), w * MAX_PANEL_FRACTION))

    def viewport_rect(self) -> tuple[int, int, int, int]:
        """(x, y, w, h) of the viewport in window pixels, y from the top."""
        w, h = self.window.window_size()
        panel = self.panel_pixels()
        return panel, 0, max(w - panel, 1), max(h, 1)

    def _apply_scale(self) -> None:
        """Font and style sizes for this frame's UI scale (before ``imgui.new_frame``)."""
        scale = self.ui_scale()
        if scale == self._applied_scale:
            return
        self._applied_scale = scale
        imgui.get_io().font_global_scale = scale
        style = imgui.get_style()
        for name, base in self._base_style.items():
            setattr(style, name, tuple(v * scale for v in base) if isinstance(base, tuple) else base * scale)

    def change_ui_scale(self, steps: int | None) -> None:
        """Ctrl+plus (+1), Ctrl+minus (-1), Ctrl+0 (None: back to the automatic scale)."""
        ui = self.state.ui
        ui.user_scale = 1.0 if steps is None else min(max(ui.user_scale * SCALE_STEP ** steps, 0.4), 3.0)

    def _on_panel_edge(self, x: float, y: float) -> bool:
        edge = self.panel_pixels()
        return self.state.ui.panel_visible and abs(x - edge) <= EDGE_GRAB

    def _in_viewport(self, x: float, y: float) -> bool:
        vx, vy, vw, vh = self.viewport_rect()
        return vx <= x < vx + vw and vy <= y < vy + vh

    def _on_mouse_button(self, button: int, action: int, mods: int) -> None:
        from app.overlay import overlay_hit

        if action == glfw.PRESS:
            x, y = self._cursor
            if self.state.ui.help_open:  # a click anywhere closes the help
                self.state.ui.help_open = False
                return
            if button == glfw.MOUSE_BUTTON_LEFT and self._on_panel_edge(x, y):
                self._resizing_panel = True
                return
            message = overlay_hit(self, x, y)
            if message is not None:
                self.state.dismiss(message)
                return
            if self._in_viewport(x, y) and not imgui.get_io().want_capture_mouse:
                self._drag = _Drag(button, x, y)
        elif action == glfw.RELEASE:
            if button == glfw.MOUSE_BUTTON_LEFT:
                self._resizing_panel = False
            if self._drag is not None and self._drag.button == button:
                self._drag = None

    def _on_cursor(self, x: float, y: float) -> None:
        self._cursor = (x, y)
        if self._resizing_panel:
            w = self.window.window_size()[0]
            pixels = min(max(x, MIN_PANEL_PIXELS), w * MAX_PANEL_FRACTION)
            self.state.ui.panel_width = pixels / self.ui_scale()
            return
        if self._drag is None:
            return
        dx, dy = x - self._drag.x, y - self._drag.y
        self._drag.x, self._drag.y = x, y
        self.drag_camera(dx, dy, pan=self._drag.button != glfw.MOUSE_BUTTON_LEFT)

    def _on_scroll(self, dx: float, dy: float) -> None:
        if self._in_viewport(*self._cursor) and not imgui.get_io().want_capture_mouse:
            self.zoom_camera(dy)

    def drag_camera(self, dx: float, dy: float, pan: bool = False) -> None:
        """Orbit (or pan) the view camera for a drag of (dx, dy) window pixels (stops a path preview)."""
        path_view.stop_preview(self)
        height = self.viewport_rect()[3]
        if pan:
            m = self.state.model
            camera_control.pan(self.state.args.view, dx, dy, height, m.avg_camera_radius, m.avg_camera_pivot)
        else:
            camera_control.orbit(self.state.args.view, dx, dy, height)
        self.state.adaptive.note_camera_input(time.monotonic())

    def zoom_camera(self, notches: float) -> None:
        path_view.stop_preview(self)
        camera_control.zoom(self.state.args.view, notches, self.state.model.avg_camera_radius)
        self.state.adaptive.note_camera_input(time.monotonic())

    def _on_key(self, key: int, action: int, mods: int) -> None:
        if action not in (glfw.PRESS, glfw.REPEAT) or imgui.get_io().want_capture_keyboard:
            return
        self.handle_key(key, mods)

    def handle_key(self, key: int, mods: int = 0) -> None:
        """Keyboard shortcuts (all listed in the help overlay, ``app.help.KEYS``)."""
        args, ui = self.state.args, self.state.ui
        ctrl = bool(mods & glfw.MOD_CONTROL)
        if key == glfw.KEY_F1 or (key == glfw.KEY_SLASH and mods & glfw.MOD_SHIFT):
            ui.help_open = not ui.help_open
            return
        if key == glfw.KEY_ESCAPE:
            ui.help_open = False
            return
        if key == glfw.KEY_TAB and not ctrl:
            ui.panel_visible = not ui.panel_visible
            return
        if ctrl and key in (glfw.KEY_EQUAL, glfw.KEY_KP_ADD):
            self.change_ui_scale(+1)
            return
        if ctrl and key in (glfw.KEY_MINUS, glfw.KEY_KP_SUBTRACT):
            self.change_ui_scale(-1)
            return
        if ctrl and key in (glfw.KEY_0, glfw.KEY_KP_0):
            self.change_ui_scale(None)
            return
        step = camera_control.KEY_ORBIT_STEP * self.viewport_rect()[3] / camera_control.ORBIT_RADIANS_PER_VIEWPORT
        arrows = {glfw.KEY_LEFT: (step, 0), glfw.KEY_RIGHT: (-step, 0), glfw.KEY_UP: (0, step), glfw.KEY_DOWN: (0, -step)}
        if key in arrows:
            self.drag_camera(*arrows[key])
        elif key == glfw.KEY_R:
            camera_control.reset(args.view, self.state.model.camera_fov)
        elif key == glfw.KEY_F and not mods:
            self.frame_mesh()
        elif key == glfw.KEY_PAGE_UP:
            args.latent.seed_x = float(int(args.latent.seed_x) + 1)
        elif key == glfw.KEY_PAGE_DOWN:
            args.latent.seed_x = float(max(int(args.latent.seed_x) - 1, 0))  # seeds are >= 0, as the panel clamps
        elif key == glfw.KEY_SPACE:
            self.state.animate = not self.state.animate
        elif key == glfw.KEY_S and mods & glfw.MOD_CONTROL:
            self.screenshot()
        elif glfw.KEY_1 <= key < glfw.KEY_1 + len(RENDER_MODES):
            args.mode = RENDER_MODES[key - glfw.KEY_1]

    def _on_drop(self, paths: list[str]) -> None:
        if paths:
            self.load(paths[0])

    def frame_mesh(self) -> bool:
        """Fit the view camera to the bounds of the mesh on screen (key F); False, with a notice, when
        no mesh is shown."""
        mesh = self.frame.display.mesh if self.frame is not None and self.frame.display is not None else None
        if self.state.args.mode != "mesh" or mesh is None or len(mesh.vertices) == 0:
            self.state.notify("F frames the mesh: switch to the mesh mode (key 5) and wait for the mesh")
            return False
        vertices = np.asarray(mesh.vertices, dtype=np.float64)
        camera_control.frame_bounds(self.state.args.view, vertices.min(axis=0), vertices.max(axis=0))
        self.state.adaptive.note_camera_input(time.monotonic())
        return True

    def shown_mesh_level(self) -> float | None:
        """Iso level of the mesh on screen, if one is."""
        mesh = self.frame.display.mesh if self.frame is not None and self.frame.display is not None else None
        return None if mesh is None else mesh.level

    def view_camera(self) -> torch.Tensor:
        """[25] label of the current view pose (for drawing meshes)."""
        m = self.state.model
        kwargs = {"avg_camera_radius": m.avg_camera_radius, "avg_camera_pivot": list(m.avg_camera_pivot)}
        return camera_label(self.state.args.view, kwargs, "cpu")[0]

    # --- capture --------------------------------------------------------------------------------

    def screenshot(self, path: str | Path | None = None, what: str | None = None,
                   on_done: ScreenshotCallback | None = None, height: int | None = None) -> Path:
        """Save a PNG of the image (as displayed, ``height`` pixels high) or of the whole window.

        ``height``: None: the capture panel's size (``state.capture.height``); 0: the native size.
        The image is resampled by ``resize_to_height``; a mesh is drawn at that size instead.
        Without a path, the next free ``screenshot-NNNN.png`` in the capture folder is used.
        ``on_done(path, error)`` is called once the file is written (error None) or could not be.
        """
        from renderers.images import check_height, resize_to_height, scaled_size
        from renderers.video import next_numbered_path

        height = check_height(self.state.capture.height if height is None else (height or None))

        what = what or self.state.capture.screenshot_what
        if what not in ("image", "window"):
            raise ValueError(f"screenshot of {what!r}: choose image or window")
        target = Path(path) if path else next_numbered_path(self.state.capture.out_dir, "screenshot", ".png")
        if what == "window":
            self._pending_window_shots.append((target, on_done))  # read after the UI is drawn
            return target
        if self.viewport.frame is None:  # e.g. Ctrl+S while a large model's first frame renders
            error = "nothing to save yet: the first frame has not been rendered"
            self.state.notify(f"screenshot not saved: {error}", "error")
            if on_done:
                on_done(target, error)
            return target
        if self.viewport.frame.mode == "mesh":  # geometry: drawn at the size, not resampled
            size = scaled_size(*self.viewport.native_size(), height) if height else None
            pixels = self.viewport.render_image(self.state.display, self.view_camera(), size=size)
        else:
            pixels = resize_to_height(self.viewport.render_image(self.state.display, self.view_camera()), height)
        self._save_png(target, pixels, on_done)
        return target

    def _save_png(self, target: Path, pixels: np.ndarray, on_done: ScreenshotCallback | None) -> None:
        from renderers.images import save_png

        error = None
        try:
            save_png(target, pixels)
        except OSError as e:
            error = str(e)
            self.state.notify(f"screenshot not saved: {error}", "error")
        else:
            self.state.notify(f"saved {target} ({pixels.shape[1]}x{pixels.shape[0]})")
        if on_done:
            on_done(target, error)

    def start_video(self, path: str | Path | None = None, **overrides) -> Job:
        """Record a video on the render thread (see ``app.capture.video_job``); the viewport keeps
        rendering between its frames."""
        from app.capture import video_job

        job = self.worker.submit(video_job(self, path, **overrides))
        self.jobs.append(job)
        return job

    def export_mesh(self, path: str | Path | None = None, **overrides) -> Job:
        """Extract and save the current identity's mesh on the render thread; the viewport keeps
        rendering between chunks of its density grid."""
        from app.capture import mesh_job

        job = self.worker.submit(mesh_job(self, path, **overrides))
        self.jobs.append(job)
        return job

    def load_camera_path(self, path: str | Path, raise_errors: bool = False) -> bool:
        """Replace the keyframe path with one saved earlier; errors are notices (or raised)."""
        from renderers.trajectories import CameraPath, CameraPathError

        try:
            self.state.camera_path = CameraPath.load(path)
        except (OSError, CameraPathError) as e:
            if raise_errors:
                raise
            self.state.notify(f"camera path not loaded: {e}", "error")
            return False
        self.state.notify(f"loaded camera path {path} ({len(self.state.camera_path.keyframes)} keyframes)")
        return True

    # --- main loop ------------------------------------------------------------------------------

    def settled(self) -> bool:
        """The screen shows the newest request at full quality and nothing is loading or running."""
        return (self.worker.idle and self.frame is not None and self.frame.request_id == self.last_request_id
                and self._last_request is not None and self._last_request == request_key(self.state.args)
                and not self.state.adaptive.interacting(time.monotonic())
                and self.state.model.loading is None and not self.jobs)

    def _update_request(self, now: float) -> None:
        if self.worker.renderer is None or self.state.model.loading:
            return
        args = self.state.args
        full = args.quality.neural_resolution or self.state.model.neural_resolution
        request = self.state.adaptive.effective(args, full, now)
        key = request_key(request)
        if key != self._last_request:
            self._last_request = key
            self.last_request_id = self.worker.request(request)

    def _take_frame(self) -> None:
        frame = self.worker.poll()
        if frame is None:
            return
        self.frame = frame
        perf = self.state.perf
        if frame.error:
            self.state.viewport_error = frame.error
            return
        self.state.viewport_error = None
        t0 = time.perf_counter()
        self.viewport.set_frame(frame.display, ready_event=frame.ready_event)
        perf.upload_ms.append(1000 * (time.perf_counter() - t0))
        perf.neural_resolution_shown = frame.args.quality.neural_resolution or self.state.model.neural_resolution
        self._frame_awaiting_timings = frame  # recorded by _take_frame_timings, next in the frame loop

    def _take_frame_timings(self) -> None:
        """Record the shown frame's stage times once its GPU work is done (at once on the CPU): on
        CUDA the worker hands frames on unsynchronised, and reading the times earlier would block."""
        frame = self._frame_awaiting_timings
        if frame is None or not frame.ready():
            return
        self._frame_awaiting_timings = None
        perf = self.state.perf
        stages = dict(frame.timings_ms)
        perf.render_ms.append(frame.render_ms if frame.ready_event is None else sum(stages.values()))
        perf.convert_ms.append(frame.convert_ms)
        perf.last_stage_ms = stages
        if frame.args.mode != "mesh":
            self.state.adaptive.observe(stages.get("render", 0.0), perf.neural_resolution_shown)

    def _finish_jobs(self) -> None:
        for job in self.worker.finished_jobs():
            if job in self.jobs:
                self.jobs.remove(job)
            callback = getattr(job, "on_done", None)
            if callback:
                callback(job)
            elif job.error:
                self.state.notify(f"{job.name} failed: {job.error}", "error")
            elif job.cancelled:
                self.state.notify(f"{job.name}: cancelled")

    def draw_frame(self) -> None:
        """One UI frame."""
        now = time.perf_counter()
        perf = self.state.perf
        perf.frame_ms.append(1000 * (now - self._last_frame_time))
        self._last_frame_time = now
        self._apply_scale()
        self.window.begin_frame()
        self._draw_panels()
        if self.script is not None:
            self.script.step()
        path_view.step_preview(self)
        if self.state.animate:
            self.state.args.latent.seed_x += self.state.animate_speed * perf.frame_ms[-1] / 1000
        self._follow_run()
        self._update_request(time.monotonic())
        self._take_frame()
        self._take_frame_timings()
        self._finish_jobs()
        path_view.draw_path(self)  # after the preview's step and the newest frame

        fb_w, fb_h = self.window.framebuffer_size()
        import OpenGL.GL as gl

        gl.glViewport(0, 0, fb_w, fb_h)
        gl.glClearColor(0.11, 0.11, 0.13, 1.0)
        gl.glClear(gl.GL_COLOR_BUFFER_BIT | gl.GL_DEPTH_BUFFER_BIT)
        t0 = time.perf_counter()
        scale = fb_w / max(self.window.window_size()[0], 1)
        vx, vy, vw, vh = self.viewport_rect()
        self.viewport.draw((int(vx * scale), int(vy * scale), int(vw * scale), int(vh * scale)), fb_h,
                           self.state.display, self.view_camera())
        perf.draw_ms.append(1000 * (time.perf_counter() - t0))
        gl.glViewport(0, 0, fb_w, fb_h)
        self.window.end_frame_ui()
        # A window shot waits for panel requests (script 'panels') to be drawn: they apply next frame.
        while self._pending_window_shots and not self.panel_requests:
            target, on_done = self._pending_window_shots.pop(0)
            self._save_png(target, read_pixels(0, 0, fb_w, fb_h), on_done)
        t1 = time.perf_counter()
        self.window.swap()
        perf.present_ms.append(1000 * (time.perf_counter() - t1))
        self.frame_count += 1
        if perf.fps_cap > 0:
            spare = 1.0 / perf.fps_cap - (time.perf_counter() - now)
            if spare > 0:
                time.sleep(spare)

    def _draw_panels(self) -> None:
        from app.help import draw_help
        from app.overlay import draw_overlay

        _, h = self.window.window_size()
        panel = self.panel_pixels()
        if panel:
            imgui.set_next_window_position(0, 0)
            imgui.set_next_window_size(panel, h)
            flags = (imgui.WINDOW_NO_MOVE | imgui.WINDOW_NO_RESIZE | imgui.WINDOW_NO_COLLAPSE
                     | imgui.WINDOW_NO_TITLE_BAR)
            imgui.begin("controls", flags=flags)
            for widget in self.widgets:
                if not widget.shown():  # not listed for this model: remembered, and no shot waits for it
                    if widget.title in self.panel_requests:
                        self.state.ui.panels_open[widget.title] = self.panel_requests.pop(widget.title)
                    continue
                if widget.title in self.panel_requests:
                    imgui.set_next_item_open(self.panel_requests.pop(widget.title), imgui.ALWAYS)
                flags = imgui.TREE_NODE_DEFAULT_OPEN if widget.open_by_default else 0
                expanded, _ = imgui.collapsing_header(widget.title, flags=flags)
                self.state.ui.panels_open[widget.title] = expanded
                widget(expanded)
            imgui.end()
        else:  # hidden (Tab): remember what was asked for; nothing to draw (a window shot need not wait)
            self.state.ui.panels_open.update(self.panel_requests)
            self.panel_requests.clear()
        path_view.draw_depth_bar(self)
        draw_overlay(self)
        draw_help(self)

    def run(self, max_frames: int | None = None) -> int:
        """Loop until the window closes (or ``max_frames``); returns the exit status."""
        try:
            while not self.window.should_close():
                self.draw_frame()
                if max_frames is not None and self.frame_count >= max_frames:
                    break
                if self.exit_code is not None:
                    break
        finally:
            self.close()
        return self.exit_code or 0

    def close(self) -> None:
        if self.settings_path is not None:
            from app import settings as app_settings

            problem = app_settings.save_settings(self.settings_path, app_settings.collect_settings(self))
            if problem:
                print(f"warning: {problem}", flush=True)
        for job in self.jobs:
            job.cancel()
        self.worker.close()
        self.viewport.delete()
        self.uploader.close()
        self.window.destroy()


def request_key(args) -> tuple:
    """What a request's result depends on: the mesh mode ignores the camera (GL moves it); the
    other modes ignore the mesh settings."""
    import dataclasses

    data = dataclasses.asdict(args)
    if args.mode == "mesh":
        data.pop("view")
        data.pop("normals_source")
        data.pop("quality")
    else:
        for name in ("mesh_resolution", "mesh_level", "mesh_colors"):
            data.pop(name)
        if args.mode != "normals":
            data.pop("normals_source")
    return _freeze(data)


def _freeze(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value
