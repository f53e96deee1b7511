"""keep_freed_cpu_memory: large tensors come from malloc's heap (reusable) instead of fresh mmaps.

Counting page faults is not a reliable check on this machine (the kernel's DAMON reclaim takes back
idle heap pages at its own pace), so the test checks where the block lives: with the setting on, a
64 MiB tensor lies below the program break (in the heap, where a freed block is kept for reuse);
with glibc's defaults it is a separate mapping that ``free`` unmaps.
"""

import ctypes
import ctypes.util
import subprocess
import sys

import pytest

PROBE = """
import ctypes, ctypes.util, sys, torch
from synco.engine.cpu_memory import keep_freed_cpu_memory
if sys.argv[1] == "tuned":
    assert keep_freed_cpu_memory()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.sbrk.restype = ctypes.c_void_p
x = torch.ones(16 * 2**20)  # 64 MiB, above glibc's largest mmap threshold
print("heap" if x.data_ptr() < libc.sbrk(0) else "mmap")
"""

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None, reason="glibc mallopt"
)


@pytest.mark.parametrize(("mode", "where"), [("tuned", "heap"), ("default", "mmap")])
def test_large_blocks_come_from_the_heap_only_when_tuned(mode, where):
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == where
