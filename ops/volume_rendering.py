"""The one volume-rendering path: coarse samples, importance samples, merge, composite.

Every generator renders its rays through :func:`render_samples`; what differs between methods (the
field evaluated at the samples, the integrator, which weights drive the importance sampler) are
arguments. Samples are laid out [N, M, K, C] (batch, rays, samples per ray, channels).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ops.compositing import Composite
from ops.ray_sampling import importance_depths, merge_sorted_samples

Evaluate = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""depths [N, M, K, 1] -> (colours/features [N, M, K, C], raw density or SDF [N, M, K, 1])."""
CompositeFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Composite]
"""(colours, raw, depths) -> Composite."""
Importance = Callable[[torch.Tensor, Composite, int, bool], torch.Tensor]
"""(coarse depths [N, M, K, 1], coarse composite, count, deterministic) -> fine depths [N, M, count, 1]."""


def render_samples(
    depths: torch.Tensor,
    evaluate: Evaluate,
    composite: CompositeFn,
    num_importance: int,
    *,
    deterministic: bool,
    importance_weights: Callable[[Composite], torch.Tensor] = lambda coarse: coarse.weights,
    importance: Importance | None = None,
) -> tuple[Composite, torch.Tensor]:
    """Render rays from their coarse sample depths.

    Args:
        depths: [N, M, K, 1] coarse depths, sorted along K.
        evaluate: the field at depths along the rays.
        composite: the integrator.
        num_importance: importance samples per ray drawn from the coarse weights (0: coarse only).
        deterministic: fixed quantiles instead of random draws for the importance samples (evaluation).
        importance_weights: the [N, M, K', 1] weights of a coarse composite the sampler reads
            (EG3D's midpoint rule has K - 1 intervals; NeRF-style integrators drop the first sample).
        importance: draws the fine depths from the coarse depths and composite instead
            (``(depths, coarse, count, deterministic) -> [N, M, count, 1]``); default: EG3D's
            smoothed sampler on ``importance_weights``.

    Returns:
        (the composite of all samples, their depths [N, M, K + num_importance, 1]).
    """
    colours, raw = evaluate(depths)
    if num_importance > 0:
        coarse = composite(colours, raw, depths)
        if importance is None:
            fine = importance_depths(depths, importance_weights(coarse), num_importance, deterministic=deterministic)
        else:
            fine = importance(depths, coarse, num_importance, deterministic)
        colours_fine, raw_fine = evaluate(fine)
        depths, colours, raw = merge_sorted_samples(depths, colours, raw, fine, colours_fine, raw_fine)
    return composite(colours, raw, depths), depths
