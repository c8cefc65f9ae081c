"""Render-mode panel: what the viewport shows and how (colormap, normalisation, shading, mesh)."""

from __future__ import annotations

import imgui

from renderers.colormaps import COLORMAPS
from renderers.render_args import NORMALS_SOURCES, RENDER_MODES
from widgets.controls import checkbox_width, iso_level_input, label_space, note, same_line_if_fits, tooltip
from widgets.panel import Panel

MODE_TIPS = {
    "rgb": "The final image (after super-resolution). Key 1.",
    "raw": "Raw: the neural-rendering image before super-resolution, at the neural resolution (its first "
           "three feature channels as RGB). Shows what the 3-D part alone produces. Key 2.",
    "depth": "Expected ray distance at each pixel, colour-mapped. Key 3.",
    "normals": "Surface normals, from the depth map or from the density gradient. Key 4.",
    "mesh": "The identity's marching-cubes surface, drawn with OpenGL (orbit it freely; F frames it). Key 5.",
    "side": "RGB and depth side by side. Key 6.",
}
NORMALS_TIP = ("Where the normals come from. depth: unprojected depth map, the cross product of neighbouring "
               "differences; the surface the image shows, and cheap. density: the gradient of the density "
               "field at each pixel's expected surface point; it tests the field itself. A young or untrained "
               "model's density is foggy and layered, so its density-gradient normals are short, noisy and point "
               "every way: the picture looks dark or speckled. That is the model, not a bug; on a clean surface "
               "the two sources agree.")
LABELS = ("colormap", "near/far", "normals from", "style", "grid", "iso level")


class RenderModeWidget(Panel):
    title = "Render mode"
    open_by_default = True

    def draw(self) -> None:
        args, display = self.viz.state.args, self.viz.state.display
        for i, mode in enumerate(RENDER_MODES):
            if i:
                same_line_if_fits(checkbox_width(mode))
            if imgui.radio_button(mode, args.mode == mode):
                args.mode = mode
            tooltip(MODE_TIPS.get(mode, mode))
        imgui.push_item_width(label_space(*LABELS))
        if args.mode in ("depth", "side"):
            _, index = imgui.combo("colormap", COLORMAPS.index(display.colormap), list(COLORMAPS))
            tooltip("Colour map for depth (near = warm with turbo).")
            display.colormap = COLORMAPS[index]
            fixed = display.depth_range == "fixed"
            _, fixed = imgui.checkbox("fixed range", fixed)
            tooltip("Map a fixed depth range (near/far below) to the colour map; off: each frame's own range.")
            display.depth_range = "fixed" if fixed else "auto"
            same_line_if_fits(checkbox_width("invert"))
            _, display.depth_invert = imgui.checkbox("invert", display.depth_invert)
            tooltip("Reverse the colour map (near and far swap colours).")
            if fixed:
                _, (display.depth_near, display.depth_far) = imgui.drag_float2(
                    "near/far", display.depth_near, display.depth_far, 0.01)
                tooltip("Ray distances mapped to the two ends of the colour map.")
            elif self.viz.frame is not None and self.viz.frame.display is not None \
                    and self.viz.frame.display.depth_range is not None:
                lo, hi = self.viz.frame.display.depth_range
                note(f"auto range {lo:.3f} .. {hi:.3f}")
        if args.mode == "normals":
            _, index = imgui.combo("normals from", NORMALS_SOURCES.index(args.normals_source), list(NORMALS_SOURCES))
            tooltip(NORMALS_TIP)
            args.normals_source = NORMALS_SOURCES[index]
            styles = ["color", "shaded"]
            _, index = imgui.combo("style", styles.index(display.normals_style), styles)
            tooltip("color: the camera-space normal as RGB; shaded: lit grey, like a clay render.")
            display.normals_style = styles[index]
            if args.normals_source == "density":
                note("density-gradient normals of a young model look dark: its density is still foggy "
                     "(hover 'normals from')")
        if args.mode == "mesh":
            resolutions = [32, 64, 96, 128, 192, 256]
            current = resolutions.index(args.mesh_resolution) if args.mesh_resolution in resolutions else 3
            _, current = imgui.combo("grid", current, [str(r) for r in resolutions])
            tooltip("Voxels per side of the density grid marching cubes runs on: finer is slower.")
            args.mesh_resolution = resolutions[current]
            args.mesh_level = iso_level_input("iso level", args.mesh_level, self.viz.shown_mesh_level())
            _, args.mesh_colors = imgui.checkbox("vertex colours", args.mesh_colors)
            tooltip("Colour the vertices with the generator's radiance at the surface (slower).")
            same_line_if_fits(checkbox_width("wireframe"))
            _, display.mesh_wireframe = imgui.checkbox("wireframe", display.mesh_wireframe)
            tooltip("Draw the triangle edges.")
            if imgui.button("frame the mesh (F)"):
                self.viz.frame_mesh()
            tooltip("Aim the camera at the mesh's centre and move it back until the whole mesh fits the view "
                    "(R returns to the model's own view).")
        imgui.pop_item_width()
