"""The detector over a list of image files: decoded ahead, in batches, skipping what fails with one line."""
from __future__ import annotations

import time
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
    said in one line on ``progress``, counted in ``stats``); ``stats`` gets the times too."""
    from ..inputs import prepare_image

    decoded = DecodeAhead(items, lambda path: prepare_image(path, det.cfg), workers, ahead=workers + batch)
    started = time.perf_counter()
    pending = []
    try:
        for item, image, error in decoded:
            if error is not None:
                _skip(error, progress, stats)
                continue
            pending.append((item, image))
            if len(pending) == batch:
                yield from _detect_batch(det, pending, progress, stats)
                pending = []
        yield from _detect_batch(det, pending, progress, stats)
    finally:
        stats.seconds += time.perf_counter() - started
        stats.decode_wait += decoded.waited


def _detect_batch(det, pending: list, progress: Progress, stats: RunStats):
    if not pending:
        return
    images = [image for _, image in pending]
    try:
        results = det.batch(images) if len(images) > 1 else [det(images[0])]
    except (RuntimeError, ValueError) as exc:
        if len(pending) > 1:  # one at a time, to keep all but the image that fails
            for one in pending:
                yield from _detect_batch(det, [one], progress, stats)
            return
        _skip(f"{pending[0][0].path}: detection failed ({one_line(exc)})", progress, stats)
        return
    for (item, image), result in zip(pending, results):
        yield item, image.shape[:2], result


def _skip(line: str, progress: Progress, stats: RunStats) -> None:
    progress.note(f"skipped {line}")
    stats.skipped += 1
    progress.update()
