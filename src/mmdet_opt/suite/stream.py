"""A seeded stream of photos of many sizes, as a photo collection has them, and what a run over it costs.

Sizes: landscape, portrait and square, in the aspect ratios cameras and phones write (4:3, 3:2,
16:9 and their portraits, 1:1), at common long sides from 320 to 4032 px plus arbitrary ones
(crops, edits). Each distinct size appears once, then sizes repeat with a long-tailed popularity,
as a collection's common camera sizes do; the order is shuffled, so new sizes keep arriving.
"""
from __future__ import annotations

import dataclasses
import gc
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..images import PHOTOS, resize_to, sample_image

ASPECTS = {"landscape": ((4, 3), (3, 2), (16, 9)), "portrait": ((3, 4), (2, 3), (9, 16)), "square": ((1, 1),)}
ORIENTATION_WEIGHTS = {"landscape": 0.55, "portrait": 0.30, "square": 0.15}
COMMON_LONG_SIDES = (320, 480, 640, 800, 1024, 1280, 1600, 1920, 2048, 2560, 3000, 3264, 4000, 4032)
LONG_SIDE_RANGE = (320, 4032)


def stream_sizes(count: int = 200, distinct: int = 60, seed: int = 0,
                 long_side: tuple[int, int] = LONG_SIDE_RANGE) -> list[tuple[int, int]]:
    """``count`` (w, h) photo sizes, ``distinct`` of them different, seeded."""
    if not 1 <= distinct <= count:
        raise ValueError(f"a stream of {count} images cannot have {distinct} distinct sizes")
    rng = np.random.default_rng(seed)
    lo, hi = long_side
    common = [s for s in COMMON_LONG_SIDES if lo <= s <= hi]
    orientations = list(ORIENTATION_WEIGHTS)
    pool: list[tuple[int, int]] = []
    while len(pool) < distinct:
        orientation = rng.choice(orientations, p=list(ORIENTATION_WEIGHTS.values()))
        aw, ah = ASPECTS[orientation][rng.integers(len(ASPECTS[orientation]))]
        side = int(rng.choice(common)) if common and rng.random() < 0.6 else int(rng.integers(lo, hi + 1))
        short = max(1, round(side * min(aw, ah) / max(aw, ah)))
        size = (side, short) if aw >= ah else (short, side)
        if size not in pool:
            pool.append(size)
    popularity = 1.0 / np.arange(1, distinct + 1) ** 0.9  # a few sizes are most of a collection
    repeats = rng.choice(distinct, size=count - distinct, p=popularity / popularity.sum())
    order = np.concatenate([np.arange(distinct), repeats])
    rng.shuffle(order)
    return [pool[i] for i in order]


def suite_stream_sizes(count: int, seed: int = 0, long_side: tuple[int, int] = LONG_SIDE_RANGE) -> list:
    """The suite's stream of ``count`` photos: about 30% distinct sizes, at least 3, at most 60."""
    return stream_sizes(count, distinct=min(count, 60, max(3, count * 3 // 10)), seed=seed, long_side=long_side)


def stream_images(sizes: list[tuple[int, int]], seed: int = 0) -> dict[tuple[int, int], np.ndarray]:
    """One BGR photo per distinct size: a sample photograph, chosen by seed, resized to it."""
    rng = np.random.default_rng(seed)
    photos = {name: sample_image(name) for name in PHOTOS}
    return {size: resize_to(photos[PHOTOS[rng.integers(len(PHOTOS))]], size) for size in dict.fromkeys(sizes)}


@dataclass
class StreamRun:
    """Per image: its size, seconds, whether its size was new to the pipeline; and GPU memory."""

    sizes: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    first: list = field(default_factory=list)
    new_plan: list = field(default_factory=list)  # the call built a network plan (graph pipelines)
    planned: bool = False  # the pipeline has network plans (the split of first calls is meaningful)
    memory: dict = field(default_factory=dict)
    startup_seconds: float | None = None  # building the pipeline (and any plans it builds ahead)

    def summary(self) -> dict:
        ms = np.array(self.seconds) * 1000
        first, new_plan = np.array(self.first), np.array(self.new_plan)
        out = {
            "images": len(ms),
            "distinct_sizes": len(set(self.sizes)),
            "images_per_second": round(len(ms) / (ms.sum() / 1000), 2),
            **{f"p{q}_ms": round(float(np.percentile(ms, q)), 2) for q in (50, 95, 99)},
            "first_call_median_ms": round(float(np.median(ms[first])), 2),
            "cached_call_median_ms": round(float(np.median(ms[~first])), 2) if (~first).any() else None,
        }
        ratios = self.first_call_ratios()
        splits = [("", np.ones(len(ms), bool))]
        if self.planned:
            splits += [("_new_plan", new_plan), ("_known_plan", ~new_plan)]
        for label, mask in splits:
            r = [ratios[i] for i in np.flatnonzero(mask & first) if i in ratios]
            if r:
                out[f"first_over_cached{label}_median"] = round(float(np.median(r)), 2)
                out[f"first_over_cached{label}_max"] = round(float(np.max(r)), 2)
        if self.planned:
            out["new_plans"] = int(new_plan.sum())
        if self.startup_seconds is not None:
            out["startup_s"] = round(self.startup_seconds, 3)
            out["images_per_second_with_startup"] = round(len(ms) / (ms.sum() / 1000 + self.startup_seconds), 2)
        out.update(self.memory)
        return out

    def first_call_ratios(self) -> dict[int, float]:
        """Index of a size's first call -> its time over the median of that size's later calls."""
        later: dict = {}
        for size, s, is_first in zip(self.sizes, self.seconds, self.first):
            if not is_first:
                later.setdefault(size, []).append(s)
        return {i: self.seconds[i] / float(np.median(later[size]))
                for i, (size, is_first) in enumerate(zip(self.sizes, self.first)) if is_first and size in later}


def planned_apart(options):
    """``(options with plans_ahead off, whether it was on)``: a stream builds those plans itself, after
    the pipeline (``GraphedPipeline.plan_ahead(after_each=memory.mark_single)``), so that their time
    is start-up and the memory one shape needs is counted after the first of them, not after both.
    ``options`` None (not a graph pipeline) stays None."""
    ahead = options is not None and options.pad_to_scale and options.plans_ahead
    return (dataclasses.replace(options, plans_ahead=False) if ahead else options), ahead


def run_stream(run_one, sizes, images, device: str, plans=None, after_first=None, after_each=None) -> StreamRun:
    """Time ``run_one(image)`` on each image of the stream, synchronised; ``plans``: a pipeline's
    plan cache, whose misses say which calls built a network plan; ``after_first()`` runs, untimed,
    after the first image; ``after_each(images done, seconds timed so far)`` after every image."""
    cuda = str(device).startswith("cuda")
    run, seen = StreamRun(planned=plans is not None), set()
    for size in sizes:
        image = images[size]
        misses = plans.misses if plans is not None else 0
        start = time.perf_counter()
        run_one(image)
        if cuda:
            torch.cuda.synchronize(device)
        run.seconds.append(time.perf_counter() - start)
        run.sizes.append(size)
        run.first.append(size not in seen)
        run.new_plan.append(plans is not None and plans.misses > misses)
        seen.add(size)
        if after_first is not None and len(run.seconds) == 1:
            after_first()
        if after_each is not None:
            after_each(len(run.seconds), sum(run.seconds))
    return run


def mib(n: int) -> float:
    return round(n / 2**20, 1)


class GpuMemory:
    """Peak GPU memory of what runs inside, counted from what was reserved before it.

    ``single`` is taken by ``mark_single()`` (after one image: the memory one shape needs).
    """

    def __init__(self, device: str):
        self.cuda = str(device).startswith("cuda")
        self.device = device
        self.figures: dict = {}

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize(self.device)
            gc.collect()  # an earlier pipeline's graphs, held in reference cycles, hand their memory back
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base_reserved = torch.cuda.memory_reserved(self.device)
            self.base_allocated = torch.cuda.memory_allocated(self.device)
        return self

    def mark_single(self) -> None:
        if self.cuda and "single_shape_reserved_mib" not in self.figures:
            self.figures["single_shape_reserved_mib"] = mib(torch.cuda.max_memory_reserved(self.device)
                                                             - self.base_reserved)

    def __exit__(self, *exc):
        if self.cuda:
            peak_reserved = torch.cuda.max_memory_reserved(self.device) - self.base_reserved
            self.figures.update(peak_allocated_mib=mib(torch.cuda.max_memory_allocated(self.device)
                                                       - self.base_allocated),
                                peak_reserved_mib=mib(peak_reserved),
                                end_reserved_mib=mib(torch.cuda.memory_reserved(self.device) - self.base_reserved))
            single = self.figures.get("single_shape_reserved_mib")
            if single:
                self.figures["peak_over_single_shape"] = round(mib(peak_reserved) / single, 2)
        return False
