"""EG3D's super-resolution modules: neural feature image -> final RGB image.

Each is two StyleGAN2 synthesis blocks driven by the last w. The feature image is first resized
(bilinear, optionally antialiased) to the module's input resolution, so a generator rendered at
another neural resolution still upsamples to the same output size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.stylegan2 import FusedModconv, NoiseMode, SynthesisBlock
from ops.stylegan2 import setup_filter


@dataclass(frozen=True)
class SuperresolutionLayout:
    """Shape of one official super-resolution module."""

    output_resolution: int
    """Final image resolution."""
    input_resolution: int
    """Resolution the feature image is resized to before block0."""
    block0_channels: int
    """Output channels of block0."""
    block1_channels: int
    """Output channels of block1."""
    block0_upsamples: bool
    """False for 'NoUp' first blocks (2X and 4X)."""
    has_filter_buffer: bool
    """Whether the module registers its own ``resample_filter`` buffer (2X, 4X, 8X do; 8XDC not)."""


SUPERRESOLUTION_LAYOUTS: dict[str, SuperresolutionLayout] = {
    "SuperresolutionHybrid2X": SuperresolutionLayout(128, 64, 128, 64, False, True),
    "SuperresolutionHybrid4X": SuperresolutionLayout(256, 128, 128, 64, False, True),
    "SuperresolutionHybrid8X": SuperresolutionLayout(512, 128, 128, 64, True, True),
    "SuperresolutionHybrid8XDC": SuperresolutionLayout(512, 128, 256, 128, True, False),
    # Ours, not EG3D's: a narrow 32 -> 64 module for CPU-sized models.
    "studio.SuperresolutionLite2X64": SuperresolutionLayout(64, 32, 32, 32, False, True),
}
"""Module names (official ones as ``training.superresolution.<name>``) and their layouts."""

OFFICIAL_SR_PREFIX = "training.superresolution."


def superresolution_for_resolution(img_resolution: int) -> str:
    """EG3D's default super-resolution module for an output size (train.py's choice)."""
    choice = {128: "SuperresolutionHybrid2X", 256: "SuperresolutionHybrid4X", 512: "SuperresolutionHybrid8XDC"}
    if img_resolution not in choice:
        raise ValueError(f"no EG3D super-resolution module produces {img_resolution}px images (128, 256 or 512)")
    return choice[img_resolution]


class Superresolution(nn.Module):
    """One of EG3D's ``SuperresolutionHybrid*`` modules, selected by name."""

    def __init__(
        self,
        module_name: str,
        channels: int,
        img_resolution: int,
        sr_num_fp16_res: int = 0,
        sr_antialias: bool = True,
        fused_modconv_default: FusedModconv = True,
        w_dim: int = 512,
    ):
        super().__init__()
        name = module_name.removeprefix(OFFICIAL_SR_PREFIX)
        if name not in SUPERRESOLUTION_LAYOUTS:
            raise ValueError(f"unknown super-resolution module {module_name!r}; "
                             f"expected one of {sorted(SUPERRESOLUTION_LAYOUTS)}")
        layout = SUPERRESOLUTION_LAYOUTS[name]
        if img_resolution != layout.output_resolution:
            raise ValueError(f"{name} produces {layout.output_resolution}px images, not {img_resolution}px")
        self.module_name = name
        self.layout = layout
        self.input_resolution = layout.input_resolution
        self.sr_antialias = sr_antialias
        use_fp16 = sr_num_fp16_res > 0
        clamp = 256 if use_fp16 else None
        res0 = layout.input_resolution * (2 if layout.block0_upsamples else 1)
        self.block0 = SynthesisBlock(channels, layout.block0_channels, w_dim, res0, 3, is_last=False,
                                     upsample=layout.block0_upsamples, use_fp16=use_fp16, conv_clamp=clamp,
                                     fused_modconv_default=fused_modconv_default)
        self.block1 = SynthesisBlock(layout.block0_channels, layout.block1_channels, w_dim, res0 * 2, 3, is_last=True,
                                     use_fp16=use_fp16, conv_clamp=clamp, fused_modconv_default=fused_modconv_default)
        if layout.has_filter_buffer:
            self.register_buffer("resample_filter", setup_filter([1, 3, 3, 1]))

    def forward(self, rgb: torch.Tensor, x: torch.Tensor, ws: torch.Tensor, noise_mode: NoiseMode = "none",
                **block_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """rgb [N, 3, r, r] and features x [N, C, r, r] -> (image [N, 3, R, R], image_raw [N, 3, r, r]), using ws[:, -1].

        ``image_raw`` is ``rgb`` as EG3D returns it. When no resize is needed and block0 does not
        upsample, the official block0 adds its toRGB output *in place* into ``rgb``, a view of the
        feature image, so the official ``image_raw`` includes that addition. We reproduce the value
        without the in-place write, which would break backpropagation.
        """
        ws = ws[:, -1:, :].repeat(1, 3, 1)
        raw = rgb
        if x.shape[-1] != self.input_resolution:
            size = (self.input_resolution, self.input_resolution)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=self.sr_antialias)
            rgb = F.interpolate(rgb, size=size, mode="bilinear", align_corners=False, antialias=self.sr_antialias)
            aliased = False
        else:
            aliased = not self.layout.block0_upsamples
        x, rgb = self.block0(x, rgb, ws, noise_mode=noise_mode, **block_kwargs)
        if aliased:
            raw = rgb
        x, rgb = self.block1(x, rgb, ws, noise_mode=noise_mode, **block_kwargs)
        return rgb, raw
