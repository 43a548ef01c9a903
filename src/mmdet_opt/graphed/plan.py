"""One network input shape's plan: the static buffers, and the steps that read and write them.

A plan is keyed by the padded shape the network sees, not by the photo's size: every photo that
resizes and pads to it (all 4:3 photos, say) shares its graphs, and only adds an ``InputPlan``
(its upload buffer and exact resize, input_plan.py). Every step has a fixed-size signature; callers
reach them through ``plan.steps`` (capture.Steps), which with ``options.graphs`` replays each
step's CUDA graph, else runs the method eagerly. The steps, in replay order:

    InputPlan.preprocess(image)           -> normalized           uint8 upload, resize, normalise, pad
    features(normalized)                  -> Features             backbone, FPN, RPN convs, top-k
    proposals(features)                   -> Proposals            static proposal selection
    bbox_forward(rois)                    -> (cls_score, deltas)  over all ``max_proposals`` rows
    detections(proposals, bbox_out)       -> Detections           score threshold + static NMS
    mask_forward(mask_rois, mask_labels)  -> (mask_pred, probs)   over all ``max_detections`` rows
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from ..gpu_preprocess import mean_std
from ..raw_mask_head import raw_class_masks
from .capture import Steps, capture_flags
from .fused import mask_head_forward
from .level_canvas import LevelCanvas, reads_half
from .static_post import DetectionSelector, ProposalSelector

# The network steps of a plan (NetworkPlan, BatchPlan), in replay order.
STEPS = ("features", "proposals", "bbox_forward", "detections", "mask_forward")


class Features(NamedTuple):
    levels: list  # FPN feature maps
    scores: list  # per level, the RPN's top-k objectness, descending
    deltas: list  # per level, their box deltas
    anchors: list  # per level, their anchors


class Proposals(NamedTuple):
    rois: torch.Tensor  # (max_proposals, 5), zero-padded
    count: torch.Tensor  # how many rows are proposals
    exact: torch.Tensor  # 0-dim bool: the selection is exactly mmdet's


class Detections(NamedTuple):
    boxes: torch.Tensor  # (max_detections, 5) x1, y1, x2, y2, score in original-image pixels, zero-padded
    labels: torch.Tensor
    count: torch.Tensor
    exact: torch.Tensor
    mask_rois: torch.Tensor  # (max_detections, 5): the boxes in test-scale pixels, for the mask head
    mask_labels: torch.Tensor


def fill_rois(rois: torch.Tensor, boxes: torch.Tensor) -> int:
    """Write ``boxes`` into the zero-padded (max, 5) RoI buffer a step reads; return how many."""
    rois.zero_()
    rois[: len(boxes), 1:] = boxes
    return len(boxes)


class NetworkPlan:
    """Buffers and steps for network inputs padded to (pad_h, pad_w); see the module docstring.

    ``img_shape`` and ``scale_factor`` differ between the photos that share a plan: they are device
    buffers that each photo's preprocessing step writes, read by the steps that clip and rescale.
    The graphs of every plan share ``pool`` (replayed one at a time, so their scratch memory can
    be the same); a step's outputs stay valid until the next image is run.
    """

    def __init__(self, model, net, spec, options, pad_h: int, pad_w: int, pool=None):
        dev = next(model.parameters()).device
        self.model, self.net, self.spec, self.options, self.pool = model, net, spec, options, pool
        self.device = dev
        self.pad_shape = (pad_h, pad_w)
        self.normalized = torch.zeros((1, 3, pad_h, pad_w), device=dev)
        self.img_shape = torch.tensor([pad_h, pad_w], dtype=torch.float32, device=dev)  # (h, w) resized
        self.scale_factor = torch.ones(4, dtype=torch.float32, device=dev)
        # With pad_to_scale, photos pad to less than this shape: each writes its own extent here.
        self.extents = torch.tensor([[pad_h, pad_w]], device=dev) if options.pad_to_scale else None
        self.stats = mean_std(spec, dev)  # small tables uploaded now: a capture forbids copies
        self.anchors, self.canvas = anchors_and_canvas(model, pad_h, pad_w, dev,
                                                       fp16_canvas=options.fp16_canvas and options.fp16_heads)
        self.level_ids = [torch.full((net.kept_per_level(len(a)),), i, dtype=torch.long, device=dev)
                          for i, a in enumerate(self.anchors)]
        roi_head = model.roi_head
        self.rois = torch.zeros((model.rpn_head.test_cfg.max_per_img, 5), device=dev)
        self.roi_count = torch.zeros((), dtype=torch.long, device=dev)
        max_detections = roi_head.test_cfg.max_per_img
        self.mask_rois = torch.zeros((max_detections, 5), device=dev)
        self.mask_labels = torch.zeros((max_detections,), dtype=torch.long, device=dev)
        self.select_proposals = ProposalSelector(model.rpn_head, [len(i) for i in self.level_ids], self.img_shape,
                                                 dev, options.nms_rounds)
        self.select_detections = DetectionSelector(roi_head.bbox_head, roi_head.test_cfg, self.img_shape,
                                                   self.scale_factor, rounds=options.nms_rounds)
        self.holder = None  # (thread, call) whose photo the buffers hold (GraphedPipeline.preprocess)
        self.steps = Steps.of(self, STEPS)
        if options.graphs:
            capture_steps(self, options, pool)

    def release(self) -> None:
        self.steps.release()
        self.holder = None  # evicted: no photo's inputs are good here any more

    def features(self, normalized: torch.Tensor) -> Features:
        features = Features(*self.net(normalized, self.anchors, self.extents))
        self.canvas.fill(features.levels, self.extents)
        return features

    def proposals(self, features: Features) -> Proposals:
        selected, count, exact = self.select_proposals(features.scores, features.deltas, features.anchors)
        self.rois.copy_(selected)
        self.roi_count.copy_(count)
        return Proposals(self.rois, self.roi_count, exact)

    def bbox_forward(self, rois: torch.Tensor):
        return bbox_head_forward(self.model, self.canvas, rois)

    def detections(self, proposals: Proposals, bbox_out) -> Detections:
        boxes, labels, count, exact = self.select_detections(proposals.rois, proposals.count, *bbox_out)
        self.mask_rois[:, 1:].copy_(boxes[:, :4] * self.scale_factor)  # padding rows stay zero boxes
        self.mask_labels.copy_(labels)
        return Detections(boxes, labels, count, exact, self.mask_rois, self.mask_labels)

    def mask_forward(self, mask_rois: torch.Tensor, mask_labels: torch.Tensor):
        return masks_forward(self.model, self.net, self.canvas, mask_rois, mask_labels)


def anchors_and_canvas(model, pad_h: int, pad_w: int, device, batch: int = 1, fp16_canvas: bool = False):
    """The RPN's anchors per level for a (pad_h, pad_w) input, and a LevelCanvas for ``batch`` images.

    The canvas is fp16 (``fp16_canvas``: GraphOptions' fp16_canvas and fp16_heads) where it holds the
    FPN's fp16 levels exactly and both RoI extractors can read it (level_canvas.reads_half); else fp32.
    """
    prior_generator = model.rpn_head.prior_generator
    sizes = [(-(-pad_h // sh), -(-pad_w // sw)) for sw, sh in prior_generator.strides]
    roi_head = model.roi_head
    extractor = roi_head.bbox_roi_extractor
    half = fp16_canvas and torch.device(device).type == "cuda" \
        and reads_half(extractor) and (not roi_head.with_mask or reads_half(roi_head.mask_roi_extractor))
    canvas = LevelCanvas(sizes[: extractor.num_inputs], extractor.featmap_strides, extractor.out_channels, device,
                         batch, half, row_copy=True)
    return prior_generator.grid_priors(sizes, device=device), canvas


def capture_steps(plan, options, pool) -> None:
    """Capture each step of ``plan.steps`` (NetworkPlan, BatchPlan): a step's outputs are the next
    one's captured inputs; the first reads ``normalized``, the mask step ``mask_rois``/``mask_labels``."""
    steps = plan.steps
    with capture_flags(options.tf32):
        kw = dict(pool=pool, warmup=options.warmup_calls)
        features = steps.capture("features", plan.normalized, **kw)
        proposals = steps.capture("proposals", features.outputs, **kw)
        bbox = steps.capture("bbox_forward", proposals.outputs[0], **kw)  # the RoIs
        steps.capture("detections", proposals.outputs, bbox.outputs, **kw)
        steps.capture("mask_forward", plan.mask_rois, plan.mask_labels, **kw)


def bbox_head_forward(model, canvas: LevelCanvas, rois: torch.Tensor):
    """(cls_score, bbox_pred) of the bbox head over ``rois``, read from the filled canvas."""
    roi_head = model.roi_head
    return roi_head.bbox_head(canvas.extract(roi_head.bbox_roi_extractor, rois))


def masks_forward(model, net, canvas: LevelCanvas, mask_rois: torch.Tensor, mask_labels: torch.Tensor):
    """(mask_pred, own-class 28x28 probabilities) of the pipeline's mask head (``net.mask_head``,
    feature_net.FeatureNet) over ``mask_rois``."""
    mask_head = net.mask_head
    mask_pred = mask_head_forward(mask_head, canvas.extract(model.roi_head.mask_roi_extractor, mask_rois), net.fused)
    return mask_pred, raw_class_masks(mask_pred, mask_labels, mask_head.class_agnostic)


def mmdet_detections(model, plan: NetworkPlan, feats: Features, meta: dict):
    """mmdet's own proposal selection, box decoding and multiclass NMS for the image of ``meta``
    (exact, with host syncs): what the pipeline falls back to where a static step is not."""
    from mmdet.core import multiclass_nms

    rpn = model.rpn_head
    inside = [s >= 0 for s in feats.scores]  # anchors past the photo's extent score -1 (pad_to_scale)
    proposals = rpn._bbox_post_process([s[i] for s, i in zip(feats.scores, inside)],
                                       [d[i] for d, i in zip(feats.deltas, inside)],
                                       [a[i] for a, i in zip(feats.anchors, inside)],
                                       [n[i] for n, i in zip(plan.level_ids, inside)], rpn.test_cfg,
                                       meta["img_shape"])
    n = fill_rois(plan.rois, proposals[:, :4])
    cls_score, bbox_pred = plan.steps.bbox_forward(plan.rois)
    bbox_head, cfg = model.roi_head.bbox_head, model.roi_head.test_cfg
    bboxes, scores = bbox_head.get_bboxes(plan.rois[:n], cls_score[:n], bbox_pred[:n], meta["img_shape"],
                                          meta["scale_factor"], rescale=True, cfg=None)
    return multiclass_nms(bboxes, scores, cfg.score_thr, cfg.nms, cfg.max_per_img)
