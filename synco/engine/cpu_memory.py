"""Keep large freed CPU blocks for reuse instead of returning them to the OS (glibc only).

PyTorch has no caching allocator on the CPU: every tensor comes from ``malloc``. glibc serves blocks
above 32 MiB (its largest mmap threshold) with ``mmap`` and gives them back with ``munmap`` when freed,
so every (B, K) tensor of a MoCo head - 64 MiB at B = 256, K = 65536 - is page-faulted and zeroed by
the kernel again on every step. ``mallopt`` can turn that off for the running process: no mmap for
large blocks, and no trimming of the heap top, so freed memory is reused. The price is that the
process keeps its peak memory (as CUDA's caching allocator does); a kernel that reclaims idle pages
(DAMON on this machine) may still take some back, which costs page faults again but nothing else. Measured with ``synco bench heads``
(docs/performance.md): the MoCo-v2 head at the paper's setting takes about a third of the time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4


def keep_freed_cpu_memory() -> bool:
    """Tell glibc's malloc to reuse freed large blocks. Returns True if it was applied.

    A no-op (False) on systems without glibc (macOS, Windows, musl).
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(_M_MMAP_MAX, 0) == 1
    ok &= mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1  # never give the heap top back
    ok &= mallopt(_M_TOP_PAD, 256 * 2**20) == 1  # grow the heap in 256 MiB steps
    if not ok:
        log.warning("mallopt refused a setting; CPU memory is managed by malloc's defaults")
    return bool(ok)
