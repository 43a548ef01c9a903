"""A stream of photos of many sizes, first calls included: images/s, latency percentiles, GPU memory.

Each variant gets a pipeline built for the stream, so its caches start empty and every new size's
first-call cost is in the figures, as a user's first pass over a collection pays it. The whole
stream is one timed round; the figures are in extra_info (and the report's stream table).
"""
import dataclasses
import gc
import time

import pytest
import torch

from mmdet_opt.suite import defaults
from mmdet_opt.suite.defaults import STREAM_VARIANTS
from mmdet_opt.suite.stream import (
    LONG_SIDE_RANGE,
    GpuMemory,
    planned_apart,
    run_stream,
    stream_images,
    suite_stream_sizes,
)

CPU_LONG_SIDE = (320, 800)
PROGRESS_EVERY = 50  # photos between the lines that show a stream moving


@pytest.fixture(scope="session")
def stream(settings, request):
    long_side = LONG_SIDE_RANGE if settings.on_gpu else CPU_LONG_SIDE
    count = request.config.getoption("--stream-images")
    count = defaults.stream_images(settings.on_gpu) if count is None else count
    sizes = suite_stream_sizes(count, seed=settings.seed, long_side=long_side)
    scale = next((c.scale for c in settings.sizes if not c.natural), settings.sizes[0].scale)
    return sizes, stream_images(sizes, seed=settings.seed), scale


@pytest.mark.parametrize("stream_variant", STREAM_VARIANTS)
def test_stream(benchmark, suite, settings, stream, stream_variant, progress):
    from mmdet.apis import inference_detector

    variant = settings.variants.get(stream_variant)
    if variant is None:
        pytest.skip(settings.unavailable.get(stream_variant, f"{stream_variant} not selected (--variants)"))
    sizes, images, scale = stream
    outcome = {}

    def show_progress(done: int, seconds: float) -> None:
        if done % PROGRESS_EVERY == 0:
            progress(f"stream {variant.name}: {done} of {len(sizes)} photos, {seconds:.1f} s")

    def whole_stream():
        # The collector runs as in a user's loop: the suite times with it off (pytest.ini), and stock's
        # results hold reference cycles, so over a stream its full-image masks piled up in host memory
        # (60 photos on an H200: stock at 3.34 images/s with it off, 8.15 with it on).
        gc.enable()
        with GpuMemory(settings.device) as memory:
            start = time.perf_counter()
            # Fresh: no size planned yet. Plans built ahead are start-up, timed apart from the stream.
            graph, ahead = planned_apart(variant.graph)
            pipeline = dataclasses.replace(variant, graph=graph).build(suite.base, scale)
            if ahead:
                pipeline.plan_ahead(after_each=memory.mark_single)
            if settings.on_gpu:
                torch.cuda.synchronize(settings.device)
            startup = time.perf_counter() - start
            if variant.name == "inference":
                def run_one(image):
                    with torch.no_grad():
                        inference_detector(pipeline.model, image)
            else:
                run_one = pipeline
            shapes = getattr(pipeline, "shapes", None)  # a graph pipeline's plan caches
            plans = shapes.networks if shapes is not None else None
            run = run_stream(run_one, sizes, images, settings.device, plans, after_first=memory.mark_single,
                             after_each=show_progress)
        run.memory = memory.figures
        run.startup_seconds = startup
        outcome["run"], outcome["pipeline"] = run, pipeline

    benchmark.group = f"stream {len(sizes)} photos @ {scale[0]}x{scale[1]}"
    benchmark.extra_info.update(variant=variant.name, stream=len(sizes), scale=f"{scale[0]}x{scale[1]}")
    benchmark.pedantic(whole_stream, rounds=1, iterations=1)
    summary = outcome["run"].summary()
    shapes = getattr(outcome["pipeline"], "shapes", None)
    if shapes is not None:
        plans = shapes.networks
        summary.update(plans_kept=len(plans), plan_evictions=plans.evictions,
                       max_plans=outcome["pipeline"].options.max_plans)
    benchmark.extra_info["stream_summary"] = summary
    run = outcome["run"]  # per photo, in stream order: what a tail or a slow first call is made of
    benchmark.extra_info["stream_photos"] = [[f"{w}x{h}", round(t * 1000, 2), first, new]
                                             for (w, h), t, first, new in zip(run.sizes, run.seconds, run.first,
                                                                              run.new_plan)]
    outcome.clear()  # the pipeline's graphs go now, not under the next variant's memory count
