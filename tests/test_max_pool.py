"""The stem's one-pass max-pool gives PyTorch's max-pool bit for bit, and the pipeline's own backbone uses it.

On a CUDA machine the kernel runs compiled. Without one, the kernel check runs in a subprocess under
Triton's interpreter (``TRITON_INTERPRET=1``, set before Triton is imported) on CPU tensors:
``python tests/test_max_pool.py``.
"""
import dataclasses

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from mmdet_opt.graphed import max_pool
from mmdet_opt.graphed.feature_net import FeatureNet
from mmdet_opt.graphed.options import GraphOptions
from triton_checks import feature_nets_with_and_without, run_check

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
needs_triton = pytest.mark.skipif(not max_pool.available(), reason="needs Triton")


def inputs(device: str):
    """Channels-last tensors: fp16 and fp32, odd and even sizes, more channels than one block, ties,
    negative values (so that padding must not count as zero), NaN and -inf."""
    g = torch.Generator().manual_seed(0)
    for shape in [(2, 64, 21, 34), (1, 3, 8, 9), (3, 160, 7, 6), (1, 64, 2, 3)]:
        for dtype in (torch.float16, torch.float32):
            x = (torch.randn(shape, generator=g) * 100 - 50).round()  # rounded: many ties
            x.view(-1)[:: 97] = float("nan")
            x.view(-1)[5:: 89] = float("-inf")
            yield x.to(dtype).to(device, memory_format=torch.channels_last)


def check_kernel(device: str) -> None:
    for x in inputs(device):
        for kernel, stride, padding in ((3, 2, 1), (3, 1, 1), (2, 2, 0), (1, 2, 0)):
            expected = F.max_pool2d(x, kernel, stride, padding)
            got = max_pool.kernel_max_pool(x, kernel, stride, padding)
            assert got.shape == expected.shape and got.is_contiguous(memory_format=torch.channels_last)
            bits = torch.int16 if x.dtype == torch.float16 else torch.int32  # NaN's bits too
            assert torch.equal(got.view(bits), expected.view(bits)), f"{tuple(x.shape)} {x.dtype} " \
                f"{kernel, stride, padding}"


@needs_triton
def test_kernel_is_pytorchs_max_pool():
    run_check(check_kernel, __file__)


@needs_triton
def test_kernel_refuses_a_layout_it_does_not_read():
    with pytest.raises(ValueError, match="channels-last"):
        max_pool.kernel_max_pool(torch.zeros(1, 4, 5, 6), 3, 2, 1)


def test_the_pass_runs_the_modules_own_pool_where_the_kernel_does_not_serve():
    """On a CPU, for NCHW and for settings the kernel does not take (ceil_mode, dilation, indices)."""
    x = torch.randn(2, 8, 9, 11, generator=torch.Generator().manual_seed(1))
    for pool in (nn.MaxPool2d(3, 2, 1), nn.MaxPool2d(3, 2, 1, ceil_mode=True), nn.MaxPool2d(3, 2, 1, dilation=2),
                 nn.MaxPool2d((3, 2), 2)):
        wrapped = max_pool.MaxPoolPass(pool)
        for memory_format in (torch.channels_last, torch.contiguous_format):
            inputs = x.contiguous(memory_format=memory_format)
            torch.testing.assert_close(wrapped(inputs), pool(inputs), rtol=0, atol=0)
    assert max_pool.MaxPoolPass(nn.MaxPool2d(3, 2, 1)).settings == (3, 2, 1)
    for pool in (nn.MaxPool2d(3, 2, 1, ceil_mode=True), nn.MaxPool2d(3, 2, 1, dilation=2), nn.MaxPool2d((3, 2), 2),
                 nn.MaxPool2d(3, 2, 1, return_indices=True)):
        assert max_pool.MaxPoolPass(pool).settings is None, pool
    with pytest.raises(TypeError, match="MaxPool2d"):
        max_pool.MaxPoolPass(nn.AvgPool2d(2))


def test_feature_net_wraps_its_own_stem_pool_only(small_base_model):
    net = FeatureNet(small_base_model, GraphOptions().eager_fp32())
    assert isinstance(net.backbone.resnet.maxpool, max_pool.MaxPoolPass)
    assert isinstance(small_base_model.backbone.maxpool, nn.MaxPool2d)
    plain = FeatureNet(small_base_model, dataclasses.replace(GraphOptions().eager_fp32(), max_pool_kernel=False))
    assert isinstance(plain.backbone.resnet.maxpool, nn.MaxPool2d)


@needs_cuda
@torch.no_grad()
def test_feature_net_with_the_pool_kernel_gives_the_same_bits(small_base_model, monkeypatch):
    """fp16 channels-last FPN levels and RPN outputs, with the kernel and without; the kernel did run."""
    calls = []
    kernel = max_pool.kernel_max_pool
    monkeypatch.setattr(max_pool, "kernel_max_pool", lambda *args: calls.append(1) or kernel(*args))
    img = torch.randn(2, 3, 224, 352, generator=torch.Generator().manual_seed(2))
    on, _ = feature_nets_with_and_without(small_base_model, "max_pool_kernel", img)
    assert isinstance(on.backbone.resnet.maxpool, max_pool.MaxPoolPass) and calls


if __name__ == "__main__":
    check_kernel("cpu")
