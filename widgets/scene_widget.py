"""Scene panel of compositional models (GIRAFFE): move, scale and turn each object, choose how many
are shown, turn the background. Listed only for models whose embedder is compositional."""

from __future__ import annotations

import math

import imgui

from models.scene import ObjectPose, SceneControls
from widgets.panel import Panel

TRANSLATION_REACH = 1.0
"""Sliders move objects this far (world units) beyond the model's default position on each axis."""
ROTATION_DEGREES = 180.0
"""Rotation sliders span +-this many degrees."""


class SceneWidget(Panel):
    title = "Scene"

    def __init__(self, viz):
        super().__init__(viz)
        self.rects: dict[str, tuple[float, float, float, float]] = {}
        """Where each control was drawn last frame, (x0, y0, x1, y1) in window pixels, by label (a
        slider's frame, without its label text)."""

    def shown(self) -> bool:
        return self.viz.state.model.scene_defaults is not None

    def _note(self, label: str, text: str = "") -> None:
        """Record the last item's rect under ``label``; ``text``: its visible label, drawn right of
        a slider's frame (left out of the rect)."""
        (x0, y0), (x1, y1) = imgui.get_item_rect_min(), imgui.get_item_rect_max()
        if text:
            x1 -= imgui.calc_text_size(text)[0] + imgui.get_style().item_inner_spacing[0]
        self.rects[label] = (x0, y0, x1, y1)

    def draw(self) -> None:
        defaults = self.viz.state.model.scene_defaults
        args = self.viz.state.args
        scene = args.scene
        objects = list(defaults.objects if scene.objects is None else scene.objects)
        changed = False
        imgui.push_item_width(-110)
        moved, count = imgui.slider_int("objects", len(objects), 0, len(defaults.objects))
        self._note("objects", "objects")
        if moved and count != len(objects):
            objects = objects[:count] + list(defaults.objects[len(objects):count])
            changed = True
        for i, pose in enumerate(objects):
            home = defaults.objects[i]
            imgui.text(f"object {i}")
            t, s, r = list(pose.translation), list(pose.scale), math.degrees(pose.rotation)
            for k, axis in enumerate("xyz"):
                label = f"{axis}##t{i}"
                moved, t[k] = imgui.slider_float(label, t[k], home.translation[k] - TRANSLATION_REACH,
                                                 home.translation[k] + TRANSLATION_REACH, "%.3f")
                self._note(f"object {i} {axis}", axis)
                changed |= moved
            for k, axis in enumerate("xyz"):
                moved, s[k] = imgui.slider_float(f"scale {axis}##s{i}", s[k], 0.02, 3 * max(home.scale), "%.3f")
                self._note(f"object {i} scale {axis}", f"scale {axis}")
                changed |= moved
            moved, r = imgui.slider_float(f"rotation##r{i}", r, -ROTATION_DEGREES, ROTATION_DEGREES, "%.1f deg")
            self._note(f"object {i} rotation", "rotation")
            changed |= moved
            objects[i] = ObjectPose(tuple(t), tuple(max(v, 1e-3) for v in s), math.radians(r))
        background = defaults.background_rotation if scene.background_rotation is None else scene.background_rotation
        moved, degrees = imgui.slider_float("background##bg", math.degrees(background), -ROTATION_DEGREES,
                                            ROTATION_DEGREES, "%.1f deg")
        self._note("background", "background")
        imgui.pop_item_width()
        if changed or moved:
            args.scene = SceneControls(tuple(objects), math.radians(degrees) if moved else scene.background_rotation)
        if imgui.button("reset"):
            args.scene = SceneControls()
        self._note("reset")
