"""Real batches (a NetworkPlan of batch N): photos of one network shape in one pass, each with its own result.

Runs the eager (CPU) composition; a GPU run times it (benchmarks/test_throughput.py).
"""
import dataclasses

import numpy as np
import pytest
import torch

from mmdet_opt.gpu_preprocess import PreprocessSpec
from mmdet_opt.graphed import GraphedPipeline, extent
from mmdet_opt.graphed.feature_net import rpn_top_k
from mmdet_opt.graphed.options import GraphOptions
from mmdet_opt.images import resize_to, sample_image
from mmdet_opt.parity import compare
from mmdet_opt.raw_mask_head import boxes_by_class
from mmdet_opt.results import Detections
from mmdet_opt.variants import get_variant, variant_model

SMALL_SCALE = (320, 192)  # small_base_model's test scale (tests/conftest.py)


@pytest.fixture(scope="module")
def pipe(small_base_model):
    model = variant_model(small_base_model, get_variant("inference_graph"), SMALL_SCALE)
    return GraphedPipeline(model, PreprocessSpec.from_config(model.cfg), GraphOptions().eager_fp32())


def detections(result, image):
    return Detections.from_mmdet(result, image.shape)


def padded_pipeline(small_base_model) -> GraphedPipeline:
    """The eager composition padded to the scale: every landscape photo pads to one network shape."""
    model = variant_model(small_base_model, get_variant("inference_graph"), SMALL_SCALE)
    options = dataclasses.replace(GraphOptions().eager_fp32(), pad_to_scale=True)
    return GraphedPipeline(model, PreprocessSpec.from_config(model.cfg), options)


def landscape_photos() -> list:
    """Three photos of three sizes (4:3, wide, square) that all pad to the landscape box."""
    return [resize_to(sample_image(name), size) for name, size in
            [("astronaut", (640, 480)), ("coffee", (1000, 300)), ("rocket", (500, 500))]]


@pytest.mark.slow
def test_a_batch_gives_each_photo_its_own_result(pipe):
    """Three photos of two sizes that pad to one shape (4:3), a fourth of another shape: each result
    is the one the photo gets alone."""
    photos = [resize_to(sample_image(name), size) for name, size in
              [("astronaut", (640, 480)), ("coffee", (400, 300)), ("rocket", (640, 480)), ("chelsea", (300, 400))]]
    with torch.no_grad():
        alone = [detections(pipe(p), p) for p in photos]
        batched = [detections(r, p) for r, p in zip(pipe.detect_batch(photos), photos)]
    assert [key[2] for key in pipe.shapes.batches.keys()] == [3]  # the portrait photo ran alone
    for one, many in zip(alone, batched):
        report = compare(one, many)
        assert report.matched_fraction == 1.0 and report.mask_iou_mean > 0.999, str(report)
        np.testing.assert_allclose(many.scores, one.scores, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("ring_from", [extent.RING_FROM, 0], ids=["as-sized", "ring-everywhere"])
def test_photos_of_any_landscape_size_batch_together_padded_to_the_scale(small_base_model, pipe, ring_from,
                                                                       monkeypatch):
    """With pad_to_scale every landscape photo pads to one shape, so photos of different extents share
    a batch; each gets what it gets alone, padded to its own extent. This scale's activations are
    small, so the masks are whole-tensor passes unless the ring is forced everywhere (extent.py)."""
    monkeypatch.setattr(extent, "RING_FROM", ring_from)
    padded, photos = padded_pipeline(small_base_model), landscape_photos()
    with torch.no_grad():
        batched = [detections(r, p) for r, p in zip(padded.detect_batch(photos), photos)]
        alone = [detections(pipe(p), p) for p in photos]
    assert list(padded.shapes.batches.keys()) == [(192, 320, 3)]
    for got, expected in zip(batched, alone):
        assert len(expected.boxes) > 0
        report = compare(expected, got)
        assert report.matched_fraction == 1.0 and report.mask_iou_mean > 0.999, report


@pytest.mark.slow
def test_a_photo_size_goes_back_to_the_slot_it_wrote(small_base_model):
    """Photos of three sizes in one padded batch, then in the reverse order: each size takes the slot it
    wrote the first time (a new (size, slot) pair is one more graph capture), and each photo still gets
    the result it got the first time."""
    padded, photos = padded_pipeline(small_base_model), landscape_photos()
    with torch.no_grad():
        first = padded.detect_batch(photos)
        again = padded.detect_batch(photos[::-1])
    shapes = padded.shapes
    assert {size: [slot for _, slot in shapes.photos.peek(size).slots] for size in shapes.photos.keys()} == {
        (480, 640): [0], (300, 1000): [1], (500, 500): [2]}
    assert shapes.slots_for([(500, 500), (100, 100), (480, 640)], shapes.batches.peek((192, 320, 3))) == [2, 1, 0]
    for one, two, photo in zip(first, again[::-1], photos):
        report = compare(detections(one, photo), detections(two, photo))
        assert report.matched_fraction == 1.0 and report.mask_iou_mean > 0.999, report


@pytest.mark.slow
def test_fewer_photos_than_plan_batch_run_in_its_plan_and_spare_slots_are_dropped(small_base_model):
    """Four photos through the plan of four, then two of them (and, in reverse, two others) through the
    same plan with plan_batch=4: no plan of two is built, the spare slots keep the photos they held,
    and each photo gets what it gets in the full batch."""
    padded, photos = padded_pipeline(small_base_model), landscape_photos()
    photos.append(resize_to(sample_image("chelsea"), (400, 300)))
    with torch.no_grad():
        full = padded.detect_batch(photos)
        short = padded.detect_batch(photos[:2], plan_batch=4)
        other = padded.detect_batch(photos[:1:-1], plan_batch=4)
    assert padded.shapes.batches.keys() == [(192, 320, 4)]
    shapes = padded.shapes
    assert shapes.slots_for([(300, 1000)], shapes.batches.peek((192, 320, 4))) == [None, 0, None, None]
    for got, expected, photo in zip(short + other, [full[0], full[1], full[3], full[2]],
                                    photos[:2] + photos[:1:-1]):
        report = compare(detections(expected, photo), detections(got, photo))
        assert len(detections(expected, photo).boxes) and report.matched_fraction == 1.0, report
        assert report.mask_iou_mean > 0.999, report
    batch_plans = shapes.batches.misses
    with torch.no_grad():
        alone = padded.detect_batch(photos[:1], plan_batch=4)  # one photo: the single-photo path
    assert shapes.batches.misses == batch_plans
    report = compare(detections(full[0], photos[0]), detections(alone[0], photos[0]))
    assert report.matched_fraction == 1.0, report
    for bad in (0, 2.0, 17):
        with pytest.raises(ValueError, match="plan_batch is a batch size of 1 to max_batch"):
            padded.detect_batch(photos, plan_batch=bad)


@pytest.mark.slow
def test_a_batch_larger_than_max_batch_is_split(small_base_model):
    model = variant_model(small_base_model, get_variant("inference_graph"), SMALL_SCALE)
    options = dataclasses.replace(GraphOptions().eager_fp32(), max_batch=2)
    pipe = GraphedPipeline(model, PreprocessSpec.from_config(model.cfg), options)
    photos = [resize_to(sample_image("astronaut"), (320, 240))] * 3
    with torch.no_grad():
        results = pipe.detect_batch(photos)
    assert len(results) == 3 and pipe.shapes.batches.keys() == [(192, 256, 2)]
    first, last = (detections(r, photos[0]) for r in (results[0], results[2]))
    report = compare(first, last)
    assert report.matched_fraction == 1.0 and report.mask_iou_mean > 0.999, str(report)


@pytest.mark.parametrize("n", [0, 1, 37])
def test_boxes_by_class_is_mmdets_bbox2result(n):
    from mmdet.core import bbox2result

    rng = np.random.default_rng(n)
    boxes, labels = rng.random((n, 5), dtype=np.float32), rng.integers(0, 5, n)  # most of the 80 classes empty
    got, expected = boxes_by_class(boxes, labels, 80), bbox2result(boxes, labels, 80)
    assert len(got) == len(expected) == 80
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.dtype == theirs.dtype and mine.shape == theirs.shape and np.array_equal(mine, theirs)



# The RPN levels at 1333x800 (stride 4 to 64, 3 anchors per cell): the top-k takes another CUDA path
# for the largest (multi-block radix select) than for the smallest, and keeps all of the last.
LEVELS_1333x800 = [(200, 336), (100, 168), (50, 84), (25, 42), (13, 21)]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))]


def rpn_outputs(batch: int, device: str):
    """fp16 objectness and deltas as the graphed path has them, the logits rounded so that many scores tie
    at the k-th; anchor i is (i, i, i, i), so a kept anchor says which position it came from."""
    gen = torch.Generator().manual_seed(0)
    cls_scores = [(torch.randn(batch, 3, h, w, generator=gen) * 4).round(decimals=1).half().to(device)
                  for h, w in LEVELS_1333x800]
    bbox_preds = [torch.randn(batch, 12, h, w, generator=gen).half().to(device) for h, w in LEVELS_1333x800]
    anchors = [torch.arange(h * w * 3, dtype=torch.float32, device=device)[:, None].expand(-1, 4)
               for h, w in LEVELS_1333x800]
    return cls_scores, bbox_preds, anchors


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", [8, 24])  # 24: over TOP_K_ROWS, two top-k calls per level
@torch.no_grad()
def test_the_batched_rpn_top_k_keeps_each_images_k_best(device, batch):
    cls_scores, bbox_preds, anchors = rpn_outputs(batch, device)
    scores, deltas, kept = rpn_top_k(cls_scores, bbox_preds, anchors, nms_pre=1000)
    for cls, reg, level_scores, level_deltas, level_anchors in zip(cls_scores, bbox_preds, scores, deltas, kept):
        every = cls.permute(0, 2, 3, 1).reshape(batch, -1).float().sigmoid()
        every_delta = reg.permute(0, 2, 3, 1).reshape(batch, -1, 4).float()
        k = min(every.shape[1], 1000)
        assert level_scores.shape == (batch, k) and level_deltas.shape == level_anchors.shape == (batch, k, 4)
        for b in range(batch):
            where = level_anchors[b, :, 0].long()
            assert len(where.unique()) == k
            assert torch.equal(level_scores[b], every[b, where])  # each score with its own deltas and anchor
            assert torch.equal(level_deltas[b], every_delta[b, where])
            assert torch.equal(level_scores[b], every[b].sort(descending=True).values[:k])  # the k best, sorted


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("batch", [8, 16, 24])
@torch.no_grad()
def test_the_batched_rpn_top_k_ranks_each_image_as_alone_on_cuda(batch):
    """Ties at the k-th included: on CUDA, an image of a batch keeps the same anchors, in the same order,
    as alone. (On a CPU the vectorised sigmoid can round a score one ulp apart between the two.)"""
    cls_scores, bbox_preds, anchors = rpn_outputs(batch, "cuda")
    batched = rpn_top_k(cls_scores, bbox_preds, anchors, nms_pre=1000)
    for b in range(batch):
        alone = rpn_top_k([c[b:b + 1] for c in cls_scores], [r[b:b + 1] for r in bbox_preds], anchors, 1000)
        for got, want in zip(batched, alone, strict=True):
            for level_got, level_want in zip(got, want, strict=True):
                assert torch.equal(level_got[b], level_want[0])
