"""``normalize_pad``'s channel flip, mean, std and zero padding as one pass over the device image.

In PyTorch ops that is six passes over a float32 image (to float, flip, subtract, divide, zero the
padded buffer, copy in), two of them broadcasts, which PyTorch does not vectorise: ~0.4 ms a photo
at 3840x2304 on an H200 (docs/perf-log.md). This kernel reads each uint8 value once and writes each
output value once, with the same fp32 subtraction and IEEE division (or multiplication by 1 / std,
where mmcv multiplies: normalize_rule.py), so the same bits.
"""
from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # a CPU-only install: normalize_pad's PyTorch ops serve
    triton = None

BLOCK_W = 1024


def available() -> bool:
    return triton is not None


if triton is not None:

    @triton.jit(do_not_specialize=["height", "width", "pad_h", "pad_w", "stride_c", "stride_h", "stride_w"])
    def _normalize_pad(img, out, mean, scale, height, width, pad_h, pad_w, stride_c, stride_h, stride_w,
                       TO_RGB: tl.constexpr, MULTIPLY: tl.constexpr, BLOCK_W: tl.constexpr):
        row = tl.program_id(0)  # an output row: channel * pad_h + y
        channel = row // pad_h
        y = row % pad_h
        x = tl.program_id(1) * BLOCK_W + tl.arange(0, BLOCK_W)
        source = 2 - channel if TO_RGB else channel
        inside = (x < width) & (y < height)
        value = tl.load(img + source * stride_c + y * stride_h + x * stride_w, mask=inside, other=0).to(tl.float32)
        value = value - tl.load(mean + channel)
        if MULTIPLY:  # ``scale`` is 1 / std
            value = value * tl.load(scale + channel)
        else:
            value = tl.math.div_rn(value, tl.load(scale + channel))  # IEEE, as PyTorch's
        tl.store(out + row.to(tl.int64) * pad_w + x, tl.where(inside, value, 0.0), mask=x < pad_w)


def normalize_pad_(img: torch.Tensor, out: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor,
                   to_rgb: bool, multiply: bool = False) -> torch.Tensor:
    """``out[0] = pad((img[::-1 if to_rgb] - mean) / scale)``, or ``* scale`` with ``multiply``:
    ``img`` (3, h, w) uint8 with any strides, ``out`` (1, 3, H, W) float32 contiguous with H >= h,
    W >= w; ``mean``, ``scale`` 3 float32 each (gpu_preprocess.NormStats)."""
    _, channels, pad_h, pad_w = out.shape
    _, height, width = img.shape
    if img.dtype != torch.uint8 or channels != 3 or img.shape[0] != 3 or out.dtype != torch.float32 \
            or not out.is_contiguous() or height > pad_h or width > pad_w:
        raise ValueError("normalize_pad_ takes a (3, h, w) uint8 image and a contiguous (1, 3, H, W) float32 "
                         "buffer that holds it")
    mean, scale = mean.reshape(3).contiguous(), scale.reshape(3).contiguous()
    _normalize_pad[(3 * pad_h, triton.cdiv(pad_w, BLOCK_W))](
        img, out, mean, scale, height, width, pad_h, pad_w, *img.stride(), TO_RGB=bool(to_rgb),
        MULTIPLY=bool(multiply), BLOCK_W=BLOCK_W, num_warps=4)
    return out
