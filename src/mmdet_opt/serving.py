"""Dynamic batching for serving: callers send one photo each, from any thread; one worker runs the
requests that arrive close together as one batch, as NVIDIA Triton's dynamic batcher and
TorchServe's batch mode do.

    det = mmdet_opt.init_detector(config, checkpoint, output="rle")
    with DynamicBatcher(det, max_batch=8, max_wait_ms=5) as batcher:
        result = batcher(image)            # from any thread: this photo's result, as det(image) gives it
        future = batcher.submit(image)     # or a concurrent.futures.Future of it
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future

_STOP = object()  # queued last by close(): the worker serves what came before it, then ends


class DynamicBatcher:
    """Runs a batch call on the requests queued within ``max_wait_ms`` of the first waiting one, at most
    ``max_batch`` at a time: ``Detector.batch`` for an API ``Detector`` (results in its ``output``
    form), ``detect_batch`` for a variant's pipeline (the suite's), or, where it has neither, the
    object photo by photo.

    Each caller gets its own result, or its own exception: where a batch raises, its photos are run
    again one by one, so that only the caller whose photo fails sees the error. ``batch_sizes`` lists
    the size of each batch run.
    """

    def __init__(self, pipeline, max_batch: int = 8, max_wait_ms: float = 5.0):
        if max_batch < 1:
            raise ValueError(f"max_batch is how many photos a batch holds (>= 1), not {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms is how long a request waits for others (>= 0), not {max_wait_ms}")
        self.pipeline, self.max_batch, self.max_wait = pipeline, max_batch, max_wait_ms / 1000
        self.batch_sizes: list[int] = []
        self._one = pipeline
        self._many = (getattr(pipeline, "detect_batch", None) or getattr(pipeline, "batch", None)
                      or (lambda images: [pipeline(i) for i in images]))
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closing = threading.Lock()  # no request is queued after the stop mark
        self._closed = False
        self._worker = threading.Thread(target=self._serve, name="DynamicBatcher", daemon=True)
        self._worker.start()

    def submit(self, image) -> Future:
        """A Future of ``image``'s result."""
        future = Future()
        with self._closing:
            if self._closed:
                raise RuntimeError("the batcher is closed: it takes no more requests")
            self._queue.put((image, future))
        return future

    def __call__(self, image):
        return self.submit(image).result()

    def close(self) -> None:
        """Serve the requests already queued, then stop the worker and wait for it."""
        with self._closing:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)
        self._worker.join()

    def __enter__(self) -> DynamicBatcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _serve(self) -> None:
        while True:
            batch, stop = self._gather(self._queue.get())
            try:
                self._run(batch)
            except BaseException as exc:  # never leave a caller waiting
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            if stop:
                return

    def _gather(self, first) -> tuple[list, bool]:
        """``first`` and what else arrives within ``max_wait`` of it (up to ``max_batch``); and
        whether the stop mark came."""
        if first is _STOP:
            return [], True
        batch, deadline = [first], time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self, batch: list) -> None:
        batch = [(image, future) for image, future in batch if future.set_running_or_notify_cancel()]
        if not batch:
            return
        self.batch_sizes.append(len(batch))
        if len(batch) == 1:
            settle(batch[0][1], lambda: self._one(batch[0][0]))
            return
        try:
            results = self._many([image for image, _ in batch])
        except Exception:
            for image, future in batch:  # whose photo failed: each alone, with its own outcome
                settle(future, lambda image=image: self._one(image))
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)


def settle(future: Future, run) -> None:
    """``future`` gets ``run()``'s result, or the exception it raises."""
    try:
        future.set_result(run())
    except Exception as exc:
        future.set_exception(exc)
