"""Still previews of a generator: fixed seeds seen from several yaws, RGB above depth."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from models.scene import RenderOptions, SceneControls, generator_device
from ops.camera import FFHQ_FOCAL
from renderers.images import depth_to_uint8, image_to_uint8, resize_nearest


@torch.no_grad()
def render_grid(
    G,
    seeds: Sequence[int],
    yaws: Sequence[float] = (-0.4, 0.0, 0.4),
    truncation_psi: float = 0.7,
    focal: float | None = FFHQ_FOCAL,
    pitch: float = 0.0,
    scene: SceneControls | None = None,
) -> np.ndarray:
    """[2 * len(seeds) * R, len(yaws) * R, 3] uint8: per seed, final images above neural depth.

    Each seed is conditioned on the frontal camera (as EG3D's tools do) and rendered from every yaw
    around the model's average pivot; the tri-planes are computed once per seed. ``focal`` None:
    the model's own field of view. ``scene``: a compositional model's objects and background.
    """
    options = RenderOptions(scene=scene) if scene is not None and scene != SceneControls() else None
    lens = {} if focal is None else {"focal": focal}
    device = generator_device(G)
    rows = []
    for seed in seeds:
        z = torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(int(seed))).to(device)
        ws = G.mapping(z, G.default_camera(**lens, device=device), truncation_psi=truncation_psi)
        planes = G.planes(ws, noise_mode="const")
        top, bottom = [], []
        for yaw in yaws:
            camera = G.default_camera(yaw=float(yaw), pitch=pitch, device=device, **lens)
            features, depth = G.render_neural(planes, camera, int(G.neural_rendering_resolution), options)
            image, _ = G.superresolve(features, ws, noise_mode="const")
            res = image.shape[-1]
            top.append(image_to_uint8(image[0]))
            bottom.append(resize_nearest(depth_to_uint8(depth[0]), res))
        rows += [np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)]
    return np.concatenate(rows, axis=0)


def render_preview(G, seed: int = 0, yaws: tuple[float, ...] = (-0.4, 0.0, 0.4), truncation_psi: float = 0.7,
                   focal: float = FFHQ_FOCAL, scene: SceneControls | None = None) -> np.ndarray:
    """[2 * R, len(yaws) * R, 3] uint8: one seed's final images in the top row, neural depth below."""
    return render_grid(G, [seed], yaws, truncation_psi=truncation_psi, focal=focal, scene=scene)
