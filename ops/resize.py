"""Resizing of EG3D's raw (neural-rendered) images, as its dual discriminator and loss do it.

The discriminator upsamples the generator's low-resolution ``image_raw`` to the final resolution;
the loss makes the real ``image_raw`` by downsampling the real image. Both must resize the same way,
so this is the single implementation (the official ``filtered_resizing``).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from ops.stylegan2 import DEFAULT_RESAMPLE_FILTER, downsample2d, setup_filter, upsample2d

FilterMode = Literal["antialiased", "classic", "none"] | float
"""'antialiased', 'classic', 'none', or a float in (0, 1) blending aliased and antialiased."""


def filtered_resizing(
    image: torch.Tensor,
    size: int,
    f: torch.Tensor | None = None,
    filter_mode: FilterMode = "antialiased",
) -> torch.Tensor:
    """Resize a batch of images to ``size`` x ``size``.

    Args:
        image: [N, C, H, W].
        size: output height and width.
        f: FIR filter for the 'classic' mode (default: StyleGAN2's [1, 3, 3, 1]).
        filter_mode:
            * 'antialiased': bilinear with antialiasing (align_corners=False); EG3D's default.
            * 'classic': FIR 2x upsample, bilinear to 2 * size + 2, FIR 2x downsample with a
              one-pixel crop per side.
            * 'none': plain bilinear (aliases when downsampling).
            * float t in (0, 1): (1 - t) * plain bilinear + t * antialiased bilinear.

    Returns:
        [N, C, size, size].
    """
    if isinstance(filter_mode, str):
        if filter_mode == "antialiased":
            return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        if filter_mode == "none":
            return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)
        if filter_mode == "classic":
            if f is None:
                f = setup_filter(DEFAULT_RESAMPLE_FILTER)
            f = f.to(image.device)
            x = upsample2d(image, f, up=2)
            x = F.interpolate(x, size=(size * 2 + 2, size * 2 + 2), mode="bilinear", align_corners=False)
            # padding=-1 drops the extra border pixel per side that the +2 above added.
            return downsample2d(x, f, down=2, flip_filter=True, padding=-1)
        raise ValueError(f"unknown filter_mode {filter_mode!r}; expected 'antialiased', 'classic', 'none' or a float")
    t = float(filter_mode)
    if not 0 < t < 1:
        raise ValueError(f"a numeric filter_mode must lie in (0, 1), got {t}")
    filtered = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    aliased = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)
    return (1 - t) * aliased + t * filtered
