"""Capture panel: screenshots, video recording (trajectories, latent loops, keyframe camera paths)
and mesh export."""

from __future__ import annotations

import copy

import imgui

from renderers.mesh import MESH_FORMATS
from renderers.trajectories import CameraPathError
from widgets.controls import (
    button_width,
    checkbox_width,
    iso_level_input,
    item_width,
    label_space,
    same_line_if_fits,
    tooltip,
)
from widgets.panel import Panel

VIDEO_TRAJECTORIES = ["orbit", "yaw", "circle", "latent", "path"]
VIDEO_MODES = ["rgb", "depth", "side"]
CAPTURE_HEIGHTS = (None, 256, 512, 720, 1024, 2048)
"""The size control's choices: output heights in pixels (None: native)."""
SIZE_TIP = ("Height of image screenshots and videos in pixels; the width follows the picture's shape. native: the "
            "model's own size. Other sizes are resampled with a Lanczos filter (meshes are drawn at that size). "
            "Window screenshots keep the window's size.")
TRAJECTORY_TIP = ("Camera motion of the video. orbit: a full turn with a pitch wave; yaw: left-right sweep; "
                  "circle: a cone around the view axis; latent: a loop through the seeds below at a fixed camera; "
                  "path: the keyframe camera path below.")


def _narrow(ems: float) -> None:
    imgui.push_item_width(ems * imgui.get_font_size())


class CaptureWidget(Panel):
    title = "Capture"
    open_by_default = False

    def __init__(self, viz):
        super().__init__(viz)
        self.selected_key = -1

    def draw(self) -> None:
        viz, cap = self.viz, self.viz.state.capture
        imgui.push_item_width(label_space("folder"))
        _, cap.out_dir = imgui.input_text("folder", cap.out_dir, 512)
        imgui.pop_item_width()
        tooltip("Folder for numbered screenshots, videos and meshes (never overwritten: the next free number).")
        heights = list(CAPTURE_HEIGHTS) if cap.height in CAPTURE_HEIGHTS else [*CAPTURE_HEIGHTS, cap.height]
        _narrow(6)
        _, i = imgui.combo("size", heights.index(cap.height), [f"{h} px" if h else "native" for h in heights])
        imgui.pop_item_width()
        tooltip(SIZE_TIP)
        cap.height = heights[i]

        # screenshots
        for i, what in enumerate(("image", "window")):
            if i:
                same_line_if_fits(checkbox_width(what))
            if imgui.radio_button(what, cap.screenshot_what == what):
                cap.screenshot_what = what
            tooltip("image: the rendered image at the chosen size (as displayed: depth colour-mapped, ...)."
                    if what == "image" else "window: the whole window, panels included.")
        same_line_if_fits(button_width("Screenshot"))
        if imgui.button("Screenshot"):
            viz.screenshot()
        tooltip("Save a PNG into the folder (Ctrl+S).")
        imgui.separator()

        # video
        _narrow(5)
        _, i = imgui.combo("trajectory", VIDEO_TRAJECTORIES.index(cap.video_trajectory)
                           if cap.video_trajectory in VIDEO_TRAJECTORIES else 0, VIDEO_TRAJECTORIES)
        tooltip(TRAJECTORY_TIP)
        cap.video_trajectory = VIDEO_TRAJECTORIES[i]
        same_line_if_fits(item_width("output", 5))
        _, i = imgui.combo("output", VIDEO_MODES.index(cap.video_mode), VIDEO_MODES)
        tooltip("What the video shows: rgb, colour-mapped depth, or both side by side.")
        cap.video_mode = VIDEO_MODES[i]
        _, cap.video_frames = imgui.input_int("frames", cap.video_frames)
        tooltip("Number of frames (a camera path: its own length at 'path fps').")
        cap.video_frames = max(1, cap.video_frames)
        same_line_if_fits(item_width("fps", 5))
        _, cap.video_fps = imgui.input_float("fps", cap.video_fps, 0, 0, "%.0f")
        tooltip("Frames per second of the mp4.")
        cap.video_fps = max(1.0, cap.video_fps)
        imgui.pop_item_width()
        if cap.video_trajectory == "latent":
            imgui.push_item_width(label_space("seeds"))
            _, cap.video_seeds = imgui.input_text("seeds", cap.video_seeds, 256)
            imgui.pop_item_width()
            tooltip("Keyframe seeds of the latent loop, e.g. 0,1,2,3 or 0-7.")
        if cap.video_trajectory == "path":
            self._camera_path_editor()
        recording = [j for j in viz.jobs if j.name.startswith("video")]
        if recording:
            job = recording[0]
            imgui.progress_bar(job.fraction, (-(button_width("Abort") + imgui.get_style().item_spacing.x), 0),
                               f"{job.done}/{job.total}")
            tooltip("Frames written so far.")
            imgui.same_line()
            if imgui.button("Abort"):
                job.cancel()
            tooltip("Stop recording; the partial file is removed.")
        elif imgui.button("Record video"):
            try:
                viz.start_video()
            except (ValueError, OSError) as e:
                viz.state.notify(str(e), "error")
        else:
            tooltip("Record an mp4 of the current identity into the folder.")
        imgui.separator()

        # mesh export
        _narrow(4)
        _, i = imgui.combo("format", MESH_FORMATS.index(cap.mesh_format), list(MESH_FORMATS))
        tooltip("ply, obj or glb: triangle meshes; mrc: the raw density volume (for ChimeraX and friends).")
        cap.mesh_format = MESH_FORMATS[i]
        same_line_if_fits(item_width("grid", 5))
        imgui.push_item_width(5 * imgui.get_font_size())
        _, cap.mesh_resolution = imgui.input_int("grid", cap.mesh_resolution, 32)
        imgui.pop_item_width()
        tooltip("Voxels per side of the density grid (16 to 1024; 256 or 512 typical).")
        cap.mesh_resolution = min(max(cap.mesh_resolution, 16), 1024)
        cap.mesh_level = iso_level_input("level", cap.mesh_level, self.viz.shown_mesh_level())
        same_line_if_fits(checkbox_width("colours"))
        _, cap.mesh_colors = imgui.checkbox("colours", cap.mesh_colors)
        tooltip("Vertex colours from the generator's radiance at the surface.")
        imgui.pop_item_width()
        exporting = [j for j in viz.jobs if j.name.startswith("mesh")]
        if exporting:
            job = exporting[0]
            imgui.progress_bar(job.fraction, (-(button_width("Cancel") + imgui.get_style().item_spacing.x), 0),
                               "sampling density")
            tooltip("Sampling the density grid.")
            imgui.same_line()
            if imgui.button("Cancel##mesh"):
                job.cancel()
            tooltip("Stop the export.")
        elif imgui.button("Export mesh"):
            try:
                viz.export_mesh()
            except (ValueError, OSError) as e:
                viz.state.notify(str(e), "error")
        else:
            tooltip("Extract the current identity's surface (marching cubes) and save it into the folder.")

    def _camera_path_editor(self) -> None:
        viz = self.viz
        path = viz.state.camera_path
        imgui.begin_child("keyframes", 0, 6 * imgui.get_text_line_height_with_spacing(), border=True)
        for i, key in enumerate(path.keyframes):
            seed = f" s{key.seed[0]:g}" if key.seed else ""
            label = f"{i}: {key.time:.2f}s yaw {key.pose.yaw:+.2f} pitch {key.pose.pitch:+.2f}{seed}"
            clicked, _ = imgui.selectable(label, i == self.selected_key)
            tooltip(f"Keyframe {i}: time {key.time:.2f} s, yaw {key.pose.yaw:+.3f}, pitch {key.pose.pitch:+.3f}"
                    f"{', seed ' + format(key.seed[0], 'g') if key.seed else ''}. Click to jump there.")
            if clicked:
                self.selected_key = i
                viz.state.args.view = copy.deepcopy(key.pose)  # jump there to inspect
        imgui.end_child()
        if imgui.button("+ view"):
            latent = viz.state.args.latent
            self.selected_key = path.add(copy.deepcopy(viz.state.args.view), seed=(latent.seed_x, latent.seed_y))
        tooltip("Add the current view (and seed) as the next keyframe.")
        valid = 0 <= self.selected_key < len(path.keyframes)
        for name, tip in (("remove", "Remove the selected keyframe."), ("up", "Move the selected keyframe earlier."),
                          ("down", "Move the selected keyframe later.")):
            same_line_if_fits(button_width(name))
            if imgui.button(name) and valid:
                if name == "remove":
                    path.remove(self.selected_key)
                    self.selected_key = min(self.selected_key, len(path.keyframes) - 1)
                else:
                    self.selected_key = path.move(self.selected_key, -1 if name == "up" else +1)
            tooltip(tip)
        _narrow(4)
        duration = path.duration
        changed, duration = imgui.input_float("duration s", duration, 0, 0, "%.2f")
        tooltip("Length of the path in seconds; changing it respaces the keyframes evenly.")
        if changed and duration > 0 and len(path.keyframes) > 1:
            path.retime(duration)
        same_line_if_fits(checkbox_width("loop"))
        _, path.loop = imgui.checkbox("loop", path.loop)
        tooltip("Return to the first keyframe at the end.")
        spline = path.interpolation == "spline"
        same_line_if_fits(checkbox_width("spline"))
        _, spline = imgui.checkbox("spline", spline)
        tooltip("Smooth (Catmull-Rom spline) motion between keyframes; off: straight segments.")
        path.interpolation = "spline" if spline else "linear"
        _, path.fps = imgui.input_float("path fps", path.fps, 0, 0, "%.0f")
        tooltip("Frames per second when the path is recorded.")
        path.fps = max(1.0, path.fps)
        imgui.pop_item_width()
        cap = viz.state.capture
        imgui.push_item_width(label_space("json"))
        _, cap.camera_path_file = imgui.input_text("json", cap.camera_path_file, 512)
        imgui.pop_item_width()
        tooltip("File the camera path is saved to and loaded from.")
        if imgui.button("save path"):
            try:
                path.save(cap.camera_path_file)
                viz.state.notify(f"saved camera path {cap.camera_path_file}")
            except (OSError, CameraPathError) as e:
                viz.state.notify(f"camera path not saved: {e}", "error")
        tooltip("Save the keyframes to the json file.")
        same_line_if_fits(button_width("load path"))
        if imgui.button("load path"):
            viz.load_camera_path(cap.camera_path_file)
        tooltip("Replace the keyframes with those in the json file.")
