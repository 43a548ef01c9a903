"""Mask R-CNN inference as the study's stages, each runnable (and timeable) on its own.

    pre-processing -> backbone -> rpn_head -> roi_head (= bbox head + mask forward + mask post-processing)

Each stage takes the previous stage's outputs, and running them in sequence gives exactly what
``mmdet.apis.inference_detector`` gives. All stages after pre-processing run in the autocast scope
``BaseDetector.forward`` opens for an fp16-wrapped model, so staged fp16 timing matches real fp16.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from .inputs import prepare_image

PRE, BACKBONE, RPN, ROI, MASK_FORWARD, MASK_POST = (
    "pre-processing", "backbone", "rpn_head", "roi_head", "mask forward", "mask post-processing")
STAGES = (PRE, BACKBONE, RPN, ROI, MASK_FORWARD, MASK_POST)
TOTAL = "total"
# total, then what users ask for: full-image masks on the host (what stock returns), or COCO RLE.
# Raw-mask variants paste on the device here; stock already holds full masks.
TOTAL_MASKS, TOTAL_RLE = "total+masks", "total+rle"
OUTPUT_STAGES = (TOTAL, TOTAL_MASKS, TOTAL_RLE)


@dataclass
class Inputs:
    img: torch.Tensor  # (1, 3, H_pad, W_pad) on the model's device
    img_metas: list


@dataclass
class MaskForward:
    mask_pred: torch.Tensor  # (N, C, 28, 28) logits
    boxes: torch.Tensor  # (N, 4) boxes in test-scale pixels, as the RoIs were taken
    scale_factor: torch.Tensor  # (4,) test scale / original scale


class StagedPipeline:
    """Stages of one detector; ``preprocess`` is the variant's input preparation.

    It keeps nothing between calls (each stage's outputs are new tensors), so any number of threads
    may call one at once.
    """

    def __init__(self, model, preprocess, fp16: bool = False):
        self.model = model
        self.device = next(model.parameters()).device
        self._preprocess = preprocess
        self.fp16 = fp16

    def autocast(self):
        if not self.fp16:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=torch.float16)

    @torch.no_grad()
    def preprocess(self, image: np.ndarray) -> Inputs:
        # The same front door for every variant: bad input fails here, before any model work.
        image = prepare_image(image, self.model.cfg)
        img, img_metas = self._preprocess(self.model, image, self.device)
        for meta in img_metas:  # BaseDetector.forward_test adds this
            meta["batch_input_shape"] = tuple(img.shape[-2:])
        return Inputs(img, img_metas)

    @torch.no_grad()
    def backbone(self, inputs: Inputs):
        img = inputs.img.half() if self.fp16 else inputs.img  # auto_fp16(apply_to=('img',))
        with self.autocast():
            return self.model.extract_feat(img)

    @torch.no_grad()
    def rpn_head(self, feats, inputs: Inputs):
        with self.autocast():
            return self.model.rpn_head.simple_test_rpn(feats, inputs.img_metas)

    @torch.no_grad()
    def bbox_head(self, feats, proposals, inputs: Inputs):
        roi_head = self.model.roi_head
        with self.autocast():
            det_bboxes, det_labels = roi_head.simple_test_bboxes(
                feats, inputs.img_metas, proposals, roi_head.test_cfg, rescale=True)
        return det_bboxes[0], det_labels[0]

    @torch.no_grad()
    def mask_forward(self, feats, det_bboxes, inputs: Inputs) -> MaskForward:
        from mmdet.core import bbox2roi

        scale_factor = torch.from_numpy(inputs.img_metas[0]["scale_factor"]).to(det_bboxes.device)
        boxes = det_bboxes[:, :4] * scale_factor
        with self.autocast():
            mask_pred = self.model.roi_head._mask_forward(feats, bbox2roi([boxes]))["mask_pred"]
        return MaskForward(mask_pred, boxes, scale_factor)

    @torch.no_grad()
    def mask_post(self, masks: MaskForward, det_labels, inputs: Inputs):
        roi_head, meta = self.model.roi_head, inputs.img_metas[0]
        with self.autocast():
            return roi_head.mask_head.get_seg_masks(
                masks.mask_pred, masks.boxes, det_labels, roi_head.test_cfg,
                meta["ori_shape"], masks.scale_factor, True)

    @torch.no_grad()
    def roi_head(self, feats, proposals, inputs: Inputs):
        """``(bbox_results, segm_results)`` as ``StandardRoIHead.simple_test`` returns for one image."""
        return roi_results(self, feats, *self.bbox_head(feats, proposals, inputs), inputs)

    def __call__(self, image: np.ndarray):
        inputs = self.preprocess(image)
        feats = self.backbone(inputs)
        proposals = self.rpn_head(feats, inputs)
        return self.roi_head(feats, proposals, inputs)


class Stages(Protocol):
    """What the timing and parity code needs of a pipeline: the study's stages, each from the last's outputs."""

    def preprocess(self, image: np.ndarray) -> Inputs: ...
    def backbone(self, inputs: Inputs): ...
    def rpn_head(self, feats, inputs: Inputs): ...
    def bbox_head(self, feats, proposals, inputs: Inputs): ...
    def roi_head(self, feats, proposals, inputs: Inputs): ...
    def mask_forward(self, feats, det_bboxes, inputs: Inputs) -> MaskForward: ...
    def mask_post(self, masks: MaskForward, det_labels, inputs: Inputs): ...
    def __call__(self, image: np.ndarray): ...


def roi_results(stages: Stages, feats, det_bboxes, det_labels, inputs: Inputs):
    """mmdet's result lists from the bbox head's detections: boxes by class, then the masks."""
    from mmdet.core import bbox2result

    roi_head = stages.model.roi_head
    bbox_results = bbox2result(det_bboxes, det_labels, roi_head.bbox_head.num_classes)
    if det_bboxes.shape[0] == 0:
        return bbox_results, [[] for _ in range(roi_head.mask_head.num_classes)]
    masks = stages.mask_forward(feats, det_bboxes, inputs)
    return bbox_results, stages.mask_post(masks, det_labels, inputs)


def stage_calls(pipeline: Stages, image: np.ndarray) -> dict:
    """For each stage (and ``total``) a no-argument callable that runs just that stage.

    Earlier stages run once here, untimed, so each callable re-runs its own stage from the
    previous stage's real outputs.
    """
    from .paste import coco_rles, full_image_masks, mask_threshold

    inputs = pipeline.preprocess(image)
    device, threshold = inputs.img.device, mask_threshold(pipeline.model)
    feats = pipeline.backbone(inputs)
    proposals = pipeline.rpn_head(feats, inputs)
    det_bboxes, det_labels = pipeline.bbox_head(feats, proposals, inputs)
    calls = {
        PRE: lambda: pipeline.preprocess(image),
        BACKBONE: lambda: pipeline.backbone(inputs),
        RPN: lambda: pipeline.rpn_head(feats, inputs),
        ROI: lambda: pipeline.roi_head(feats, proposals, inputs),
        TOTAL: lambda: pipeline(image),
        TOTAL_MASKS: lambda: full_image_masks(pipeline(image), image.shape, device, threshold),
        TOTAL_RLE: lambda: coco_rles(pipeline(image), image.shape, device, threshold),
    }
    if len(det_bboxes):  # no detections, no mask stages
        masks = pipeline.mask_forward(feats, det_bboxes, inputs)
        calls[MASK_FORWARD] = lambda: pipeline.mask_forward(feats, det_bboxes, inputs)
        calls[MASK_POST] = lambda: pipeline.mask_post(masks, det_labels, inputs)
    return calls
