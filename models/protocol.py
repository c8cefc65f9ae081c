"""The generator contract: what the app, the renderer, the batch tools, the metrics and the trainer
rely on. Every generator of this project (``models.pipeline.PipelineGenerator``, whatever the method)
provides it; nothing outside ``models/`` looks at a generator's class.

Shapes: N identities, R the image resolution, r the neural rendering resolution, C feature channels.
Cameras are EG3D's 25-float labels (OpenCV cam2world, then normalised intrinsics).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from models.scene import MeshFields, RenderOptions, Scene


@runtime_checkable
class Generator(Protocol):
    """A 3D-aware generator. Render settings travel with each call (:class:`RenderOptions`); the
    live ``rendering_kwargs`` are only their defaults, so rendering never edits the model."""

    z_dim: int
    c_dim: int
    w_dim: int
    num_ws: int
    img_resolution: int
    neural_rendering_resolution: int
    rendering_kwargs: dict[str, Any]
    """Live defaults under EG3D's key names (sample counts, ray bounds, average camera, ...)."""

    def __call__(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1, **kwargs: Any
                 ) -> dict[str, torch.Tensor]:
        """``synthesis(mapping(z, c), c)``: {'image' [N, 3, R, R] in about [-1, 1], 'image_raw', 'image_depth'}."""

    def mapping(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1, truncation_cutoff: int | None = None,
                update_emas: bool = False) -> torch.Tensor:
        """z [N, z_dim], c [N, 25] -> ws [N, num_ws, w_dim]."""

    def planes(self, ws: torch.Tensor, update_emas: bool = False, noise_mode: str = "const") -> Scene:
        """ws -> the per-identity scene (cached by the viewer while only the camera moves)."""

    def render_neural(self, scene: Scene, c: torch.Tensor, resolution: int,
                      options: RenderOptions | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Cameras c [N, 25] -> feature image [N, C, r, r] (first 3: RGB in about [-1, 1]), depth [N, 1, r, r]."""

    def superresolve(self, features: torch.Tensor, ws: torch.Tensor, noise_mode: str = "const"
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature image -> (image [N, 3, R, R], image_raw [N, 3, r, r])."""

    def synthesis(self, ws: torch.Tensor, c: torch.Tensor, neural_rendering_resolution: int | None = None,
                  update_emas: bool = False, noise_mode: str = "const",
                  options: RenderOptions | None = None) -> dict[str, torch.Tensor]:
        """{'image', 'image_raw', 'image_depth'} of ws seen from cameras c."""

    def run_decoder(self, scene: Scene, coordinates: torch.Tensor, directions: torch.Tensor,
                    options: RenderOptions | None = None) -> dict[str, torch.Tensor]:
        """Fields at world points [N, M, 3]: {'rgb' [N, M, C], 'sigma' [N, M, 1]} (+ 'sdf')."""

    def sample_mixed(self, coordinates: torch.Tensor, directions: torch.Tensor, ws: torch.Tensor,
                     **kwargs: Any) -> dict[str, torch.Tensor]:
        """``run_decoder`` of the scene of ws."""

    def mesh_fields(self, scene: Scene, options: RenderOptions | None = None) -> MeshFields:
        """The field a mesh of one identity is extracted from, its level and bounds (``options.scene``:
        a compositional model's boxes)."""

    def default_camera(self, batch: int = 1, yaw: float = 0.0, pitch: float = 0.0, focal: float | None = None,
                       device: torch.device | str | None = None) -> torch.Tensor:
        """[batch, 25] orbit camera at the model's average radius, pivot and lens."""

    def current_config(self) -> Any:
        """The config that rebuilds this generator, live settings folded in (checkpoints)."""
