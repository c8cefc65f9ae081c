"""Training throughput benchmark: full optimisation steps of a preset on random data.

Steps run in whole lazy-regularisation cycles (every phase, including R1 and the density
regulariser, at its real frequency), so img/s is what a real run of that config achieves.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from ops.camera import fov_to_focal, orbit_label
from training.config import TrainConfig
from training.distributed import DistributedContext, barrier
from training.loop import Trainer, memory_gb


@dataclass
class TrainBenchResult:
    """Throughput of one rank, measured over whole regularisation cycles."""

    steps: int
    """Timed optimisation steps."""
    batch: int
    """Images per step over all ranks."""
    seconds: list[float]
    """Wall time of each timed step."""
    peak_gpu_gb: float | None
    """Peak GPU memory allocated on this rank."""
    peak_rss_gb: float
    """Peak resident memory of this process."""

    @property
    def img_per_s(self) -> float:
        """Images per second over all ranks (total images / total time)."""
        return self.steps * self.batch / sum(self.seconds)

    @property
    def sec_per_kimg(self) -> float:
        return 1000 / self.img_per_s


def random_pose_labels(config: TrainConfig, count: int = 1024, seed: int = 0) -> np.ndarray:
    """[count, 25] cameras around the preset's average pivot: FFHQ-like yaw/pitch spread."""
    g = torch.Generator().manual_seed(seed)
    generator = config.generator
    radius, pivot = generator.pose.radius, generator.pose.pivot
    focal = fov_to_focal(generator.pose.fov_degrees)
    yaw = torch.randn(count, generator=g) * 0.3
    pitch = torch.randn(count, generator=g) * 0.15
    return orbit_label(yaw, pitch, radius, pivot, focal).numpy()


def benchmark_training(config: TrainConfig, ctx: DistributedContext, steps: int | None = None, warmup: int = 2,
                       ) -> TrainBenchResult:
    """Time ``steps`` training steps (default: one full R1 cycle) after ``warmup`` untimed ones.

    Progressively grown presets are timed at full size (past their last growth level), the
    resolution most of a run trains at."""
    trainer = Trainer(config, ctx, random_pose_labels(config))
    trainer.cur_nimg = grown_nimg(config)
    cycle = math.lcm(max(config.optim.d_reg_interval, 1), max(config.optim.g_reg_interval, 1))
    steps = steps or cycle
    res = config.generator.img_resolution
    batch = trainer.batch_per_rank
    g = torch.Generator().manual_seed(ctx.rank)
    real_img = torch.randint(0, 256, (batch, 3, res, res), generator=g, dtype=torch.uint8)
    real_c = torch.as_tensor(random_pose_labels(config, batch, seed=1 + ctx.rank))
    sync = (lambda: torch.cuda.synchronize(ctx.device)) if ctx.device.type == "cuda" else (lambda: None)

    for _ in range(warmup):
        trainer.step(real_img, real_c)
    # Start the timed window at the beginning of a regularisation cycle.
    while trainer.batch_idx % cycle != 0:
        trainer.step(real_img, real_c)
    if ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(ctx.device)
    barrier(ctx.world_size)
    seconds = []
    for _ in range(steps):
        sync()
        start = time.perf_counter()
        trainer.step(real_img, real_c)
        sync()
        seconds.append(time.perf_counter() - start)
    gpu_gb, rss_gb = memory_gb(ctx.device)
    return TrainBenchResult(steps, config.batch, seconds, gpu_gb, rss_gb)


def format_result(config: TrainConfig, ctx: DistributedContext, result: TrainBenchResult) -> str:
    gpu = f"{result.peak_gpu_gb:.2f} GiB" if result.peak_gpu_gb is not None else "n/a (CPU)"
    return (f"train bench: cfg={config.cfg} device={ctx.device.type} ranks={ctx.world_size} batch={config.batch} "
            f"batch_gpu={config.batch_per_gpu} amp={config.amp} neural_res={trainer_neural_resolution(config)} "
            f"res={config.generator.img_resolution} shown_to_D={config.shown_resolution}\n"
            f"  {result.steps} steps (one full lazy-regularisation cycle): {result.img_per_s:.2f} img/s, "
            f"{result.sec_per_kimg:.1f} s/kimg, {result.img_per_s / ctx.world_size:.2f} img/s per rank\n"
            f"  step time median {statistics.median(result.seconds) * 1000:.0f} ms, "
            f"min {min(result.seconds) * 1000:.0f} ms, max {max(result.seconds) * 1000:.0f} ms\n"
            f"  peak GPU memory {gpu}, peak RSS {result.peak_rss_gb:.2f} GiB")


def trainer_neural_resolution(config: TrainConfig) -> int:
    """The volume-rendering resolution a run starts at."""
    initial = getattr(config.loss, "neural_rendering_resolution_initial", None)
    return int(initial if initial is not None else config.generator.neural_rendering_resolution)


def grown_nimg(config: TrainConfig) -> int:
    """Images after which a progressively grown preset trains at full size, its last level faded in
    (0 for the others)."""
    loss = config.loss
    start = getattr(loss, "progressive_start", 0)
    if not start or not getattr(loss, "progressive_level_kimg", 0):
        return 0
    levels = max(int(config.shown_resolution // start).bit_length() - 1, 0)
    # The last level starts after ``levels`` levels and has faded in ``fade`` kimg later.
    return int((levels * loss.progressive_level_kimg + loss.progressive_fade_kimg) * 1000) if levels else 0
