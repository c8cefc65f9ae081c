"""Capture panel: screenshots, video recording (trajectories, latent loops, keyframe camera paths)
and mesh export."""

from __future__ import annotations

import copy

import imgui

from renderers.mesh import MESH_FORMATS
from renderers.trajectories import CameraPathError
from widgets.controls import iso_level_input
from widgets.panel import Panel

VIDEO_TRAJECTORIES = ["orbit", "yaw", "circle", "latent", "path"]
VIDEO_MODES = ["rgb", "depth", "side"]


class CaptureWidget(Panel):
    title = "Capture"
    open_by_default = False

    def __init__(self, viz):
        super().__init__(viz)
        self.selected_key = -1

    def draw(self) -> None:
        viz, cap = self.viz, self.viz.state.capture
        imgui.push_item_width(-110)
        _, cap.out_dir = imgui.input_text("folder", cap.out_dir, 512)
        imgui.pop_item_width()

        # screenshots
        for what in ("image", "window"):
            if imgui.radio_button(what, cap.screenshot_what == what):
                cap.screenshot_what = what
            imgui.same_line()
        if imgui.button("Screenshot"):
            viz.screenshot()
        imgui.separator()

        # video
        imgui.push_item_width(120)
        _, i = imgui.combo("trajectory", VIDEO_TRAJECTORIES.index(cap.video_trajectory)
                           if cap.video_trajectory in VIDEO_TRAJECTORIES else 0, VIDEO_TRAJECTORIES)
        cap.video_trajectory = VIDEO_TRAJECTORIES[i]
        imgui.same_line()
        _, i = imgui.combo("output", VIDEO_MODES.index(cap.video_mode), VIDEO_MODES)
        cap.video_mode = VIDEO_MODES[i]
        _, cap.video_frames = imgui.input_int("frames", cap.video_frames)
        cap.video_frames = max(1, cap.video_frames)
        imgui.same_line()
        _, cap.video_fps = imgui.input_float("fps", cap.video_fps, 0, 0, "%.0f")
        cap.video_fps = max(1.0, cap.video_fps)
        if cap.video_trajectory == "latent":
            _, cap.video_seeds = imgui.input_text("seeds", cap.video_seeds, 256)
        imgui.pop_item_width()
        if cap.video_trajectory == "path":
            self._camera_path_editor()
        recording = [j for j in viz.jobs if j.name.startswith("video")]
        if recording:
            job = recording[0]
            imgui.progress_bar(job.fraction, (-70, 0), f"{job.done}/{job.total}")
            imgui.same_line()
            if imgui.button("Abort"):
                job.cancel()
        elif imgui.button("Record video"):
            try:
                viz.start_video()
            except (ValueError, OSError) as e:
                viz.state.notify(str(e), "error")
        imgui.separator()

        # mesh export
        imgui.push_item_width(90)
        _, i = imgui.combo("format", MESH_FORMATS.index(cap.mesh_format), list(MESH_FORMATS))
        cap.mesh_format = MESH_FORMATS[i]
        imgui.same_line()
        _, cap.mesh_resolution = imgui.input_int("grid", cap.mesh_resolution, 32)
        cap.mesh_resolution = min(max(cap.mesh_resolution, 16), 1024)
        cap.mesh_level = iso_level_input("level", cap.mesh_level, self.viz.shown_mesh_level())
        imgui.same_line()
        _, cap.mesh_colors = imgui.checkbox("colours", cap.mesh_colors)
        imgui.pop_item_width()
        exporting = [j for j in viz.jobs if j.name.startswith("mesh")]
        if exporting:
            job = exporting[0]
            imgui.progress_bar(job.fraction, (-70, 0), "sampling density")
            imgui.same_line()
            if imgui.button("Cancel##mesh"):
                job.cancel()
        elif imgui.button("Export mesh"):
            try:
                viz.export_mesh()
            except (ValueError, OSError) as e:
                viz.state.notify(str(e), "error")

    def _camera_path_editor(self) -> None:
        viz = self.viz
        path = viz.state.camera_path
        imgui.begin_child("keyframes", 0, 90, border=True)
        for i, key in enumerate(path.keyframes):
            seed = f" seed {key.seed[0]:g}" if key.seed else ""
            label = f"{i}: t={key.time:.2f}s yaw {key.pose.yaw:+.2f} pitch {key.pose.pitch:+.2f}{seed}"
            clicked, _ = imgui.selectable(label, i == self.selected_key)
            if clicked:
                self.selected_key = i
                viz.state.args.view = copy.deepcopy(key.pose)  # jump there to inspect
        imgui.end_child()
        if imgui.button("+ view"):
            latent = viz.state.args.latent
            self.selected_key = path.add(copy.deepcopy(viz.state.args.view), seed=(latent.seed_x, latent.seed_y))
        imgui.same_line()
        valid = 0 <= self.selected_key < len(path.keyframes)
        if imgui.button("remove") and valid:
            path.remove(self.selected_key)
            self.selected_key = min(self.selected_key, len(path.keyframes) - 1)
        imgui.same_line()
        if imgui.button("up") and valid:
            self.selected_key = path.move(self.selected_key, -1)
        imgui.same_line()
        if imgui.button("down") and valid:
            self.selected_key = path.move(self.selected_key, +1)
        imgui.push_item_width(90)
        duration = path.duration
        changed, duration = imgui.input_float("duration s", duration, 0, 0, "%.2f")
        if changed and duration > 0 and len(path.keyframes) > 1:
            path.retime(duration)
        imgui.same_line()
        _, path.loop = imgui.checkbox("loop", path.loop)
        spline = path.interpolation == "spline"
        imgui.same_line()
        _, spline = imgui.checkbox("spline", spline)
        path.interpolation = "spline" if spline else "linear"
        _, path.fps = imgui.input_float("path fps", path.fps, 0, 0, "%.0f")
        path.fps = max(1.0, path.fps)
        imgui.pop_item_width()
        cap = viz.state.capture
        imgui.push_item_width(-110)
        _, cap.camera_path_file = imgui.input_text("json", cap.camera_path_file, 512)
        imgui.pop_item_width()
        if imgui.button("save path"):
            try:
                path.save(cap.camera_path_file)
                viz.state.notify(f"saved camera path {cap.camera_path_file}")
            except (OSError, CameraPathError) as e:
                viz.state.notify(f"camera path not saved: {e}", "error")
        imgui.same_line()
        if imgui.button("load path"):
            viz.load_camera_path(cap.camera_path_file)
