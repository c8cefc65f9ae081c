"""Colormaps and the depth/normal display rules, shared by the GL shaders and the torch paths.

The viewport applies these on the GPU (``shaders/depth.frag`` samples ``colormap_lut`` as a 256x1
texture; ``shaders/normals.frag`` follows ``normals_to_rgb``); videos, batch images and tests use
the torch functions here. A test renders both and compares them, so the two stay the same rule.

The maps are piecewise-linear through stops read off the published turbo, viridis and inferno
colormaps, so they are close to, not bit-equal with, matplotlib's.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

_STOPS: dict[str, tuple[str, ...]] = {
    "turbo": ("30123b", "4145ab", "4675ed", "39a2fc", "1bcfd4", "24eca6", "61fc6c", "a4fc3b",
              "d1e834", "f3c63a", "fe9b2d", "f36315", "d93806", "b11901", "7a0403"),
    "viridis": ("440154", "472c7a", "3b518b", "2c718e", "21908d", "27ad81", "5cc863", "aadc32", "fde725"),
    "inferno": ("000004", "1f0c48", "550f6d", "88226a", "ba3655", "e35933", "f98c0a", "f9c932", "fcffa4"),
    "grey": ("000000", "ffffff"),
}
COLORMAPS: tuple[str, ...] = tuple(_STOPS)
LUT_SIZE = 256

LIGHT_DIRECTION = (-0.3, -0.4, -0.866)
"""Camera-space direction towards the light for shaded normals (OpenCV axes: up-left, towards the
viewer). Normalised before use."""


@functools.cache
def colormap_lut(name: str) -> np.ndarray:
    """[256, 3] uint8 lookup table of a colormap (index 0 = low end)."""
    if name not in _STOPS:
        raise ValueError(f"unknown colormap {name!r}; choose one of {', '.join(COLORMAPS)}")
    stops = np.array([[int(h[i:i + 2], 16) for i in (0, 2, 4)] for h in _STOPS[name]], dtype=np.float64)
    positions = np.linspace(0.0, 1.0, len(stops))
    t = np.linspace(0.0, 1.0, LUT_SIZE)
    lut = np.stack([np.interp(t, positions, stops[:, c]) for c in range(3)], axis=-1)
    lut = np.round(lut).astype(np.uint8)
    lut.flags.writeable = False
    return lut


def depth_range(depth: torch.Tensor) -> tuple[float, float]:
    """(min, max) of a depth map: the 'auto' normalisation (EG3D's videos use the same rule)."""
    lo, hi = torch.aminmax(depth.detach().float())
    return float(lo), float(hi)


def depth_to_unit(depth: torch.Tensor, near: float, far: float, invert: bool = False) -> torch.Tensor:
    """Depth -> colormap coordinate in [0, 1]: near maps to 1 (the map's high end) unless inverted."""
    t = ((depth.float() - near) / max(far - near, 1e-8)).clamp(0, 1)
    return t if invert else 1 - t


def colorize_depth(depth: torch.Tensor, near: float, far: float, colormap: str = "turbo",
                   invert: bool = False) -> torch.Tensor:
    """[H, W] or [1, H, W] depth -> [H, W, 3] uint8 through a colormap (nearest LUT entry, as the
    shader's texelFetch does)."""
    d = depth.reshape(depth.shape[-2], depth.shape[-1])
    index = (depth_to_unit(d, near, far, invert) * (LUT_SIZE - 1)).round().long()
    lut = torch.from_numpy(colormap_lut(colormap).copy()).to(d.device)
    return lut[index]


def normals_to_rgb(normals: torch.Tensor, style: str = "color") -> torch.Tensor:
    """[3, H, W] camera-space unit normals -> [H, W, 3] uint8.

    color: ``n * 0.5 + 0.5`` with the y and z axes flipped to OpenGL's (x right, y up, z towards the
    viewer), the usual normal-map look: a surface facing the camera is light blue. shaded: Lambert
    shading of a grey surface by ``LIGHT_DIRECTION`` plus a little ambient light.
    """
    n = normals.float().permute(1, 2, 0)
    if style == "color":
        gl = n * torch.tensor([1.0, -1.0, -1.0], device=n.device)
        rgb = (gl * 0.5 + 0.5).clamp(0, 1)
    elif style == "shaded":
        light = torch.tensor(LIGHT_DIRECTION, device=n.device)
        light = light / light.norm()
        lambert = (n * light).sum(-1, keepdim=True).clamp_min(0)
        rgb = (0.15 + 0.85 * lambert).clamp(0, 1).expand(-1, -1, 3)
    else:
        raise ValueError(f"unknown normals style {style!r}; choose color or shaded")
    return (rgb * 255).round().to(torch.uint8)
