"""The GPU-resident pipeline's options: one frozen value that a ``Variant`` carries.

Each default is the measured choice (one H100, docs/perf.md and docs/parity.md). A new
configuration is ``dataclasses.replace(GraphOptions(), field=value)``.
"""
from __future__ import annotations

from dataclasses import dataclass

from .static_post import NMS_ROUNDS


@dataclass(frozen=True)
class GraphOptions:
    # Replay from CUDA graphs captured per input shape. False runs the same ops eagerly: the CPU
    # composition, and profiling, where each kernel is then charged to the op that launched it.
    graphs: bool = True
    # fp16 backbone with BatchNorm folded into the convs: 2.4x faster backbone than fp32 at 3840x2304.
    fp16_backbone: bool = True
    # Fold each BatchNorm into the convolution before it. False keeps them as modules in fp32 on the
    # fp16 activations, as mmcv's fp16 mode runs them, and runs the backbone unfused: +3.9 ms
    # (1333x800) / +5.2 ms (3840x2304) on an H200, and its features are no nearer exact fp32
    # (tools/feature_error.py, docs/parity.md).
    fold_batchnorm: bool = True
    # fp16 FPN and RPN head: -0.5 ms (1333x800) and -4.3 ms (3840x2304); parity the same within the
    # spread that rounding alone gives stock mmdet (tools/stock_noise.py).
    fp16_heads: bool = True
    # How many residual stages run in fp16 (None: all). Keeping stage 4 or stages 3-4 in fp32 did not
    # lift the one low parity case (coffee@1333: 0.9642 / 0.9653 against 0.9606), so all are fp16.
    fp16_layers: int | None = None
    # conv + bias + ReLU (and + residual add) as single cuDNN kernels (fused.py). False runs the
    # convolutions unfused: +0.7-1.1 ms per cached call, and a new network shape's first eager pass
    # only 308 -> 227 ms, since cuDNN plans every new convolution shape fused or not (H200;
    # tools/conv_plan_cost.py, docs/perf.md "Streams of many sizes").
    fused_convs: bool = True
    # With fp16_heads, the RoI extractors read the fp16 FPN levels through a Triton RoIAlign
    # (roi_align.py) that samples them in fp32 as mmcv's does the fp32 copy: the same features, bit
    # for bit, without that copy: -0.44 ms (1333x800) / -1.1 ms (3840x2304) a photo (H200). False
    # (or no Triton) copies every level into an fp32 canvas for mmcv's RoIAlign.
    fp16_canvas: bool = True
    # The mask head's convolutions in fp16, its logits in fp32 (fused.half_mask_head), instead of
    # fp32 with TF32: -0.18 / -0.2 ms a photo; 0.998-0.999 mean mask IoU against the fp32 head, and
    # the same distance from stock (H200, docs/perf.md).
    fp16_mask_head: bool = True
    # The bias of each convolution that runs unfused (and the mask head's ReLU after its deconvolution),
    # and the FPN's top-down add, as vectorised Triton passes (bias_pass.py) instead of PyTorch's
    # broadcast adds: the same values, bit for bit; -0.20 ms (1333x800) / -1.5 ms (3840x2304) a photo
    # (H200). False (or no Triton) leaves PyTorch's.
    bias_pass: bool = True
    # With fp16_canvas, copy each FPN level into the canvas by whole rows (row_copy.py) instead of
    # PyTorch's strided copy: the same values; -0.04 / -0.28 ms a photo (H200).
    canvas_row_copy: bool = True
    # Normalise and pad each photo into the network's input in one Triton pass (normalize_kernel.py)
    # instead of six PyTorch passes: the same values; -0.16 / -0.39 ms a photo (H200).
    normalize_kernel: bool = True
    # Backbone in channels_last, the layout cuDNN's fp16 kernels want on Hopper.
    channels_last: bool = True
    # On a CPU, the backbone, FPN and RPN head in float64, their outputs rounded once to float32.
    # CPU convolutions (oneDNN, MKL) choose their summation order by the tensor's size and thread
    # count, so in float32 a position's features depend on the input's size (pad_to_scale against
    # the photo's own extent); in float64 that order practically never reaches the float32 result.
    # eager_fp32 sets it; a GPU ignores it.
    float64_on_cpu: bool = False
    # TF32 in the RoI heads' matrix products, baked in at capture (stock mmdet runs with TF32 too).
    tf32: bool = True
    # cuDNN autotuning picks kernels that vary between processes, and with them fp16 rounding
    # (coffee@1333 moved between 0.960 and 0.972); off costs at most 0.3 ms.
    cudnn_benchmark: bool = False
    # Rounds of the fixed-point NMS before a result is vouched for (static_nms); 16 settled every
    # image measured, and an unsettled one falls back to mmdet's own code.
    nms_rounds: int = NMS_ROUNDS
    # Queue the mask head before the host waits for the detection count: -0.17 / -0.27 ms.
    masks_before_sync: bool = True
    # Network input shapes whose graphs are kept (least recently used dropped). Photos share a plan
    # when they resize and pad to the same shape (every 4:3 photo at 1333x800: 1088x800), so a photo
    # collection needs few; docs/perf.md ("Streams of many sizes") has the memory per plan.
    max_plans: int = 8
    # Pad every landscape (and square) input to the test scale's padded box, every portrait one to its
    # transpose, instead of to the next multiple of 32: two network plans serve every photo size, and
    # photos of any landscape size batch together. Each layer is masked to the photo's own padded
    # extent (extent.py), so results are its own-extent ones (CPU: the same boxes bit for bit; H200:
    # 1.0000 mean mask IoU). The variant inference_graph_padded runs it. On a 200-photo stream (H200):
    # 103.7 against 63.8 images/s, peak memory 1.70x one shape against 3.03x; but the masks cost the
    # backbone +0.54 ms at 1333x800 and +0.76 ms at 3840x2304 (and a narrower photo pays the box's
    # width), so it is off by default.
    pad_to_scale: bool = False
    # With pad_to_scale, build both boxes' network plans (landscape, portrait) with the pipeline, so
    # that no photo's first call pays for one (~150 ms each on an H200: cuDNN plans every new
    # convolution shape); the pipeline's start-up pays instead.
    plans_ahead: bool = True
    # Photos up to this many pixels upload through a pinned host buffer pinned with the pipeline (3 bytes
    # a pixel; 6000x4000: DSLRs, and every phone photo): pinning one costs ~1 ms per MiB, 4x the cached
    # call of a 4000x4000 photo when its first call paid it (H200; input_plan.HostStaging).
    upload_pixels: int = 6000 * 4000
    # Photo sizes whose upload buffer and resize graph are kept, over all plans.
    max_photo_sizes: int = 32
    # Photos of one network shape run as one batch by ``detect_batch`` (more are split).
    max_batch: int = 16
    # Eager calls of a step before its capture, so that lazy initialisation (cuBLAS/cuDNN handles,
    # workspaces) happens outside it; one suffices (docs/perf.md, "First call of a new shape").
    warmup_calls: int = 1

    @property
    def needs_cuda(self) -> bool:
        return self.graphs or self.fp16_backbone or self.fp16_heads or self.fp16_mask_head or self.channels_last

    def eager_fp32(self) -> GraphOptions:
        """The same pipeline as a CPU runs it: no graphs, fp32 (the convolutional front summed in
        fp64 on a CPU), NCHW."""
        from dataclasses import replace

        return replace(self, graphs=False, fp16_backbone=False, fp16_heads=False, channels_last=False,
                       fp16_mask_head=False, float64_on_cpu=True)
