"""Greedy NMS over a suppression matrix (static_nms.greedy_keep's result) in one kernel, exactly,
with no rounds to run out of.

PyTorch's fixed point runs a fixed number of rounds over the whole matrix, each a matrix product, a
compare and an and-pass, settled or not, and a photo whose masks did not settle in them is redone
with mmdet's own code. Here one program takes one (N, N) matrix and decides its boxes a block at a
time, in order. Every box of the earlier blocks is decided by then, so one pass over their rows
counts each box's kept suppressors outside its block; inside the block the same recurrence is solved
by fixed point over the block's own tile, held in registers, which settles in as many rounds as the
block's longest chain of suppressions, plus one. The counts are integers, so the decisions do not
depend on the order of the sums.
"""
from __future__ import annotations

import math

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # a CPU-only install: PyTorch's rounds serve
    triton = None

BLOCK = 128  # boxes decided together


def available() -> bool:
    return triton is not None


if triton is not None:

    @triton.jit
    def _greedy(suppress, valid, keep, n, BLOCK: tl.constexpr):
        """suppress (M, n, n) nonzero where box j suppresses box i (only j < i is read); valid (M, n)
        bool; keep (M, n) bool, the result."""
        m = tl.program_id(0).to(tl.int64)
        matrix = suppress + m * n * n
        offsets = tl.arange(0, BLOCK)
        for start in range(0, n, BLOCK):
            i = start + offsets
            inside = i < n
            outside = tl.zeros([BLOCK], tl.int32)  # kept suppressors in the blocks before, all decided
            for first in range(0, start, BLOCK):
                j = first + offsets
                kept = tl.load(keep + m * n + j) != 0
                hit = tl.load(matrix + j.to(tl.int64)[:, None] * n + i[None, :], mask=inside[None, :], other=0)
                outside += tl.sum(((hit != 0) & kept[:, None]).to(tl.int32), axis=0)
            candidate = (tl.load(valid + m * n + i, mask=inside, other=0) != 0) & (outside == 0)
            own = (i[:, None] < i[None, :]) & inside[None, :]  # the block's own rows, above the diagonal
            tile = tl.load(matrix + i.to(tl.int64)[:, None] * n + i[None, :], mask=own, other=0) != 0
            now = candidate
            changed = 1
            while changed > 0:  # the matrix has no cycles: its longest chain in the block, plus one
                following = candidate & (tl.sum((tile & now[:, None]).to(tl.int32), axis=0) == 0)
                changed = tl.sum((following != now).to(tl.int32), axis=0)
                now = following
            tl.store(keep + m * n + i, now, mask=inside)
            tl.debug_barrier()  # the next block reads this one's decisions, stored by other threads


def kernel_greedy_keep(suppress: torch.Tensor, valid: torch.Tensor, batch_dims: int = 0) -> tuple[torch.Tensor,
                                                                                                     torch.Tensor]:
    """Greedy NMS's keep mask (..., N) by the kernel, and ``converged`` (all True: the result is exact)
    shaped as ``greedy_keep`` shapes it, wherever the tensors are (CPU tensors run under
    ``TRITON_INTERPRET=1``). ``suppress`` (..., N, N) is bool or 0/1 and zero on and below its
    diagonal, as ``suppression_matrix`` makes it; ``valid`` (..., N) bool."""
    lead, n = suppress.shape[:-2], suppress.shape[-1]
    if suppress.shape[-2] != n or valid.shape != (*lead, n):
        raise ValueError(f"kernel_greedy_keep takes (..., N, N) and (..., N) of the same N: "
                         f"{tuple(suppress.shape)}, {tuple(valid.shape)}")
    count = math.prod(lead)
    matrix = suppress.reshape(count, n, n).contiguous()
    if matrix.dtype == torch.bool:
        matrix = matrix.view(torch.uint8)
    allowed = valid.reshape(count, n).contiguous()
    keep = torch.empty((count, n), dtype=torch.bool, device=suppress.device)  # the kernel writes every entry
    if keep.numel():
        _greedy[(count,)](matrix, allowed, keep, n, BLOCK=BLOCK, num_warps=8)
    converged = torch.ones(lead[:batch_dims], dtype=torch.bool, device=suppress.device)
    return keep.view(*lead, n), converged
