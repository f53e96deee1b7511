"""keep_freed_cpu_memory: a freed large block is reused instead of being page-faulted anew."""

import resource
import sys

import pytest
import torch

from synco.engine.cpu_memory import keep_freed_cpu_memory


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_second_large_allocation_does_not_fault_its_pages_again():
    assert keep_freed_cpu_memory()
    size = 16 * 2**20  # 64 MiB of float32, above glibc's largest mmap threshold
    x = torch.ones(size)
    del x
    before = minor_faults()
    y = torch.ones(size)  # with malloc's defaults this maps and faults 16384 fresh 4 KiB pages
    faults = minor_faults() - before
    del y
    assert faults < 1000, f"{faults} page faults: the freed block was not reused"
