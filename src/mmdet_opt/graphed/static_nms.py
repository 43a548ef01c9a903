"""Greedy NMS with static shapes and no host synchronisation, so a CUDA graph can hold it.

mmcv's NMS returns as many indices as it keeps, which the host must learn before anything can
follow. Here the result is a keep mask over fixed-size, score-sorted boxes.

Greedy NMS keeps box i when no earlier *kept* box suppresses it:
``keep[i] = valid[i] and not any(keep[j] and S[j, i] for j < i)``. That recurrence is solved by
fixed-point iteration over the whole mask at once (Cluster-NMS, Zheng et al. 2021): start from
every valid box kept, recompute every entry from the previous mask, repeat. A cluster of mutually
overlapping boxes settles in two rounds; only chains where a suppressor is itself suppressed take
longer. The fixed point is the greedy result, so a round that changes nothing proves convergence;
``converged`` reports it, and callers fall back to an exact eager NMS when it is False.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import greedy_kernel, suppression_kernel


@dataclass(frozen=True)
class GreedyNms:
    """Greedy NMS over score-sorted boxes as the static selectors run it: the suppression matrix, then
    greedy keep mask, each by PyTorch's passes or in one kernel (GraphOptions.nms_kernel,
    nms_greedy_kernel); the same masks wherever PyTorch's rounds settle."""
    iou_threshold: float
    rounds: int
    matrix_kernel: bool = False
    greedy_kernel: bool = False

    def __call__(self, boxes: torch.Tensor, valid: torch.Tensor, batch_dims: int = 0):
        """``greedy_keep``'s (keep, converged) for (..., N, 4) boxes and their (..., N) valid mask."""
        suppress = suppression_matrix(boxes, self.iou_threshold, self.matrix_kernel)
        return greedy_keep(suppress, valid, self.rounds, batch_dims, self.greedy_kernel)


def suppression_matrix(boxes: torch.Tensor, iou_threshold: float, kernel: bool = False) -> torch.Tensor:
    """(..., N, N) bool: ``S[j, i]`` when box j comes before box i and suppresses it. With ``kernel``,
    for fp32 boxes on CUDA, the same entries as fp16 0/1 in one pass (suppression_kernel.py).

    The IoU test is mmcv's CUDA kernel's, op for op: ``inter > thr * (area_j + area_i - inter)``.
    """
    if kernel and boxes.is_cuda and boxes.dtype == torch.float32 and suppression_kernel.available():
        return suppression_kernel.kernel_suppression_matrix(boxes, iou_threshold)
    lt = torch.maximum(boxes[..., :, None, :2], boxes[..., None, :, :2])
    rb = torch.minimum(boxes[..., :, None, 2:], boxes[..., None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    union = area[..., :, None] + area[..., None, :] - inter
    n = boxes.shape[-2]
    earlier = torch.ones(n, n, dtype=torch.bool, device=boxes.device).triu(1)
    return (inter > iou_threshold * union) & earlier


def greedy_keep(suppress: torch.Tensor, valid: torch.Tensor, rounds: int, batch_dims: int = 0,
                kernel: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep mask (..., N) of greedy NMS over score-sorted boxes, and whether it converged.

    ``suppress`` is ``suppression_matrix``'s (..., N, N), bool or 0/1; invalid boxes neither survive
    nor suppress.
    ``converged`` has the first ``batch_dims`` dimensions (one flag per image of a batch).
    With ``kernel``, on CUDA, greedy NMS's mask exactly, in one kernel (greedy_kernel.py): the fixed
    point's wherever it settles within ``rounds``, and converged everywhere.
    """
    if kernel and suppress.is_cuda and greedy_kernel.available():
        return greedy_kernel.kernel_greedy_keep(suppress, valid, batch_dims)
    # Counting kept suppressors is a matrix product; half precision is exact for "any > 0".
    dtype = torch.float16 if suppress.is_cuda else torch.float32
    s = suppress.to(dtype)
    keep = valid
    previous = keep
    for _ in range(rounds):
        previous = keep
        suppressors = torch.matmul(keep.to(dtype).unsqueeze(-2), s).squeeze(-2)
        keep = valid & (suppressors == 0)
    return keep, (keep == previous).flatten(batch_dims).all(-1)


def max_coordinate(boxes: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The largest coordinate among valid boxes (..., N, 4), per leading index: what mmcv's
    ``batched_nms`` sees (it gets those only)."""
    return boxes.masked_fill(~valid[..., None], float("-inf")).flatten(-2).amax(-1)


def offset_by_group(boxes: torch.Tensor, idxs: torch.Tensor, max_coord: torch.Tensor) -> torch.Tensor:
    """mmcv ``batched_nms``'s coordinate offsets (same arithmetic), so that groups never overlap.

    ``max_coord`` has the leading (batch) dimensions of ``idxs``, or none."""
    max_coord = max_coord.reshape(max_coord.shape + (1,) * (idxs.dim() - max_coord.dim()))
    return boxes + (idxs.to(boxes) * (max_coord + 1))[..., None]


def first_kept(keep: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the first ``k`` True entries along the last dimension of a mask (padded with 0),
    and how many there are."""
    n = keep.shape[-1]
    rank = keep.long().cumsum(-1) - 1
    slot = torch.where(keep & (rank < k), rank, torch.full_like(rank, k))
    index = torch.zeros((*keep.shape[:-1], k + 1), dtype=torch.long, device=keep.device)
    index.scatter_(-1, slot, torch.arange(n, device=keep.device).expand_as(slot))
    return index[..., :k], keep.sum(-1).clamp(max=k)
