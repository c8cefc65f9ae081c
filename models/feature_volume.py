"""VolumeGAN's 3D feature generator (methods.md §3.2).

Its output is read with ``ops.feature_volume.sample_feature_volume``; the axis and voxel-centre
conventions are in ``ops/feature_volume.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _explicit_instance_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    # VolumeGAN's float32 order: (x - mean) / sqrt(mean((x - mean)^2) + eps) over D, H, W
    x = x - x.mean(dim=(2, 3, 4), keepdim=True)
    return x / torch.sqrt((x**2).mean(dim=(2, 3, 4), keepdim=True) + eps)


INSTANCE_NORMS = {"torch": lambda x, eps: F.instance_norm(x, eps=eps), "explicit": _explicit_instance_norm}
"""Instance norm (no affine) by name: torch's kernel, or VolumeGAN's explicit formula (same maths, the
official float32 order)."""


class FeatureVolume(nn.Module):
    """VolumeGAN's 3D feature generator: a learned constant grown by AdaIN-modulated 3D convs.

    With the defaults (methods.md §3.2): a constant 256 x 4^3 input, then 4 stages at 4, 8, 16 and
    32 voxels with 256, 128, 64 and 32 channels. methods.md says both "4 stages (4->8->16->32)" and
    "each stage does nearest x2 upsampling"; only three doublings fit 4 -> 32, so stage 0 runs at the
    constant's resolution and stages 1-3 upsample first. Each stage: [nearest x2], 3x3x3 Conv3d,
    instance norm (no affine), AdaIN ``x * (scale_bias + scale) + shift``, LeakyReLU 0.2.

    All stages' scales and shifts come from ONE linear layer applied to w[0] (the first of the
    per-layer ws), as methods.md describes. Whether the predicted scale is used directly or as
    ``1 + scale`` is not stated; ``scale_bias`` selects it (0: direct, our default; 1: identity
    at initialisation). ``norm``: :data:`INSTANCE_NORMS` ('explicit' is the official order of operations).

    Output: [N, 32, 32, 32, 32] = [N, C, D, H, W], to be read with :func:`sample_feature_volume`
    over :data:`VOLUMEGAN_FFHQ_BOUNDS`.
    """

    def __init__(
        self,
        w_dim: int = 512,
        *,
        init_resolution: int = 4,
        resolution: int = 32,
        base_channels: int = 256,
        out_channels: int = 32,
        scale_bias: float = 0.0,
        eps: float = 1e-8,
        norm: str = "torch",
    ):
        super().__init__()
        num_up = (resolution // init_resolution).bit_length() - 1
        if init_resolution << num_up != resolution:
            raise ValueError(f"resolution {resolution} is not init_resolution {init_resolution} times a power of 2")
        self.w_dim = w_dim
        self.resolution = resolution
        self.scale_bias = scale_bias
        self.eps = eps
        if norm not in INSTANCE_NORMS:
            raise ValueError(f"norm must be one of {', '.join(INSTANCE_NORMS)}, got {norm!r}")
        self.norm = INSTANCE_NORMS[norm]

        # Channels halve per stage from base_channels, never below out_channels; the last stage
        # emits exactly out_channels.
        channels = [max(base_channels >> i, out_channels) for i in range(num_up + 1)]
        channels[-1] = out_channels
        self.stage_channels: list[int] = channels

        self.const = nn.Parameter(torch.ones(1, base_channels, init_resolution, init_resolution, init_resolution))
        in_channels = [base_channels] + channels[:-1]
        self.convs = nn.ModuleList(nn.Conv3d(i, o, kernel_size=3, padding=1) for i, o in zip(in_channels, channels))
        self.affine = nn.Linear(w_dim, 2 * sum(channels))
        # Small style init (Kaiming for LeakyReLU 0.2, x 0.25) so early training is driven by the convs.
        nn.init.kaiming_normal_(self.affine.weight, a=0.2, mode="fan_in", nonlinearity="leaky_relu")
        with torch.no_grad():
            self.affine.weight.mul_(0.25)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """Feature volume of a batch of latents.

        Args:
            w: [N, w_dim], or [N, num_ws, w_dim] of which only ws[:, 0] is used.

        Returns:
            [N, C, D, H, W] = [N, 32, 32, 32, 32] by default.
        """
        if w.ndim == 3:
            w = w[:, 0]
        styles = self.affine(w)
        scales, shifts = styles.chunk(2, dim=1)
        x = self.const.expand(w.shape[0], -1, -1, -1, -1)
        start = 0
        for stage, conv in enumerate(self.convs):
            if stage > 0:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = conv(x)
            x = self.norm(x, self.eps)
            end = start + conv.out_channels
            scale = scales[:, start:end, None, None, None]
            shift = shifts[:, start:end, None, None, None]
            start = end
            x = F.leaky_relu(x * (self.scale_bias + scale) + shift, 0.2)
        return x

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, resolution={self.resolution}, stage_channels={self.stage_channels}"
