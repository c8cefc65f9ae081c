"""Camera panel: orbit sliders, radius, field of view, pivot, presets, conditioning pose, shortcuts."""

from __future__ import annotations

import math

import imgui

from app import camera_control
from renderers.render_args import CameraPose
from widgets.panel import Panel

SHORTCUTS = ("drag: orbit   right/middle drag: pan   wheel: zoom\n"
             "arrows: orbit   R: reset   PgUp/PgDn: seed   space: animate\n"
             "1-6: rgb raw depth normals mesh side   Ctrl+S: screenshot")


def pose_controls(pose: CameraPose, model, label: str) -> None:
    """Sliders for one orbit pose (shared by the view and conditioning cameras)."""
    imgui.push_item_width(-90)
    _, pose.yaw = imgui.slider_float(f"yaw##{label}", pose.yaw, -math.pi, math.pi, "%.3f")
    _, pose.pitch = imgui.slider_float(f"pitch##{label}", pose.pitch, -camera_control.PITCH_LIMIT,
                                       camera_control.PITCH_LIMIT, "%.3f")
    imgui.pop_item_width()


class CameraWidget(Panel):
    title = "Camera"
    open_by_default = True

    def draw(self) -> None:
        args = self.viz.state.args
        model = self.viz.state.model
        view = args.view
        pose_controls(view, model, "view")
        imgui.push_item_width(-90)
        radius = model.avg_camera_radius if view.radius is None else view.radius
        changed, radius = imgui.slider_float("radius", radius, 0.5, 10.0, "%.3f")
        if changed:
            view.radius = radius
        _, view.fov_degrees = imgui.slider_float("fov (deg)", view.fov_degrees, 1.0, 120.0, "%.2f")
        pivot = model.avg_camera_pivot if view.pivot is None else view.pivot
        changed, pivot = imgui.drag_float3("pivot", *pivot, 0.005)
        if changed:
            view.pivot = tuple(pivot)
        imgui.pop_item_width()
        imgui.text("presets:")
        for name in camera_control.CAMERA_PRESETS:
            imgui.same_line()
            if imgui.button(name):
                camera_control.apply_preset(view, name, model.camera_fov)
        imgui.same_line()
        if imgui.button("reset"):
            camera_control.reset(view, model.camera_fov)

        imgui.separator()
        _, args.cond_follows_view = imgui.checkbox("condition on the view camera", args.cond_follows_view)
        if not args.cond_follows_view:
            imgui.text_disabled("conditioning pose (the camera G.mapping sees):")
            pose_controls(args.cond, model, "cond")
        imgui.text_disabled(SHORTCUTS)
