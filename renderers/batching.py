"""Batch sizes that fit in memory: an estimate up front, and halving on out-of-memory.

The batch tools render several frames (or evaluate many grid points) per generator call. The
starting size comes from ``suggest_batch`` (free device memory over a per-item estimate, printed
so a user knows what was chosen); when a call still runs out of memory, ``BatchSize.map`` halves
the batch, says so, and retries the same items, down to one item per call.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


class OutOfMemory(RuntimeError):
    """Out of memory even with one item per call (the message says what to reduce)."""


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's ``torch.OutOfMemoryError``, or the CPU allocator's failure (a plain RuntimeError)."""
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(error, oom_type):
        return True
    if isinstance(error, MemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def free_memory_bytes(device: torch.device | str) -> int:
    """Memory available for new tensors on ``device`` (CUDA: free device memory; CPU: available RAM)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


DECODER_BYTES_PER_POINT = (3 * 32 + 32 + 64 + 33) * 4 * 2
"""Rough decoder memory per 3D point: features of the 3 planes, their mean, the hidden layer and
the outputs, float32, doubled for temporaries."""


def render_bytes_per_item(G) -> int:
    """Rough peak memory of rendering one frame: the per-sample decoder activations of every ray
    (tri-plane features, hidden layer, outputs; coarse and fine passes) plus the tri-planes and
    the super-resolution activations."""
    opts = G.rendering_kwargs
    r = int(G.neural_rendering_resolution)
    samples = int(opts.get("depth_resolution", 48)) + int(opts.get("depth_resolution_importance", 48))
    planes = 3 * 32 * 256 * 256 * 4
    sr = int(G.img_resolution) ** 2 * 128 * 4 * 4
    return r * r * samples * DECODER_BYTES_PER_POINT + planes + sr


def suggest_batch(G, device: torch.device | str, cap: int | None = None) -> tuple[int, str]:
    """(batch, one-line explanation) for rendering with ``G`` on ``device``: about half the free
    memory over ``render_bytes_per_item``, at least 1, at most ``cap`` (default 16 on CUDA; 4 on
    the CPU, where bigger batches are not faster)."""
    device = torch.device(device)
    cap = cap if cap is not None else (16 if device.type == "cuda" else 4)
    free = free_memory_bytes(device)
    per_item = render_bytes_per_item(G)
    batch = max(1, min(cap, free // 2 // max(per_item, 1)))
    why = (f"batch {batch} (about {per_item / 2**20:.0f} MiB per frame, {free / 2**30:.1f} GiB free on {device.type}; "
           "halved automatically on out-of-memory)")
    return int(batch), why


class BatchSize:
    """A batch size shared by the calls of one job; it only ever shrinks (halving on OOM)."""

    def __init__(self, size: int, log: Callable[[str], None] | None = print, what: str = "batch"):
        if size < 1:
            raise ValueError(f"batch size must be >= 1, got {size}")
        self.size = int(size)
        self.log = log
        self.what = what

    def halve(self, failed: int, error: BaseException) -> None:
        """Record an out-of-memory at ``failed`` items per call; raises ``OutOfMemory`` at one."""
        if failed <= 1:
            raise OutOfMemory(f"out of memory with one item per call ({_first_line(error)}); "
                              "use a smaller resolution or another device") from error
        self.size = max(1, failed // 2)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if self.log is not None:
            self.log(f"out of memory with {self.what} {failed}: retrying with {self.what} {self.size}")

    def map(self, items: Sequence[T], fn: Callable[[Sequence[T]], Sequence[R]]) -> Iterator[R]:
        """``fn`` over consecutive slices of at most ``size`` items; yields its results one by one,
        in order. A slice that runs out of memory is retried in smaller slices."""
        start = 0
        while start < len(items):
            n = min(self.size, len(items) - start)
            try:
                results = fn(items[start:start + n])
            except Exception as e:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
                if not is_out_of_memory(e):
                    raise
                self.halve(n, e)
                continue
            if len(results) != n:
                raise ValueError(f"batched call returned {len(results)} results for {n} items")
            yield from results
            start += n


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
