"""Render outputs in the layouts that textures take, and their CPU rendition as RGB images.

``to_display_frame`` runs on the render thread, on the render device: it turns a ``RenderOutput``
into [H, W, C] tensors whose layout matches a GL texture format (RGBA8, R32F, RGBA32F), so the UI
thread only copies them. Image row 0 is the top row; the viewport flips texture coordinates.

``frame_to_rgb`` is the same picture made with torch instead of shaders (for videos, batch images
and as the reference that the shader tests compare against).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from renderers.colormaps import colorize_depth, normals_to_rgb
from renderers.images import resize_nearest
from renderers.render_args import DisplayArgs


@dataclass
class DisplayFrame:
    """Texture-ready tensors of one render (on the render device)."""

    mode: str
    """Render mode it was made for."""
    color: torch.Tensor | None = None
    """[H, W, 4] uint8 RGBA: the final image (rgb, side) or the raw image (raw)."""
    depth: torch.Tensor | None = None
    """[r, r, 1] float32 ray distance (depth, side)."""
    depth_range: tuple[float, float] | None = None
    """(min, max) of ``depth``, for the auto colormap range."""
    normals: torch.Tensor | None = None
    """[r, r, 4] float32 camera-space unit normals (OpenCV axes), alpha 1 (normals)."""
    mesh: Any = None
    """``renderers.mesh.Mesh`` (mesh)."""
    camera: torch.Tensor | None = None
    """[25] CPU label of the view camera the frame was rendered from."""
    image_resolution: int = 0
    """The generator's final image size R (the native size for screenshots)."""


def image_to_rgba8(image: torch.Tensor) -> torch.Tensor:
    """[3, H, W] in [-1, 1] -> [H, W, 4] uint8 with opaque alpha, on the same device."""
    rgb = ((image.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    alpha = torch.full_like(rgb[:1], 255)
    return torch.cat([rgb, alpha], dim=0).permute(1, 2, 0).contiguous()


def to_display_frame(output) -> DisplayFrame:
    """``renderers.renderer.RenderOutput`` -> ``DisplayFrame``."""
    mode = output.args.mode
    frame = DisplayFrame(mode=mode, camera=output.camera[0].detach().cpu(), mesh=output.mesh,
                         image_resolution=output.image_resolution)
    if mode in ("rgb", "side"):
        frame.color = image_to_rgba8(output.image)
    elif mode == "raw":
        frame.color = image_to_rgba8(output.image_raw)
    if mode in ("depth", "side"):
        frame.depth = output.depth.detach().float().permute(1, 2, 0).contiguous()
        frame.depth_range = output.depth_range
    if mode == "normals":
        n = output.normals.detach().float()
        frame.normals = torch.cat([n, torch.ones_like(n[:1])], dim=0).permute(1, 2, 0).contiguous()
    return frame


def depth_limits(frame: DisplayFrame, display: DisplayArgs) -> tuple[float, float]:
    """The (near, far) that the colormap spans under the display settings."""
    if display.depth_range == "fixed" or frame.depth_range is None:
        return float(display.depth_near), float(display.depth_far)
    return frame.depth_range


def frame_to_rgb(frame: DisplayFrame, display: DisplayArgs, size: int | None = None) -> np.ndarray:
    """[H, W, 3] uint8 picture of a frame, as the viewport shows it (mesh frames excluded).

    Images smaller than ``size`` (default: the larger of the frame's images) are enlarged by
    nearest neighbour; side-by-side frames are ``size`` x ``2 * size``.
    """
    parts = []
    if frame.color is not None:
        parts.append(frame.color[..., :3])
    if frame.depth is not None:
        near, far = depth_limits(frame, display)
        parts.append(colorize_depth(frame.depth[..., 0], near, far, display.colormap, display.depth_invert))
    if frame.normals is not None:
        parts.append(normals_to_rgb(frame.normals[..., :3].permute(2, 0, 1), display.normals_style))
    if not parts:
        raise ValueError(f"a {frame.mode} frame has no image to convert (meshes are drawn with OpenGL)")
    arrays = [p.cpu().numpy() for p in parts]
    size = size or max(a.shape[0] for a in arrays)
    return np.concatenate([a if a.shape[0] == size else resize_nearest(a, size) for a in arrays], axis=1)
