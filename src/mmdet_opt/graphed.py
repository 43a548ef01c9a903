"""``inference_graph``: the GPU-resident fast path.

At batch 1 the GPU mostly waits for Python: kernel launches, host syncs, CPU-side work. This
pipeline removes the waiting where shapes are static:

- the uint8 image goes through one pinned staging buffer to the device; normalisation and padding
  run there (``gpu_preprocess.normalize_pad``), replayed from a CUDA graph;
- backbone + FPN + RPN head convolutions run in fp16 (weights cast once), replayed from a second
  CUDA graph captured per input shape; the graph hands mmcv ops contiguous NCHW float32 features,
  whatever memory format it computes in (mmcv's RoIAlign reads channels_last tensors as NCHW);
- the RoI heads run as in mmdet, in fp32, with the raw-mask head: masks come back as 28x28
  probabilities, pasted on demand (``paste``).

Stages keep the study's names; here ``backbone`` also covers the RPN head's convolutions (they are
in the same graph) and ``rpn_head`` is proposal selection alone.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .gpu_preprocess import PreprocessSpec, image_metas, mean_std, normalize_pad
from .pipeline import Inputs, StagedPipeline


class FeatureNet(nn.Module):
    """Backbone + FPN + RPN head convs in one module: the static-shape part of Mask R-CNN."""

    def __init__(self, model, dtype: torch.dtype, channels_last: bool):
        super().__init__()
        self.backbone = copy.deepcopy(model.backbone).to(dtype)
        self.neck = copy.deepcopy(model.neck).to(dtype)
        self.rpn_head = copy.deepcopy(model.rpn_head).to(dtype)
        self.dtype = dtype
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, img: torch.Tensor):
        x = img.to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        feats = self.neck(self.backbone(x))
        cls_scores, bbox_preds = self.rpn_head(feats)

        def nchw32(t):  # what mmcv's ops and mmdet's post-processing expect
            return t.float().contiguous()

        return (tuple(map(nchw32, feats)), [nchw32(t) for t in cls_scores], [nchw32(t) for t in bbox_preds])


class CapturedCall:
    """``fn(*inputs)`` captured once as a CUDA graph; calling it replays the graph.

    The inputs are static buffers: write new data into them, then call.
    """

    def __init__(self, fn, *inputs, warmup: int = 3):
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up on a side stream, as capture requires
            for _ in range(warmup):
                fn(*inputs)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = fn(*inputs)

    def __call__(self):
        self.graph.replay()
        return self.outputs


@dataclass
class ShapeState:
    """Everything static for one input shape: buffers and the graphs that read them."""

    metas: dict
    staging: torch.Tensor  # (H, W, 3) uint8, pinned host memory on CUDA
    image: torch.Tensor  # (H, W, 3) uint8 on the device
    normalized: torch.Tensor  # (1, 3, H_pad, W_pad) float32
    preprocess: object  # () -> normalized
    features: object  # () -> (fpn feats, rpn cls scores, rpn bbox preds)


class GraphedPipeline(StagedPipeline):
    """Mask R-CNN with a captured static part; same stage methods as StagedPipeline."""

    def __init__(self, model, spec: PreprocessSpec, channels_last: bool = False):
        super().__init__(model, preprocess=None, fp16=False)
        on_cuda = self.device.type == "cuda"
        # On a CPU this runs the same computation eagerly in fp32 (for tests); graphs need CUDA.
        self.use_graphs = on_cuda
        self.spec = spec
        self.net = FeatureNet(model, torch.float16 if on_cuda else torch.float32, channels_last).eval()
        self._states: dict = {}

    def _state(self, h: int, w: int) -> ShapeState:
        if (h, w) in self._states:
            return self._states[h, w]
        metas = image_metas(self.spec, h, w)
        pad_h, pad_w, _ = metas["pad_shape"]
        on_cuda = self.device.type == "cuda"
        staging = torch.empty((h, w, 3), dtype=torch.uint8, pin_memory=on_cuda)
        image = torch.empty((h, w, 3), dtype=torch.uint8, device=self.device)
        normalized = torch.empty((1, 3, pad_h, pad_w), device=self.device)
        stats = mean_std(self.spec, self.device)

        def preprocess():
            return normalize_pad(self.spec, image.permute(2, 0, 1), metas, out=normalized, stats=stats)

        def features():
            return self.net(normalized)

        with torch.no_grad():
            if self.use_graphs:
                image.zero_()
                preprocess_call = CapturedCall(preprocess)
                features_call = CapturedCall(features)
            else:
                preprocess_call, features_call = preprocess, features
        state = ShapeState(metas, staging, image, normalized, preprocess_call, features_call)
        self._states[h, w] = state
        return state

    @torch.no_grad()
    def preprocess(self, image: np.ndarray) -> Inputs:
        state = self._state(*image.shape[:2])
        state.staging.copy_(torch.from_numpy(image))
        state.image.copy_(state.staging, non_blocking=True)
        img = state.preprocess()
        metas = dict(state.metas)
        metas["batch_input_shape"] = tuple(img.shape[-2:])
        return Inputs(img, [metas])

    @torch.no_grad()
    def backbone(self, inputs: Inputs):
        h, w, _ = inputs.img_metas[0]["ori_shape"]
        return self._state(h, w).features()

    @torch.no_grad()
    def rpn_head(self, feats, inputs: Inputs):
        _, cls_scores, bbox_preds = feats
        return self.model.rpn_head.get_bboxes(cls_scores, bbox_preds, img_metas=inputs.img_metas)

    @torch.no_grad()
    def bbox_head(self, feats, proposals, inputs: Inputs):
        return super().bbox_head(feats[0], proposals, inputs)

    @torch.no_grad()
    def mask_forward(self, feats, det_bboxes, inputs: Inputs):
        return super().mask_forward(feats[0], det_bboxes, inputs)
