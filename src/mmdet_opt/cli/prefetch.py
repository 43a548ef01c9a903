"""Images decoded by a thread pool ahead of the detector, handed over in order.

At most ``ahead`` images are decoded and waiting at a time (bounded memory); the next decode is
queued as soon as one is taken, so the detector never waits while decoding keeps up.

While they decode, torch's own CPU threads are kept to the cores the decoding threads leave
(``torch_threads_beside``): an OpenMP team (torch's intra-op threads, which copy each photo into
pinned memory) with one thread descheduled by a decoder waits for it a scheduler time slice, several
milliseconds, where the copy itself takes a fraction of one (docs/perf-log.md, "Decoding threads
beside torch's").
"""
from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import islice

from ..inputs import ImageInputError


def process_cores() -> int:
    """The cores this process may use: those it is pinned to, or, where it may run on all of the host's,
    its share of them among the processes of the host (torchrun's LOCAL_WORLD_SIZE)."""
    machine = os.cpu_count() or 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else machine
    if cores < machine:  # pinned (numactl, a scheduler's binding): these cores are this process's already
        return cores
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


@contextmanager
def torch_threads_beside(workers: int):
    """torch's intra-op threads at most the cores that ``workers`` decoding threads leave (at least
    one) inside the block, as they were after it."""
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(max(1, min(before, process_cores() - workers)))
        yield
    finally:
        torch.set_num_threads(before)


class DecodeAhead:
    """Iterate ``(item, image, error)``: the image decoded by ``load(item.path)``, or the
    ``ImageInputError``'s line. ``waited`` is how long the consumer waited for decoded images."""

    def __init__(self, items, load, workers: int, ahead: int):
        self.items, self.load, self.workers, self.ahead = items, load, workers, max(ahead, 1)
        self.waited = 0.0

    def __iter__(self):
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="decode")
        todo = iter(self.items)
        pending = deque((item, pool.submit(self.load, item.path)) for item in islice(todo, self.ahead))
        try:
            while pending:
                item, future = pending.popleft()
                started = time.perf_counter()
                try:
                    image, error = future.result(), None
                except ImageInputError as exc:
                    image, error = None, str(exc)
                self.waited += time.perf_counter() - started
                following = next(todo, None)
                if following is not None:
                    pending.append((following, pool.submit(self.load, following.path)))
                yield item, image, error
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
