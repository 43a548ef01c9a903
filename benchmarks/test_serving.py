"""Serving: 1, 4 and 16 client threads, each sending one photo at a time to one shared pipeline.

Stock ``inference_detector`` is called from every client thread at once, as a user of mmdet would:
it keeps no state between calls, so it needs no lock, and one caller's host work (loading, resizing,
pasting masks) can overlap another's GPU work. ``inference_graph`` serves through a DynamicBatcher
(mmdet_opt.serving): the requests that arrive together run as one ``detect_batch``. Each result is
checked against its photo's single-threaded result: no caller may get another's. Images/s and
p50 / p99 latency go to extra_info (and the report's serving table).
"""
import contextlib
import copy
import dataclasses
import gc

import pytest
import torch

from mmdet_opt.images import PHOTOS
from mmdet_opt.serving import DynamicBatcher
from mmdet_opt.suite.serving import ServingRounds

SERVING_VARIANTS = ("inference", "inference_graph")
GPU_CLIENTS, CPU_CLIENTS = (1, 4, 16), (1, 4)
GPU_REQUESTS, CPU_REQUESTS = 64, 4  # per round, over all clients
CPU_PHOTOS = 2  # distinct photos on a CPU (each needs its single-threaded reference); on a GPU all samples
MAX_WAIT_MS = 2.0  # how long the batcher holds the first request of a batch for others


def serving_case(settings):
    """The first protocol case (GPU: 1333x800; CPU: the suite's CPU case)."""
    return next((c for c in settings.sizes if not c.natural), None)


@pytest.fixture
def graph_pipeline(suite, settings):
    """``build(variant, case, clients)``: the variant's pipeline for serving, its own (not the suite's):
    every batch size up to ``clients`` keeps its plan, so no capture falls in the timed rounds."""
    built = []

    def build(variant, case, clients: int):
        graph = dataclasses.replace(variant.graph, max_plans=max(variant.graph.max_plans, clients))
        built.append(dataclasses.replace(variant, graph=graph).build(suite.base, case.scale))
        return built[-1]

    yield build
    built.clear()
    gc.collect()  # its graphs go now, not under the next benchmark's memory
    if settings.on_gpu:
        torch.cuda.empty_cache()


@pytest.mark.parametrize("clients", GPU_CLIENTS)
@pytest.mark.parametrize("serving_variant", SERVING_VARIANTS)
def test_serving(benchmark, suite, settings, case, serving_variant, clients, graph_pipeline, warm_up,
                 timed_rounds):
    from mmdet.apis import inference_detector

    if case != serving_case(settings):
        pytest.skip("serving is timed at the first protocol case")
    if not settings.on_gpu and clients not in CPU_CLIENTS:
        pytest.skip(f"CPU smoke run: {', '.join(map(str, CPU_CLIENTS))} clients")
    variant = settings.variants.get(serving_variant)
    if variant is None:
        pytest.skip(settings.unavailable.get(serving_variant, f"{serving_variant} not selected (--variants)"))
    photos = [suite.image(name, case) for name in (PHOTOS if settings.on_gpu else PHOTOS[:CPU_PHOTOS])]
    batcher = None
    if variant.graph is None:
        model = suite.pipeline(variant, case).model

        def call(image):
            with torch.no_grad():
                return inference_detector(model, image)
    else:
        pipeline = graph_pipeline(variant, case, clients)
        if settings.on_gpu and not benchmark.disabled:  # start-up: each batch size's graphs, captured
            for n in range(2, clients + 1):
                pipeline.detect_batch(photos[:1] * n)
        batcher = call = DynamicBatcher(pipeline, max_batch=min(clients, variant.graph.max_batch),
                                        max_wait_ms=MAX_WAIT_MS)
    with batcher or contextlib.nullcontext():
        references = [copy.deepcopy(call(p)) for p in photos]  # alone: one client; its own copy of the arrays
        figures = serve(benchmark, settings, call, photos, references, clients, batcher, warm_up, timed_rounds)
    benchmark.group = f"{case} serving {clients} clients"
    benchmark.extra_info.update(variant=variant.name, size=case.id, clients=clients, serving=figures)


def serve(benchmark, settings, call, photos, references, clients, batcher, warm_up, timed_rounds) -> dict:
    """Warm up, then time rounds of ``clients`` threads; every result checked (untimed, between rounds)."""
    rounds, batched = ServingRounds(), batcher is not None
    requests = GPU_REQUESTS if settings.on_gpu else CPU_REQUESTS

    def check():
        wrong = rounds.check(photos, references, batched)
        assert not wrong, f"{len(wrong)} results were not their own photo's (photos {sorted(set(wrong))})"

    def one_round():
        rounds.run(call, photos, clients, requests)

    per_round = warm_up(lambda: (one_round(), check()))  # checked as they come: stock's masks are large
    rounds.restart()
    if batched:
        batcher.batch_sizes.clear()  # the timed rounds' batches only
    check()
    # A round is many calls: a quarter of the suite's rounds (CPU smoke run: one).
    count = timed_rounds(benchmark, max(3, settings.rounds // 4), per_round) if settings.on_gpu else 1
    benchmark.pedantic(one_round, setup=check, rounds=count, iterations=1)
    check()
    figures = rounds.summary()
    if batched:
        sizes = batcher.batch_sizes
        figures.update(max_batch=batcher.max_batch, max_wait_ms=MAX_WAIT_MS,
                       mean_batch=round(sum(sizes) / len(sizes), 2))
    return figures

