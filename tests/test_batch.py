"""Real batches (graphed/batch.py): photos of one network shape in one pass, each with its own result.

Runs the eager (CPU) composition; a GPU run times it (benchmarks/test_throughput.py).
"""
import dataclasses

import numpy as np
import pytest
import torch

from mmdet_opt.gpu_preprocess import PreprocessSpec
from mmdet_opt.graphed import GraphedPipeline
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
