"""Backbone + FPN + RPN head convolutions + the RPN's per-level top-k: the static-shape front."""
from __future__ import annotations

import copy

import torch
from mmcv.runner.fp16_utils import patch_norm_fp32
from torch import nn

from .fused import FusedResNet, fold_batchnorm, fpn_forward, rpn_head_forward
from .options import GraphOptions


class FeatureNet(nn.Module):
    """Image -> (FPN levels, and per level the RPN's top-k scores, deltas and anchors)."""

    def __init__(self, model, options: GraphOptions):
        super().__init__()
        self.dtype = torch.float16 if options.fp16_backbone else torch.float32
        self.head_dtype = torch.float16 if options.fp16_heads else torch.float32
        self.fused = options.fused_convs
        backbone = copy.deepcopy(model.backbone)
        if options.fold_batchnorm:
            backbone = fold_batchnorm(backbone)
        # The fused kernels take a conv's bias in place of its BatchNorm: only for a folded backbone.
        self.backbone = FusedResNet(backbone, self.fused and options.fold_batchnorm).to(self.dtype)
        if not options.fold_batchnorm:
            patch_norm_fp32(self.backbone)  # fp32 statistics on fp16 activations, as mmcv's fp16 runs them
        if options.fp16_layers is not None:
            self.backbone.keep_float32_from(options.fp16_layers)
        self.neck = copy.deepcopy(model.neck).to(self.head_dtype)
        self.rpn_head = copy.deepcopy(model.rpn_head).to(self.head_dtype)
        self.nms_pre = model.rpn_head.test_cfg.get("nms_pre", -1)
        self.channels_last = options.channels_last
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    def kept_per_level(self, level_size: int) -> int:
        """How many of a level's anchors the top-k keeps (``nms_pre``)."""
        return min(level_size, self.nms_pre) if self.nms_pre > 0 else level_size

    def forward(self, img: torch.Tensor, anchors: list):
        feats, cls_scores, bbox_preds = self.convolutions(img)
        return (feats, *self.top_k(cls_scores, bbox_preds, anchors))

    def forward_batch(self, img: torch.Tensor, anchors: list):
        """``forward`` over a batch: FPN levels for all images, then (scores, deltas, anchors) lists
        with per level the images' top-k stacked along a leading image dimension, each image ranked
        as ``forward`` ranks one."""
        feats, cls_scores, bbox_preds = self.convolutions(img)
        per_image = [self.top_k([c[b:b + 1] for c in cls_scores], [r[b:b + 1] for r in bbox_preds], anchors)
                     for b in range(len(img))]
        return feats, [[torch.stack(level) for level in zip(*part)] for part in zip(*per_image)]

    def backbone_stages(self, img: torch.Tensor) -> tuple:
        """The backbone's output stages, in its dtype and layout."""
        x = img.to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.backbone(x)

    def fpn_levels(self, stages) -> tuple:
        return fpn_forward(self.neck, [f.to(self.head_dtype) for f in stages])

    def convolutions(self, img: torch.Tensor):
        """FPN levels, and the RPN head's objectness and deltas per level."""
        feats = self.fpn_levels(self.backbone_stages(img))
        return (feats, *rpn_head_forward(self.rpn_head, feats, self.fused))

    def top_k(self, cls_scores: list, bbox_preds: list, anchors: list):
        """RPNHead._get_bboxes_single's per-level ranking of image 0, which has static shapes; every
        level comes out sorted by descending score (the NMS after it wants that order)."""
        scores, deltas, kept_anchors = [], [], []
        for cls, reg, anc in zip(cls_scores, bbox_preds, anchors):
            score = cls[0].permute(1, 2, 0).reshape(-1).float().sigmoid()
            delta = reg[0].permute(1, 2, 0).reshape(-1, 4).float()
            score, order = score.topk(self.kept_per_level(score.numel()))
            scores.append(score)
            deltas.append(delta[order])
            kept_anchors.append(anc[order])
        return scores, deltas, kept_anchors
