"""Timing and peak-memory measurement shared by the benchmarks.

Timing alternates the candidates (A, B, C, A, B, C, ...) so that drift of the machine hits all of
them alike, and reports medians. Peak memory is the largest amount of memory allocated by the
function beyond what existed when it started: on CUDA from the caching allocator's statistics, on
the CPU from the allocation and free events of the PyTorch profiler (no allocator statistics exist
there; ``_memory_profile`` is the profiler's own timeline, also behind ``export_memory_timeline``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_rounds(
    fns: dict[str, Callable[[], object]], repeats: int, device: torch.device, warmup: int = 2
) -> dict[str, list[float]]:
    """Wall times in milliseconds of each function, ``repeats`` rounds measured in alternation."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def median_ms(
    fns: dict[str, Callable[[], object]], repeats: int, device: torch.device, warmup: int = 2
) -> dict[str, float]:
    """Median wall time in milliseconds of each function, measured in alternation."""
    return {name: statistics.median(t) for name, t in timed_rounds(fns, repeats, device, warmup).items()}


def median_ratios(times: dict[str, list[float]], base: str) -> dict[str, float]:
    """Median over rounds of ``time[name] / time[base]`` within the same round.

    Pairing the measurements of one round cancels slow drifts of the machine that medians of each
    candidate taken separately would turn into ratio noise.
    """
    return {
        name: statistics.median(t / b for t, b in zip(values, times[base])) for name, values in times.items()
    }


def peak_mib(fn: Callable[[], object], device: torch.device) -> float:
    """Peak memory allocated by one call of ``fn`` above what was allocated before it, in MiB."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        _sync(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import Action

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        fn()
    current = peak = 0
    for _, action, (key, _), size in prof._memory_profile().timeline:
        if key.device.type != "cpu" or action == Action.PREEXISTING:
            continue
        if action == Action.CREATE:
            current += size
        elif action == Action.DESTROY:
            current -= size
        peak = max(peak, current)
    return peak / 2**20
