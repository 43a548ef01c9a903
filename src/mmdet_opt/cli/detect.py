"""The detector over a list of image files: decoded ahead, in batches, skipping what fails with one line."""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass

from .errors import one_line
from .prefetch import DecodeAhead, torch_threads_beside
from .progress import Progress, RunStats


@dataclass(frozen=True)
class ImageItem:
    index: int  # place in the run's image order: results are written in this order
    image_id: int
    path: str
    file_name: str  # as the results' image list names it


def detect_images(det, items: list, batch: int, workers: int, progress: Progress, stats: RunStats,
                  planned: bool = False):
    """Yield ``(item, (h, w), result)`` for ``items``, less the ones skipped (each said in one line on
    ``progress``, counted in ``stats``), ``batch`` images of one network shape a call (``ShapeBatches``:
    so not always in the order of ``items``); ``stats`` gets the times too. ``planned``: the plans of
    ``batch`` images are built for every shape (``Detector.plan_ahead``), so the images a shape has left
    at the end run in them (``leftover_calls``)."""
    from ..inputs import prepare_image

    decoded = DecodeAhead(items, lambda path: prepare_image(path, det.cfg), workers, ahead=workers + batch)
    # On a GPU torch's CPU threads only copy photos, and a decoder that takes one of their cores stalls the
    # copy (prefetch.py); on a CPU they are the model's arithmetic, left as they are.
    on_gpu = det.device.type == "cuda"
    beside = torch_threads_beside(workers) if on_gpu else nullcontext()
    started = time.perf_counter()
    batches = ShapeBatches(det.network_shape, batch)
    try:
        with beside:
            for item, image, error in decoded:
                if error is not None:
                    _skip(error, progress, stats)
                    continue
                yield from _detect_batch(det, batches.add(item, image), progress, stats)
            # On a CPU a plan runs eagerly, its cost growing with its slots: there the leftovers run alone.
            for group, plan_batch in leftover_calls(batches.rest(), batch, planned and on_gpu):
                yield from _detect_batch(det, group, progress, stats, plan_batch)
    finally:
        stats.seconds += time.perf_counter() - started
        stats.decode_wait += decoded.waited


class ShapeBatches:
    """Images gathered into batches of one network shape (``det.network_shape``), so that a batch is
    whole: mixed shapes would run as smaller batches, each size a graph of its own to capture. At most
    ``2 * size`` images wait; past that (more than two shapes: without --pad-to-scale) the largest
    group runs as it is, a short batch with a plan of its own, rather than hold more images."""

    def __init__(self, shape_of, size: int):
        self.shape_of, self.size, self.groups = shape_of, size, {}

    def add(self, item, image) -> list:
        """The batch of ``(item, image)`` pairs this image completes, or []."""
        shape = self.shape_of(image.shape)
        self.groups.setdefault(shape, []).append((item, image))
        if len(self.groups[shape]) < self.size and sum(map(len, self.groups.values())) < 2 * self.size:
            return []
        return self.groups.pop(max(self.groups, key=lambda key: len(self.groups[key])))

    def rest(self) -> list:
        """The groups of images left short of a batch, each in the order its images came."""
        left = list(self.groups.values())
        self.groups = {}
        return left


def leftover_calls(groups: list, batch: int, planned: bool) -> list:
    """``(images, plan_batch)`` per call for the groups left short of a batch: a group that fills at least
    half of a plan built for ``batch`` images runs in it (a photo costs less than half as much in a full
    batch as alone: docs/perf-log.md, "Groups left at the end"); the others one image a call (a plan of
    their own number would be captured for them alone)."""
    calls = []
    for group in groups:
        if planned and len(group) > 1 and 2 * len(group) >= batch:
            calls.append((group, batch))
        else:
            calls += [([one], None) for one in group]
    return sorted(calls, key=lambda call: call[0][0][0].index)


def _detect_batch(det, pending: list, progress: Progress, stats: RunStats, plan_batch: int | None = None):
    if not pending:
        return
    images = [image for _, image in pending]
    try:
        results = det.batch(images, plan_batch) if len(images) > 1 else [det(images[0])]
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
