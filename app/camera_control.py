"""Mouse and keyboard camera control: orbit, pan and zoom of a ``CameraPose``.

Pure functions of the pose and the input, so the window's callbacks, the session-script player and
the tests all move the camera the same way.

* Left drag orbits like grabbing the subject: dragging right turns its right side away (the camera
  moves to the viewer's left), dragging down tips its top towards the viewer.
* Right or middle drag pans: the pivot moves in the image plane so that the point under the
  cursor follows it.
* The wheel dollies the camera towards the pivot (radius x 0.9 per notch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ops.camera import fov_to_focal, orbit_pose
from renderers.render_args import CameraPose

ORBIT_RADIANS_PER_VIEWPORT = math.pi
"""A drag across the whole viewport turns the camera by this much."""
PITCH_LIMIT = math.pi / 2 - 0.05
"""Pitch is clamped short of the poles, where the orbit's up vector flips."""
ZOOM_FACTOR = 0.9
"""Radius multiplier per wheel notch (towards the pivot)."""
RADIUS_LIMITS = (0.05, 50.0)
KEY_ORBIT_STEP = 0.05
"""Radians per arrow-key press."""

CAMERA_PRESETS: dict[str, dict] = {
    "model": {"radius": None, "pivot": None, "fov_degrees": None},  # None lens: the model's own
    "ffhq": {"radius": 2.7, "pivot": (0.0, 0.0, 0.2), "fov_degrees": 2 * math.degrees(math.atan(0.5 / 4.2647))},
    "shapenet": {"radius": 1.7, "pivot": (0.0, 0.0, 0.0), "fov_degrees": 2 * math.degrees(math.atan(0.5 / 1.7074))},
}
"""Camera set-ups: the model's own averages and lens, EG3D's FFHQ/AFHQ (focal 4.2647) and ShapeNet (1.7074)."""


def orbit(pose: CameraPose, dx: float, dy: float, viewport_height: float) -> None:
    """Turn the camera for a drag of (dx, dy) pixels (y down) in a viewport of this height."""
    k = ORBIT_RADIANS_PER_VIEWPORT / max(viewport_height, 1.0)
    pose.yaw = math.remainder(pose.yaw - dx * k, 2 * math.pi)
    pose.pitch = min(max(pose.pitch - dy * k, -PITCH_LIMIT), PITCH_LIMIT)


def pan(pose: CameraPose, dx: float, dy: float, viewport_height: float, default_radius: float,
        default_pivot: Sequence[float]) -> None:
    """Move the pivot for a drag of (dx, dy) pixels so that the content follows the cursor."""
    radius = default_radius if pose.radius is None else pose.radius
    pivot = torch.tensor(default_pivot if pose.pivot is None else pose.pivot, dtype=torch.float32)
    cam2world = orbit_pose(pose.yaw, pose.pitch, radius, pivot)[0]
    right, down = cam2world[:3, 0], cam2world[:3, 1]
    distance = float(torch.linalg.norm(cam2world[:3, 3] - pivot))
    # World units per pixel at the pivot's distance: the image spans distance / focal.
    scale = distance / fov_to_focal(pose.fov_degrees) / max(viewport_height, 1.0)
    moved = pivot - (dx * right + dy * down) * scale
    pose.pivot = tuple(round(float(v), 6) for v in moved)


def zoom(pose: CameraPose, notches: float, default_radius: float) -> None:
    """Dolly towards (notches > 0) or away from the pivot."""
    radius = default_radius if pose.radius is None else pose.radius
    pose.radius = min(max(radius * ZOOM_FACTOR ** notches, RADIUS_LIMITS[0]), RADIUS_LIMITS[1])


def apply_preset(pose: CameraPose, name: str, model_fov: float | None = None) -> None:
    """Set radius, pivot and field of view from ``CAMERA_PRESETS`` (angles are kept);
    ``model_fov`` is the lens of the 'model' preset (default: EG3D's)."""
    if name not in CAMERA_PRESETS:
        raise ValueError(f"unknown camera preset {name!r}; choose one of {', '.join(CAMERA_PRESETS)}")
    for key, value in CAMERA_PRESETS[name].items():
        if key == "fov_degrees" and value is None:
            value = CameraPose().fov_degrees if model_fov is None else float(model_fov)
        setattr(pose, key, value)


def reset(pose: CameraPose, model_fov: float | None = None) -> None:
    """Frontal view with the model's own radius, pivot and lens (``model_fov``; default EG3D's)."""
    fresh = CameraPose()
    for key in ("yaw", "pitch", "radius", "fov_degrees", "pivot"):
        setattr(pose, key, getattr(fresh, key))
    if model_fov is not None:
        pose.fov_degrees = float(model_fov)


FRAME_MARGIN = 1.1
"""``frame_bounds`` leaves this much room around the bounding sphere."""


def frame_bounds(pose: CameraPose, lo, hi, margin: float = FRAME_MARGIN) -> None:
    """Aim the camera at the centre of the box [lo, hi] (world units) and set the radius so that the
    box's bounding sphere fits the field of view (angles and lens are kept)."""
    lo, hi = [float(v) for v in lo], [float(v) for v in hi]
    center = tuple((a + b) / 2 for a, b in zip(lo, hi))
    sphere = 0.5 * math.sqrt(sum((b - a) ** 2 for a, b in zip(lo, hi)))
    half_fov = math.radians(pose.fov_degrees) / 2
    distance = margin * max(sphere, 1e-3) / math.sin(half_fov)
    pose.pivot = center
    pose.radius = min(max(distance, RADIUS_LIMITS[0]), RADIUS_LIMITS[1])
