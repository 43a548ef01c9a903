"""One input shape's plan: the static buffers, and the steps that read and write them.

Every step has a fixed-size signature, so with ``options.graphs`` each is captured once as a CUDA
graph and replayed; otherwise the same methods run eagerly. The steps, in replay order:

    preprocess(image)                     -> normalized           uint8 upload, normalise, pad
    features(normalized)                  -> Features             backbone, FPN, RPN convs, top-k
    proposals(features)                   -> Proposals            static proposal selection
    bbox_forward(rois)                    -> (cls_score, deltas)  over all ``max_proposals`` rows
    detections(proposals, bbox_out)       -> Detections           score threshold + static NMS
    mask_forward(mask_rois, mask_labels)  -> (mask_pred, probs)   over all ``max_detections`` rows
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from ..gpu_preprocess import image_metas, mean_std, normalize_pad, resizer
from ..raw_mask_head import raw_class_masks
from .capture import CapturedCall, capture_flags
from .fused import mask_head_forward
from .level_canvas import LevelCanvas
from .static_post import DetectionSelector, ProposalSelector


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


class ShapePlan:
    """Buffers and steps for (h, w) images; see the module docstring for the steps."""

    def __init__(self, model, net, spec, options, h: int, w: int):
        dev = next(model.parameters()).device
        self.model, self.net, self.spec = model, net, spec
        self.metas = image_metas(spec, h, w)
        pad_h, pad_w, _ = self.metas["pad_shape"]
        self.staging = torch.empty((h, w, 3), dtype=torch.uint8, pin_memory=dev.type == "cuda")
        self.image = torch.zeros((h, w, 3), dtype=torch.uint8, device=dev)
        self.normalized = torch.empty((1, 3, pad_h, pad_w), device=dev)
        self.stats = mean_std(spec, dev)  # small tables uploaded now: a capture forbids copies
        self.resize = resizer(spec, h, w, dev)
        prior_generator = model.rpn_head.prior_generator
        sizes = [(-(-pad_h // sh), -(-pad_w // sw)) for sw, sh in prior_generator.strides]
        self.anchors = prior_generator.grid_priors(sizes, device=dev)
        self.level_ids = [torch.full((net.kept_per_level(len(a)),), i, dtype=torch.long, device=dev)
                          for i, a in enumerate(self.anchors)]
        roi_head = model.roi_head
        extractor = roi_head.bbox_roi_extractor
        self.canvas = LevelCanvas(sizes[: extractor.num_inputs], extractor.featmap_strides, extractor.out_channels, dev)
        self.rois = torch.zeros((model.rpn_head.test_cfg.max_per_img, 5), device=dev)
        self.roi_count = torch.zeros((), dtype=torch.long, device=dev)
        max_detections = roi_head.test_cfg.max_per_img
        self.mask_rois = torch.zeros((max_detections, 5), device=dev)
        self.mask_labels = torch.zeros((max_detections,), dtype=torch.long, device=dev)
        self.scale_factor = torch.from_numpy(self.metas["scale_factor"]).to(dev)
        img_shape = self.metas["img_shape"]
        self.select_proposals = ProposalSelector(model.rpn_head, [len(i) for i in self.level_ids], img_shape, dev,
                                                 options.nms_rounds)
        self.select_detections = DetectionSelector(roi_head.bbox_head, roi_head.test_cfg, img_shape,
                                                   self.scale_factor, rounds=options.nms_rounds)
        if options.graphs:
            self._capture(options)

    def _capture(self, options) -> None:
        """Each step becomes the replay of its graph, with the same signature."""
        with capture_flags(options):
            pre = CapturedCall(self._normalize)
            # All graphs replay in capture order, so they can share one memory pool.
            pool = pre.graph.pool()
            features = CapturedCall(self.features, pre.outputs, pool=pool)
            proposals = CapturedCall(self.proposals, features.outputs, pool=pool)
            bbox = CapturedCall(self.bbox_forward, proposals.outputs.rois, pool=pool)
            detections = CapturedCall(self.detections, proposals.outputs, bbox.outputs, pool=pool)
            masks = CapturedCall(self.mask_forward, self.mask_rois, self.mask_labels, pool=pool)
        self._normalize, self.features, self.proposals = pre, features, proposals
        self.bbox_forward, self.detections, self.mask_forward = bbox, detections, masks

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """(h, w, 3) uint8 BGR -> (1, 3, H_pad, W_pad) normalised; one pinned host-to-device copy."""
        self.staging.copy_(torch.from_numpy(image))
        self.image.copy_(self.staging, non_blocking=True)
        return self._normalize()

    def _normalize(self) -> torch.Tensor:
        return normalize_pad(self.spec, self.image.permute(2, 0, 1), self.metas, out=self.normalized, stats=self.stats,
                             resize=self.resize)

    def features(self, normalized: torch.Tensor) -> Features:
        features = Features(*self.net(normalized, self.anchors))
        # mmcv's RoIAlign reads its input as NCHW whatever its strides, and needs fp32 (fed fp16
        # features it drops parity to ~0.87 mean mask IoU): the canvas is both.
        self.canvas.fill(features.levels)
        return features

    def proposals(self, features: Features) -> Proposals:
        selected, count, exact = self.select_proposals(features.scores, features.deltas, features.anchors)
        self.rois.copy_(selected)
        self.roi_count.copy_(count)
        return Proposals(self.rois, self.roi_count, exact)

    def bbox_forward(self, rois: torch.Tensor):
        roi_head = self.model.roi_head
        return roi_head.bbox_head(self.canvas.extract(roi_head.bbox_roi_extractor, rois))

    def detections(self, proposals: Proposals, bbox_out) -> Detections:
        boxes, labels, count, exact = self.select_detections(proposals.rois, proposals.count, *bbox_out)
        self.mask_rois[:, 1:].copy_(boxes[:, :4] * self.scale_factor)  # padding rows stay zero boxes
        self.mask_labels.copy_(labels)
        return Detections(boxes, labels, count, exact, self.mask_rois, self.mask_labels)

    def mask_forward(self, mask_rois: torch.Tensor, mask_labels: torch.Tensor):
        mask_head = self.model.roi_head.mask_head
        mask_pred = mask_head_forward(mask_head, self.canvas.extract(self.model.roi_head.mask_roi_extractor, mask_rois))
        return mask_pred, raw_class_masks(mask_pred, mask_labels, mask_head.class_agnostic)
