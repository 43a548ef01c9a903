"""The graph pipeline's plan cache: photos of many sizes, shared network plans, a bounded cache.

Runs the eager (CPU) composition, which has the same plans and buffers as the CUDA-graph one;
tests/test_stream_cuda.py repeats the cache checks with graphs on a GPU.
"""
import copy
import dataclasses
import gc
import weakref

import numpy as np
import pytest
import torch

from mmdet_opt.gpu_preprocess import PreprocessSpec
from mmdet_opt.graphed import GraphedPipeline, extent
from mmdet_opt.graphed.options import GraphOptions
from mmdet_opt.graphed.plan_cache import LRUCache
from mmdet_opt.images import resize_to, sample_image
from mmdet_opt.parity import compare
from mmdet_opt.results import Detections
from mmdet_opt.variants import get_variant, variant_model

SMALL_SCALE = (320, 192)  # small_base_model's test scale (tests/conftest.py)
# Two 4:3 photos that resize to 256x192 (one network plan), a square and a portrait one (two more).
FOUR_THREE = [(640, 480), (400, 300)]
SQUARE, PORTRAIT = (500, 500), (300, 400)


def test_lru_cache_keeps_the_recently_used():
    evicted = []
    cache = LRUCache(2, on_evict=evicted.append)
    made = []

    def make(name):
        return lambda: made.append(name) or name

    assert cache.get("a", make("a")) == "a"
    cache.get("b", make("b"))
    cache.get("a", make("a"))  # a is now the most recent
    cache.get("c", make("c"))  # so b goes
    assert made == ["a", "b", "c"] and evicted == ["b"] and cache.keys() == ["a", "c"]
    assert (cache.hits, cache.misses, cache.evictions) == (1, 3, 1)
    cache.clear()
    assert evicted == ["b", "a", "c"] and len(cache) == 0 and cache.evictions == 3
    with pytest.raises(ValueError, match="at least 1"):
        LRUCache(0)


@pytest.fixture(scope="module")
def graph_model(small_base_model):
    return variant_model(small_base_model, get_variant("inference_graph"), SMALL_SCALE)


@pytest.fixture(scope="module")
def photos():
    return {size: resize_to(sample_image("astronaut"), size) for size in FOUR_THREE + [SQUARE, PORTRAIT]}


@pytest.fixture(scope="module")
def stock(small_base_model, photos):
    from mmdet.apis import inference_detector

    model = copy.deepcopy(small_base_model)
    with torch.no_grad():
        return {size: Detections.from_mmdet(inference_detector(model, image), image.shape)
                for size, image in photos.items()}


def pipeline(graph_model, **options):
    options = dataclasses.replace(GraphOptions().eager_fp32(), **options)
    return GraphedPipeline(graph_model, PreprocessSpec.from_config(graph_model.cfg), options)


def detect(pipe, image):
    with torch.no_grad():
        return Detections.from_mmdet(pipe(image), image.shape)


@pytest.mark.slow
def test_photos_of_one_padded_shape_share_a_plan_and_keep_their_own_results(graph_model, photos, stock):
    """Two 4:3 sizes share one network plan; each still gets stock's result (its own img_shape and
    scale_factor reach the shared steps), also when the other ran in between."""
    pipe = pipeline(graph_model)
    first = {size: detect(pipe, photos[size]) for size in FOUR_THREE}
    assert len(pipe.shapes.networks) == 1 and len(pipe.shapes.photos) == 2
    for size in FOUR_THREE:
        report = compare(stock[size], first[size])
        assert report.matched_fraction == 1.0 and report.mask_iou_mean > 0.999, f"{size}: {report}"
    again = detect(pipe, photos[FOUR_THREE[0]])
    np.testing.assert_array_equal(again.boxes, first[FOUR_THREE[0]].boxes)
    # The second size and the repeat found the plan built (each call is a use of it).
    assert (pipe.shapes.networks.hits, pipe.shapes.networks.misses) == (2, 1)


@pytest.mark.slow
def test_the_cache_is_bounded_and_an_evicted_shape_comes_back_the_same(graph_model, photos, stock):
    pipe = pipeline(graph_model, max_plans=2, max_photo_sizes=2)
    order = [FOUR_THREE[0], SQUARE, PORTRAIT, FOUR_THREE[0]]  # the 4:3 plan is evicted, then needed again
    results = []
    for size in order:
        results.append(detect(pipe, photos[size]))
        assert len(pipe.shapes.networks) <= 2 and len(pipe.shapes.photos) <= 2
    assert pipe.shapes.networks.evictions >= 1 and pipe.shapes.networks.misses == 4
    # A plan takes the photo sizes' steps into its slots with it: none may point at an evicted plan's buffers.
    live = {id(pipe.shapes.networks.peek(key)) for key in pipe.shapes.networks.keys()}
    steps = [network for key in pipe.shapes.photos.keys() for network, _ in pipe.shapes.photos.peek(key).slots]
    assert steps and all(id(network) in live for network in steps)
    np.testing.assert_array_equal(results[-1].boxes, results[0].boxes)
    np.testing.assert_array_equal(results[-1].labels, results[0].labels)
    for size, got in zip(order, results):
        report = compare(stock[size], got)
        assert report.matched_fraction == 1.0 and report.mask_iou_mean > 0.999, f"{size}: {report}"


def test_an_evicted_plan_and_the_photo_sizes_only_it_served_are_freed_at_once(graph_model, photos):
    """Freed by reference counting when the plan is evicted, not left to the garbage collector (their
    graphs and buffers would stay reserved meanwhile), and before the next plan is built."""
    pipe = pipeline(graph_model, max_plans=1, max_photo_sizes=4)
    inputs = pipe.preprocess(photos[FOUR_THREE[0]])
    plan, photo = weakref.ref(inputs.plan), weakref.ref(pipe.shapes.photos.peek(pipe.shapes.photos.keys()[0]))
    del inputs
    make, alive_at_build = pipe.shapes.make_network, []
    pipe.shapes.make_network = lambda *shape: alive_at_build.append((plan(), photo())) or make(*shape)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        pipe.preprocess(photos[SQUARE])  # another padded shape: the 4:3 plan is evicted
    finally:
        if was_enabled:
            gc.enable()
    assert alive_at_build == [(None, None)]
    assert len(pipe.shapes.photos) == 1 and pipe.shapes.networks.evictions == 1


@pytest.mark.slow
@pytest.mark.parametrize("ring_from", [extent.RING_FROM, 0], ids=["as-sized", "ring-everywhere"])
def test_pad_to_scale_serves_every_landscape_photo_from_one_plan_with_its_own_result(graph_model, photos, ring_from,
                                                                                   monkeypatch):
    """Each photo padded to the scale's box gets, bit for bit on a CPU, what it gets padded to its own
    extent (extent.py); a panorama and a tall photo, whose extents are furthest from the box, too.
    (Masks could differ by RoIAlign's coordinate rounding, the levels sitting at other canvas offsets;
    at this small scale they do not.) The masks are whole-tensor passes here, or the ring everywhere."""
    monkeypatch.setattr(extent, "RING_FROM", ring_from)
    padded, own = pipeline(graph_model, pad_to_scale=True), pipeline(graph_model)
    boxes = [(192, 320), (320, 192)]  # SMALL_SCALE's box, padded to 32, and its transpose: built ahead
    assert sorted(padded.shapes.networks.keys()) == boxes and padded.shapes.networks.misses == 2
    wide, tall = resize_to(sample_image("astronaut"), (1000, 300)), resize_to(sample_image("astronaut"), (250, 900))
    for image in [photos[size] for size in FOUR_THREE + [SQUARE]] + [wide]:
        got, expected = detect(padded, image), detect(own, image)
        assert len(expected.boxes) > 0
        np.testing.assert_array_equal(got.boxes, expected.boxes)
        np.testing.assert_array_equal(got.labels, expected.labels)
        np.testing.assert_array_equal(got.masks, expected.masks)
    for image in (photos[PORTRAIT], tall):
        np.testing.assert_array_equal(detect(padded, image).boxes, detect(own, image).boxes)
    assert sorted(padded.shapes.networks.keys()) == boxes and padded.shapes.networks.misses == 2  # none built since
    assert padded.fallbacks == 0


def test_plans_ahead_only_where_the_shapes_are_known(graph_model, photos):
    """Without pad_to_scale each photo size pads to its own shape, so nothing can be built ahead;
    with it, ``plans_ahead=False`` leaves each box to its first photo, and two boxes need two plans."""
    with pytest.raises(ValueError, match="only with pad_to_scale"):
        pipeline(graph_model).plan_ahead()
    with pytest.raises(ValueError, match="max_plans >= 2"):
        pipeline(graph_model, pad_to_scale=True, max_plans=1)
    lazy = pipeline(graph_model, pad_to_scale=True, plans_ahead=False)
    assert len(lazy.shapes.networks) == 0
    detect(lazy, photos[PORTRAIT])
    assert lazy.shapes.networks.keys() == [(320, 192)]
    built = []
    assert lazy.plan_ahead(after_each=lambda: built.append(len(lazy.shapes.networks))) == 1
    assert lazy.shapes.networks.keys() == [(192, 320), (320, 192)]  # in LRU order: both just used
    assert built == [2, 2] and lazy.shapes.networks.misses == 2  # the portrait box was kept, not rebuilt
    capped = pipeline(graph_model, pad_to_scale=True, plans_ahead=False, max_batch=2)
    assert capped.plan_ahead(5) == 2  # detect_batch never runs more than max_batch photos at a time
    assert sorted(capped.shapes.batches.keys()) == [(192, 320, 2), (320, 192, 2)]


def test_a_negative_upload_buffer_is_refused_clearly(graph_model):
    with pytest.raises(ValueError, match="upload_pixels is an integer >= 0"):
        pipeline(graph_model, upload_pixels=-1)


@pytest.mark.slow
def test_pad_to_scale_falls_back_to_mmdets_code_without_the_anchors_past_the_extent(graph_model, monkeypatch):
    """One NMS round cannot vouch for a selection, so mmdet's own proposal code runs on the ranked
    anchors (plan.mmdet_detections): those past the photo's extent must not reach it."""
    rpn = graph_model.rpn_head
    candidates = []  # per call, how many ranked anchors each level hands to mmdet's code
    post_process = rpn._bbox_post_process

    def counting(scores, *args, **kwargs):
        candidates.append([len(s) for s in scores])
        return post_process(scores, *args, **kwargs)

    monkeypatch.setattr(rpn, "_bbox_post_process", counting)
    wide = resize_to(sample_image("astronaut"), (1000, 300))  # 320x96 in a 320x192 box
    padded, own = pipeline(graph_model, pad_to_scale=True, nms_rounds=1), pipeline(graph_model, nms_rounds=1)
    got, expected = detect(padded, wide), detect(own, wide)
    assert padded.fallbacks == own.fallbacks == 1
    assert candidates[0] == candidates[1] and candidates[0][-1] < 1000  # the small levels: all their anchors
    np.testing.assert_array_equal(got.boxes, expected.boxes)
    np.testing.assert_array_equal(got.labels, expected.labels)


@pytest.mark.parametrize("field, value", [("upload_pixels", -1), ("nms_rounds", 0), ("max_plans", 0), ("max_batch", 0),
                                          ("max_photo_sizes", 0), ("warmup_calls", -1), ("fp16_layers", 5),
                                          ("graphs", 1), ("max_batch", 2.0)])
def test_graph_options_refuse_a_bad_value_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"GraphOptions.{field} "):
        GraphOptions(**{field: value})


def test_switches_are_set_by_name():
    """``GraphOptions.with_switches``, as the A/B and profile tools take their ``--with``."""
    options = GraphOptions().with_switches("nms_kernel=True, nms_greedy_kernel=True,graphs=False")
    assert options.nms_kernel and options.nms_greedy_kernel and not options.graphs
    assert GraphOptions().with_switches("") == GraphOptions()
    for wrong in ("nms_kernel=1", "no_such_field=True", "nms_rounds=True"):
        with pytest.raises(ValueError, match="FIELD=True or FIELD=False"):
            GraphOptions().with_switches(wrong)
