"""``GraphedPipeline``: the stages of Mask R-CNN over a bounded cache of per-shape plans."""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

import numpy as np
import torch

from ..gpu_preprocess import PreprocessSpec
from ..inputs import prepare_image
from ..pipeline import Inputs, MaskForward, StagedPipeline, roi_results
from ..raw_mask_head import boxes_by_class, group_by_class
from .callers import CallerLock, serialised
from .feature_net import FeatureNet
from .input_plan import HostStaging, InputPlan
from .options import GraphOptions
from .plan import Features, NetworkPlan, Proposals, batch_results, fill_rois, mmdet_detections, run_steps
from .plan_cache import ShapePlans


class StaleInputs(ValueError):
    """A stage was handed a photo's inputs after another thread ran a photo through the same plan."""


@dataclass
class PlannedInputs(Inputs):
    plan: NetworkPlan  # the buffers and steps of this image's network input shape
    ticket: tuple[int, int] = (0, 0)  # (thread, call number) of the preprocess that filled them

    def held_plan(self) -> NetworkPlan:
        """The plan whose buffers hold this photo; StaleInputs where another thread's photo has taken
        them since (within one thread, a photo's stages follow its preprocess as ever)."""
        holder = self.plan.holder
        if holder is None:
            raise StaleInputs("these inputs' network plan has been dropped from the cache since they were "
                              "preprocessed (options.max_plans); preprocess again, or call the pipeline whole")
        if holder != self.ticket and holder[0] != self.ticket[0]:
            raise StaleInputs("another thread has run a photo through this network plan since these inputs were "
                              "preprocessed: its buffers hold that photo now; preprocess again, or call the "
                              "pipeline whole")
        return self.plan


class StudyStages:
    """The study's stage methods (``pipeline.Stages``) as a thin layer over a plan's step table;
    ``GraphedPipeline`` supplies ``lock``, ``preprocess`` and ``_settle``."""

    @serialised
    @torch.no_grad()
    def backbone(self, inputs: PlannedInputs) -> Features:
        """The features step: backbone, FPN, RPN convs, per-level top-k, canvas fill."""
        return inputs.held_plan().steps.features(inputs.img)

    @serialised
    @torch.no_grad()
    def rpn_head(self, feats: Features, inputs: PlannedInputs) -> Proposals:
        """The proposals step: static proposal selection."""
        return inputs.held_plan().steps.proposals(feats)

    @serialised
    @torch.no_grad()
    def bbox_head(self, feats, proposals: Proposals, inputs: PlannedInputs):
        """The bbox_forward and detections steps (box head, static NMS), or mmdet's where not exact."""
        boxes, labels = self._detect(feats, proposals, inputs)[0]
        return boxes.clone(), labels.clone()  # the caller's: the static outputs are the next photo's

    @serialised
    @torch.no_grad()
    def roi_head(self, feats, proposals: Proposals, inputs: PlannedInputs):
        """The bbox_forward, detections and mask_forward steps, as mmdet results."""
        return mmdet_results(self, feats, inputs, *self._detect(feats, proposals, inputs, masks=True))

    @serialised
    @torch.no_grad()
    def mask_forward(self, feats, det_bboxes, inputs: PlannedInputs) -> MaskForward:
        """The mask_forward step over ``det_bboxes``."""
        plan = inputs.held_plan()
        scale_factor = plan.scale_factor[0]  # the photo's (a plan of batch 1)
        boxes = det_bboxes[:, :4] * scale_factor
        n = fill_rois(plan.mask_rois, boxes)
        mask_pred, _ = plan.steps.mask_forward(plan.mask_rois, plan.mask_labels)
        # The caller's copies: the static buffers are the next photo's.
        return MaskForward(mask_pred[:n].clone(), boxes, scale_factor.clone())

    def _detect(self, feats, proposals: Proposals, inputs: PlannedInputs, masks: bool = False):
        """The box head and static NMS (with ``masks``, the mask head queued before the host sync);
        ``_settle``'s result."""
        steps = inputs.held_plan().steps
        dets = steps.detections(proposals, steps.bbox_forward(proposals.rois))
        mask_outputs = steps.mask_forward(dets.mask_rois, dets.mask_labels) if masks else None
        return self._settle(feats, proposals, dets, inputs, mask_outputs)


class GraphedPipeline(StudyStages):
    """Mask R-CNN from a uint8 image to raw masks, with the stage methods of ``pipeline.Stages``.

    The host waits once per photo, for the result. Where a static step cannot vouch for its result
    (rare), mmdet's own code redoes the RoI part and ``fallbacks`` counts it. Every public method
    runs under ``lock`` (callers.py); a photo's stages raise ``StaleInputs`` where another thread's
    photo has taken its plan's buffers since its ``preprocess``.
    """

    def __init__(self, model, spec: PreprocessSpec, options: GraphOptions | None = None):
        options = options or GraphOptions()
        self.model, self.spec, self.options = model, spec, options
        self.device = next(model.parameters()).device
        if options.needs_cuda and self.device.type != "cuda":
            raise ValueError(f"graph options {options} need CUDA; on {self.device} use options.eager_fp32()")
        self.net = FeatureNet(model, options).eval()
        self.eager = StagedPipeline(model, preprocess=None)  # mmdet's own steps, for the fallback
        self.mask_post = self.eager.mask_post
        self.fallbacks = 0
        self.lock = CallerLock(self.device)
        self._calls = itertools.count(1)
        self.shapes = plan_cache(model, self.net, spec, options, self.device)
        if options.pad_to_scale and options.plans_ahead:
            self.shapes.plan_ahead()

    @serialised
    def plan_ahead(self, batch: int = 1, after_each=None) -> int:
        """Build both boxes' network plans for ``batch`` photos now (``pad_to_scale`` only;
        ``ShapePlans.plan_ahead``, calling ``after_each()`` after each). Returns the batch size built:
        ``batch``, or ``options.max_batch``, the most ``detect_batch`` runs at a time."""
        if not isinstance(batch, int) or batch < 1:
            raise ValueError(f"plan_ahead: batch is a number of images (at least 1), not {batch!r}")
        built = min(batch, self.options.max_batch)
        self.shapes.plan_ahead(after_each, built)
        return built

    @serialised
    def network_shape(self, h: int, w: int) -> tuple[int, int]:
        """The padded (H, W) an (h, w) photo runs at: ``detect_batch`` batches the photos of one shape."""
        return self.shapes.network_shape(h, w)

    @serialised
    def plan(self, h: int, w: int) -> InputPlan:
        """The plan of an (h, w) photo: built on its first call, kept while recently used."""
        return self.shapes.photo(h, w)

    @serialised
    @torch.no_grad()
    def preprocess(self, image: np.ndarray) -> PlannedInputs:
        image = prepare_image(image, self.model.cfg)  # the front door every variant shares
        h, w = image.shape[:2]
        # The plan of batch 1 (the photo is its slot 0) first: an eviction it makes frees the photo
        # sizes that wrote only into the evicted plan before this photo's buffers are allocated.
        network = self.shapes.plan(self.shapes.network_shape(h, w))
        photo = self.plan(h, w)
        img = photo.preprocess(image, network)
        metas = dict(photo.metas, batch_input_shape=tuple(img.shape[-2:]))
        network.holder = ticket = (threading.get_ident(), next(self._calls))
        return PlannedInputs(img, [metas], network, ticket)

    @serialised
    @torch.no_grad()
    def __call__(self, image: np.ndarray):
        """One photo through every step of its plan of batch 1, in order; mmdet's (bbox_results, segm_results)."""
        inputs = self.preprocess(image)  # InputPlan: upload, exact resize, normalise, pad
        features, proposals, dets, masks = run_steps(inputs.plan)
        return mmdet_results(self, features, inputs, *self._settle(features, proposals, dets, inputs, masks))

    def _settle(self, feats, proposals: Proposals, dets, inputs: PlannedInputs, mask_outputs):
        """The one host sync: ((boxes, labels), mask_outputs) where proposals and NMS were exact,
        else mmdet's detections and None (``fallbacks`` counts them)."""
        count, exact = torch.stack([dets.count, (dets.exact & proposals.exact).long()]).tolist()
        if not exact:
            self.fallbacks += 1
            return mmdet_detections(self.model, inputs.plan, feats, inputs.img_metas[0]), None
        return (dets.boxes[:count], dets.labels[:count]), mask_outputs

    @serialised
    def detect_batch(self, images: list, plan_batch: int | None = None) -> list:
        """mmdet-style results for ``images``, run as batches of the photos that pad to one network
        shape (at most ``options.max_batch`` at a time), each through the network plan of its size.
        ``plan_batch``: batches of at most that many, each in the plan of ``plan_batch`` photos (one built
        ahead, say: no new graphs), a short one with spare slots whose results are dropped; a photo alone
        in its shape still runs the single-photo path."""
        images = [prepare_image(image, self.model.cfg) for image in images]
        largest = self.options.max_batch
        if plan_batch is not None and not (isinstance(plan_batch, int) and 1 <= plan_batch <= largest):
            raise ValueError(f"plan_batch is a batch size of 1 to max_batch ({self.options.max_batch}), "
                             f"not {plan_batch!r}")
        results = [None] * len(images)
        for pad, chunk in self.shapes.batches_of(images, plan_batch or self.options.max_batch):
            slots = plan_batch if plan_batch and len(chunk) > 1 else len(chunk)  # one photo: its own path
            for i, out in zip(chunk, run_in_plan(self, pad, [images[i] for i in chunk], slots)):
                results[i] = out
        return results


def run_in_plan(pipeline: GraphedPipeline, pad: tuple[int, int], images: list, slots: int) -> list:
    """Photos that pad to ``pad`` through the pipeline's plan of ``slots`` photos, each preprocessed into
    its slot by its photo size's InputPlan (a slot the size has written before where one is free:
    ``slots_for``; the spare ones keep what they held); a photo in a plan of one, or one a static step
    could not vouch for (rare: mmdet's code then decides), runs the single-image path."""
    if slots == 1:
        return [pipeline(images[0])]
    shapes = pipeline.shapes
    plan = shapes.plan(pad, slots)
    photo_in_slot = shapes.slots_for([image.shape[:2] for image in images], plan)
    slot_of = {i: slot for slot, i in enumerate(photo_in_slot) if i is not None}
    with torch.no_grad():
        for i, slot in slot_of.items():
            shapes.photo(*images[i].shape[:2]).preprocess(images[i], plan, slot)
        by_slot = batch_results(plan, set(slot_of.values()) if len(slot_of) < slots else None)
    outputs = [by_slot[slot_of[i]] for i in range(len(images))]
    return [pipeline(image) if out is None else out for image, out in zip(images, outputs)]


def plan_cache(model, net, spec, options: GraphOptions, device) -> ShapePlans:
    """The network plans (by shape and batch size) and photo sizes of a pipeline; all their graphs share
    one memory pool (they are replayed one at a time)."""
    pool = torch.cuda.graph_pool_handle() if options.graphs else None
    staging = HostStaging(pinned=device.type == "cuda", capacity=3 * options.upload_pixels)
    return ShapePlans(lambda pad_h, pad_w, n: NetworkPlan(model, net, spec, options, pad_h, pad_w, n, pool),
                      lambda h, w, pad: InputPlan(spec, options, h, w, pad, device, staging, pool), spec, options)


def mmdet_results(pipeline: GraphedPipeline, feats, inputs: PlannedInputs, detections, mask_outputs):
    """mmdet's (bbox_results, segm_results); masks of mmdet's own detections after a fallback."""
    boxes, labels = detections
    if mask_outputs is None:
        return roi_results(pipeline, feats, boxes, labels, inputs)
    labels = labels.cpu().numpy()
    num_classes = pipeline.model.roi_head.bbox_head.num_classes
    probs = mask_outputs[1][: len(labels)]
    return (boxes_by_class(boxes.cpu().numpy(), labels, num_classes),
            group_by_class(probs.float().cpu().numpy(), labels, num_classes))
