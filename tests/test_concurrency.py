"""Many threads, one pipeline: each caller gets exactly the result it gets alone.

Single calls, ``detect_batch`` and stage calls from several threads at once, against one pipeline
of each kind, with photos of several sizes and a plan cache small enough to evict while the threads
run. On a CPU the variants run as their CPU compositions (the graph pipelines eagerly, over the same
plans and buffers as with CUDA graphs); the same tests run on CUDA where there is one.
"""
import copy
import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from mmdet_opt.graphed.pipeline import GraphedPipeline, StaleInputs
from mmdet_opt.images import resize_to, sample_image
from mmdet_opt.results import Detections
from mmdet_opt.variants import get_variant

# Small enough for a CPU: a tenth of the RPN's proposals, a quarter of the tests' usual pixels.
SCALE, PROPOSALS = (160, 96), 100
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))]
# Three network shapes at that scale: 4:3 (two photo sizes that share a plan), 1:1 and 16:9.
PHOTOS = [("astronaut", (640, 480)), ("coffee", (400, 300)), ("rocket", (500, 500)), ("chelsea", (720, 405))]
THREADS = 4
# A detect_batch call: two photos of one network shape (a real batch) and one of another (alone).
BATCHES = [[0, 1, 2]]


@pytest.fixture(scope="module")
def photos():
    return [resize_to(sample_image(name), size) for name, size in PHOTOS]


@pytest.fixture(scope="module", params=DEVICES)
def base_model(request, small_base_model):
    model = copy.deepcopy(small_base_model)  # the session's base model stays as it is
    model.rpn_head.test_cfg.nms_pre = model.rpn_head.test_cfg.max_per_img = PROPOSALS
    return model.to(request.param)


@pytest.fixture(autouse=True)
def one_thread_per_op():
    """The callers are the parallelism: threads within each op would only oversubscribe the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(base_model, name: str, **graph_options):
    """The named variant as it runs on the model's device; a graph one with these options changed
    (small caches, so that plans are evicted and rebuilt while the threads run)."""
    variant = get_variant(name).for_device(str(next(base_model.parameters()).device))
    if variant.graph is not None:
        variant = dataclasses.replace(variant, graph=dataclasses.replace(variant.graph, **graph_options))
    return variant.build(base_model, SCALE)


def detections(result, image) -> Detections:
    return Detections.from_mmdet(result, image.shape)


def calls_of_one_thread(pipeline, photos, thread: int) -> list:
    """(what, run) pairs: every photo alone and, where the pipeline batches, each batch. Each thread
    starts with the two photos that share a network plan, every other thread in the other order, so
    that different photos contend for one plan's buffers at once."""
    order = [thread % 2, 1 - thread % 2] + list(range(2, len(photos)))
    calls = [(("photo", i), lambda i=i: pipeline(photos[i])) for i in order]
    if hasattr(pipeline, "detect_batch"):
        calls += [(("batch", tuple(b)), lambda b=b: pipeline.detect_batch([photos[i] for i in b])) for b in BATCHES]
    return calls


def as_detections(what, result, photos) -> list:
    kind, index = what
    if kind == "photo":
        return [detections(result, photos[index])]
    return [detections(r, photos[i]) for r, i in zip(result, index, strict=True)]


def assert_each_thread_gets_its_own_results(pipeline, photos):
    with torch.no_grad():
        alone = {what: as_detections(what, run(), photos) for what, run in calls_of_one_thread(pipeline, photos, 0)}
    assert all(len(dets) > 0 for dets in alone[("photo", 0)]), "no detections: nothing to mix up"

    def thread(t: int) -> list:
        with torch.no_grad():
            return [(what, as_detections(what, run(), photos))
                    for what, run in calls_of_one_thread(pipeline, photos, t)]

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = [result for future in [pool.submit(thread, t) for t in range(THREADS)] for result in future.result()]
    wrong = [what for what, got in outcomes if not all(a.identical(b) for a, b in zip(got, alone[what], strict=True))]
    assert not wrong, f"{len(wrong)} of {len(outcomes)} calls got another photo's result: {wrong}"


def test_every_public_method_of_the_graph_pipeline_runs_under_its_lock():
    methods = {name: value for cls in reversed(GraphedPipeline.__mro__[:-1]) for name, value in vars(cls).items()}
    public = [name for name, value in methods.items()
              if callable(value) and (name == "__call__" or not name.startswith("_"))]
    assert {"__call__", "preprocess", "roi_head", "detect_batch", "plan"} <= set(public)
    assert [name for name in public if not getattr(methods[name], "serialised", False)] == []


@pytest.mark.parametrize("name", ["inference_graph", "inference_raw_mask"])
def test_threads_calling_one_pipeline_get_their_own_results(base_model, photos, name):
    assert_each_thread_gets_its_own_results(build(base_model, name, max_plans=2, max_photo_sizes=3), photos)


def test_threads_calling_one_padded_pipeline_get_their_own_results(base_model, photos):
    """pad_to_scale: every landscape photo shares one network plan, so every call writes its buffers."""
    assert_each_thread_gets_its_own_results(build(base_model, "inference_graph_padded", max_photo_sizes=3), photos)


def test_stage_calls_from_threads_give_their_own_result_or_say_why(base_model, photos):
    """A photo's stages, called one by one from several threads at once: another thread's photo may
    take the plan's buffers between two stages; then the stage raises, never answering for that photo."""
    pipeline = build(base_model, "inference_graph")
    landscape = photos[:2]  # two photo sizes, one network plan: its buffers are contended

    def staged(image):
        with torch.no_grad():
            inputs = pipeline.preprocess(image)
            feats = pipeline.backbone(inputs)
            return pipeline.roi_head(feats, pipeline.rpn_head(feats, inputs), inputs)

    with torch.no_grad():
        alone = [detections(pipeline(image), image) for image in landscape]

    def thread(t: int) -> list:
        outcomes = []
        for i in [t % 2, 1 - t % 2]:
            try:
                outcomes.append((i, detections(staged(landscape[i]), landscape[i])))
            except StaleInputs:
                outcomes.append((i, None))
        return outcomes

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = [o for future in [pool.submit(thread, t) for t in range(THREADS)] for o in future.result()]
    wrong = [i for i, got in outcomes if got is not None and not got.identical(alone[i])]
    assert not wrong, f"{len(wrong)} of {len(outcomes)} staged calls got another photo's result"


def test_a_stage_after_another_threads_photo_raises(base_model, photos):
    pipeline = build(base_model, "inference_graph")
    first, second = photos[:2]  # one network plan
    with torch.no_grad():
        inputs = pipeline.preprocess(first)
        other = threading.Thread(target=lambda: pipeline(second))
        other.start()
        other.join()
        with pytest.raises(StaleInputs, match="another thread"):
            pipeline.backbone(inputs)
        again = pipeline.preprocess(first)  # from the start, it runs
        feats = pipeline.backbone(again)
        result = pipeline.roi_head(feats, pipeline.rpn_head(feats, again), again)
        assert detections(result, first).identical(detections(pipeline(first), first))


def test_stage_outputs_outlive_the_next_call(base_model, photos):
    """What a stage returns is the caller's: the next photo through the same plan does not change it."""
    pipeline = build(base_model, "inference_graph")
    first, second = photos[:2]
    with torch.no_grad():
        inputs = pipeline.preprocess(first)
        feats = pipeline.backbone(inputs)
        boxes, labels = pipeline.bbox_head(feats, pipeline.rpn_head(feats, inputs), inputs)
        assert len(boxes) > 0
        masks = pipeline.mask_forward(feats, boxes, inputs)
        kept = [t.clone() for t in (boxes, labels, masks.mask_pred, masks.boxes, masks.scale_factor)]
        pipeline(second)
    for before, now in zip(kept, (boxes, labels, masks.mask_pred, masks.boxes, masks.scale_factor), strict=True):
        assert torch.equal(before, now)
