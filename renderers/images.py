"""Turning generator outputs into displayable images."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch


def image_to_uint8(image: torch.Tensor) -> np.ndarray:
    """[3, H, W] image in [-1, 1] -> [H, W, 3] uint8."""
    x = (image.detach().float().clamp(-1, 1) + 1) * 127.5
    return x.round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def depth_to_uint8(depth: torch.Tensor, near: float | None = None, far: float | None = None) -> np.ndarray:
    """[1, H, W] depth -> [H, W, 3] uint8 grey, near bright and far dark.

    Normalised to [near, far] when given, else to the image's own min/max (as EG3D's videos do).
    """
    d = depth.detach().float()[0]
    lo = float(d.min()) if near is None else near
    hi = float(d.max()) if far is None else far
    t = 1 - ((d - lo) / max(hi - lo, 1e-8)).clamp(0, 1)
    g = (t * 255).round().to(torch.uint8).cpu().numpy()
    return np.repeat(g[..., None], 3, axis=-1)


def resize_nearest(image: np.ndarray, size: int) -> np.ndarray:
    """[h, w, C] -> [size, size, C] by nearest-neighbour (exact for integer factors)."""
    h, w = image.shape[:2]
    rows = (np.arange(size) * h) // size
    cols = (np.arange(size) * w) // size
    return image[rows][:, cols]


def save_png(path: str | Path, pixels: np.ndarray) -> Path:
    """Write [H, W, 3] uint8 as PNG atomically; OSError names the path on failure."""
    from PIL import Image

    from models.checkpoint import atomic_output

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    with atomic_output(path) as f:
        f.write(buffer.getvalue())
    return path
