"""``inference_graph``: the GPU-resident fast path.

At batch 1 the GPU mostly waits for Python: kernel launches, host syncs, CPU-side work. This
pipeline replays everything from CUDA graphs captured per input shape, and waits for the host once,
when the result is copied back:

- the uint8 image goes through one pinned staging buffer to the device; normalisation and padding
  run there (``gpu_preprocess.normalize_pad``), replayed from a graph;
- the backbone runs in fp16 with BatchNorm folded into its convs and cuDNN's fused conv+ReLU /
  conv+add+ReLU; FPN and RPN head convs (fp16 too by default, ``fused``) and the RPN's
  per-level top-k follow in the same graph, which copies the FPN levels into one NCHW float32
  canvas (``level_canvas``: mmcv's RoIAlign reads channels_last tensors as NCHW), so each RoI
  extraction is one RoIAlign call;
- proposal selection, the bbox head over 1000 zero-padded RoIs, score threshold + NMS of the
  detections, and the mask head over 100 are graphs too: the steps with data-dependent sizes run
  over fixed-size tensors (``static_post``), and where one cannot vouch for its result the image's
  RoI part is redone eagerly with mmdet's / mmcv's own code;
- masks come back raw (28x28 probabilities), pasted on demand (``paste``).

Stages keep the study's names; here ``backbone`` also covers the RPN head's convolutions (they are
in the same graph) and ``rpn_head`` is proposal selection alone. docs/perf.md has the measurements.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..gpu_preprocess import PreprocessSpec, image_metas, mean_std, normalize_pad
from ..inputs import prepare_image
from ..pipeline import Inputs, MaskForward, StagedPipeline
from ..raw_mask_head import group_by_class, raw_class_masks
from .fused import FusedResNet, fold_batchnorm, fpn_forward, mask_head_forward, rpn_head_forward
from .level_canvas import LevelCanvas
from .static_post import NMS_ROUNDS, DetectionSelector, ProposalSelector


class FeatureNet(nn.Module):
    """Backbone + FPN + RPN head convs + per-level top-k: the static-shape front of Mask R-CNN."""

    def __init__(self, model, dtype: torch.dtype, channels_last: bool, head_dtype: torch.dtype | None = None,
                 fp16_layers: int | None = None):
        super().__init__()
        self.dtype, self.head_dtype = dtype, head_dtype or dtype
        self.backbone = FusedResNet(fold_batchnorm(copy.deepcopy(model.backbone))).to(self.dtype)
        if fp16_layers is not None:
            self.backbone.keep_float32_from(fp16_layers)
        self.neck = copy.deepcopy(model.neck).to(self.head_dtype)
        self.rpn_head = copy.deepcopy(model.rpn_head).to(self.head_dtype)
        self.nms_pre = model.rpn_head.test_cfg.get("nms_pre", -1)
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, img: torch.Tensor, anchors: list):
        x = img.to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        feats = fpn_forward(self.neck, [f.to(self.head_dtype) for f in self.backbone(x)])
        cls_scores, bbox_preds = rpn_head_forward(self.rpn_head, feats)
        # RPNHead._get_bboxes_single's per-level ranking, which has static shapes; every level comes
        # out sorted by descending score (the NMS after it wants that order).
        scores, deltas, kept_anchors = [], [], []
        for cls, reg, anc in zip(cls_scores, bbox_preds, anchors):
            score = cls[0].permute(1, 2, 0).reshape(-1).float().sigmoid()
            delta = reg[0].permute(1, 2, 0).reshape(-1, 4).float()
            keep = min(self.nms_pre, score.numel()) if self.nms_pre > 0 else score.numel()
            score, order = score.topk(keep)
            scores.append(score)
            deltas.append(delta[order])
            kept_anchors.append(anc[order])
        return feats, scores, deltas, kept_anchors


def fill_rois(rois: torch.Tensor, boxes: torch.Tensor) -> int:
    """Write ``boxes`` into the zero-padded (max, 5) RoI buffer a graph reads; return how many."""
    rois.zero_()
    rois[: len(boxes), 1:] = boxes
    return len(boxes)


class CapturedCall:
    """``fn(*inputs)`` captured once as a CUDA graph; calling it replays the graph.

    The inputs are static buffers: write new data into them, then call.
    """

    def __init__(self, fn, *inputs, warmup: int = 3, pool=None):
        for _ in range(warmup):  # lazy initialisation (cuBLAS/cuDNN handles) must not be captured
            fn(*inputs)
        torch.cuda.synchronize()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool):
            self.outputs = fn(*inputs)
        # The graph reads tensors by address: keep alive everything ``fn`` refers to (constants held
        # by closures), or their memory goes back to the allocator and other code overwrites it.
        self.fn = fn
        # Capture computes nothing: replay once so that the outputs hold real values before the
        # next graph's warm-up reads them.
        self.graph.replay()

    def __call__(self):
        self.graph.replay()
        return self.outputs


@contextlib.contextmanager
def matmul_tf32(enabled: bool):
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


@dataclass
class ShapeState:
    """Everything static for one input shape: buffers and the graphs that read and write them."""

    metas: dict
    stats: tuple  # normalisation mean / std on the device, read by the preprocessing graph
    staging: torch.Tensor  # (H, W, 3) uint8, pinned host memory on CUDA
    image: torch.Tensor  # (H, W, 3) uint8 on the device
    normalized: torch.Tensor  # (1, 3, H_pad, W_pad) float32
    anchors: list  # per FPN level
    level_ids: list  # per FPN level, after top-k
    rois: torch.Tensor  # (max proposals, 5) RoIs of the bbox head, zero-padded
    roi_count: torch.Tensor  # how many rows of ``rois`` are proposals
    mask_rois: torch.Tensor  # (max detections, 5) RoIs of the mask head, zero-padded
    mask_labels: torch.Tensor  # (max detections,) class of each mask RoI
    scale_factor: torch.Tensor  # (4,) on the device
    outputs: dict  # what the graphs hand each other: "features", "bbox"
    preprocess: object  # () -> normalized
    features: object  # () -> (fpn feats, per-level scores, deltas, anchors)
    proposals: object  # () -> exact; writes rois, roi_count
    bbox_forward: object  # () -> (cls_score, bbox_pred) for all of ``rois``
    detections: object  # () -> (dets, labels, count, exact), zero-padded; writes mask_rois, mask_labels
    mask_forward: object  # () -> (mask_pred, own-class probabilities) for all of ``mask_rois``


class GraphedPipeline(StagedPipeline):
    """Mask R-CNN replayed from CUDA graphs; same stage methods as StagedPipeline.

    Nothing waits for the host between the uint8 upload and the result: proposal selection and
    detection NMS run over fixed-size tensors (``static_post``). The one synchronisation is the
    result's copy to the host; if a static step could not vouch for its result there (``exact``
    False: rare, see static_post), the image's RoI part is redone with mmdet's own code and
    ``fallbacks`` counts it.
    """

    # fp16 FPN / RPN head: 0.5 ms (1333x800) and 4 ms (3840x2304) faster on an H100, with the same
    # parity figures as fp32 there within the spread that rounding alone gives stock mmdet
    # (docs/parity.md, tools/stock_noise.py).
    def __init__(self, model, spec: PreprocessSpec, channels_last: bool = True, fp16_heads: bool = True,
                 nms_rounds: int = NMS_ROUNDS, cudnn_benchmark: bool = False, tf32: bool = True,
                 fp16_layers: int | None = None, fp16_backbone: bool = True, masks_before_sync: bool = True):
        super().__init__(model, preprocess=None, fp16=False)
        self.cudnn_benchmark, self.tf32 = cudnn_benchmark, tf32
        self.masks_before_sync = masks_before_sync
        self.nms_rounds = nms_rounds
        on_cuda = self.device.type == "cuda"
        # On a CPU this runs the same computation eagerly in fp32 (for tests); graphs need CUDA.
        self.use_graphs = on_cuda
        self.spec = spec
        dtype = torch.float16 if on_cuda and fp16_backbone else torch.float32
        head_dtype = dtype if fp16_heads else torch.float32
        # fp16_layers: how many of the ResNet's residual stages run in fp16 (None: all of them).
        self.net = FeatureNet(model, dtype, channels_last and on_cuda, head_dtype, fp16_layers).eval()
        if on_cuda:  # the fused mask head runs in channels_last (fused.mask_head_forward)
            model.roi_head.mask_head.to(memory_format=torch.channels_last)
        self.max_proposals = model.rpn_head.test_cfg.max_per_img
        self.max_detections = model.roi_head.test_cfg.max_per_img
        self.fallbacks = 0
        self._states: dict = {}

    def _state(self, h: int, w: int) -> ShapeState:
        if (h, w) in self._states:
            return self._states[h, w]
        dev = self.device
        metas = image_metas(self.spec, h, w)
        pad_h, pad_w, _ = metas["pad_shape"]
        staging = torch.empty((h, w, 3), dtype=torch.uint8, pin_memory=dev.type == "cuda")
        image = torch.zeros((h, w, 3), dtype=torch.uint8, device=dev)
        normalized = torch.empty((1, 3, pad_h, pad_w), device=dev)
        stats = mean_std(self.spec, dev)
        strides = self.model.rpn_head.prior_generator.strides
        sizes = [(-(-pad_h // sh), -(-pad_w // sw)) for sw, sh in strides]
        anchors = self.model.rpn_head.prior_generator.grid_priors(sizes, device=dev)
        roi_head = self.model.roi_head
        extractor = roi_head.bbox_roi_extractor
        canvas = LevelCanvas(sizes[: extractor.num_inputs], extractor.featmap_strides, extractor.out_channels, dev)
        nms_pre = self.net.nms_pre
        level_ids = [torch.full((min(len(a), nms_pre) if nms_pre > 0 else len(a),), i, dtype=torch.long,
                                device=dev) for i, a in enumerate(anchors)]
        rois = torch.zeros((self.max_proposals, 5), device=dev)
        roi_count = torch.zeros((), dtype=torch.long, device=dev)
        mask_rois = torch.zeros((self.max_detections, 5), device=dev)
        mask_labels = torch.zeros((self.max_detections,), dtype=torch.long, device=dev)
        scale_factor = torch.from_numpy(metas["scale_factor"]).to(dev)
        select_proposals = ProposalSelector(self.model.rpn_head, [len(i) for i in level_ids], metas["img_shape"], dev,
                                            self.nms_rounds)
        select_detections = DetectionSelector(roi_head.bbox_head, roi_head.test_cfg, metas["img_shape"],
                                              scale_factor, rounds=self.nms_rounds)
        outputs = {}

        def preprocess():
            return normalize_pad(self.spec, image.permute(2, 0, 1), metas, out=normalized, stats=stats)

        def features():
            outputs["features"] = self.net(normalized, anchors)
            # mmcv's RoIAlign reads its input as NCHW whatever its strides, and needs fp32 (fed
            # fp16 features it drops parity to ~0.87 mean mask IoU): the canvas is both.
            canvas.fill(outputs["features"][0])
            return outputs["features"]

        def proposals():
            _, scores, deltas, level_anchors = outputs["features"]
            selected, count, exact = select_proposals(scores, deltas, level_anchors)
            rois.copy_(selected)
            roi_count.copy_(count)
            return exact

        def bbox_forward():
            roi_feats = canvas.extract(roi_head.bbox_roi_extractor, rois)
            outputs["bbox"] = roi_head.bbox_head(roi_feats)
            return outputs["bbox"]

        def detections():
            dets, labels, count, exact = select_detections(rois, roi_count, *outputs["bbox"])
            mask_rois[:, 1:].copy_(dets[:, :4] * scale_factor)  # padding rows stay zero boxes
            mask_labels.copy_(labels)
            return dets, labels, count, exact

        def mask_forward():
            roi_feats = canvas.extract(roi_head.mask_roi_extractor, mask_rois)
            mask_pred = mask_head_forward(roi_head.mask_head, roi_feats)
            return mask_pred, raw_class_masks(mask_pred, mask_labels, roi_head.mask_head.class_agnostic)

        calls = [preprocess, features, proposals, bbox_forward, detections, mask_forward]
        if self.use_graphs:
            # cuDNN autotuning is off by default: the kernels it picks vary from process to
            # process, and with them the fp16 rounding (coffee's mean mask IoU at 1333x800 moved
            # between 0.960 and 0.972) for at most 0.3 ms (docs/perf.md). The global flags
            # stay as they were for the other variants; TF32 for the RoI heads' matrix products
            # is baked in at capture.
            with torch.no_grad(), torch.backends.cudnn.flags(enabled=True, benchmark=self.cudnn_benchmark), \
                    matmul_tf32(self.tf32):
                first = CapturedCall(preprocess)
                # All graphs replay in capture order, so they can share one memory pool.
                calls = [first] + [CapturedCall(fn, pool=first.graph.pool()) for fn in calls[1:]]
        state = ShapeState(metas, stats, staging, image, normalized, anchors, level_ids, rois, roi_count,
                           mask_rois, mask_labels, scale_factor, outputs, *calls)
        self._states[h, w] = state
        return state

    def _state_of(self, inputs: Inputs) -> ShapeState:
        h, w, _ = inputs.img_metas[0]["ori_shape"]
        return self._state(h, w)

    @torch.no_grad()
    def preprocess(self, image: np.ndarray) -> Inputs:
        image = prepare_image(image, self.model.cfg)  # the front door every variant shares
        state = self._state(*image.shape[:2])
        state.staging.copy_(torch.from_numpy(image))
        state.image.copy_(state.staging, non_blocking=True)
        img = state.preprocess()
        metas = dict(state.metas)
        metas["batch_input_shape"] = tuple(img.shape[-2:])
        return Inputs(img, [metas])

    @torch.no_grad()
    def backbone(self, inputs: Inputs):
        return self._state_of(inputs).features()

    @torch.no_grad()
    def rpn_head(self, feats, inputs: Inputs):
        """Proposals go to the state's ``rois``; returns whether they are exactly mmdet's (on the device)."""
        return self._state_of(inputs).proposals()

    def _detect(self, proposals_exact, inputs: Inputs, masks: bool = False):
        """Static detections, and on the host their count and whether proposals and NMS were exact.

        With ``masks``, the mask head is queued before the host waits for that count, so the GPU
        goes on meanwhile; returns its ``(mask_pred, probs)`` too (wasted when not exact: rare).
        """
        state = self._state_of(inputs)
        state.bbox_forward()
        dets, labels, count, exact = state.detections()
        mask_outputs = state.mask_forward() if masks and self.masks_before_sync else None
        count, exact = torch.stack([count, (exact & proposals_exact).long()]).tolist()
        return state, dets, labels, count, bool(exact), mask_outputs

    @torch.no_grad()
    def bbox_head(self, feats, proposals, inputs: Inputs):
        state, dets, labels, count, exact, _ = self._detect(proposals, inputs)
        if not exact:
            return self._mmdet_detections(state, inputs)
        return dets[:count], labels[:count]

    @torch.no_grad()
    def roi_head(self, feats, proposals, inputs: Inputs):
        from mmdet.core import bbox2result

        state, dets, labels, count, exact, mask_outputs = self._detect(proposals, inputs, masks=True)
        if not exact:
            return self.roi_results(feats, *self._mmdet_detections(state, inputs), inputs)
        _, probs = mask_outputs or state.mask_forward()
        labels = labels[:count].cpu().numpy()
        num_classes = self.model.roi_head.bbox_head.num_classes
        return (bbox2result(dets[:count].cpu().numpy(), labels, num_classes),
                group_by_class(probs[:count].float().cpu().numpy(), labels, num_classes))

    def _mmdet_detections(self, state: ShapeState, inputs: Inputs):
        """mmdet's own proposal selection, box decoding and multiclass NMS (exact, with host syncs)."""
        from mmdet.core import multiclass_nms

        self.fallbacks += 1
        _, scores, deltas, anchors = state.outputs["features"]
        rpn, meta = self.model.rpn_head, inputs.img_metas[0]
        proposals = rpn._bbox_post_process(scores, deltas, anchors, state.level_ids, rpn.test_cfg, meta["img_shape"])
        n = fill_rois(state.rois, proposals[:, :4])
        cls_score, bbox_pred = state.bbox_forward()
        bbox_head, cfg = self.model.roi_head.bbox_head, self.model.roi_head.test_cfg
        bboxes, scores = bbox_head.get_bboxes(state.rois[:n], cls_score[:n], bbox_pred[:n], meta["img_shape"],
                                              meta["scale_factor"], rescale=True, cfg=None)
        return multiclass_nms(bboxes, scores, cfg.score_thr, cfg.nms, cfg.max_per_img)

    @torch.no_grad()
    def mask_forward(self, feats, det_bboxes, inputs: Inputs) -> MaskForward:
        state = self._state_of(inputs)
        boxes = det_bboxes[:, :4] * state.scale_factor
        n = fill_rois(state.mask_rois, boxes)
        mask_pred, _ = state.mask_forward()
        return MaskForward(mask_pred[:n], boxes, state.scale_factor)
