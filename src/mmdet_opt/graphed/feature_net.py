"""Backbone + FPN + RPN head convolutions + the RPN's per-level top-k: the static-shape front."""
from __future__ import annotations

import copy

import torch
from mmcv.runner.fp16_utils import patch_norm_fp32
from torch import nn

from .bias_pass import wrap_bias_pass
from .extent import ExtentMask, no_mask
from .fused import FusedResNet, fold_batchnorm, fpn_forward, half_mask_head, rpn_head_forward
from .max_pool import MaxPoolPass
from .options import GraphOptions


class FeatureNet(nn.Module):
    """Image -> (FPN levels, and per level the RPN's top-k scores, deltas and anchors).

    It holds the pipeline's own copies of the convolutional parts, in the precision and layout
    its options say, the mask head's too (``mask_head``, which the plans' mask step runs): the
    model the pipeline was given is left as it was, whichever options another pipeline over it has.
    """

    def __init__(self, model, options: GraphOptions):
        super().__init__()
        self.dtype = torch.float16 if options.fp16_backbone else torch.float32
        self.head_dtype = torch.float16 if options.fp16_heads else torch.float32
        if options.float64_on_cpu and next(model.parameters()).device.type == "cpu":
            self.dtype = self.head_dtype = torch.float64  # position-independent sums (GraphOptions)
        self.fused = options.fused_convs
        backbone = copy.deepcopy(model.backbone)
        if options.fold_batchnorm:
            backbone = fold_batchnorm(backbone)
        # The fused kernels take a conv's bias in place of its BatchNorm: only for a folded backbone.
        self.backbone = FusedResNet(backbone, self.fused and options.fold_batchnorm).to(self.dtype)
        if not options.fold_batchnorm and self.dtype == torch.float16:
            patch_norm_fp32(self.backbone)  # fp32 statistics on fp16 activations, as mmcv's fp16 runs them
        if options.fp16_layers is not None:
            self.backbone.keep_float32_from(options.fp16_layers)
        self.neck = copy.deepcopy(model.neck).to(self.head_dtype)
        self.rpn_head = copy.deepcopy(model.rpn_head).to(self.head_dtype)
        self.mask_head = copy.deepcopy(model.roi_head.mask_head) if model.roi_head.with_mask else None
        if options.fp16_mask_head and self.mask_head is not None:  # its convolutions; the logits stay fp32
            if not self.fused:
                raise ValueError("fp16_mask_head runs in the fused mask head: it needs fused_convs")
            half_mask_head(self.mask_head)
        self.bias_pass = options.bias_pass
        if self.bias_pass:
            self._bias_passes()
        if options.max_pool_kernel and isinstance(getattr(backbone, "maxpool", None), nn.MaxPool2d):
            backbone.maxpool = MaxPoolPass(backbone.maxpool)
        self.nms_pre = model.rpn_head.test_cfg.get("nms_pre", -1)
        self.channels_last = options.channels_last
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    def _bias_passes(self) -> None:
        """The convolutions that no cuDNN kernel here fuses with their bias add it in one vectorised
        pass (bias_pass.py): the backbone's downsampling, the FPN's outputs, the RPN's two 1x1 heads,
        the mask head's logits and its deconvolution, with the ReLU after it."""
        downsamples = [getattr(m, "downsample", None) for m in self.backbone.modules()]
        places = [(d, "0") for d in downsamples if isinstance(d, nn.Sequential) and isinstance(d[0], nn.Conv2d)]
        fpn_convs = getattr(self.neck, "fpn_convs", [])
        places += [(m, "conv") if hasattr(m, "conv") else (fpn_convs, str(i)) for i, m in enumerate(fpn_convs)]
        places += [(self.rpn_head, name) for name in ("rpn_cls", "rpn_reg")]
        head = self.mask_head
        if head is not None:
            places.append((head, "conv_logits"))
            if head.upsample_method == "deconv" and isinstance(head.upsample, nn.ConvTranspose2d):
                wrap_bias_pass(head, "upsample", relu=True)
                head.relu = nn.Identity()  # FCNMaskHead applies it after the deconvolution only
        for parent, name in places:
            if isinstance(getattr(parent, name, None), (nn.Conv2d, nn.ConvTranspose2d)):
                wrap_bias_pass(parent, name)

    def kept_per_level(self, level_size: int) -> int:
        """How many of a level's anchors the top-k keeps (``nms_pre``)."""
        return kept_per_level(level_size, self.nms_pre)

    def forward(self, img: torch.Tensor, anchors: list, extents: torch.Tensor | None = None):
        """FPN levels, and (scores, deltas, anchors) lists with per level the RPN's top-k of each image
        along a leading image dimension. With ``extents`` ((B, 2) long: each photo's padded height and
        width, where ``img`` is larger), each layer sees an image as stock sees it padded to its extent
        (extent.py), and only the anchors inside the extent are ranked (the others score -1, after
        every real one)."""
        feats, *top_k = self._top_k(img, anchors, extents)
        return feats, top_k

    def _top_k(self, img: torch.Tensor, anchors: list, extents: torch.Tensor | None):
        mask = no_mask if extents is None else ExtentMask(extents, tuple(img.shape[-2:]))
        feats, cls_scores, bbox_preds = self.convolutions(img, mask)
        inside = None if extents is None else [mask.inside(*c.shape[-2:]) for c in cls_scores]
        return (feats, *rpn_top_k(cls_scores, bbox_preds, anchors, self.nms_pre, inside))

    def backbone_stages(self, img: torch.Tensor, mask=no_mask) -> tuple:
        """The backbone's output stages, in its dtype and layout."""
        layout = torch.channels_last if self.channels_last else torch.preserve_format
        return self.backbone(img.to(self.dtype, memory_format=layout), mask)  # one pass

    def fpn_levels(self, stages, mask=no_mask) -> tuple:
        return fpn_forward(self.neck, [f.to(self.head_dtype) for f in stages], mask, self.bias_pass)

    def convolutions(self, img: torch.Tensor, mask=no_mask):
        """FPN levels, and the RPN head's objectness and deltas per level."""
        feats = self.fpn_levels(self.backbone_stages(img, mask), mask)
        return (feats, *rpn_head_forward(self.rpn_head, feats, self.fused, mask))


def kept_per_level(level_size: int, nms_pre: int) -> int:
    """How many of a level's anchors the RPN's top-k keeps (``nms_pre``, or all when it is not set)."""
    return min(level_size, nms_pre) if nms_pre > 0 else level_size


# Up to 20 rows, PyTorch's CUDA top-k takes the path it takes for one row at every level size (its
# multi-block radix select starts at 20000 elements up to 20 rows, at fewer for more rows), and its
# in-place sort of each row's k values depends on k alone: so each row gets its selection alone.
TOP_K_ROWS = 20


def rpn_top_k(cls_scores: list, bbox_preds: list, anchors: list, nms_pre: int, inside: list | None = None):
    """RPNHead._get_bboxes_single's per-level ranking, for every image of a batch at once: per level,
    (B, k) scores sorted descending (the NMS after it wants that order), (B, k, 4) deltas and the
    anchors they belong to; k is ``nms_pre`` or the whole level, so every shape is static.

    ``inside``: per level a (B, 1, H, W) bool mask of the positions inside each image's extent
    (extent.py); the anchors outside score -1, below every sigmoid, and so come last."""
    scores, deltas, kept_anchors = [], [], []
    for level, (cls, reg, anc) in enumerate(zip(cls_scores, bbox_preds, anchors)):
        images = len(cls)
        score = cls.permute(0, 2, 3, 1).reshape(images, -1)
        # fp16 logits in fp32; fp64 ones (GraphOptions.float64_on_cpu) in fp64, where the CPU's
        # vectorised sigmoid and the scalar one of a tensor's last elements agree once rounded.
        score = score.to(torch.promote_types(score.dtype, torch.float32)).sigmoid().float()
        if inside is not None:
            valid = inside[level].permute(0, 2, 3, 1).expand(-1, -1, -1, cls.shape[1]).reshape(images, -1)
            score = score.masked_fill(~valid, -1.0)
        delta = reg.permute(0, 2, 3, 1).reshape(images, -1, 4).float()
        k = kept_per_level(score.shape[1], nms_pre)
        if images <= TOP_K_ROWS:
            score, order = score.topk(k)
        else:
            parts = [rows.topk(k) for rows in score.split(TOP_K_ROWS)]
            score, order = torch.cat([p.values for p in parts]), torch.cat([p.indices for p in parts])
        scores.append(score)
        deltas.append(delta.gather(1, order.unsqueeze(-1).expand(-1, -1, 4)))
        kept_anchors.append(anc[order])
    return scores, deltas, kept_anchors
