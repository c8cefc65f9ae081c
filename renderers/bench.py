"""Frame-time benchmark of a generator: full frames, camera-only frames, and per-stage split.

A *full frame* is what the app renders when the latent changes: mapping, backbone (tri-plane),
volume rendering and super-resolution. A *camera-only frame* reuses the cached tri-plane, which is
what orbiting costs. Figures are medians over frames, so that a noisy machine moves them little.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import torch

from models.precision import planes_at, superresolve_at
from models.scene import generator_device
from renderers.renderer import DeviceClock

STAGES = ("mapping", "backbone", "rendering", "superres")


@dataclass
class BenchResult:
    """Per-frame timings in milliseconds."""

    device: str
    """Device the benchmark ran on."""
    neural_resolution: int
    """Volume-rendering resolution r."""
    image_resolution: int
    """Final image resolution R."""
    precision: str = "exact"
    """``models.precision`` mode the frames ran at."""
    full_ms: list[float] = field(default_factory=list)
    """Wall time of each full frame."""
    camera_only_ms: list[float] = field(default_factory=list)
    """Wall time of each frame that reuses the cached tri-plane."""
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    """Wall time of each stage within the full frames."""
    peak_memory_mb: float | None = None
    """Peak CUDA memory allocated, where measured."""

    def medians(self) -> dict[str, float]:
        out = {"full": statistics.median(self.full_ms), "camera_only": statistics.median(self.camera_only_ms)}
        out.update({s: statistics.median(v) for s, v in self.stage_ms.items()})
        return out

    def report(self) -> str:
        m = self.medians()
        n = len(self.full_ms)
        lines = [
            f"device {self.device}, {self.precision} precision, neural resolution {self.neural_resolution}, image "
            f"{self.image_resolution}px, medians over {n} frames",
            f"  full frame          {m['full']:9.2f} ms  ({1000 / m['full']:.2f} fps)",
            f"  camera-only frame   {m['camera_only']:9.2f} ms  ({1000 / m['camera_only']:.2f} fps, "
            f"{m['full'] / m['camera_only']:.2f}x faster than full)",
        ]
        for s in STAGES:
            lines.append(f"    {s:<17} {m[s]:9.2f} ms  ({100 * m[s] / sum(m[t] for t in STAGES):4.1f}%)")
        if self.peak_memory_mb is not None:
            lines.append(f"  peak CUDA memory    {self.peak_memory_mb:9.1f} MiB")
        return "\n".join(lines)


@torch.no_grad()
def benchmark_generator(G, neural_resolution: int | None = None, frames: int = 10, warmup: int = 2,
                        seed: int = 0, precision: str = "exact") -> BenchResult:
    """Time ``frames`` full and camera-only frames after ``warmup`` untimed ones, at ``precision`` (as
    the renderer runs it: the backbone and super-resolution in its context, the rest fp32).

    The camera sweeps in yaw between frames so that no stage can be served from a stale result.
    """
    device = generator_device(G)
    r = int(neural_resolution or G.neural_rendering_resolution)
    result = BenchResult(str(device), r, int(G.img_resolution), precision)

    clock = DeviceClock(device)
    z = torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(seed)).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(warmup + frames):
        c = G.default_camera(yaw=0.4 * ((i % 8) / 7 - 0.5), device=device)
        t0 = clock.now()
        ws = G.mapping(z, c, truncation_psi=0.7)
        t1 = clock.now()
        planes = planes_at(G, ws, precision, device)
        t2 = clock.now()
        features, _ = G.render_neural(planes, c, r)
        t3 = clock.now()
        superresolve_at(G, features, ws, precision, device)
        t4 = clock.now()
        c2 = G.default_camera(yaw=-0.2 + 0.05 * (i % 5), device=device)
        features2, _ = G.render_neural(planes, c2, r)
        superresolve_at(G, features2, ws, precision, device)
        t5 = clock.now()
        if i < warmup:
            continue
        result.full_ms.append(1000 * (t4 - t0))
        result.camera_only_ms.append(1000 * (t5 - t4))
        for stage, (a, b) in zip(STAGES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4))):
            result.stage_ms[stage].append(1000 * (b - a))
    if device.type == "cuda":
        result.peak_memory_mb = torch.cuda.max_memory_allocated(device) / 2**20
    return result
