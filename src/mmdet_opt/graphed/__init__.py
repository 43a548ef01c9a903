"""``inference_graph``: Mask R-CNN resident on the GPU, replayed from CUDA graphs.

At batch 1 the GPU mostly waits for Python (launches, host syncs), so every step here has a fixed
shape and is captured once per network input shape as a CUDA graph, then replayed; the host waits
once, when the result is copied back. ``GraphedPipeline.__call__`` names the steps in order; each
plan holds them in its step table (``capture.Steps``): features, proposals, bbox_forward,
detections, mask_forward. Where a static step cannot vouch for its result (rare), mmdet's own code
redoes the RoI part.

Modules: ``options`` (GraphOptions; docs/options.md), ``plan`` (one network shape's buffers and
steps, for one photo or a batch of N), ``input_plan`` (what a photo size adds), ``plan_cache`` (LRU),
``pipeline`` (the stages the suite times), ``feature_net``, ``fused`` (cuDNN-fused convs), ``max_pool``,
``bias_pass``, ``level_canvas``, ``row_copy`` and ``roi_align`` (RoI features), ``static_post`` and
``static_nms`` (data-dependent steps over static shapes; ``suppression_kernel``, ``greedy_kernel``), ``extent``,
``capture``, ``callers`` (one caller at a time).
docs/architecture.md draws the flow.
"""
from .options import GraphOptions
from .pipeline import GraphedPipeline, StaleInputs

__all__ = ["GraphOptions", "GraphedPipeline", "StaleInputs"]
