"""Rendering precision: ``exact`` (fp32, bit-exact with the official fixtures) or ``fast``.

``fast`` runs the convolutional stages (backbone, super-resolution) in bfloat16 (``torch.autocast``),
where oneDNN's bf16 kernels (CPUs with AVX-512 bf16 or AMX) and tensor cores (CUDA) are much faster than
fp32; what autocast keeps in fp32 stays fp32, and the renderer runs the field decoder, compositing,
normals and meshes in fp32 (``renderers.renderer``). bfloat16 rather than float16 because its range
matches fp32: nothing can overflow. Under autocast the StyleGAN2 blocks keep their activations in
bfloat16 and channels-last from layer to layer (``models.stylegan2.SynthesisBlock``), with channels-last
weights and toRGB as a matrix product (``ops.stylegan2._conv2d``): a single NCHW operand, or a cast
back to fp32 at a block's start, sends oneDNN to its NCHW kernels, 2-3x slower (the transposed
convolutions most). Measured error of fast against exact: README "Performance".
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

Precision = Literal["exact", "fast"]
PRECISIONS: tuple[str, ...] = ("exact", "fast")


def check_precision(precision: str) -> Precision:
    """``precision`` if it is one of :data:`PRECISIONS`, else ValueError naming the choices."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    return precision  # type: ignore[return-value]


def default_precision(device: torch.device | str) -> Precision:
    """What the app renders with by default: fast on the CPU (where fp32 is too slow to orbit),
    exact on CUDA (fast enough, and what the official code shows)."""
    import torch

    return "fast" if torch.device(device).type == "cpu" else "exact"


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device | str) -> Iterator[None]:
    """Run the generator calls inside the block at ``precision`` on ``device`` (nothing for exact)."""
    if check_precision(precision) == "exact":
        yield
        return
    import torch  # here, so that the CLI can list PRECISIONS without importing torch

    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        yield


def planes_at(G, ws: torch.Tensor, precision: str, device: torch.device | str, noise_mode: str = "const"):
    """``G.planes(ws)`` with the backbone at ``precision``, returned in fp32 (``models.scene.float_scene``)."""
    from models.scene import float_scene

    with precision_context(precision, device):
        planes = G.planes(ws, noise_mode=noise_mode)
    return planes if precision == "exact" else float_scene(planes)


def superresolve_at(G, features: torch.Tensor, ws: torch.Tensor, precision: str, device: torch.device | str,
                    noise_mode: str = "const") -> torch.Tensor:
    """The final image [N, C, R, R] of ``G.superresolve`` at ``precision``, in fp32."""
    with precision_context(precision, device):
        image = G.superresolve(features, ws, noise_mode=noise_mode)[0]
    return image.float()
