"""Camera panel: orbit sliders, radius, field of view, pivot, presets, conditioning pose.

Every key and mouse action is in the help overlay (F1 or ?), which the panel's Help button opens."""

from __future__ import annotations

import math

import imgui

from app import camera_control, path_view
from renderers.render_args import CameraPose
from widgets.controls import button_width, label_space, note, same_line_if_fits, tooltip
from widgets.panel import Panel

LABELS = ("yaw", "pitch", "radius", "fov (deg)", "pivot")
PRESET_TIPS = {
    "model": "The model's own camera: its average radius and pivot, and its lens.",
    "ffhq": "EG3D's FFHQ/AFHQ camera: radius 2.7, pivot (0, 0, 0.2), focal length 4.2647.",
    "shapenet": "EG3D's ShapeNet camera: radius 1.7, pivot at the origin, focal length 1.7074.",
}
COND_TIP = ("EG3D-style generators are conditioned on a camera: the mapping network sees a pose c as well as "
            "the latent, because faces in the training data correlate with the camera. Checked: c is the view "
            "camera, so the identity shifts a little as you orbit (as in training). Unchecked: c is the fixed "
            "conditioning pose below, so the identity stays put while the view moves.")
SHOW_PATH_TIP = ("Draw the keyframe camera path over the viewport: each keyframe's camera as a numbered marker "
                 "and, as a line, the curve a video of the path follows (the same spline). Keyframes behind the "
                 "view camera are left out.")
NO_PATH_TIP = ("The keyframe camera path is edited in the Capture panel (video trajectory: path, '+ view' adds "
               "the current view). Once it has keyframes they are drawn over the viewport and can be played here.")


def pose_controls(pose: CameraPose, model, label: str) -> None:
    """Sliders for one orbit pose (shared by the view and conditioning cameras)."""
    which = "the view camera" if label == "view" else "the conditioning pose (what the mapping network sees)"
    imgui.push_item_width(label_space(*LABELS))
    _, pose.yaw = imgui.slider_float(f"yaw##{label}", pose.yaw, -math.pi, math.pi, "%.3f")
    tooltip(f"Horizontal orbit angle of {which} around the pivot, in radians from the frontal view "
            "(drag left/right in the viewport; arrow keys step). Ctrl+click to type a value.")
    _, pose.pitch = imgui.slider_float(f"pitch##{label}", pose.pitch, -camera_control.PITCH_LIMIT,
                                       camera_control.PITCH_LIMIT, "%.3f")
    tooltip(f"Vertical orbit angle of {which} in radians; positive lowers the camera (drag up/down in the "
            "viewport).")
    imgui.pop_item_width()


class CameraWidget(Panel):
    title = "Camera"
    open_by_default = True

    def draw(self) -> None:
        args = self.viz.state.args
        model = self.viz.state.model
        view = args.view
        pose_controls(view, model, "view")
        imgui.push_item_width(label_space(*LABELS))
        radius = model.avg_camera_radius if view.radius is None else view.radius
        changed, radius = imgui.slider_float("radius", radius, 0.5, 10.0, "%.3f")
        tooltip("Distance of the camera from the world origin (mouse wheel zooms). Default: the model's "
                "average camera radius.")
        if changed:
            view.radius = radius
        _, view.fov_degrees = imgui.slider_float("fov (deg)", view.fov_degrees, 1.0, 120.0, "%.2f")
        tooltip("Full vertical field of view of the pinhole camera, in degrees. Default: the model's own lens "
                "(EG3D's FFHQ focal length 4.2647 is about 13.4 degrees).")
        pivot = model.avg_camera_pivot if view.pivot is None else view.pivot
        changed, pivot = imgui.drag_float3("pivot", *pivot, 0.005)
        tooltip("World point (x, y, z) the camera looks at and orbits; right or middle drag pans it. Default: "
                "the model's average pivot.")
        if changed:
            view.pivot = tuple(pivot)
        imgui.pop_item_width()
        imgui.text("presets:")
        tooltip("Camera set-ups: radius, pivot and lens (the angles are kept).")
        for name in camera_control.CAMERA_PRESETS:
            same_line_if_fits(button_width(name))
            if imgui.button(name):
                camera_control.apply_preset(view, name, model.camera_fov)
            tooltip(PRESET_TIPS.get(name, f"Camera preset {name}."))
        same_line_if_fits(button_width("reset"))
        if imgui.button("reset"):
            camera_control.reset(view, model.camera_fov)
        tooltip("Back to the model's own view: frontal, its radius, pivot and lens (key R).")

        self._path_controls()

        imgui.separator()
        _, args.cond_follows_view = imgui.checkbox("condition on the view camera", args.cond_follows_view)
        tooltip(COND_TIP)
        if not args.cond_follows_view:
            note("conditioning pose (the camera G.mapping sees):")
            tooltip(COND_TIP)
            pose_controls(args.cond, model, "cond")
        if imgui.button("Help: keys and mouse (F1)"):
            self.viz.state.ui.help_open = True
        tooltip("Every key and mouse action of the app (F1 or ? toggles it).")

    def _path_controls(self) -> None:
        """Show the keyframe path in the viewport, and play it there."""
        state = self.viz.state
        path, view_state = state.camera_path, state.path_view
        if not path.keyframes:
            note("camera path: no keyframes yet")
            tooltip(NO_PATH_TIP)
            return
        _, view_state.show = imgui.checkbox("show path", view_state.show)
        tooltip(SHOW_PATH_TIP)
        playing = view_state.playing_since is not None
        label = "stop##path" if playing else "play path"
        same_line_if_fits(button_width(label))
        if imgui.button(label):
            if playing:
                path_view.stop_preview(self.viz)
            else:
                path_view.start_preview(self.viz)
        if playing:
            tooltip("Stop the preview; the camera stays where it is (a drag or the wheel also stops it).")
        else:
            tooltip(f"Preview: the view camera moves along the path over its {path.duration:.2f} s, as a video of "
                    "the path would, and ends where the video ends. Only the camera moves here; keyframe seeds "
                    "show in the video.")
        summary = f"{len(path.keyframes)} keys, {path.duration:.2f} s"
        same_line_if_fits(imgui.calc_text_size(summary).x)
        imgui.text_disabled(summary)
        tooltip("Keyframes of the camera path and its duration (edited in the Capture panel).")
