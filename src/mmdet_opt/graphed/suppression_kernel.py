"""The NMS suppression matrix (static_nms.suppression_matrix) in one pass, as the fp16 0/1 matrix
that the fixed point (static_nms.greedy_keep) multiplies with.

PyTorch builds it by broadcasting: the corners' maxima and minima, their difference, the clamp,
the products and sums each write a (..., N, N[, 2]) fp32 tensor, hundreds of MB for a batch of
RPN levels (docs/perf.md, "Open levers"). Here each program computes a tile of the matrix from the
two tiles' boxes in registers. Every value is computed with the same fp32 operations in the same
order, with no fused multiply-add (``enable_fp_fusion=False``) and NaN kept where PyTorch keeps it,
so each entry is the same decision.
"""
from __future__ import annotations

import math

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # a CPU-only install: PyTorch's passes serve
    triton = None

BLOCK = 64  # a program's tile: BLOCK suppressors x BLOCK boxes


def available() -> bool:
    return triton is not None


if triton is not None:

    @triton.jit
    def _suppression(boxes, out, n, threshold, BLOCK_J: tl.constexpr, BLOCK_I: tl.constexpr):
        """boxes (M, n, 4) contiguous fp32; out (M, n, n) fp16: out[m, j, i] = 1 where j < i and box j
        suppresses box i: ``inter > threshold * ((area_j + area_i) - inter)``."""
        m = tl.program_id(2).to(tl.int64)
        j = tl.program_id(0) * BLOCK_J + tl.arange(0, BLOCK_J)
        i = tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I)
        base = boxes + m * n * 4
        row, col = j < n, i < n
        x1j, y1j = tl.load(base + j * 4, mask=row), tl.load(base + j * 4 + 1, mask=row)
        x2j, y2j = tl.load(base + j * 4 + 2, mask=row), tl.load(base + j * 4 + 3, mask=row)
        x1i, y1i = tl.load(base + i * 4, mask=col), tl.load(base + i * 4 + 1, mask=col)
        x2i, y2i = tl.load(base + i * 4 + 2, mask=col), tl.load(base + i * 4 + 3, mask=col)
        # NaN if either is, as torch.maximum / minimum (PropagateNan.ALL, inline: it is no tensor)
        w = (tl.minimum(x2j[:, None], x2i[None, :], tl.PropagateNan.ALL)
             - tl.maximum(x1j[:, None], x1i[None, :], tl.PropagateNan.ALL))
        h = (tl.minimum(y2j[:, None], y2i[None, :], tl.PropagateNan.ALL)
             - tl.maximum(y1j[:, None], y1i[None, :], tl.PropagateNan.ALL))
        w = tl.where(w < 0.0, 0.0, w)  # clamp(min=0): NaN stays NaN
        h = tl.where(h < 0.0, 0.0, h)
        inter = w * h
        area_j = (x2j - x1j) * (y2j - y1j)
        area_i = (x2i - x1i) * (y2i - y1i)
        union = (area_j[:, None] + area_i[None, :]) - inter
        hit = (inter > threshold * union) & (j[:, None] < i[None, :])
        offsets = m * n * n + j.to(tl.int64)[:, None] * n + i[None, :]
        tl.store(out + offsets, hit.to(tl.float16), mask=row[:, None] & col[None, :])


def kernel_suppression_matrix(boxes: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """``suppression_matrix(boxes, iou_threshold)`` as fp16 0/1 values, by the kernel, wherever
    ``boxes`` (..., N, 4) fp32 is (a CPU tensor runs under ``TRITON_INTERPRET=1``)."""
    if boxes.dtype != torch.float32 or boxes.dim() < 2 or boxes.shape[-1] != 4:
        raise ValueError("kernel_suppression_matrix takes (..., N, 4) float32 boxes")
    lead, n = boxes.shape[:-2], boxes.shape[-2]
    flat = boxes.reshape(math.prod(lead), n, 4).contiguous()
    out = torch.empty((flat.shape[0], n, n), dtype=torch.float16, device=boxes.device)
    if out.numel():
        grid = (triton.cdiv(n, BLOCK), triton.cdiv(n, BLOCK), flat.shape[0])
        _suppression[grid](flat, out, n, iou_threshold, BLOCK_J=BLOCK, BLOCK_I=BLOCK, num_warps=4,
                           enable_fp_fusion=False)
    return out.view(*lead, n, n)
