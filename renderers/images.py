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


MIN_HEIGHT, MAX_HEIGHT = 8, 4096
"""Output heights that screenshots, videos and batch images can be resampled to."""


def check_height(height: int | None, name: str = "height") -> int | None:
    """None (the native size) or a whole number of pixels in [MIN_HEIGHT, MAX_HEIGHT]; ValueError
    (naming the setting ``name``) says what is wrong."""
    if height is None:
        return None
    if isinstance(height, bool) or not isinstance(height, (int, np.integer)) or not MIN_HEIGHT <= height <= MAX_HEIGHT:
        raise ValueError(f"bad {name} {height!r}: give a whole number of pixels from {MIN_HEIGHT} to {MAX_HEIGHT}")
    return int(height)


def scaled_size(width: int, height: int, target_height: int) -> tuple[int, int]:
    """(width, height) of a ``width`` x ``height`` picture made ``target_height`` pixels high, aspect kept."""
    return max(1, round(width * target_height / max(height, 1))), int(target_height)


def resize_to_height(pixels: np.ndarray, height: int | None) -> np.ndarray:
    """[H, W, C] uint8 resampled to ``height`` pixels high (width: ``scaled_size``) with a Lanczos
    filter (antialiased when shrinking); None, 0 or the same height: unchanged.

    The one resampler of captures: image screenshots, app and batch videos, batch images.
    """
    from PIL import Image

    if not height or height == pixels.shape[0]:
        return pixels
    width, height = scaled_size(pixels.shape[1], pixels.shape[0], int(height))
    squeeze = pixels.ndim == 3 and pixels.shape[2] == 1
    image = Image.fromarray(np.ascontiguousarray(pixels[..., 0] if squeeze else pixels))
    out = np.asarray(image.resize((width, height), Image.Resampling.LANCZOS))
    return out[..., None] if squeeze else out


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
