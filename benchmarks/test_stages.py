"""Stage timings: variant x case (photo size, test scale) x stage, stored by pytest-benchmark and compared across runs.

Which stages each variant gets at each case is the suite's plan (``mmdet_opt.suite.defaults.stages``,
parametrized by the suite's plugin): every stage of the study's variants at its protocol cases, ``total``
elsewhere; ``--every-stage`` gives the full grid, ``--quick`` ``total`` alone.

Each round times one stage from the previous stage's real outputs. GPU work is asynchronous, so
the timed callable ends with a synchronize and each round starts from an idle GPU (``setup``).
"""
import time

import pytest
import torch

from mmdet_opt.pipeline import stage_calls
from mmdet_opt.results import Detections


@pytest.fixture(scope="session")
def calls(suite, settings):
    """Per (variant, case): the stage callables and the detection count, built on first use."""
    cache = {}

    def get(variant, case):
        if (variant, case) not in cache:
            pipeline = suite.pipeline(variant, case)
            image = suite.image(settings.bench_image, case)
            cache[variant, case] = (stage_calls(pipeline, image),
                                    len(Detections.from_mmdet(pipeline(image), image.shape)))
        return cache[variant, case]

    return get


def sync(device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def test_stage(benchmark, calls, variant, case, stage, settings, request, warm_up, timed_rounds):
    stage_fns, n_dets = calls(variant, case)
    if stage not in stage_fns:
        pytest.skip(f"{stage}: no detections on {settings.bench_image}, so no mask stages")
    fn = stage_fns[stage]
    device = settings.device
    delay = request.config.getoption("--inject-delay-ms") / 1000

    def timed():
        fn()
        sync(device)
        if delay:
            time.sleep(delay)

    benchmark.group = f"{case} {stage}"
    benchmark.extra_info.update(variant=variant.name, size=case.id, stage=stage,
                                image=settings.bench_image, detections=n_dets)
    if delay:  # marks the run, so that it is never taken for a baseline (compare.py refuses it)
        benchmark.extra_info["injected_delay_ms"] = request.config.getoption("--inject-delay-ms")
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    rounds = timed_rounds(benchmark, settings.rounds, warm_up(timed))
    benchmark.pedantic(timed, setup=lambda: sync(device), rounds=rounds, iterations=1)
    if device.startswith("cuda"):
        benchmark.extra_info["peak_gpu_mem_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
