"""Images decoded by a thread pool ahead of the detector, handed over in order.

At most ``ahead`` images are decoded and waiting at a time (bounded memory); the next decode is
queued as soon as one is taken, so the detector never waits while decoding keeps up.
"""
from __future__ import annotations

import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

from ..inputs import ImageInputError


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
