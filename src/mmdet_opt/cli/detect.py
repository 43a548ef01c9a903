"""The detector over a list of image files: decoded ahead, detected in batches, each batch's results
converted on a worker thread while the next batch is detected; what fails is skipped with one line."""
from __future__ import annotations

import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .errors import one_line
from .prefetch import DecodeAhead
from .progress import Progress, RunStats


@dataclass(frozen=True)
class ImageItem:
    index: int  # place in the run's image order: results are written in this order
    image_id: int
    path: str
    file_name: str  # as the results' image list names it


def detect_images(det, items: list, batch: int, workers: int, progress: Progress, stats: RunStats):
    """Yield ``(item, (h, w), result)`` in the order of ``items``, less the ones skipped (each
    said in one line on ``progress``, counted in ``stats``); ``stats`` gets the times too.

    ``det.convert`` (COCO RLEs, say) is host work the GPU would otherwise wait for: it runs on one
    worker thread, one batch behind ``det.detect``."""
    from ..inputs import prepare_image

    decoded = DecodeAhead(items, lambda path: prepare_image(path, det.cfg), workers, ahead=workers + batch)
    converter = ThreadPoolExecutor(1, thread_name_prefix="convert")
    converting = deque()  # (item, (h, w), future of the converted result), in order
    started = time.perf_counter()
    pending = []
    try:
        try:
            for item, image, error in decoded:
                if error is not None:
                    _skip(error, progress, stats)
                    continue
                pending.append((item, image))
                if len(pending) == batch:
                    converting.extend(_detect_batch(det, pending, converter, progress, stats))
                    pending = []
                    yield from _converted(converting, batch, progress, stats)  # leaves the new batch converting
            converting.extend(_detect_batch(det, pending, converter, progress, stats))
        except KeyboardInterrupt:  # what was detected before it is still handed over
            yield from _converted(converting, 0, progress, stats)
            raise
        yield from _converted(converting, 0, progress, stats)
    finally:
        converter.shutdown(wait=True, cancel_futures=True)
        stats.seconds += time.perf_counter() - started
        stats.decode_wait += decoded.waited


def _detect_batch(det, pending: list, converter: ThreadPoolExecutor, progress: Progress, stats: RunStats) -> list:
    """``(item, (h, w), future)`` for each image of ``pending`` detected, its conversion queued."""
    if not pending:
        return []
    images = [image for _, image in pending]
    try:
        results = det.detect(images)
    except (RuntimeError, ValueError) as exc:
        if len(pending) > 1:  # one at a time, to keep all but the image that fails
            return [entry for one in pending for entry in _detect_batch(det, [one], converter, progress, stats)]
        _skip(f"{pending[0][0].path}: detection failed ({one_line(exc)})", progress, stats)
        return []
    return [(item, image.shape[:2], converter.submit(det.convert, result, image.shape))
            for (item, image), result in zip(pending, results)]


def _converted(converting: deque, keep: int, progress: Progress, stats: RunStats):
    """Yield the oldest results of ``converting`` as their conversions finish, until ``keep`` are left."""
    while len(converting) > keep:
        item, shape, future = converting[0]
        try:
            result = future.result()
        except (RuntimeError, ValueError) as exc:
            converting.popleft()
            _skip(f"{item.path}: detection failed ({one_line(exc)})", progress, stats)
            continue
        converting.popleft()
        yield item, shape, result


def _skip(line: str, progress: Progress, stats: RunStats) -> None:
    progress.note(f"skipped {line}")
    stats.skipped += 1
    progress.update()
