"""Copy a channels-last tensor into a strided slot of a larger one (an FPN level into its place in
the LevelCanvas), one contiguous row at a time.

PyTorch copies into a slot whose rows are not adjacent with its general strided kernel, which works
out each element's address with integer divisions, well below memory speed (docs/options.md).
Within the slot each image row (width x channels values) is contiguous, so a tile of whole rows
needs no per-element arithmetic. A copy: the same values.
"""
from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # a CPU-only install: PyTorch's copy serves
    triton = None

TILE = 8192  # elements per program: 32 a thread over 8 warps


def available() -> bool:
    return triton is not None


if triton is not None:

    @triton.jit(do_not_specialize=["rows", "height", "image_stride", "row_stride"])
    def _copy_rows(dst, src, rows, height, length, image_stride, row_stride, BLOCK_R: tl.constexpr,
                   BLOCK_L: tl.constexpr):
        """src (rows, length) contiguous, row = image * height + y -> dst + image * image_stride + y * row_stride."""
        row = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
        col = tl.program_id(1) * BLOCK_L + tl.arange(0, BLOCK_L)
        inside = (row < rows)[:, None] & (col < length)[None, :]
        target = (row // height).to(tl.int64) * image_stride + (row % height).to(tl.int64) * row_stride
        value = tl.load(src + row.to(tl.int64)[:, None] * length + col[None, :], mask=inside)
        tl.store(dst + target[:, None] + col[None, :], value, mask=inside)


def rows_copyable(dst: torch.Tensor, src: torch.Tensor) -> bool:
    """Whether ``copy_rows_`` takes them: (N, C, H, W) views of one shape and dtype, ``src``
    channels-last contiguous, ``dst`` with each (W, C) row contiguous."""
    if dst.dim() != 4 or dst.shape != src.shape or dst.dtype != src.dtype or dst.device != src.device:
        return False
    n, c, h, w = dst.shape
    return src.is_contiguous(memory_format=torch.channels_last) and dst.stride(1) == 1 and dst.stride(3) == c


def copy_rows_(dst: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """``dst.copy_(src)`` for tensors ``rows_copyable`` takes, by rows (a CPU tensor runs under
    ``TRITON_INTERPRET=1``)."""
    if not rows_copyable(dst, src):
        raise ValueError("copy_rows_ copies a channels-last tensor into a view of the same shape whose rows are "
                         "contiguous")
    n, c, h, w = dst.shape
    length = w * c
    block_l = min(triton.next_power_of_2(length), 2048)
    block_r = max(1, TILE // block_l)
    grid = (triton.cdiv(n * h, block_r), triton.cdiv(length, block_l))
    _copy_rows[grid](dst, src, n * h, h, length, dst.stride(0), dst.stride(2), BLOCK_R=block_r, BLOCK_L=block_l,
                     num_warps=8)
    return dst
