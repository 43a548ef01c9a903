"""The NMS suppression matrix in one pass holds the same decisions as the broadcast one, and the
selectors use it only when asked.

On a CUDA machine the kernel runs compiled. Without one, the kernel check runs in a subprocess under
Triton's interpreter (``TRITON_INTERPRET=1``, set before Triton is imported) on CPU tensors:
``python tests/test_suppression_kernel.py``.
"""

import pytest
import torch

from mmdet_opt.graphed import suppression_kernel
from mmdet_opt.graphed.static_nms import suppression_matrix
from triton_checks import assert_selectors_ask, graphed_results_agree, run_check

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
needs_triton = pytest.mark.skipif(not suppression_kernel.available(), reason="needs Triton")


def box_sets(device: str):
    """(boxes, threshold): sizes that are not whole tiles, leading dimensions, jittered copies,
    degenerate, identical, infinite and NaN boxes, large coordinates (as mmcv's group offsets make
    them), and pairs at the threshold itself (``at_threshold``)."""
    g = torch.Generator().manual_seed(0)
    for lead, n in (((), 1), ((), 70), ((2, 3), 65), ((4,), 130)):
        centre = torch.rand(*lead, n, 2, generator=g) * 200
        size = torch.rand(*lead, n, 2, generator=g) * 80 + 1
        boxes = torch.cat([centre - size / 2, centre + size / 2], -1)
        if n > 10:
            boxes[..., 5::7, :] = boxes[..., 4::7, :][..., : boxes[..., 5::7, :].shape[-2], :] + \
                torch.randn(boxes[..., 5::7, :].shape, generator=g)  # near copies: IoU close to any threshold
            boxes[..., 3, :] = boxes[..., 2, :]  # identical
            boxes[..., 6, 2:] = boxes[..., 6, :2]  # zero area
            boxes[..., 8, :] += 1e5  # far away, large coordinates
            boxes[..., 9, 2] = float("inf")
            boxes[..., 10, 1] = float("nan")
        for threshold in (0.7, 0.5, 0.3):
            yield boxes.to(device), threshold
    for threshold in (0.7, 0.5, 0.3):
        yield at_threshold(threshold, 512, g).to(device), threshold
        if device == "cuda":  # compiled, where a fused multiply-add could happen: enough pairs to meet one
            yield at_threshold(threshold, 16384, g).view(16384, 2, 4).to(device), threshold


def at_threshold(threshold: float, pairs: int, g: torch.Generator) -> torch.Tensor:
    """``pairs`` pairs of boxes (2k, 2k + 1) whose IoU lies within ~1e-5 of ``threshold``: box 2k + 1
    is box 2k moved right by dx = w (1 - t) / (1 + t), jittered. A few decisions in a thousand turn
    on the last bit of the union, which a fused multiply-add would round differently."""
    w = torch.rand(pairs, generator=g) * 90 + 10
    h = torch.rand(pairs, generator=g) * 90 + 10
    x = torch.rand(pairs, generator=g) * 500
    dx = w * (1 - threshold) / (1 + threshold) + torch.randn(pairs, generator=g) * 1e-4
    first = torch.stack([x, torch.zeros_like(x), x + w, h], -1)
    second = first + torch.stack([dx, torch.zeros_like(dx), dx, torch.zeros_like(dx)], -1)
    return torch.stack([first, second], 1).reshape(2 * pairs, 4)


def check_kernel(device: str) -> None:
    for boxes, threshold in box_sets(device):
        expected = suppression_matrix(boxes, threshold)
        got = suppression_kernel.kernel_suppression_matrix(boxes, threshold)
        assert got.dtype == torch.float16 and got.shape == expected.shape
        assert set(got.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(got.bool(), expected), f"{tuple(boxes.shape)} {threshold}: " \
            f"{(got.bool() != expected).sum().item()} entries differ"


@needs_triton
def test_kernel_is_the_broadcast_matrix():
    run_check(check_kernel, __file__)


@needs_triton
def test_kernel_refuses_what_it_does_not_read():
    with pytest.raises(ValueError, match="float32"):
        suppression_kernel.kernel_suppression_matrix(torch.zeros(5, 4, dtype=torch.float64), 0.5)
    with pytest.raises(ValueError, match="float32"):
        suppression_kernel.kernel_suppression_matrix(torch.zeros(5, 3), 0.5)


def test_off_cuda_the_broadcast_matrix_serves():
    boxes, threshold = next(box_sets("cpu"))
    assert suppression_matrix(boxes, threshold, kernel=True).dtype == torch.bool


@needs_triton
def test_no_boxes_is_an_empty_matrix():
    assert suppression_kernel.kernel_suppression_matrix(torch.zeros(2, 0, 4), 0.5).shape == (2, 0, 0)


def test_the_option_reaches_both_selectors(small_base_model):
    assert_selectors_ask(small_base_model, "nms_kernel", "matrix_kernel")


@needs_cuda
def test_a_graphed_pipeline_with_the_kernel_gives_the_same_results(small_base_model, monkeypatch):
    """Every photo's boxes, scores and masks, with the kernel and without (fp16, graphs, CUDA); the
    kernel did run."""
    graphed_results_agree(small_base_model, "nms_kernel", monkeypatch, suppression_kernel, "kernel_suppression_matrix")


if __name__ == "__main__":
    check_kernel("cpu")
