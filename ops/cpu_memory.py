"""Keep freed CPU memory in the process instead of handing it back to the OS after every frame.

glibc serves each allocation over ``M_MMAP_THRESHOLD`` (at most 32 MB) with its own ``mmap`` and
unmaps it on free, so every frame of a 512 px generator maps its large activations afresh and the
kernel zero-fills their pages again: on 2 cores the fast FFHQ-512 frame spent about a third of its
time in system time. With mmap off and trimming effectively off, freed blocks stay in the heap and
the next frame reuses them; the process keeps its peak heap (one frame's working set) for its life.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
"""``mallopt`` parameters (glibc ``malloc.h``)."""

TRIM_THRESHOLD_BYTES = 1 << 30
"""Free memory at the top of the heap beyond this is still returned to the OS."""

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory (one arena, no mmap per allocation, trim only above 1 GiB).

    Process-wide and idempotent; call it at start-up, before the first large tensor. Returns whether
    it applied (False off glibc, e.g. macOS or musl, where nothing changes)."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        # One arena: a worker thread's own arena lives in 64 MB mmap'd heaps and would still map and
        # unmap its large blocks.
        _applied = all(libc.mallopt(option, value) for option, value in (
            (M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)))
    except (OSError, AttributeError):
        _applied = False
    return _applied
