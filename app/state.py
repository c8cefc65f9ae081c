"""The application state that widgets edit and the main loop acts on.

Everything a panel shows or changes lives here, typed: the render request (``RenderArgs``), how
frames are displayed (``DisplayArgs``), the model and run-following status, capture settings,
performance history and messages. Widgets never talk to each other, only to this state and to the
app's actions (``app.viewer.Visualizer``), which is what makes session scripts and tests drive
exactly the code paths a user's clicks take.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.adaptive import AdaptiveQuality
from models.scene import SceneControls
from renderers.render_args import EG3D_FOV_DEGREES, DisplayArgs, RenderArgs
from renderers.trajectories import CameraPath

HISTORY = 240
"""Frames kept in the performance plots."""
NOTICE_SECONDS = 6.0
"""How long an info notice shows (the last ``FADE_SECONDS`` fading out); errors stay until dismissed."""
FADE_SECONDS = 1.5


@dataclass
class ModelState:
    """What is loaded and where it came from."""

    path: str = ""
    """Checkpoint file, run directory, or '' for the stand-in model."""
    label: str = "no model"
    """Shown in the model panel and the window title."""
    loading: str | None = None
    """Path being loaded right now, if any."""
    error: str | None = None
    """The last load error (the previous model stays in use)."""
    run_dir: str | None = None
    """Run directory being followed, if any."""
    follow: bool = True
    """Reload when the run writes a newer snapshot."""
    snapshot_kimg: float | None = None
    """kimg of the loaded snapshot (run following)."""
    newest_kimg: float | None = None
    """kimg of the newest snapshot seen in the run directory."""
    image_resolution: int = 0
    """Final image size R of the loaded model."""
    neural_resolution: int = 0
    """The model's own neural-rendering resolution r."""
    num_ws: int = 0
    """Number of ws (for truncation cutoff and style-mixing layers)."""
    num_classes: int = 0
    """Class labels of a class-conditional model (the Latent panel's class control); 0: none."""
    depth_samples: int = 0
    """The model's own coarse samples per ray."""
    importance_samples: int = 0
    """The model's own importance samples per ray."""
    avg_camera_radius: float = 2.7
    """The model's average camera radius (used when a pose leaves it None)."""
    avg_camera_pivot: tuple[float, float, float] = (0.0, 0.0, 0.2)
    """The model's average camera pivot."""
    camera_fov: float = EG3D_FOV_DEGREES
    """The model's own field of view in degrees (``renderers.render_args.model_fov``)."""
    recent: list[str] = field(default_factory=list)
    """Recently opened paths, newest first."""
    release: str | None = None
    """The official release whose render settings are in use (``models.releases``), if one is."""
    release_choices: tuple[str, ...] = ()
    """Releases of the same file format, offered where the weights cannot tell them apart."""
    scene_defaults: SceneControls | None = None
    """A compositional model's objects at their default poses and its background rotation (every
    field set); None: the model has no movable objects."""
    method: str = ""
    """The loaded generator's method or preset (e.g. eg3d, volumegan-tiny), shown in the model panel."""


@dataclass
class CaptureState:
    """Screenshot, video and mesh-export settings."""

    out_dir: str = "out"
    """Folder for numbered screenshots, videos and meshes."""
    screenshot_what: str = "image"
    """'image' (the rendered image) or 'window'."""
    height: int | None = None
    """Height in pixels of image screenshots and videos (width follows the aspect; resampled by
    ``renderers.images.resize_to_height``); None: the model's native size."""
    video_trajectory: str = "orbit"
    """orbit, yaw, circle, path (the keyframe camera path) or latent (seed keyframes)."""
    video_frames: int = 120
    """Frames for trajectories and latent interpolation."""
    video_fps: float = 30.0
    """Frames per second of the mp4."""
    video_mode: str = "rgb"
    """rgb, depth or side."""
    video_seeds: str = "0,1,2,3"
    """Keyframe seeds for latent interpolation."""
    mesh_format: str = "ply"
    """ply, obj, glb or mrc."""
    mesh_resolution: int = 256
    """Voxels per side for export."""
    mesh_level: float | None = None
    """Iso level for export; None: automatic (``GeneratorRenderer.surface_level``)."""
    mesh_colors: bool = False
    """Vertex colours from the generator's radiance."""
    camera_path_file: str = "out/camera_path.json"
    """Where the keyframe path is saved and loaded."""


@dataclass
class PerfState:
    """Frame timing history and presentation settings."""

    fps_cap: float = 60.0
    """Upper bound on UI frames per second (0: none)."""
    vsync: bool = False
    """Wait for the display's refresh on swap."""
    interop: str = "host"
    """Upload path in use (cuda-python, pycuda or host)."""
    interop_note: str = ""
    """Why that path (e.g. the reason for a fallback)."""
    frame_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=HISTORY))
    """UI frame-to-frame times."""
    render_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=HISTORY))
    """Generator time of each displayed frame."""
    convert_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=HISTORY))
    """Output -> texture-layout conversion time of each displayed frame."""
    upload_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=HISTORY))
    """Texture upload (or interop copy) time of each displayed frame."""
    draw_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=HISTORY))
    """Viewport draw time (CPU side) per UI frame."""
    present_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=HISTORY))
    """Buffer swap time per UI frame."""
    last_stage_ms: dict[str, float] = field(default_factory=dict)
    """Per-stage split of the newest displayed frame."""
    neural_resolution_shown: int = 0
    """Neural resolution of the frame on screen (lower while dragging)."""


@dataclass
class UiState:
    """Layout of the window: UI scale, the control panel, the help overlay (saved in the settings)."""

    user_scale: float = 1.0
    """The user's factor on top of the automatic scale (Ctrl+plus / Ctrl+minus, Ctrl+0 resets)."""
    panel_width: float = 390.0
    """Width of the control panel at UI scale 1 (drag its right edge to change it)."""
    panel_visible: bool = True
    """Tab hides and shows the control panel."""
    help_open: bool = False
    """The help overlay (F1 or ?) is shown."""
    panels_open: dict[str, bool] = field(default_factory=dict)
    """Which panels were expanded, by title (restored at start)."""


@dataclass
class PathViewState:
    """The keyframe camera path in the viewport: drawn over the image, and its preview playback."""

    show: bool = True
    """Draw the keyframes and the spline over the viewport (when the path has keyframes)."""
    playing_since: float | None = None
    """``time.monotonic()`` when the preview started; None: not playing."""


@dataclass
class Message:
    text: str
    """What happened."""
    level: str = "info"
    """info or error."""
    time: float = field(default_factory=time.monotonic)
    """When it (or its latest repeat) happened."""
    count: int = 1
    """How many times it happened while showing (repeats are collapsed into one message)."""

    def showing(self, now: float) -> bool:
        return self.level == "error" or now - self.time < NOTICE_SECONDS

    def opacity(self, now: float) -> float:
        """1 while fresh, fading to 0 over the last FADE_SECONDS of an info notice."""
        if self.level == "error":
            return 1.0
        return min(max((NOTICE_SECONDS - (now - self.time)) / FADE_SECONDS, 0.0), 1.0)


@dataclass
class AppState:
    """All of the app's state."""

    args: RenderArgs = field(default_factory=RenderArgs)
    """The render request the widgets edit."""
    display: DisplayArgs = field(default_factory=DisplayArgs)
    """Display-only settings."""
    adaptive: AdaptiveQuality = field(default_factory=AdaptiveQuality)
    """Adaptive resolution policy."""
    model: ModelState = field(default_factory=ModelState)
    capture: CaptureState = field(default_factory=CaptureState)
    perf: PerfState = field(default_factory=PerfState)
    camera_path: CameraPath = field(default_factory=CameraPath)
    """Keyframe camera path edited in the capture panel."""
    path_view: PathViewState = field(default_factory=PathViewState)
    """The path drawn over the viewport and its preview (camera panel)."""
    animate: bool = False
    """Drift the seed along x."""
    animate_speed: float = 0.25
    """Seeds per second while animating."""
    viewport_error: str | None = None
    """Error of the newest render, shown over the viewport."""
    messages: list[Message] = field(default_factory=list)
    """Recent notices (newest last); errors stay until dismissed."""
    ui: UiState = field(default_factory=UiState)
    """Window layout and scale."""

    def notify(self, text: str, level: str = "info") -> None:
        """Add a notice; a repeat of a notice still showing is collapsed into it (count + 1)."""
        now = time.monotonic()
        for message in self.messages:
            if message.text == text and message.level == level and message.showing(now):
                self.messages.remove(message)
                message.count += 1
                message.time = now
                self.messages.append(message)
                break
        else:
            self.messages.append(Message(text, level))
        del self.messages[:-20]
        print(f"[{level}] {text}", flush=True)

    def dismiss(self, message: Message) -> None:
        """Remove a notice (a click on it in the viewport)."""
        if message in self.messages:
            self.messages.remove(message)

    def remember(self, path: str) -> None:
        path = str(Path(path))
        self.model.recent = [path] + [p for p in self.model.recent if p != path][:9]
