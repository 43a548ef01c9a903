"""``inference_graph``: Mask R-CNN resident on the GPU, replayed from CUDA graphs.

At batch 1 the GPU mostly waits for Python: kernel launches, host syncs, CPU-side work. This
pipeline does the same work as mmdet's, but every step has a fixed shape, so each is captured
once per network input shape as a CUDA graph (``capture``) and replayed; the host waits once, when the
result is copied back. The whole flow, for one uint8 image (``GraphedPipeline.__call__``)::

    photo = self.plan(h, w)                         # InputPlan of this photo size, over the
    plan = photo.network                            # NetworkPlan of its padded shape (LRU caches)
    img = photo.preprocess(image)                   # pinned upload; exact resize, normalise, pad
    features = plan.steps.features(img)                   # fp16 backbone (BatchNorm folded, fused
                                                    # conv+ReLU), FPN, RPN convs, per-level top-k;
                                                    # levels copied into one fp16 LevelCanvas
    proposals = plan.steps.proposals(features)            # RPN NMS over fixed-size tensors (static_post)
    scores, deltas = plan.steps.bbox_forward(proposals.rois)       # one RoIAlign over the canvas, in fp32
    dets = plan.steps.detections(proposals, (scores, deltas))      # score threshold + static NMS
    masks = plan.steps.mask_forward(dets.mask_rois, dets.mask_labels)  # 28x28 probabilities
    count, exact = dets.count, dets.exact & proposals.exact      # the one host sync
    if not exact:                                   # NMS unsettled, or candidates cut short:
        redo the RoI part with mmdet's own code     # rare; ``pipeline.fallbacks`` counts it
    return boxes[:count], masks[:count]             # raw masks, pasted on demand (``paste``)

Modules: ``options`` (GraphOptions, each default with its measured reason), ``plan`` (one
network shape's buffers and steps), ``input_plan`` (what a photo size adds), ``plan_cache``
(LRU), ``pipeline`` (the stages the suite times), ``feature_net``, ``fused`` (cuDNN-fused convs),
``level_canvas`` and ``roi_align`` (RoI features from it), ``static_post`` and ``static_nms``
(data-dependent steps over static shapes), ``capture``, ``callers`` (one caller at a time).
docs/architecture.md draws the flow; docs/perf.md has the measurements behind each choice.
"""
from .options import GraphOptions
from .pipeline import GraphedPipeline, StaleInputs

__all__ = ["GraphOptions", "GraphedPipeline", "StaleInputs"]
