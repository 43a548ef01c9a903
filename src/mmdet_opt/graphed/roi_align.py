"""mmcv's RoIAlign (average mode) reading an fp16 channels-last canvas, in fp32 arithmetic.

mmcv's CUDA RoIAlign computes in its input's dtype: fed fp16 features it drops parity to ~0.87 mean
mask IoU, and an fp32 NCHW copy of the fp16 FPN levels would cost a conversion and a transpose of
every level per call. This kernel samples the fp16 values themselves, converted to fp32 as they are
read, and follows mmcv's kernel step by step (same sample points, same bilinear
weights, IEEE divisions, fp32 sums in mmcv's order, and the fused multiply-adds nvcc makes of
mmcv's code: found by trying each order against mmcv), so it returns what mmcv returns
on the fp32 copy of the same values, bit for bit. Channels-last lets one program read a sample's 256 channels as one
contiguous vector.

One program per RoI and block of channels; its (bins x channels) tile is accumulated in registers
over the RoI's sampling grid, whose size (mmcv's adaptive ``ceil(roi / bins)``) varies from RoI to
RoI.
"""
from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # a CPU-only install: the fp32 canvas and mmcv's RoIAlign serve instead
    triton = None


TILE = 8192  # fp32 accumulators per program: 32 a thread over 8 warps


def available() -> bool:
    return triton is not None


if triton is not None:

    @triton.jit
    def _roi_align_nhwc(canvas, rois, out, height, width, batch_stride, spatial_scale,
                        CHANNELS: tl.constexpr, BLOCK_C: tl.constexpr, POOLED_H: tl.constexpr,
                        POOLED_W: tl.constexpr, BINS: tl.constexpr, SAMPLING: tl.constexpr,
                        ALIGNED: tl.constexpr):
        n = tl.program_id(0)
        channels = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        roi = rois + n * 5
        image = tl.load(roi).to(tl.int32)
        offset = 0.5 if ALIGNED else 0.0
        start_w = tl.load(roi + 1) * spatial_scale - offset
        start_h = tl.load(roi + 2) * spatial_scale - offset
        roi_w = (tl.load(roi + 3) * spatial_scale - offset) - start_w
        roi_h = (tl.load(roi + 4) * spatial_scale - offset) - start_h
        if not ALIGNED:
            roi_w = tl.maximum(roi_w, 1.0)
            roi_h = tl.maximum(roi_h, 1.0)
        bin_h = tl.math.div_rn(roi_h, POOLED_H * 1.0)
        bin_w = tl.math.div_rn(roi_w, POOLED_W * 1.0)
        if SAMPLING > 0:
            grid_h = tl.full((), SAMPLING, tl.int32)
            grid_w = tl.full((), SAMPLING, tl.int32)
        else:
            grid_h = tl.math.ceil(bin_h).to(tl.int32)
            grid_w = tl.math.ceil(bin_w).to(tl.int32)
        count = tl.maximum(grid_h * grid_w, 1).to(tl.float32)

        bins = tl.arange(0, BINS)
        ph = (bins // POOLED_W).to(tl.float32)
        pw = (bins % POOLED_W).to(tl.float32)
        mask = (bins < POOLED_H * POOLED_W)[:, None] & (channels < CHANNELS)[None, :]
        base = canvas + image.to(tl.int64) * batch_stride + channels[None, :]
        total = tl.zeros((BINS, BLOCK_C), dtype=tl.float32)
        y0 = tl.fma(ph, bin_h, start_h)  # mmcv's roi_start + p * bin_size, contracted as nvcc does
        x0 = tl.fma(pw, bin_w, start_w)
        for iy in range(0, grid_h):
            y = y0 + tl.math.div_rn((iy + 0.5) * bin_h, grid_h.to(tl.float32))
            for ix in range(0, grid_w):
                x = x0 + tl.math.div_rn((ix + 0.5) * bin_w, grid_w.to(tl.float32))
                total += _bilinear(base, height, width, CHANNELS, y, x, mask)
        value = tl.math.div_rn(total, count)
        # mmcv's output layout, (N, C, pooled_h, pooled_w)
        target = out + n * (CHANNELS * POOLED_H * POOLED_W) + channels[None, :] * (POOLED_H * POOLED_W) + bins[:, None]
        tl.store(target, value, mask=mask)

    @triton.jit
    def _bilinear(base, height, width, CHANNELS: tl.constexpr, y, x, mask):
        """mmcv's ``bilinear_interpolate`` at one sample point per bin, over every channel."""
        outside = (y < -1.0) | (y > height) | (x < -1.0) | (x > width)
        y = tl.maximum(y, 0.0)
        x = tl.maximum(x, 0.0)
        y_low = y.to(tl.int32)  # y >= 0: truncation is floor
        x_low = x.to(tl.int32)
        y_last = y_low >= height - 1
        x_last = x_low >= width - 1
        y_low = tl.where(y_last, height - 1, y_low)
        x_low = tl.where(x_last, width - 1, x_low)
        y_high = tl.where(y_last, y_low, y_low + 1)
        x_high = tl.where(x_last, x_low, x_low + 1)
        y = tl.where(y_last, y_low.to(tl.float32), y)
        x = tl.where(x_last, x_low.to(tl.float32), x)
        ly = y - y_low.to(tl.float32)
        lx = x - x_low.to(tl.float32)
        hy = 1.0 - ly
        hx = 1.0 - lx
        w1 = (hy * hx)[:, None]
        w2 = (hy * lx)[:, None]
        w3 = (ly * hx)[:, None]
        w4 = (ly * lx)[:, None]
        row_low = (y_low * width)[:, None]
        row_high = (y_high * width)[:, None]
        load = mask & ~outside[:, None]
        v1 = tl.load(base + (row_low + x_low[:, None]).to(tl.int64) * CHANNELS, mask=load, other=0.0).to(tl.float32)
        v2 = tl.load(base + (row_low + x_high[:, None]).to(tl.int64) * CHANNELS, mask=load, other=0.0).to(tl.float32)
        v3 = tl.load(base + (row_high + x_low[:, None]).to(tl.int64) * CHANNELS, mask=load, other=0.0).to(tl.float32)
        v4 = tl.load(base + (row_high + x_high[:, None]).to(tl.int64) * CHANNELS, mask=load, other=0.0).to(tl.float32)
        # w1 * v1 + w2 * v2 + w3 * v3 + w4 * v4, contracted as nvcc contracts mmcv's
        val = tl.fma(w4, v4, tl.fma(w3, v3, tl.fma(w2, v2, w1 * v1)))
        return tl.where(load, val, 0.0)


def roi_align_nhwc(canvas: torch.Tensor, rois: torch.Tensor, output_size, spatial_scale: float = 1.0,
                   sampling_ratio: int = 0, aligned: bool = True) -> torch.Tensor:
    """mmcv ``RoIAlign(output_size, spatial_scale, sampling_ratio, 'avg', aligned)`` on ``canvas``.

    ``canvas``: (B, H, W, C), contiguous, any float dtype (read as fp32); ``rois``: (N, 5) fp32,
    column 0 the image. Returns (N, C, *output_size) fp32, as mmcv's op returns for
    ``canvas.permute(0, 3, 1, 2).float()``.
    """
    if triton is None:
        raise RuntimeError("roi_align_nhwc needs Triton (pip install triton)")
    if not canvas.is_contiguous() or canvas.dim() != 4:
        raise ValueError("roi_align_nhwc reads a contiguous (B, H, W, C) canvas")
    pooled_h, pooled_w = output_size
    batch, height, width, channels = canvas.shape
    rois = rois.contiguous().float()
    out = torch.empty((len(rois), channels, pooled_h, pooled_w), dtype=torch.float32, device=canvas.device)
    bins = triton.next_power_of_2(pooled_h * pooled_w)
    block_c = min(triton.next_power_of_2(channels), max(16, TILE // bins))  # a tile that fits in registers
    if len(rois):
        _roi_align_nhwc[(len(rois), triton.cdiv(channels, block_c))](
            canvas, rois, out, height, width, height * width * channels, float(spatial_scale),
            CHANNELS=channels, BLOCK_C=block_c, POOLED_H=pooled_h, POOLED_W=pooled_w, BINS=bins,
            SAMPLING=int(sampling_ratio), ALIGNED=bool(aligned), num_warps=8,
            enable_fp_fusion=False)  # the contractions are the explicit ones above
    return out
