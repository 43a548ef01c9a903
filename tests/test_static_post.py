"""Static-shape NMS and post-processing (the graph-capturable path) against mmcv / mmdet."""
import dataclasses

import numpy as np
import pytest
import torch
from mmcv.ops import nms

from mmdet_opt.gpu_preprocess import PreprocessSpec
from mmdet_opt.graphed import GraphedPipeline
from mmdet_opt.graphed.options import GraphOptions
from mmdet_opt.graphed.static_nms import first_kept, greedy_keep, suppression_matrix
from mmdet_opt.graphed.static_post import DetectionSelector, ProposalSelector
from mmdet_opt.images import resize_to, sample_image
from mmdet_opt.parity import compare
from mmdet_opt.results import Detections
from mmdet_opt.variants import get_variant, variant_model

SMALL_SCALE = (320, 192)  # small_base_model's test scale (tests/conftest.py)
CPU_OPTIONS = GraphOptions().eager_fp32()


def clustered_boxes(n: int, seed: int):
    """Boxes in a few tight clusters (long suppression chains), random scores, sorted by score."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(6, 2, generator=g) * 200
    xy = centres[torch.randint(0, 6, (n,), generator=g)] + torch.randn(n, 2, generator=g) * 6
    wh = 20 + torch.rand(n, 2, generator=g) * 30
    boxes = torch.cat([xy - wh / 2, xy + wh / 2], 1)
    scores = torch.rand(n, generator=g)
    order = scores.argsort(descending=True)
    return boxes[order], scores[order]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("iou_threshold", [0.3, 0.5, 0.7])
def test_greedy_keep_is_mmcv_nms(seed, iou_threshold):
    boxes, scores = clustered_boxes(400, seed)
    keep, converged = greedy_keep(suppression_matrix(boxes, iou_threshold), torch.ones(400, dtype=torch.bool), 400)
    _, expected = nms(boxes, scores, iou_threshold)
    assert bool(converged)
    assert keep.nonzero().squeeze(1).tolist() == sorted(expected.tolist())
    assert 0 < keep.sum() < 400


def chain(n: int) -> torch.Tensor:
    """Boxes each overlapping only its neighbours (IoU 0.6): greedy keeps every other one, and
    fixed-point iteration needs about n rounds to settle the last."""
    x = torch.arange(n, dtype=torch.float32) * 4
    return torch.stack([x, torch.zeros(n), x + 16, torch.full((n,), 10.0)], 1)


def test_too_few_rounds_is_reported():
    suppress = suppression_matrix(chain(12), 0.5)
    valid = torch.ones(12, dtype=torch.bool)
    keep, converged = greedy_keep(suppress, valid, 3)
    assert not bool(converged)
    keep, converged = greedy_keep(suppress, valid, 13)
    assert bool(converged) and keep.tolist() == [i % 2 == 0 for i in range(12)]


def test_invalid_boxes_neither_survive_nor_suppress():
    suppress = suppression_matrix(chain(3), 0.5)
    keep, _ = greedy_keep(suppress, torch.tensor([False, True, True]), 5)
    assert keep.tolist() == [False, True, False]


def test_first_kept():
    keep = torch.tensor([False, True, True, False, True, True])
    index, count = first_kept(keep, 3)
    assert index.tolist() == [1, 2, 4] and int(count) == 3
    index, count = first_kept(torch.tensor([False, True, False]), 3)
    assert index[:1].tolist() == [1] and int(count) == 1


@pytest.fixture(scope="module")
def graph_model(small_base_model):
    return variant_model(small_base_model, get_variant("inference_graph"), SMALL_SCALE)


@pytest.fixture(scope="module")
def staged(graph_model):
    """The CPU (eager) GraphedPipeline run up to the RoI head on astronaut, as mmdet would see it."""
    pipe = GraphedPipeline(graph_model, PreprocessSpec.from_config(graph_model.cfg), CPU_OPTIONS)
    image = resize_to(sample_image("astronaut"), SMALL_SCALE)
    with torch.no_grad():
        inputs = pipe.preprocess(image)
        features = pipe.backbone(inputs)
    return pipe, inputs, features


def rows(t: torch.Tensor) -> list:
    return sorted(map(tuple, t.numpy().round(4).tolist()))


@torch.no_grad()
def test_proposals_are_mmdets(staged, graph_model):
    pipe, inputs, (_, scores, deltas, anchors) = staged
    rpn, img_shape = graph_model.rpn_head, inputs.img_metas[0]["img_shape"]
    expected = rpn._bbox_post_process(scores, deltas, anchors, inputs.plan.level_ids, rpn.test_cfg, img_shape)
    select = ProposalSelector(rpn, [len(s) for s in scores], img_shape, "cpu")
    rois, count, exact = select(scores, deltas, anchors)
    n = int(count)
    assert bool(exact) and n == len(expected)
    assert rows(rois[:n, 1:]) == rows(expected[:, :4])
    assert (rois[n:] == 0).all() and (rois[:n, 0] == 0).all()


@torch.no_grad()
def test_detections_are_mmdets(staged, graph_model):
    from mmdet.core import multiclass_nms

    pipe, inputs, features = staged
    plan = inputs.plan
    proposals = plan.steps.proposals(features)
    cls_score, bbox_pred = plan.steps.bbox_forward(proposals.rois)
    n, meta = int(proposals.count), inputs.img_metas[0]
    head, cfg = graph_model.roi_head.bbox_head, graph_model.roi_head.test_cfg
    bboxes, scores = head.get_bboxes(proposals.rois[:n], cls_score[:n], bbox_pred[:n], meta["img_shape"],
                                     meta["scale_factor"], rescale=True, cfg=None)
    expected, expected_labels = multiclass_nms(bboxes, scores, cfg.score_thr, cfg.nms, cfg.max_per_img)

    select = DetectionSelector(head, cfg, meta["img_shape"], plan.scale_factor)
    dets, labels, count, exact = select(proposals.rois, proposals.count, cls_score, bbox_pred)
    m = int(count)
    assert bool(exact) and m == len(expected) == cfg.max_per_img
    assert torch.equal(labels[:m], expected_labels) and torch.allclose(dets[:m], expected)

    # Too few candidates to be sure of the result: said so, never silently wrong.
    few = DetectionSelector(head, cfg, meta["img_shape"], plan.scale_factor, candidates=cfg.max_per_img + 1)
    _, _, count, exact = few(proposals.rois, proposals.count, cls_score, bbox_pred)
    if int(count) < cfg.max_per_img:
        assert not bool(exact)


@pytest.fixture(scope="module")
def stock_astronaut(small_base_model):
    import copy

    from mmdet.apis import inference_detector

    image = resize_to(sample_image("astronaut"), SMALL_SCALE)
    with torch.no_grad():
        return image, Detections.from_mmdet(inference_detector(copy.deepcopy(small_base_model), image), image.shape)


@pytest.mark.slow
@pytest.mark.parametrize("rounds", [16, 1])
def test_graph_pipeline_on_cpu_is_stock(graph_model, stock_astronaut, rounds):
    """The static path (and, with 1 NMS round, the exact fallback it takes then) gives stock's result."""
    image, expected = stock_astronaut
    options = dataclasses.replace(CPU_OPTIONS, nms_rounds=rounds)
    pipe = GraphedPipeline(graph_model, PreprocessSpec.from_config(graph_model.cfg), options)
    got = Detections.from_mmdet(pipe(image), image.shape)
    report = compare(expected, got)
    assert report.matched_fraction == 1.0 and report.mask_iou_mean > 0.999, str(report)
    np.testing.assert_allclose(np.sort(got.scores), np.sort(expected.scores), atol=1e-4)
    assert (pipe.fallbacks > 0) == (rounds == 1)


@pytest.mark.parametrize("classes", [1, 80])
def test_clipping_to_a_device_img_shape_is_mmdets(classes):
    """Plans shared by photo sizes hold img_shape as a tensor; the clip must equal mmdet's, bit for bit."""
    from mmdet.core.bbox.coder import DeltaXYWHBBoxCoder

    from mmdet_opt.graphed.static_post import DeltaDecoder

    decode = DeltaDecoder(DeltaXYWHBBoxCoder(target_stds=[0.1, 0.1, 0.2, 0.2]), "cpu")
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(50, 2, generator=g) * 300
    rois = torch.cat([xy, xy + torch.rand(50, 2, generator=g) * 200], 1)
    deltas = torch.randn(50, 4 * classes, generator=g) * 2
    expected = decode(rois, deltas, (256, 341, 3))
    assert torch.equal(decode(rois, deltas, torch.tensor([256.0, 341.0])), expected)
    assert (expected[:, 0::2] == 341).any() and (expected == 0).any()  # both bounds were reached


def stacked(per_image: list) -> list:
    """Per-image lists of per-level tensors -> per level, the images stacked along dimension 0."""
    return [torch.stack(level) for level in zip(*per_image)]


@torch.no_grad()
def test_one_batched_proposal_selection_is_each_image_alone(staged, graph_model):
    """Equal scores included (rounded to one decimal): the batched sort breaks ties as each image's own."""
    _, _, (_, scores, deltas, anchors) = staged
    noise = torch.Generator().manual_seed(0)
    images = [(scores, deltas, anchors),
              ([s.round(decimals=1) for s in scores], deltas, anchors),
              ([s.flip(0) for s in scores], [d + 0.05 * torch.randn(d.shape, generator=noise) for d in deltas],
               anchors)]
    img_shapes = torch.tensor([[192.0, 320.0], [180.0, 300.0], [192.0, 256.0]])
    rpn, sizes = graph_model.rpn_head, [len(s) for s in scores]
    batched = ProposalSelector(rpn, sizes, img_shapes, "cpu")(*(stacked(part) for part in zip(*images)))
    for b, image in enumerate(images):
        alone = ProposalSelector(rpn, sizes, img_shapes[b], "cpu")(*image)
        assert int(alone[1]) > 0
        for got, want in zip(batched, alone, strict=True):
            assert torch.equal(got[b], want)


@torch.no_grad()
def test_one_batched_detection_selection_is_each_image_alone(staged, graph_model):
    _, inputs, features = staged
    proposals = inputs.plan.steps.proposals(features)
    cls_score, bbox_pred = inputs.plan.steps.bbox_forward(proposals.rois)
    head, cfg = graph_model.roi_head.bbox_head, graph_model.roi_head.test_cfg
    rois = torch.stack([proposals.rois] * 3)
    counts = torch.stack([proposals.count, proposals.count // 2, proposals.count])
    cls_scores = torch.stack([cls_score, cls_score * 2, cls_score.round()])  # the last with equal scores
    deltas = torch.stack([bbox_pred, bbox_pred * 0.5, bbox_pred])
    img_shapes = torch.tensor([[192.0, 320.0], [150.0, 300.0], [192.0, 256.0]])
    scale_factors = torch.tensor([[1.0] * 4, [2.0] * 4, [0.5, 0.6, 0.5, 0.6]])
    batched = DetectionSelector(head, cfg, img_shapes, scale_factors)(rois, counts, cls_scores, deltas)
    for b in range(3):
        alone = DetectionSelector(head, cfg, img_shapes[b], scale_factors[b])(rois[b], counts[b], cls_scores[b],
                                                                               deltas[b])
        assert int(alone[2]) > 0
        for got, want in zip(batched, alone, strict=True):
            assert torch.equal(got[b], want)
