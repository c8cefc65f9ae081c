"""What every generator hands the renderer: a per-identity scene, and the fields a mesh comes from.

EG3D's scene is its tri-plane tensor [N, 3, 32, H, W]; pipeline generators return a
:class:`Scene`. Both slice along the batch (``scene[i:i + 1]``) and concatenate
with :func:`cat_scenes`, which is all the renderer does with them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class MeshFields:
    """What a mesh of one identity is extracted from."""

    field: Callable[[torch.Tensor], torch.Tensor]
    """points [M, 3] -> scalar [M] (raw density, -SDF, or GRAM's manifold field)."""
    color: Callable[[torch.Tensor], torch.Tensor]
    """points [M, 3] -> RGB [M, 3] in [0, 1]."""
    bounds: tuple[float, float]
    """The cube (lo, hi) on every axis."""
    level: float | None
    """Iso level, or None: the rendered surface's level (``GeneratorRenderer.surface_level``)."""
    inside: str = "above"
    """Which side of the level is solid: 'above' (density, -SDF) or 'below' (GRAM's field)."""
    eg3d_cleanup: bool = False
    """Clear EG3D's border layers before marching cubes (``renderers.mesh.eg3d_border``)."""


LOCKED_VIEW_DIRECTION: tuple[float, float, float] = (0.0, 0.0, -1.0)
"""The world view direction of a frontal camera (+z looking at the origin), which every sample sees
with ``lock_view_dependence``."""


@dataclass(frozen=True)
class ObjectPose:
    """Where one object's box sits in a compositional scene (GIRAFFE), in world units (z up)."""

    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Box centre."""
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Box half-size per axis (points inside are ``R (x - t) / s`` in [-1, 1]^3)."""
    rotation: float = 0.0
    """Rotation about the world z axis, radians."""


@dataclass(frozen=True)
class SceneControls:
    """The object boxes and background rotation of one render call of a compositional model; what a
    user moves. Fields left None take the model's defaults (the middle of its training ranges)."""

    objects: tuple[ObjectPose, ...] | None = None
    """One pose per shown object, in the model's object order (fewer than the model has: the rest
    are removed from the scene); None: every object at its default pose."""
    background_rotation: float | None = None
    """Rotation of the background about the world z axis, radians."""


@dataclass(frozen=True)
class RenderOptions:
    """Render settings passed with each call (the model is never edited to render); None takes the
    model's live default (``G.rendering_kwargs``, EG3D's key names, which scripts may edit)."""

    num_coarse: int | None = None
    """Stratified samples per ray ('depth_resolution')."""
    num_fine: int | None = None
    """Importance samples per ray ('depth_resolution_importance')."""
    density_noise: float | None = None
    """Std of the training-time noise on raw density ('density_noise'; applied in training mode only)."""
    lock_view_dependence: bool | None = None
    """Every sample sees the view direction :data:`LOCKED_VIEW_DIRECTION` (pi-GAN's ``lock_view_dependence``)."""
    scene: SceneControls | None = None
    """Object boxes and background rotation of compositional models (None: their defaults; others ignore it)."""

    def resolve(self, rendering_kwargs: dict[str, Any]) -> RenderOptions:
        """Every field set: these values, else the live defaults."""
        return RenderOptions(
            int(rendering_kwargs["depth_resolution"]) if self.num_coarse is None else int(self.num_coarse),
            int(rendering_kwargs["depth_resolution_importance"]) if self.num_fine is None else int(self.num_fine),
            float(rendering_kwargs.get("density_noise", 0.0)) if self.density_noise is None else float(self.density_noise),
            bool(rendering_kwargs.get("lock_view_dependence", False)) if self.lock_view_dependence is None
            else bool(self.lock_view_dependence), self.scene)


@dataclass
class Scene:
    """One batch of identities as the renderer needs them: the ws and the embedder's
    representation (tri-planes, feature volume, or None)."""

    ws: torch.Tensor
    """[N, num_ws, w_dim]."""
    features: torch.Tensor | None = None
    """Embedder representation with batch dimension N, or None."""

    def __len__(self) -> int:
        return self.ws.shape[0]

    def __getitem__(self, index: slice | int) -> Scene:
        index = slice(index, index + 1) if isinstance(index, int) else index
        return Scene(self.ws[index], None if self.features is None else self.features[index])

    @staticmethod
    def cat(scenes: list[Scene]) -> Scene:
        features = None if scenes[0].features is None else torch.cat([s.features for s in scenes])
        return Scene(torch.cat([s.ws for s in scenes]), features)


def cat_scenes(scenes: Sequence[Any]) -> Any:
    """Concatenate per-identity scenes along the batch."""
    if len(scenes) == 1:
        return scenes[0]
    if isinstance(scenes[0], torch.Tensor):
        return torch.cat(list(scenes))
    return type(scenes[0]).cat(list(scenes))


def float_scene(scene: Any) -> Any:
    """``scene`` with its tensors in fp32 (a tri-plane tensor, or a :class:`Scene`'s ws and features)
    after a reduced-precision backbone; unchanged when already fp32."""
    if isinstance(scene, torch.Tensor):
        return scene.float()
    features = None if scene.features is None else scene.features.float()
    return Scene(scene.ws.float(), features)


def generator_device(G: nn.Module) -> torch.device:
    """The device a generator's tensors live on."""
    for tensor in G.buffers():
        return tensor.device
    return next(G.parameters()).device
