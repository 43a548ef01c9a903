"""``FCNMaskHeadWithRawMask``: a mask head that returns each detection's 28x28 probabilities.

Stock ``FCNMaskHead.get_seg_masks`` pastes every detection into a full-image mask, which costs
N x H x W work and memory (112 ms for 100 masks at 3840x2304 on an H200). This head returns the
model's raw output instead: for detection i, ``sigmoid(mask_pred[i, label_i])`` as a 28x28 float
array, grouped by class like stock's result. ``mmdet_opt.paste`` turns them into pixels on demand.

Usable from a config, as in the original study::

    custom_imports = dict(imports=["mmdet_opt.raw_mask_head"], allow_failed_imports=False)
    model = dict(roi_head=dict(mask_head=dict(type="FCNMaskHeadWithRawMask")))
"""
from __future__ import annotations

import numpy as np
import torch
from mmdet.models.builder import HEADS
from mmdet.models.roi_heads.mask_heads.fcn_mask_head import FCNMaskHead


def raw_class_masks(mask_pred: torch.Tensor, labels: torch.Tensor, class_agnostic: bool) -> torch.Tensor:
    """(N, h, w) probabilities of each detection's own class channel (the channel picked first:
    the sigmoid of the other classes' logits would be thrown away)."""
    if class_agnostic:
        return mask_pred[:, 0].sigmoid()
    return mask_pred[torch.arange(len(mask_pred), device=mask_pred.device), labels].sigmoid()


def boxes_by_class(boxes: np.ndarray, labels: np.ndarray, num_classes: int) -> list:
    """mmdet's ``bbox2result`` on numpy arrays with one stable sort instead of a comparison per
    class (0.24 ms of host time per image, after the GPU is done): per class its (n, 5) boxes, in
    detection order. Plain slices: ``np.split`` costs 0.18 ms for 80 classes, slicing 0.05."""
    order = np.argsort(labels, kind="stable")
    ends = np.cumsum(np.bincount(labels, minlength=num_classes)).tolist()
    grouped = boxes[order]
    return [grouped[start:end] for start, end in zip([0] + ends[:-1], ends)]


def group_by_class(masks, labels, num_classes: int) -> list:
    """Per-class lists of masks, each class's in detection order (mmdet's segm_results layout)."""
    per_class = [[] for _ in range(num_classes)]
    for mask, label in zip(masks, labels):
        per_class[label].append(mask)
    return per_class


@HEADS.register_module()
class FCNMaskHeadWithRawMask(FCNMaskHead):
    def get_seg_masks(self, mask_pred, det_bboxes, det_labels, rcnn_test_cfg,
                      ori_shape, scale_factor, rescale):
        """Per-class lists of (28, 28) float32 probability arrays, in detection order."""
        if not isinstance(mask_pred, torch.Tensor):  # aug test hands in activated numpy arrays
            raise NotImplementedError("FCNMaskHeadWithRawMask supports single-scale testing only")
        masks = raw_class_masks(mask_pred, det_labels, self.class_agnostic).float().cpu().numpy()
        return group_by_class(masks, det_labels.tolist(), self.num_classes)
