"""Adaptive resolution: hold a frame rate while the camera moves, refine when it stops.

Policy. While the user drags, wheels or key-orbits the camera, and for ``settle_seconds`` after
the last such input, frames are rendered without super-resolution at the largest neural
resolution predicted to fit the frame budget ``1000 / target_fps`` ms. The prediction is linear in
the number of rays: ``render_ms(r) = ms_per_ray * r**2``, with ``ms_per_ray`` an exponential moving
average over the frames rendered so far (any resolution), so it follows the machine's load.
Candidate resolutions are the model's own r times 1, 3/4, 1/2, 3/8, 1/4 (multiples of 4, at least
``min_resolution``). As soon as the camera has been still for ``settle_seconds``, the next request
is the full-quality one; because the newest request wins, it replaces any drag frame still queued.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from renderers.render_args import RenderArgs

SCALES = (1.0, 0.75, 0.5, 0.375, 0.25)


@dataclass
class AdaptiveQuality:
    """State and settings of the adaptive-resolution policy."""

    enabled: bool = True
    """Lower the resolution while the camera moves."""
    target_fps: float = 30.0
    """Frame rate to hold during interaction."""
    settle_seconds: float = 0.2
    """Camera stillness after which full quality is requested."""
    min_resolution: int = 16
    """Never render below this neural resolution."""
    ms_per_ray: float | None = None
    """Moving average of generator time per ray (ms)."""
    smoothing: float = 0.3
    """Weight of the newest frame in ``ms_per_ray``."""
    last_input_time: float = -1e9
    """Clock time of the newest camera input."""

    def note_camera_input(self, now: float) -> None:
        self.last_input_time = now

    def interacting(self, now: float) -> bool:
        return self.enabled and now - self.last_input_time < self.settle_seconds

    def observe(self, render_ms: float, resolution: int) -> None:
        """Feed the generator time of a finished frame rendered at neural resolution r."""
        if render_ms <= 0 or resolution <= 0:
            return
        sample = render_ms / resolution**2
        self.ms_per_ray = sample if self.ms_per_ray is None else (
            (1 - self.smoothing) * self.ms_per_ray + self.smoothing * sample)

    def interactive_resolution(self, full_resolution: int) -> int:
        """The largest candidate resolution predicted to fit the frame budget."""
        candidates = sorted({max(self.min_resolution, int(round(full_resolution * s / 4)) * 4) for s in SCALES},
                            reverse=True)
        candidates = [r for r in candidates if r <= full_resolution] or [full_resolution]
        if self.ms_per_ray is None:
            return candidates[min(2, len(candidates) - 1)]  # no measurement yet: start at half
        budget_ms = 1000.0 / self.target_fps
        for r in candidates:
            if self.ms_per_ray * r * r <= budget_ms:
                return r
        return candidates[-1]

    def effective(self, args: RenderArgs, full_resolution: int, now: float) -> RenderArgs:
        """The request to send now: ``args`` itself, or a faster copy while interacting."""
        if not self.interacting(now) or args.mode == "mesh":
            return args
        fast = args.copy()
        requested = args.quality.neural_resolution or full_resolution
        r = min(self.interactive_resolution(full_resolution), requested)
        fast.quality = dataclasses.replace(fast.quality, neural_resolution=r, superres=False)
        return fast
