"""Drawn over the viewport: the keyframe camera path, its preview playback, and the depth colour bar.

* The path: each keyframe's camera centre projected into the current view camera (the same
  25-float label the renderer uses, through ``ops.camera.project_points``) as a numbered marker, and
  the curve the video follows (``CameraPath.sample``, the video's own interpolation) as a polyline.
  Keyframes and curve points behind the view camera are left out. Drawn with imgui's background
  draw list, so the panels and notices stay on top.
* The preview (camera panel's play button): the view camera follows ``CameraPath.pose_at`` over the
  path's duration through the app's ordinary render requests (newest wins), ending on the video's
  last frame (the last keyframe of an open path).
* The depth bar: in the depth and side modes, the colormap the depth image uses with the near and
  far values it spans (``renderers.display_frame.depth_limits``, as the viewport's shader).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import imgui
import torch

from app.viewport import fit_rect
from ops.camera import project_points, unpack_label
from renderers.colormaps import colormap_lut, depth_to_unit
from renderers.display_frame import depth_limits
from renderers.render_args import CameraPose
from renderers.renderer import camera_label
from renderers.trajectories import CameraPath

clock = time.monotonic
"""The preview's clock (tests may replace it)."""

PATH_SAMPLES = 120
"""Least number of curve points drawn (more when the video has more frames)."""
NEAR_Z = 1e-3
"""Points closer than this in front of the view camera (camera-space z) count as behind it."""
MARKER_RADIUS = 6.0
"""Keyframe marker radius in window pixels at UI scale 1."""
MARKER_COLOR = (1.0, 0.78, 0.15, 1.0)
"""Fill of the keyframe markers (amber)."""
CURVE_COLOR = (1.0, 0.78, 0.15, 0.85)
OUTLINE_COLOR = (0.05, 0.05, 0.05, 1.0)
BAR_WIDTH = 14.0
"""Width of the depth colour bar in window pixels at UI scale 1."""


@dataclass
class PathProjection:
    """The path in window pixels (y down)."""

    markers: list[tuple[int, float, float]] = field(default_factory=list)
    """(keyframe index, x, y) of the keyframes in front of the view camera."""
    curves: list[list[tuple[float, float]]] = field(default_factory=list)
    """Polyline pieces of the curve; a piece ends where the curve passes behind the camera."""


def camera_centres(poses: Sequence[CameraPose], radius: float, pivot: Sequence[float]) -> torch.Tensor:
    """[N, 3] world positions of the cameras of these poses (None radius/pivot: the model's)."""
    kwargs = {"avg_camera_radius": radius, "avg_camera_pivot": list(pivot)}
    labels = torch.cat([camera_label(pose, kwargs, "cpu") for pose in poses])
    cam2world, _ = unpack_label(labels)
    return cam2world[:, :3, 3]


def curve_poses(path: CameraPath, radius: float, pivot: Sequence[float],
                samples: int = PATH_SAMPLES) -> list[CameraPose]:
    """Poses along the curve a video of the path follows (``CameraPath.sample``), at least
    ``samples`` of them; a loop is closed back to its first pose."""
    poses = path.sample(max(samples, path.n_frames), radius, tuple(pivot))
    if path.loop and len(path.keyframes) > 1:
        poses.append(poses[0])
    return poses


_centres_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def path_centres(path: CameraPath, radius: float, pivot: Sequence[float],
                 samples: int = PATH_SAMPLES) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 world positions ([K, 3] of the keyframes' cameras, [M, 3] along the curve). They do not
    depend on the view, so the last path's are kept (the overlay is drawn every UI frame)."""
    key = (json.dumps(path.to_json()), float(radius), tuple(float(v) for v in pivot), samples)
    if key not in _centres_cache:
        _centres_cache.clear()
        keys = camera_centres([k.pose for k in path.keyframes], radius, pivot).double()
        curve = camera_centres(curve_poses(path, radius, pivot, samples), radius, pivot).double()
        _centres_cache[key] = (keys, curve)
    return _centres_cache[key]


def project_path(path: CameraPath, view_label: torch.Tensor, rect: tuple[float, float, float, float],
                 radius: float, pivot: Sequence[float], samples: int = PATH_SAMPLES) -> PathProjection:
    """The keyframes and the curve of ``path`` as seen by the camera ``view_label`` ([25] or
    [1, 25]) in an image drawn at ``rect`` = (x, y, w, h) window pixels."""
    out = PathProjection()
    if not path.keyframes:
        return out
    x, y, w, h = rect
    cam2world, intrinsics = unpack_label(view_label.reshape(1, 25).double())
    keys, curve = path_centres(path, radius, pivot, samples)

    def project(centres: torch.Tensor) -> list[tuple[float, float] | None]:
        uv, z = project_points(centres[None], cam2world, intrinsics)
        return [(x + float(u) * w, y + float(v) * h) if float(d) > NEAR_Z else None
                for (u, v), d in zip(uv[0].tolist(), z[0].tolist())]

    for index, point in enumerate(project(keys)):
        if point is not None:
            out.markers.append((index, *point))
    piece: list[tuple[float, float]] = []
    for point in project(curve):
        if point is None:
            if len(piece) > 1:
                out.curves.append(piece)
            piece = []
        else:
            piece.append(point)
    if len(piece) > 1:
        out.curves.append(piece)
    return out


def image_rect(viz) -> tuple[float, float, float, float] | None:
    """(x, y, w, h) in window pixels of the camera image the viewport shows (the left half of side
    by side); None before the first frame."""
    frame = viz.viewport.frame
    if frame is None:
        return None
    x, y, w, h = fit_rect(*viz.viewport_rect(), viz.viewport.content_aspect())
    return (x, y, w / 2, h) if frame.mode == "side" else (x, y, w, h)


def draw_path(viz) -> PathProjection | None:
    """Draw the keyframe path over the viewport (when shown and it has keyframes); returns what was drawn."""
    path, shown = viz.state.camera_path, viz.state.path_view.show
    rect = image_rect(viz)
    viz.path_drawn = None
    if not shown or not path.keyframes or rect is None:
        return None
    model = viz.state.model
    drawn = project_path(path, viz.view_camera(), rect, model.avg_camera_radius, model.avg_camera_pivot)
    scale = viz.ui_scale()
    draw_list = imgui.get_background_draw_list()
    vx, vy, vw, vh = viz.viewport_rect()
    draw_list.push_clip_rect(vx, vy, vx + vw, vy + vh, True)
    curve, fill, outline = (imgui.get_color_u32_rgba(*c) for c in (CURVE_COLOR, MARKER_COLOR, OUTLINE_COLOR))
    for piece in drawn.curves:
        draw_list.add_polyline(piece, outline, flags=0, thickness=4.0 * scale)
        draw_list.add_polyline(piece, curve, flags=0, thickness=2.0 * scale)
    radius = MARKER_RADIUS * scale
    for index, px, py in drawn.markers:
        draw_list.add_circle_filled(px, py, radius + 1.5 * scale, outline)
        draw_list.add_circle_filled(px, py, radius, fill)
        label = str(index + 1)
        draw_list.add_text(px + radius + 3 * scale + 1, py - radius - imgui.get_font_size() * 0.5 + 1, outline, label)
        draw_list.add_text(px + radius + 3 * scale, py - radius - imgui.get_font_size() * 0.5, fill, label)
    draw_list.pop_clip_rect()
    viz.path_drawn = drawn
    return drawn


# --- preview playback ----------------------------------------------------------------------------

def start_preview(viz) -> None:
    """Play the path in the viewport from its start (nothing happens without keyframes)."""
    if viz.state.camera_path.keyframes:
        viz.state.path_view.playing_since = clock()


def stop_preview(viz) -> None:
    """Stop the preview; the camera stays where it is."""
    viz.state.path_view.playing_since = None


def preview_time(path: CameraPath, elapsed: float) -> float:
    """The path time shown ``elapsed`` seconds into the preview: as the video's frame times, from
    0 (an open path) or the first keyframe (a loop), over ``path.duration``."""
    start = path.keyframes[0].time if path.loop and len(path.keyframes) > 1 else 0.0
    return start + min(max(elapsed, 0.0), path.duration)


def step_preview(viz) -> None:
    """Move the view camera to the preview's pose for now (once per UI frame, before the request)."""
    view_state, path = viz.state.path_view, viz.state.camera_path
    if view_state.playing_since is None:
        return
    if not path.keyframes:
        stop_preview(viz)
        return
    now = clock()
    elapsed = now - view_state.playing_since
    model = viz.state.model
    pose = path.pose_at(preview_time(path, elapsed), model.avg_camera_radius, tuple(model.avg_camera_pivot))
    view = viz.state.args.view
    view.yaw, view.pitch, view.fov_degrees = pose.yaw, pose.pitch, pose.fov_degrees
    view.radius, view.pivot = pose.radius, pose.pivot
    viz.state.adaptive.note_camera_input(time.monotonic())
    if elapsed >= path.duration:
        stop_preview(viz)


# --- depth colour bar ----------------------------------------------------------------------------

def depth_bar_colors(near: float, far: float, colormap: str, invert: bool, rows: int) -> list[tuple[int, int, int]]:
    """RGB of ``rows`` rows of the bar from near (top) to far (bottom): the depth image's own
    mapping (``depth_to_unit`` and the colormap's lookup table, nearest entry)."""
    depths = torch.linspace(near, far, max(rows, 2), dtype=torch.float64)[:rows]
    unit = depth_to_unit(depths, near, far, invert)
    lut = colormap_lut(colormap)
    return [tuple(int(c) for c in lut[int(round(float(t) * (len(lut) - 1)))]) for t in unit]


def depth_bar_texts(near: float, far: float) -> tuple[str, str]:
    return f"near {near:.3f}", f"far {far:.3f}"


def draw_depth_bar(viz) -> tuple[float, float, float, float] | None:
    """The colour bar at the viewport's right edge while the image shows depth; returns the bar's
    (x0, y0, x1, y1) in window pixels (also kept in ``viz.depth_bar_rect``), None when not drawn."""
    viz.depth_bar_rect = None
    frame = viz.viewport.frame
    if frame is None or frame.depth is None or frame.mode not in ("depth", "side"):
        return None
    display = viz.state.display
    near, far = depth_limits(frame, display)
    top, bottom = depth_bar_texts(near, far)
    style = imgui.get_style()
    scale = viz.ui_scale()
    vx, vy, vw, vh = viz.viewport_rect()
    line = imgui.get_text_line_height()
    bar_w = BAR_WIDTH * scale
    text_w = max(imgui.calc_text_size(top).x, imgui.calc_text_size(bottom).x)
    bar_h = max(min(0.45 * vh, 320.0 * scale), 40.0)
    width = max(text_w, bar_w) + 2 * style.window_padding.x
    height = bar_h + 2 * line + 2 * style.item_spacing.y + 2 * style.window_padding.y
    if vw < width + 16 or vh < height + 16:
        return None
    imgui.set_next_window_position(vx + vw - width - 8, vy + (vh - height) / 2)
    imgui.set_next_window_size(width, height)
    imgui.set_next_window_bg_alpha(0.55)
    flags = (imgui.WINDOW_NO_DECORATION | imgui.WINDOW_NO_SAVED_SETTINGS | imgui.WINDOW_NO_FOCUS_ON_APPEARING
             | imgui.WINDOW_NO_NAV | imgui.WINDOW_NO_MOVE | imgui.WINDOW_NO_INPUTS | imgui.WINDOW_NO_SCROLLBAR)
    imgui.begin("depth range", flags=flags)
    imgui.text(top)
    x0, y0 = imgui.get_cursor_screen_pos()
    x0 += (width - 2 * style.window_padding.x - bar_w) / 2
    rows = max(int(bar_h), 2)
    draw_list = imgui.get_window_draw_list()
    for row, (r, g, b) in enumerate(depth_bar_colors(near, far, display.colormap, display.depth_invert, rows)):
        y = y0 + row * bar_h / rows
        draw_list.add_rect_filled(x0, y, x0 + bar_w, y + bar_h / rows + 0.5,
                                  imgui.get_color_u32_rgba(r / 255, g / 255, b / 255, 1.0))
    imgui.dummy(bar_w, bar_h)
    imgui.text(bottom)
    imgui.end()
    viz.depth_bar_rect = (x0, y0, x0 + bar_w, y0 + bar_h)
    return viz.depth_bar_rect
