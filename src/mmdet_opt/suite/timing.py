"""Timing for the tools' measurements: the host's clock around a call, the GPU's queued work included."""
from __future__ import annotations

import statistics
import time

import torch


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn) -> tuple:
    """``(fn(), milliseconds)``: the GPU is synchronized before and after, so the time is the call's own."""
    synchronize()
    start = time.perf_counter()
    out = fn()
    synchronize()
    return out, (time.perf_counter() - start) * 1000


def median_ms(fn, runs: int, warmup: int = 5) -> float:
    """The median of ``runs`` timed calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn)[1] for _ in range(runs))


def median_kernel_ms(fn, runs: int, warmup: int = 5) -> float:
    """The median GPU time of ``runs`` calls between CUDA events: the kernels alone, without the host's
    launch cost, for calls too short for the host's clock (CUDA only)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)
