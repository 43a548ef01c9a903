"""One network input shape's plan for a batch of N photos: the static buffers, and the steps that read and write them.

A plan is keyed by the padded shape the network sees and its batch size, not by the photos' sizes:
every photo that resizes and pads to it (all 4:3 photos, say) shares its graphs, and only adds an
``InputPlan`` (its upload buffer and exact resize, input_plan.py), which writes the photo into a
slot of the plan's buffers. Every buffer has the images along dimension 0; column 0 of a RoI is its
image's index into the batched LevelCanvas, so the RoI heads run once over every image's RoIs, and
proposal selection and the detections' NMS run per image inside the same graphs. A plan of batch 1
is a photo alone: its steps read image 0's views (``alone``), the single-image shapes.

Every step has a fixed-size signature; callers reach them through ``plan.steps`` (capture.Steps),
which with ``options.graphs`` replays each step's CUDA graph, else runs the method eagerly. The
steps, in replay order (at batch 1 without the leading N):

    InputPlan.preprocess(image, plan, k)  -> normalized           upload, resize, normalise, pad into slot k
    features(normalized)                  -> Features             backbone, FPN, RPN convs, top-k
    proposals(features)                   -> Proposals            (N*P, 5) RoIs, counts (N,), exact (N,)
    bbox_forward(rois)                    -> (cls_score, deltas)  over all N * ``max_proposals`` rows
    detections(proposals, bbox_out)       -> Detections           score threshold + static NMS, per image
    mask_forward(mask_rois, mask_labels)  -> (mask_pred, probs)   over all N * ``max_detections`` rows
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from ..gpu_preprocess import mean_std
from ..raw_mask_head import boxes_by_class, group_by_class, raw_class_masks
from .capture import Steps, capture_flags
from .fused import mask_head_forward
from .input_plan import Slot
from .level_canvas import LevelCanvas, reads_half
from .static_post import DetectionSelector, ProposalSelector

# The network steps of a plan, in replay order.
STEPS = ("features", "proposals", "bbox_forward", "detections", "mask_forward")


class Features(NamedTuple):
    levels: list  # FPN feature maps
    scores: list  # per level, the RPN's top-k objectness, descending (per image: a leading N)
    deltas: list  # per level, their box deltas
    anchors: list  # per level, their anchors


class Proposals(NamedTuple):
    rois: torch.Tensor  # (N * max_proposals, 5), each image's zero-padded
    count: torch.Tensor  # per image, how many of its rows are proposals
    exact: torch.Tensor  # per image, bool: the selection is exactly mmdet's


class Detections(NamedTuple):
    boxes: torch.Tensor  # (N, max_detections, 5) x1, y1, x2, y2, score in original-image pixels, zero-padded
    labels: torch.Tensor
    count: torch.Tensor
    exact: torch.Tensor
    mask_rois: torch.Tensor  # (N * max_detections, 5): the boxes in test-scale pixels, for the mask head
    mask_labels: torch.Tensor


def fill_rois(rois: torch.Tensor, boxes: torch.Tensor) -> int:
    """Write ``boxes`` into the zero-padded (max, 5) RoI buffer a step reads; return how many."""
    rois.zero_()
    rois[: len(boxes), 1:] = boxes
    return len(boxes)


def alone(tensor: torch.Tensor, batch: int) -> torch.Tensor:
    """What the steps read of an (N, ...) buffer: at batch 1 image 0's view, so that a photo alone runs
    the single-image kernels (shapes, sorts and top-k as ever); else the buffer."""
    return tensor[0] if batch == 1 else tensor


class NetworkPlan:
    """Buffers and steps for ``batch`` network inputs padded to (pad_h, pad_w); see the module docstring.

    ``img_shape`` and ``scale_factor`` differ between the photos that share a plan: they are device
    buffers that each photo's preprocessing step writes into its slot (``slot``), read by the steps
    that clip and rescale. The graphs of every plan share ``pool`` (replayed one at a time, so their
    scratch memory can be the same); a step's outputs stay valid until the next batch is run.
    """

    def __init__(self, model, net, spec, options, pad_h: int, pad_w: int, batch: int = 1, pool=None):
        dev = next(model.parameters()).device
        self.model, self.net, self.spec, self.options, self.pool = model, net, spec, options, pool
        self.device, self.batch, self.pad_shape = dev, batch, (pad_h, pad_w)
        self.normalized = torch.zeros((batch, 3, pad_h, pad_w), device=dev)
        self.img_shape = torch.tensor([[pad_h, pad_w]] * batch, dtype=torch.float32, device=dev)  # (h, w) resized
        self.scale_factor = torch.ones((batch, 4), dtype=torch.float32, device=dev)
        # With pad_to_scale, photos pad to less than this shape: each writes its own extent here.
        self.extents = torch.tensor([[pad_h, pad_w]] * batch, device=dev) if options.pad_to_scale else None
        self.stats = mean_std(spec, dev)  # small tables uploaded now: a capture forbids copies
        self.anchors, self.canvas = anchors_and_canvas(model, pad_h, pad_w, dev, batch,
                                                       fp16_canvas=options.fp16_canvas and options.fp16_heads)
        self.level_ids = [torch.full((net.kept_per_level(len(a)),), i, dtype=torch.long, device=dev)
                          for i, a in enumerate(self.anchors)]
        roi_head = model.roi_head
        self.per_image_rois, self.per_image_dets = model.rpn_head.test_cfg.max_per_img, roi_head.test_cfg.max_per_img
        self.rois = torch.zeros((batch * self.per_image_rois, 5), device=dev)
        self.roi_count = torch.zeros((batch,), dtype=torch.long, device=dev)
        self.mask_rois = torch.zeros((batch * self.per_image_dets, 5), device=dev)
        self.mask_labels = torch.zeros((batch * self.per_image_dets,), dtype=torch.long, device=dev)
        # Column 0 of each image's RoIs and mask RoIs: its index into the canvas (made before any capture).
        index = torch.arange(batch, device=dev, dtype=torch.float32)
        self.roi_images, self.mask_roi_images = (index.repeat_interleave(n) for n in (self.per_image_rois,
                                                                                      self.per_image_dets))
        # One selector for the whole batch: one chain of small kernels, not one per image.
        nms = dict(rounds=options.nms_rounds, matrix_kernel=options.nms_kernel,
                   greedy_kernel=options.nms_greedy_kernel)
        self.select_proposals = ProposalSelector(model.rpn_head, [len(i) for i in self.level_ids],
                                                 alone(self.img_shape, batch), dev, **nms)
        self.select_detections = DetectionSelector(roi_head.bbox_head, roi_head.test_cfg, alone(self.img_shape, batch),
                                                   alone(self.scale_factor, batch), **nms)
        self.holder = None  # (thread, call) whose photo the buffers hold (GraphedPipeline.preprocess)
        self.steps = Steps.of(self, STEPS)
        if options.graphs:
            capture_steps(self, options, pool)

    def release(self) -> None:
        self.steps.release()
        self.holder = None  # evicted: no photo's inputs are good here any more

    def slot(self, k: int) -> Slot:
        """Photo k's part of the buffers, which its InputPlan writes; at batch 1 ``normalized`` itself,
        the object the features step was captured with."""
        extent = None if self.extents is None else self.extents[k:k + 1]
        normalized = self.normalized if self.batch == 1 else self.normalized[k:k + 1]
        return Slot(normalized, self.img_shape[k], self.scale_factor[k], extent, self.stats)

    def features(self, normalized: torch.Tensor) -> Features:
        levels, top_k = self.net(normalized, self.anchors, self.extents)
        self.canvas.fill(levels, self.extents)
        return Features(levels, *([alone(t, self.batch) for t in per_level] for per_level in top_k))

    def proposals(self, features: Features) -> Proposals:
        selected, count, exact = self.select_proposals(features.scores, features.deltas, features.anchors)
        self.rois.copy_(selected.view(-1, 5))
        counts = alone(self.roi_count, self.batch)
        counts.copy_(count)
        if self.batch > 1:
            self.rois[:, 0].copy_(self.roi_images)
        return Proposals(self.rois, counts, exact)

    def bbox_forward(self, rois: torch.Tensor):
        return bbox_head_forward(self.model, self.canvas, rois)

    def detections(self, proposals: Proposals, bbox_out) -> Detections:
        n, p, d = self.batch, self.per_image_rois, self.per_image_dets
        boxes, labels, count, exact = self.select_detections(alone(proposals.rois.view(n, p, -1), n), proposals.count,
                                                             *(alone(t.view(n, p, -1), n) for t in bbox_out))
        # Padding rows stay zero boxes.
        scale = alone(self.scale_factor, n)[..., None, :]
        alone(self.mask_rois.view(n, d, 5), n)[..., 1:].copy_(boxes[..., :4] * scale)
        self.mask_labels.copy_(labels.reshape(-1))
        if n > 1:
            self.mask_rois[:, 0].copy_(self.mask_roi_images)
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
                         batch, half)
    return prior_generator.grid_priors(sizes, device=device), canvas


def capture_steps(plan, options, pool) -> None:
    """Capture each step of ``plan.steps`` (NetworkPlan): a step's outputs are the next
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


def run_steps(plan: NetworkPlan):
    """Every step in order on what the plan's slots hold, the mask head queued before any host sync:
    (features, proposals, detections, (mask_pred, probs))."""
    steps = plan.steps
    features = steps.features(plan.normalized)  # backbone, FPN, RPN convs, top-k, canvas fill
    proposals = steps.proposals(features)  # static proposal selection
    dets = steps.detections(proposals, steps.bbox_forward(proposals.rois))  # box head, static NMS
    return features, proposals, dets, steps.mask_forward(dets.mask_rois, dets.mask_labels)


def batch_results(plan: NetworkPlan, slots=None) -> list:
    """Every step on the loaded slots; per image an mmdet result, or None where a static step could not
    vouch for its result (the caller redoes that image alone). One host sync. ``slots``: the slots whose
    results are wanted (default: all); the others give None without being converted."""
    _, proposals, dets, (_, probs) = run_steps(plan)
    counts, exact = torch.stack([dets.count, (dets.exact & proposals.exact).long()]).view(2, -1).tolist()
    if slots is not None:
        exact = [ok and b in slots for b, ok in enumerate(exact)]
    return per_image_results(dets.boxes.view(plan.batch, plan.per_image_dets, 5),
                             dets.labels.view(plan.batch, -1), probs.view(plan.batch, plan.per_image_dets,
                                                                           *probs.shape[1:]),
                             counts, exact, plan.model.roi_head.bbox_head.num_classes)


def per_image_results(boxes, labels, probs, counts: list, exact: list, num_classes: int) -> list:
    """mmdet's (bbox_results, segm_results) per image from (N, D, ...) static outputs; None where not exact."""
    boxes, labels, probs = boxes.cpu().numpy(), labels.cpu().numpy(), probs.float().cpu().numpy()
    return [(boxes_by_class(boxes[b, :n], labels[b, :n], num_classes),
             group_by_class(probs[b, :n], labels[b, :n], num_classes)) if ok else None
            for b, (n, ok) in enumerate(zip(counts, exact))]
