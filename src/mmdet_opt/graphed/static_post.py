"""mmdet's proposal selection and detection post-processing over fixed-size tensors.

``RPNHead._bbox_post_process`` and ``BBoxHead.get_bboxes`` + ``multiclass_nms`` return as many
rows as survive, so the host has to wait for each before launching what follows. These selectors
compute the same things into zero-padded tensors of a fixed size plus a count, with no host
synchronisation: they can be captured in a CUDA graph. Each returns an ``exact`` flag (0-dim bool
tensor); where it is False (NMS did not converge in the rounds given, or the candidate cut-off
could have changed the result) the caller must redo the step with mmdet's own code.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from .static_nms import GreedyNms, first_kept, max_coordinate, offset_by_group

# Rounds of the NMS fixed-point iteration (static_nms); docs/perf-log.md has the rounds measured.
NMS_ROUNDS = 16
# DeltaXYWHBBoxCoder.decode's default, which the RPN and bbox heads decode with.
WH_RATIO_CLIP = 16 / 1000


class DeltaDecoder:
    """``DeltaXYWHBBoxCoder.decode`` with its means / stds already on the device.

    mmdet's ``delta2bbox`` builds them with ``new_tensor`` from Python lists, a host-to-device copy
    that graph capture forbids; handed device tensors, the same function copies on the device.
    """

    def __init__(self, coder, device):
        from mmdet.core.bbox.coder import DeltaXYWHBBoxCoder

        if type(coder) is not DeltaXYWHBBoxCoder:
            raise NotImplementedError(f"static post-processing supports DeltaXYWHBBoxCoder, not {type(coder).__name__}")
        self.coder = coder
        self.means = torch.tensor(coder.means, dtype=torch.float32, device=device)
        self.stds = torch.tensor(coder.stds, dtype=torch.float32, device=device)

    def __call__(self, rois, deltas, max_shape):
        """``max_shape``: (h, w, ...) as mmdet takes it, or a device tensor (h, w) that a captured
        graph reads at replay (mmdet's clamp would turn it into a Python number: a host sync).
        Batched: ``rois`` (B, N, 4), ``deltas`` (B, N, 4k) and ``max_shape`` a (B, 2) tensor."""
        from mmdet.core.bbox.coder.delta_xywh_bbox_coder import delta2bbox

        c = self.coder
        on_device = torch.is_tensor(max_shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # new_tensor(tensor) advises clone()
            boxes = delta2bbox(rois.reshape(-1, 4), deltas.reshape(-1, deltas.shape[-1]), self.means, self.stds,
                               None if on_device else max_shape, WH_RATIO_CLIP, c.clip_border, c.add_ctr_clamp,
                               c.ctr_clamp)
        boxes = boxes.view(*deltas.shape[:-1], -1)
        if on_device and c.clip_border:  # mmdet's clamp(min=0, max=w or h), with the bounds on the device
            lead = max_shape.shape[:-1]
            limit = max_shape[..., :2].flip(-1).repeat(*(1,) * len(lead), boxes.shape[-1] // 2)  # w, h, w, h, ...
            boxes = torch.minimum(boxes.clamp(min=0), limit.view(*lead, *(1,) * (boxes.dim() - len(lead) - 1), -1))
        return boxes


def take(values: torch.Tensor, index: torch.Tensor, batched: bool) -> torch.Tensor:
    """``values[index]``; batched, per image: ``values[b][index[b]]`` for each b of dimension 0."""
    if not batched:
        return values[index]
    image = torch.arange(len(index), device=index.device).view(-1, *(1,) * (index.dim() - 1))
    return values[image, index]


def _plain_nms_threshold(nms_cfg) -> float:
    cfg = dict(nms_cfg)
    if cfg.pop("type", "nms") != "nms" or cfg.pop("class_agnostic", False) or cfg.get("offset", 0) != 0:
        raise NotImplementedError(f"static post-processing supports plain per-class NMS, not {nms_cfg}")
    return float(cfg["iou_threshold"])


class ProposalSelector:
    """``RPNHead._bbox_post_process`` for one image shape: (max_per_img, 5) RoIs, count, exact.

    NMS runs per FPN level (mmcv's batched NMS offsets the levels apart, so boxes of two levels
    never suppress each other): L blocks of nms_pre x nms_pre instead of one (L x nms_pre)^2
    matrix. Inside each block boxes keep the order of mmcv's own sort of all scores, so that
    equal scores (the sigmoid saturates at 1.0) are broken the same way as far as the sort allows.

    Batched (``img_shape`` a (B, 2) tensor, per-level inputs with a leading image dimension): every
    output has that dimension too; each image is selected as it would be alone, in one chain of kernels.
    """

    def __init__(self, rpn_head, level_sizes: list[int], img_shape, device, rounds: int = NMS_ROUNDS,
                 matrix_kernel: bool = False, greedy_kernel: bool = False):
        cfg = rpn_head.test_cfg
        self.decode = DeltaDecoder(rpn_head.bbox_coder, device)
        self.nms = GreedyNms(_plain_nms_threshold(cfg.nms), rounds, matrix_kernel, greedy_kernel)
        self.min_bbox_size = cfg.get("min_bbox_size", -1)
        self.max_per_img = cfg.max_per_img
        self.img_shape = img_shape
        self.level = torch.cat([torch.full((n,), i) for i, n in enumerate(level_sizes)]).to(device)
        self.block_shape = (len(level_sizes), max(level_sizes))
        self.level_numbers = torch.arange(len(level_sizes), device=device)

    def __call__(self, scores: list, deltas: list, anchors: list):
        scores, deltas, anchors = torch.cat(scores, -1), torch.cat(deltas, -2), torch.cat(anchors, -2)
        lead, n, dev = scores.shape[:-1], scores.shape[-1], scores.device
        batched = bool(lead)
        proposals = self.decode(anchors, deltas, self.img_shape)
        valid = scores >= 0  # an anchor outside its image's extent scores -1 (feature_net.rpn_top_k)
        if self.min_bbox_size >= 0:
            wh = proposals[..., 2:] - proposals[..., :2]
            valid &= (wh > self.min_bbox_size).all(-1)
        # Each box's slot: its level's block, its rank among that level's boxes in mmcv's order.
        order = scores.masked_fill(~valid, float("-inf")).sort(descending=True)[1]  # mmcv's own call
        level = self.level[order]
        # Scanned along the inner dimension: along the 5000-long outer one it is slow (docs/options.md).
        in_level = level[..., None, :] == self.level_numbers[:, None]
        rank = in_level.long().cumsum(-1).gather(-2, level[..., None, :]).squeeze(-2) - 1
        slots = torch.full((*lead, *self.block_shape), n, dtype=torch.long, device=dev)
        image = (torch.arange(len(order), device=dev)[:, None].expand_as(level),) if batched else ()
        slots[(*image, level, rank)] = order  # slots no box fills point one past the end
        filled = slots < n
        slots = slots.clamp(max=n - 1)
        shifted = offset_by_group(take(proposals, slots, batched), self.level[slots],
                                  max_coordinate(proposals, valid))
        keep_blocks, converged = self.nms(shifted, take(valid, slots, batched) & filled, len(lead))
        keep = torch.zeros((*lead, n + 1), dtype=torch.bool, device=dev)
        keep.scatter_(-1, torch.where(filled, slots, n).flatten(-2), keep_blocks.flatten(-2))
        keep = keep[..., :n]
        # mmcv lists kept boxes by descending score across levels; mmdet keeps the first max_per_img.
        first, count = first_kept(keep.gather(-1, order), self.max_per_img)
        ranked = order.gather(-1, first)
        present = torch.arange(ranked.shape[-1], device=dev) < count[..., None]
        rois = torch.cat([proposals.new_zeros(*ranked.shape, 1), take(proposals, ranked, batched)], -1)
        return rois * present[..., None], count, converged


class DetectionSelector:
    """``BBoxHead.get_bboxes(rescale=True)`` + ``multiclass_nms`` over zero-padded RoIs.

    NMS runs over the ``candidates`` best-scoring (box, class) pairs above ``score_thr``. Greedy NMS
    decides each box from higher-scoring ones only, so the first ``max_per_img`` kept are mmdet's
    whenever that many are kept among the candidates, or all pairs above the threshold are
    candidates; ``exact`` is False otherwise.
    """

    def __init__(self, bbox_head, rcnn_cfg, img_shape, scale_factor: torch.Tensor, candidates: int = 1000,
                 rounds: int = NMS_ROUNDS, matrix_kernel: bool = False, greedy_kernel: bool = False):
        if bbox_head.custom_cls_channels or bbox_head.reg_class_agnostic:
            raise NotImplementedError("static post-processing supports softmax, class-specific box heads")
        self.decode = DeltaDecoder(bbox_head.bbox_coder, scale_factor.device)
        self.nms = GreedyNms(_plain_nms_threshold(rcnn_cfg.nms), rounds, matrix_kernel, greedy_kernel)
        self.score_thr = rcnn_cfg.score_thr
        self.max_per_img = rcnn_cfg.max_per_img
        self.img_shape = img_shape
        self.scale_factor = scale_factor
        self.candidates = candidates

    def __call__(self, rois, roi_count, cls_score, bbox_pred):
        """Alone: rois (n, 5), a 0-dim count, (n, C + 1) scores, (n, 4C) deltas. Batched (the
        selector made with (B, 2) / (B, 4) ``img_shape`` / ``scale_factor``): each with a leading
        image dimension, and the outputs too."""
        lead, n, dev = rois.shape[:-2], rois.shape[-2], rois.device
        scores = F.softmax(cls_score, dim=-1)
        bboxes = self.decode(rois[..., 1:], bbox_pred, self.img_shape)
        bboxes = (bboxes.view(*lead, n, -1, 4) / self.scale_factor.view(*lead, 1, 1, 4)).view(*lead, n, -1)
        num_classes = scores.shape[-1] - 1
        real = torch.arange(n, device=dev) < roi_count[..., None]
        pair_scores = scores[..., :-1].masked_fill(~real[..., None], -1.0).reshape(*lead, -1)
        pair_boxes = bboxes.view(*lead, -1, 4)
        above = pair_scores > self.score_thr
        top, index = pair_scores.topk(min(self.candidates, pair_scores.shape[-1]))
        labels, boxes, valid = index % num_classes, take(pair_boxes, index, bool(lead)), top > self.score_thr
        shifted = offset_by_group(boxes, labels, max_coordinate(pair_boxes, above))
        keep, converged = self.nms(shifted, valid, len(lead))
        chosen, count = first_kept(keep, self.max_per_img)
        exact = converged & ((keep.sum(-1) >= self.max_per_img) | (above.sum(-1) <= top.shape[-1]))
        present = (torch.arange(self.max_per_img, device=dev) < count[..., None])[..., None]
        dets = torch.cat([take(boxes, chosen, bool(lead)), top.gather(-1, chosen)[..., None]], -1) * present
        return dets, labels.gather(-1, chosen), count, exact
