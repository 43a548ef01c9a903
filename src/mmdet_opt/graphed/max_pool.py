"""The ResNet stem's max-pool (3x3, stride 2, padding 1) as one pass over a channels-last tensor.

PyTorch's channels-last max-pool reads the stem's fp16 activation well below memory speed
(docs/options.md, ``max_pool_kernel``). Here each
program takes a tile of output pixels and all their channels, which lie contiguous, and keeps the
largest of each window's values, NaN first, as PyTorch does: a maximum, so the same bits.
``MaxPoolPass`` stands in for the model's ``nn.MaxPool2d``; off CUDA, without Triton, or for a
layout or setting it does not cover, the module's own forward runs.
"""
from __future__ import annotations

import torch
from torch import nn

try:
    import triton
    import triton.language as tl
except ImportError:  # a CPU-only install: PyTorch's max-pool serves
    triton = None

TILE = 4096  # output elements per program


def available() -> bool:
    return triton is not None


if triton is not None:

    @triton.jit(do_not_specialize=["rows", "height", "width", "out_height", "out_width"])
    def _max_pool(src, dst, rows, height, width, out_height, out_width, channels, KERNEL: tl.constexpr,
                  STRIDE: tl.constexpr, PAD: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
        """src (N, H, W, C) and dst (N, OH, OW, C) contiguous; row = (n * OH + oy) * OW + ox."""
        row = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
        col = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        ox = row % out_width
        oy = (row // out_width) % out_height
        n = (row // (out_width * out_height)).to(tl.int64)
        inside = (row < rows)[:, None] & (col < channels)[None, :]
        best = tl.full((BLOCK_R, BLOCK_C), float("-inf"), src.dtype.element_ty)
        for dy in tl.static_range(KERNEL):
            y = oy * STRIDE - PAD + dy
            for dx in tl.static_range(KERNEL):
                x = ox * STRIDE - PAD + dx
                tap = inside & ((y >= 0) & (y < height) & (x >= 0) & (x < width))[:, None]
                pixel = (n * height + y) * width + x
                value = tl.load(src + pixel[:, None] * channels + col[None, :], mask=tap, other=float("-inf"))
                best = tl.where((value > best) | (value != value), value, best)  # PyTorch's rule: NaN wins
        tl.store(dst + row.to(tl.int64)[:, None] * channels + col[None, :], best, mask=inside)


def _settings(pool: nn.MaxPool2d) -> tuple | None:
    """(kernel, stride, padding) of a square max-pool the kernel computes, else None."""
    def one(value):
        value = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
        return value[0] if value[0] == value[1] else None

    kernel, stride, padding, dilation = (one(v) for v in (pool.kernel_size, pool.stride or pool.kernel_size,
                                                          pool.padding, pool.dilation))
    if None in (kernel, stride, padding) or dilation != 1 or pool.ceil_mode or pool.return_indices:
        return None
    return kernel, stride, padding


def kernel_max_pool(x: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """``F.max_pool2d(x, kernel, stride, padding)`` of a channels-last (N, C, H, W) tensor by the
    kernel, wherever ``x`` is (a CPU tensor runs under ``TRITON_INTERPRET=1``)."""
    if x.dim() != 4 or not x.is_contiguous(memory_format=torch.channels_last) or not 0 <= padding <= kernel // 2:
        raise ValueError("kernel_max_pool takes a channels-last (N, C, H, W) tensor and padding at most half "
                         "the window")
    n, c, h, w = x.shape
    out_h, out_w = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
    out = torch.empty((n, c, out_h, out_w), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    if out.numel() == 0:
        return out
    block_c = min(triton.next_power_of_2(c), 128)
    block_r = max(1, TILE // block_c)
    rows = n * out_h * out_w
    _max_pool[(triton.cdiv(rows, block_r), triton.cdiv(c, block_c))](
        x, out, rows, h, w, out_h, out_w, c, KERNEL=kernel, STRIDE=stride, PAD=padding, BLOCK_R=block_r,
        BLOCK_C=block_c, num_warps=4)
    return out


class MaxPoolPass(nn.Module):
    """``pool`` (an ``nn.MaxPool2d``) by ``kernel_max_pool`` on a channels-last CUDA tensor: the same
    values, for inference: the kernel has no backward."""

    def __init__(self, pool: nn.MaxPool2d):
        super().__init__()
        if not isinstance(pool, nn.MaxPool2d):
            raise TypeError(f"MaxPoolPass takes an nn.MaxPool2d, not {type(pool).__name__}")
        self.pool, self.settings = pool, _settings(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (triton is None or self.settings is None or not x.is_cuda or x.dim() != 4
                or not x.is_contiguous(memory_format=torch.channels_last)):
            return self.pool(x)
        return kernel_max_pool(x, *self.settings)
