"""Greedy NMS in one kernel gives greedy NMS's keep mask exactly, PyTorch's fixed point's wherever that
settles, and the selectors use it only when asked.

On a CUDA machine the kernel runs compiled. Without one, the kernel check runs in a subprocess under
Triton's interpreter (``TRITON_INTERPRET=1``, set before Triton is imported) on CPU tensors:
``python tests/test_greedy_kernel.py``.
"""
import math

import pytest
import torch

from mmdet_opt.graphed import greedy_kernel
from mmdet_opt.graphed.static_nms import greedy_keep, suppression_matrix
from test_suppression_kernel import box_sets
from triton_checks import assert_selectors_ask, graphed_results_agree, run_check

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
needs_triton = pytest.mark.skipif(not greedy_kernel.available(), reason="needs Triton")


def sequential_greedy(suppress: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Greedy NMS as written, one box after another, for one (N, N) matrix."""
    keep = torch.zeros_like(valid)
    for i in range(len(valid)):
        keep[i] = valid[i] and not (keep[:i] & suppress[:i, i].bool()).any()
    return keep


def chain(n: int) -> torch.Tensor:
    """Box j suppresses box j + 1 only: greedy keeps every other box, and the fixed point needs about
    one round per link to get there (more than one block of the kernel's long)."""
    return torch.ones(n - 1).diag(1).bool()


def cases(device: str):
    """(suppress, valid, batch_dims): random strictly upper-triangular matrices of sizes that are and
    are not whole blocks, sparse and dense, bool and 0/1 fp16, with leading dimensions; one with
    entries on and below its diagonal, which greedy NMS never reads; chains shorter and longer than
    PyTorch's rounds and than a block; matrices of real boxes; no boxes at all."""
    g = torch.Generator().manual_seed(0)
    for lead, n, density, batch_dims in (((), 1, 0.5, 0), ((), 200, 0.05, 0), ((3,), 130, 0.3, 1),
                                         ((2, 5), 257, 0.02, 1), ((4,), 300, 0.5, 1), ((2, 3), 0, 0.1, 1),
                                         ((2,), 128, 0.05, 1), ((), 256, 0.02, 0)):
        suppress = (torch.rand(*lead, n, n, generator=g) < density).triu(1)
        valid = torch.rand(*lead, n, generator=g) < 0.9
        yield suppress.to(device), valid.to(device), batch_dims
        yield suppress.half().to(device), valid.to(device), batch_dims
    noise = torch.rand(150, 150, generator=g) < 0.5
    yield noise.to(device), torch.ones(150, dtype=torch.bool, device=device), 0  # only j < i counts
    for n in (12, 40, 300):
        yield chain(n).to(device), torch.ones(n, dtype=torch.bool, device=device), 0
    for boxes, threshold in box_sets(device):
        if boxes.shape[-2] > 2:
            valid = torch.rand(boxes.shape[:-1], generator=g).to(device) < 0.95
            yield suppression_matrix(boxes, threshold).half(), valid, boxes.dim() - 2


def check_kernel(device: str) -> None:
    """The kernel's mask is greedy NMS's, box by box, and so the fixed point's given rounds enough."""
    for suppress, valid, batch_dims in cases(device):
        n = suppress.shape[-1]
        keep, converged = greedy_kernel.kernel_greedy_keep(suppress, valid, batch_dims)
        where = f"{tuple(suppress.shape)} {suppress.dtype}"
        upper = suppress.bool().triu(1)
        count = math.prod(upper.shape[:-2])
        matrices, masks = upper.reshape(count, n, n), valid.reshape(count, n)
        expected = [sequential_greedy(s, v) for s, v in zip(matrices, masks)]
        assert keep.dtype == torch.bool and keep.shape == valid.shape, where
        assert torch.equal(keep.reshape(count, n), torch.stack(expected) if expected else masks), where
        settled = greedy_keep(upper, valid, n + 1, batch_dims)[1]  # enough rounds for any chain
        assert converged.shape == settled.shape and converged.all(), where


@needs_triton
def test_kernel_is_greedy_nms():
    run_check(check_kernel, __file__)


def test_the_reference_is_greedy_nms():
    """What the kernel check leans on: enough rounds of the fixed point give greedy NMS box by box,
    and 16 rounds do not settle a chain of 40."""
    g = torch.Generator().manual_seed(1)
    for n, density in ((60, 0.1), (60, 0.5), (150, 0.03)):
        suppress = (torch.rand(n, n, generator=g) < density).triu(1)
        valid = torch.rand(n, generator=g) < 0.9
        assert torch.equal(greedy_keep(suppress, valid, n + 1)[0], sequential_greedy(suppress, valid))
    ones = torch.ones(40, dtype=torch.bool)
    assert torch.equal(greedy_keep(chain(40), ones, 41)[0], torch.arange(40) % 2 == 0)
    assert not greedy_keep(chain(40), ones, 16)[1]


def test_kernel_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="same N"):
        greedy_kernel.kernel_greedy_keep(torch.zeros(5, 5, dtype=torch.bool), torch.ones(4, dtype=torch.bool))


def test_off_cuda_the_rounds_of_pytorch_serve(monkeypatch):
    monkeypatch.setattr(greedy_kernel, "kernel_greedy_keep", lambda *args: pytest.fail("the kernel ran on a CPU"))
    keep, converged = greedy_keep(chain(12), torch.ones(12, dtype=torch.bool), 16, kernel=True)
    assert converged and keep.sum() == 6


def test_the_option_reaches_both_selectors(small_base_model):
    assert_selectors_ask(small_base_model, "nms_greedy_kernel", "greedy_kernel")


@needs_cuda
def test_a_graphed_pipeline_with_the_kernel_gives_the_same_results(small_base_model, monkeypatch):
    """Every photo's boxes, scores and masks, with the kernel and without (fp16, graphs, CUDA); the
    kernel did run."""
    graphed_results_agree(small_base_model, "nms_greedy_kernel", monkeypatch, greedy_kernel, "kernel_greedy_keep")


if __name__ == "__main__":
    check_kernel("cpu")
