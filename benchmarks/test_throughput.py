"""Throughput: images per second at batch 1, 4, 8 and 16, stock against the GPU-resident variant.

Both get a real batch: stock ``inference_detector`` on a list (one collated forward), the
GPU-resident pipeline ``detect_batch`` (graphed/plan.py: the photos of one network shape in
one set of graphs, the backbone at batch N).
"""
import pytest
import torch

from mmdet_opt.suite.defaults import GPU_BATCHES, THROUGHPUT_VARIANTS, batches


def does_not_fit(run_one, batch: int, case) -> str | None:
    """Why a stock batch whose activations (``batch`` x one image's, measured) exceed free memory
    is not run; None when it fits.

    Running out of memory midway is not a clean failure: on an H100 it once ended in an illegal
    memory access that broke the CUDA context for every later test of the session.
    """
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        run_one()
    per_image = torch.cuda.max_memory_allocated() - before
    free, _ = torch.cuda.mem_get_info()
    if batch * per_image * 1.2 > free:
        return (f"stock batch {batch} at {case} needs about {batch * per_image / 2**30:.0f} GiB "
                f"of activations, {free / 2**30:.0f} GiB free: not run")
    return None


def skip_for_memory(request, variant, case, batch: int, reason: str):
    """Skip, recorded with the run (``not_run``): a measured outcome, which a complete run may hold."""
    request.config._mmdet_opt_not_run.append({"variant": variant.name, "size": case.id, "batch": batch,
                                              "reason": reason})
    pytest.skip(reason)


@pytest.mark.parametrize("batch", GPU_BATCHES)
@pytest.mark.parametrize("throughput_variant", THROUGHPUT_VARIANTS)
def test_throughput(benchmark, suite, settings, case, throughput_variant, batch, warm_up, timed_rounds, request):
    from mmdet.apis import inference_detector

    if case.natural:
        pytest.skip("throughput is timed on the study's protocol cases")
    variant = settings.variants.get(throughput_variant)
    if variant is None:
        pytest.skip(settings.unavailable.get(throughput_variant, f"{throughput_variant} not selected (--variants)"))
    if batch not in batches(settings.on_gpu):
        pytest.skip("CPU smoke run: batch 1 only (a batch of 16 takes minutes on a CPU)")
    pipeline = suite.pipeline(variant, case)
    images = [suite.image(settings.bench_image, case)] * batch
    if variant.name == "inference":
        if settings.on_gpu and batch > 1:
            reason = does_not_fit(lambda: inference_detector(pipeline.model, images[:1]), batch, case)
            if reason:
                skip_for_memory(request, variant, case, batch, reason)

        def run():
            with torch.no_grad():
                inference_detector(pipeline.model, images)
    elif batch > 1 and hasattr(pipeline, "detect_batch"):
        def run():
            pipeline.detect_batch(images)
    else:
        def run():
            for image in images:
                pipeline(image)

    def timed():
        run()
        if settings.on_gpu:
            torch.cuda.synchronize()

    benchmark.group = f"{case} throughput batch {batch}"
    benchmark.extra_info.update(variant=variant.name, size=case.id, batch=batch,
                                image=settings.bench_image)
    try:
        rounds = timed_rounds(benchmark, max(5, settings.rounds // batch), warm_up(timed))
        benchmark.pedantic(timed, rounds=rounds, iterations=1)
    except torch.OutOfMemoryError as exc:
        torch.cuda.empty_cache()
        # A measured outcome, not a failure of the suite: stock mmdet's batch of 16 at
        # 3840x2304 does not fit an 80 GB H100 beside the suite's other models.
        skip_for_memory(request, variant, case, batch, f"{throughput_variant} batch {batch} at {case}: out of "
                        f"GPU memory ({str(exc).splitlines()[0][:160]})")
    if benchmark.stats is not None:  # None under --benchmark-disable (one untimed call)
        benchmark.extra_info["images_per_second"] = round(batch / benchmark.stats.stats.median, 2)
