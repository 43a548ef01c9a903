"""N photos of one network shape through one set of graphs: a real batch.

The backbone, FPN and RPN convolutions run at batch N. Proposal selection and the detections'
NMS run per image over static shapes, inside the same graphs. The RoI heads run once over every
image's RoIs: column 0 of a RoI is its image's index into the batched LevelCanvas. Each photo
keeps its own ``img_shape`` and ``scale_factor`` (a slot of the plan's buffers), so photos of
different sizes that pad to the same shape share a batch. The steps (``plan.steps``), in replay order:

    load(slot, image)                     eager: upload, exact resize, normalise into the slot
    features(normalized)                  -> (levels, per image: scores, deltas, anchors)
    proposals(features)                   -> (N*P, 5) RoIs, counts (N,), exact (N,)
    bbox_forward(rois)                    -> (cls_score, deltas) over N*P rows
    detections(proposals, bbox_out)       -> per image boxes, labels, count, exact; mask RoIs
    mask_forward(mask_rois, mask_labels)  -> (mask_pred, probs) over N*D rows

``GraphedPipeline.detect_batch`` runs each group of photos of one network shape as such a batch.
"""
from __future__ import annotations

import numpy as np
import torch

from ..gpu_preprocess import mean_std, normalize_pad, resizer
from ..raw_mask_head import boxes_by_class, group_by_class
from .capture import Steps
from .input_plan import photo_metas
from .plan import STEPS, anchors_and_canvas, bbox_head_forward, capture_steps, masks_forward
from .plan_cache import LRUCache
from .static_post import DetectionSelector, ProposalSelector


class BatchPlan:
    """Buffers and steps for ``batch`` images padded to (pad_h, pad_w); see the module docstring."""

    def __init__(self, model, net, spec, options, pad_h: int, pad_w: int, batch: int, pool=None):
        dev = next(model.parameters()).device
        self.model, self.net, self.spec, self.device, self.batch = model, net, spec, dev, batch
        self.pad_shape = (pad_h, pad_w)
        self.normalize_kernel = options.normalize_kernel
        self.normalized = torch.zeros((batch, 3, pad_h, pad_w), device=dev)
        self.img_shapes = torch.tensor([[pad_h, pad_w]] * batch, dtype=torch.float32, device=dev)
        self.scale_factors = torch.ones((batch, 4), dtype=torch.float32, device=dev)
        self.extents = torch.tensor([[pad_h, pad_w]] * batch, device=dev) if options.pad_to_scale else None
        self.stats = mean_std(spec, dev)
        self.resizers = LRUCache(options.max_photo_sizes)  # by photo size
        self.anchors, self.canvas = anchors_and_canvas(model, pad_h, pad_w, dev, batch,
                                                       fp16_canvas=options.fp16_canvas and options.fp16_heads)
        level_sizes = [net.kept_per_level(len(a)) for a in self.anchors]
        roi_head = model.roi_head
        self.per_image_rois = model.rpn_head.test_cfg.max_per_img
        self.per_image_dets = roi_head.test_cfg.max_per_img
        self.rois = torch.zeros((batch * self.per_image_rois, 5), device=dev)
        self.roi_counts = torch.zeros((batch,), dtype=torch.long, device=dev)
        self.mask_rois = torch.zeros((batch * self.per_image_dets, 5), device=dev)
        self.mask_labels = torch.zeros((batch * self.per_image_dets,), dtype=torch.long, device=dev)
        # Column 0 of each image's RoIs and mask RoIs: its index into the canvas (made before any capture).
        index = torch.arange(batch, device=dev, dtype=torch.float32)
        self.roi_images = index.repeat_interleave(self.per_image_rois)
        self.mask_roi_images = index.repeat_interleave(self.per_image_dets)
        # One selector for the whole batch: one chain of small kernels, not one per image.
        self.select_proposals = ProposalSelector(model.rpn_head, level_sizes, self.img_shapes, dev,
                                                 options.nms_rounds)
        self.select_detections = DetectionSelector(roi_head.bbox_head, roi_head.test_cfg, self.img_shapes,
                                                   self.scale_factors, rounds=options.nms_rounds)
        self.steps = Steps.of(self, STEPS)
        if options.graphs:
            capture_steps(self, options, pool)

    def release(self) -> None:
        self.steps.release()

    def load(self, slot: int, image: np.ndarray, staging) -> dict:
        """Upload ``image`` and preprocess it into ``slot`` (eagerly); return its img_metas."""
        h, w = image.shape[:2]
        metas, extent = photo_metas(self.spec, h, w, self.pad_shape)
        resize = self.resizers.get((h, w), lambda: resizer(self.spec, h, w, self.device))
        uploaded = torch.empty((h, w, 3), dtype=torch.uint8, device=self.device)
        staging.upload(image, uploaded)
        normalize_pad(self.spec, uploaded.permute(2, 0, 1), metas, out=self.normalized[slot:slot + 1],
                      stats=self.stats, resize=resize, kernel=self.normalize_kernel)
        self.img_shapes[slot].copy_(torch.tensor(metas["img_shape"][:2], dtype=torch.float32))
        self.scale_factors[slot].copy_(torch.from_numpy(metas["scale_factor"]))
        if self.extents is not None:
            self.extents[slot].copy_(torch.tensor(extent))
        return metas

    def features(self, normalized: torch.Tensor):
        levels, top_k = self.net.forward_batch(normalized, self.anchors, self.extents)
        self.canvas.fill(levels, self.extents)
        return levels, top_k

    def proposals(self, features):
        _, (scores, deltas, anchors) = features
        selected, counts, exact = self.select_proposals(scores, deltas, anchors)
        self.rois.view(self.batch, self.per_image_rois, 5).copy_(selected)
        self.roi_counts.copy_(counts)
        self.rois[:, 0].copy_(self.roi_images)
        return self.rois, self.roi_counts, exact

    def bbox_forward(self, rois: torch.Tensor):
        return bbox_head_forward(self.model, self.canvas, rois)

    def detections(self, proposals, bbox_out):
        """Per image boxes (N, D, 5), labels (N, D), counts (N,) and exact (N,); fills the mask RoIs."""
        rois, counts, _ = proposals
        cls_score, bbox_pred = bbox_out
        n, p, d = self.batch, self.per_image_rois, self.per_image_dets
        boxes, labels, counts, exact = self.select_detections(rois.view(n, p, 5), counts, cls_score.view(n, p, -1),
                                                              bbox_pred.view(n, p, -1))
        self.mask_rois.view(n, d, 5)[..., 1:].copy_(boxes[..., :4] * self.scale_factors[:, None, :])
        self.mask_labels.copy_(labels.reshape(-1))
        self.mask_rois[:, 0].copy_(self.mask_roi_images)
        return boxes, labels, counts, exact

    def mask_forward(self, mask_rois: torch.Tensor, mask_labels: torch.Tensor):
        return masks_forward(self.model, self.net, self.canvas, mask_rois, mask_labels)

    def run(self):
        """Every step on the loaded slots; per image an mmdet result, or None where a static step
        could not vouch for its result (the caller redoes that image alone). One host sync."""
        steps = self.steps
        props = steps.proposals(steps.features(self.normalized))
        boxes, labels, counts, exact = steps.detections(props, steps.bbox_forward(props[0]))
        _, probs = steps.mask_forward(self.mask_rois, self.mask_labels)
        counts, exact = torch.stack([counts, (exact & props[2]).long()]).tolist()
        return per_image_results(boxes, labels, probs.view(self.batch, self.per_image_dets, *probs.shape[1:]),
                                 counts, exact, self.model.roi_head.bbox_head.num_classes)


def per_image_results(boxes, labels, probs, counts: list, exact: list, num_classes: int) -> list:
    """mmdet's (bbox_results, segm_results) per image from (N, D, ...) static outputs; None where not exact."""
    boxes, labels, probs = boxes.cpu().numpy(), labels.cpu().numpy(), probs.float().cpu().numpy()
    return [(boxes_by_class(boxes[b, :n], labels[b, :n], num_classes),
             group_by_class(probs[b, :n], labels[b, :n], num_classes)) if ok else None
            for b, (n, ok) in enumerate(zip(counts, exact))]
