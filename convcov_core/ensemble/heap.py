"""Large tensors kept in the heap while a group trains on the CPU (glibc; elsewhere nothing changes).

glibc's malloc serves every block above its mmap threshold (at most 32 MB) with a fresh mmap and
unmaps it when it is freed, so each such tensor costs the kernel a page fault and a zeroed page per
4 KB every time it is allocated. A grouped network's activations are N times a lone run's and cross
the threshold: four ConvMixer-256/8 members on 32 x 32 images (batch 128, bf16) faulted in 10 GB of
pages per step and took 5.5 s per step, 3.2 s with the blocks kept in the heap (one member alone:
0.80 and 0.75 s). keep_large_blocks() turns mmap off (M_MMAP_MAX = 0) and heap trimming off
(M_TRIM_THRESHOLD) while it is entered, then puts glibc's defaults back and returns the free heap to
the system (malloc_trim). The setting is process-wide: a group that ends while another trains in
another thread gives that one mmap back (its speed, not its results).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters (malloc.h)
GLIBC_DEFAULTS = {M_TRIM_THRESHOLD: 128 * 1024, M_MMAP_MAX: 65536}
NEVER_TRIM = 2**31 - 1  # mallopt takes an int


def _glibc():
    """glibc's C library, or None on other platforms."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(ctypes.util.find_library("c"))


@contextlib.contextmanager
def keep_large_blocks(enabled: bool = True):
    """While entered (and enabled), large blocks come from the heap and stay there when freed."""
    libc = _glibc() if enabled else None
    if libc is None:
        yield
        return
    libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM)
    try:
        yield
    finally:
        for parameter, value in GLIBC_DEFAULTS.items():
            libc.mallopt(parameter, value)
        libc.malloc_trim(0)
