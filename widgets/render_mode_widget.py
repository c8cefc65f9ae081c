"""Render-mode panel: what the viewport shows and how (colormap, normalisation, shading, mesh)."""

from __future__ import annotations

import imgui

from renderers.colormaps import COLORMAPS
from renderers.render_args import NORMALS_SOURCES, RENDER_MODES
from widgets.controls import iso_level_input
from widgets.panel import Panel


class RenderModeWidget(Panel):
    title = "Render mode"
    open_by_default = True

    def draw(self) -> None:
        args, display = self.viz.state.args, self.viz.state.display
        for i, mode in enumerate(RENDER_MODES):
            if i:
                imgui.same_line()
            if imgui.radio_button(mode, args.mode == mode):
                args.mode = mode
        imgui.push_item_width(-130)
        if args.mode in ("depth", "side"):
            _, index = imgui.combo("colormap", COLORMAPS.index(display.colormap), list(COLORMAPS))
            display.colormap = COLORMAPS[index]
            fixed = display.depth_range == "fixed"
            _, fixed = imgui.checkbox("fixed range", fixed)
            display.depth_range = "fixed" if fixed else "auto"
            imgui.same_line()
            _, display.depth_invert = imgui.checkbox("invert", display.depth_invert)
            if fixed:
                _, (display.depth_near, display.depth_far) = imgui.drag_float2(
                    "near/far", display.depth_near, display.depth_far, 0.01)
            elif self.viz.frame is not None and self.viz.frame.display is not None \
                    and self.viz.frame.display.depth_range is not None:
                lo, hi = self.viz.frame.display.depth_range
                imgui.text_disabled(f"auto range {lo:.3f} .. {hi:.3f}")
        if args.mode == "normals":
            _, index = imgui.combo("normals from", NORMALS_SOURCES.index(args.normals_source), list(NORMALS_SOURCES))
            args.normals_source = NORMALS_SOURCES[index]
            styles = ["color", "shaded"]
            _, index = imgui.combo("style", styles.index(display.normals_style), styles)
            display.normals_style = styles[index]
        if args.mode == "mesh":
            resolutions = [32, 64, 96, 128, 192, 256]
            current = resolutions.index(args.mesh_resolution) if args.mesh_resolution in resolutions else 3
            _, current = imgui.combo("grid", current, [str(r) for r in resolutions])
            args.mesh_resolution = resolutions[current]
            args.mesh_level = iso_level_input("iso level", args.mesh_level, self.viz.shown_mesh_level())
            _, args.mesh_colors = imgui.checkbox("vertex colours", args.mesh_colors)
            imgui.same_line()
            _, display.mesh_wireframe = imgui.checkbox("wireframe", display.mesh_wireframe)
        imgui.pop_item_width()

