"""A still preview of a generator: a few views of one seed, RGB above depth."""

from __future__ import annotations

import numpy as np
import torch

from renderers.images import depth_to_uint8, image_to_uint8, resize_nearest


@torch.no_grad()
def render_preview(G, seed: int = 0, yaws: tuple[float, ...] = (-0.4, 0.0, 0.4), truncation_psi: float = 0.7) -> np.ndarray:
    """[2 * R, len(yaws) * R, 3] uint8: final images in the top row, neural depth below."""
    device = G.backbone.mapping.w_avg.device
    z = torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(seed)).to(device)
    ws = G.mapping(z, G.default_camera(device=device), truncation_psi=truncation_psi)
    top, bottom = [], []
    for i, yaw in enumerate(yaws):
        out = G.synthesis(ws, G.default_camera(yaw=yaw, device=device), use_cached_backbone=i > 0, cache_backbone=i == 0)
        res = out["image"].shape[-1]
        top.append(image_to_uint8(out["image"][0]))
        bottom.append(resize_nearest(depth_to_uint8(out["image_depth"][0]), res))
    return np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)], axis=0)
