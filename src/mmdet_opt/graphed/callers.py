"""One caller at a time: every call of a graph pipeline writes the same static buffers and plan caches.

A pipeline's public methods run under its ``CallerLock`` (``serialised``): from taking a plan out
of the cache to copying the result back, no other thread touches them. On CUDA the lock also orders
the GPU work of callers on different streams: a caller's work starts after the previous caller's.
"""
from __future__ import annotations

import functools
import threading

import torch


class CallerLock:
    """A reentrant lock (a call may call another public method). On CUDA the outermost call also runs
    with the pipeline's device current (a new thread starts on device 0), and its stream first waits
    for the GPU work the previous caller queued, on whichever stream that was."""

    def __init__(self, device: torch.device):
        self._lock = threading.RLock()
        self._depth = 0  # nesting of the holding thread's calls
        self._device = device
        self._done = torch.cuda.Event() if device.type == "cuda" else None  # end of the last caller's work
        self._caller_device = None

    def __enter__(self):
        self._lock.acquire()
        self._depth += 1
        if self._depth == 1 and self._done is not None:
            self._caller_device = torch.cuda.current_device()
            torch.cuda.set_device(self._device)
            torch.cuda.current_stream().wait_event(self._done)
        return self

    def __exit__(self, *exc):
        try:
            if self._depth == 1 and self._done is not None:
                self._done.record(torch.cuda.current_stream())
                torch.cuda.set_device(self._caller_device)
        finally:
            self._depth -= 1
            self._lock.release()


def serialised(method):
    """``method`` run under its object's ``lock`` (a CallerLock)."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self.lock:
            return method(self, *args, **kwargs)

    locked.serialised = True
    return locked
