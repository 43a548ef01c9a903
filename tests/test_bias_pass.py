"""The one-pass bias add gives PyTorch's bias add bit for bit, and the pipeline's convolutions use it.

On a CUDA machine the kernel runs compiled, inside the convolutions it serves. Without one, the
kernel checks run in a subprocess under Triton's interpreter (``TRITON_INTERPRET=1``, set before
Triton is imported) on CPU tensors: ``python tests/test_bias_pass.py``.
"""
import copy
import dataclasses

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from mmdet_opt.graphed import bias_pass
from mmdet_opt.graphed.feature_net import FeatureNet
from mmdet_opt.graphed.fused import mask_head_forward
from mmdet_opt.graphed.options import GraphOptions
from triton_checks import feature_nets_with_and_without, run_check

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
needs_triton = pytest.mark.skipif(not bias_pass.available(), reason="needs Triton")


def layouts(device: str):
    """(tensor, bias) pairs: channels-last and NCHW, fp16 and fp32, sizes that are not whole blocks,
    values around zero and large enough to round in fp16."""
    g = torch.Generator().manual_seed(0)
    for shape in [(2, 256, 26, 42), (1, 3, 7, 9), (100, 80, 28, 28)]:
        for dtype in (torch.float16, torch.float32):
            for memory_format in (torch.channels_last, torch.contiguous_format):
                x = (torch.randn(shape, generator=g) * 300).to(dtype).to(device, memory_format=memory_format)
                yield x, (torch.randn(shape[1], generator=g) * 100).to(dtype).to(device)


def check_kernel(device: str) -> None:
    for x, bias in layouts(device):
        for relu in (False, True):
            expected = x.clone().add_(bias.view(1, -1, 1, 1))
            if relu:
                expected.relu_()
            got = bias_pass.kernel_add_bias_(x.clone(), bias, relu)
            assert got.stride() == x.stride()
            torch.testing.assert_close(got, expected, rtol=0, atol=0, msg=f"{x.shape} {x.dtype} {x.stride()} {relu}")
    for fine, _ in layouts(device):
        if not fine.is_contiguous(memory_format=torch.channels_last) or fine.shape[-1] % 2 or fine.shape[-2] % 2:
            continue
        coarse = fine[:, :, ::2, ::2].flip(1).contiguous(memory_format=torch.channels_last)  # other values
        bias = torch.linspace(-50, 50, fine.shape[1]).to(fine)
        expected = bias_pass.add_upsampled_(fine.clone(), coarse, bias, kernel=False)
        got = bias_pass.kernel_add_upsampled_(fine.clone(), coarse, bias)
        torch.testing.assert_close(got, expected, rtol=0, atol=0, msg=f"{fine.shape} {fine.dtype}")


@needs_triton
def test_kernel_is_pytorchs_bias_add():
    run_check(check_kernel, __file__)


@needs_triton
def test_kernel_refuses_a_layout_it_does_not_read():
    x = torch.zeros(1, 4, 5, 6).permute(0, 1, 3, 2)  # neither contiguous nor channels-last
    with pytest.raises(ValueError, match="channels-last or contiguous"):
        bias_pass.kernel_add_bias_(x, torch.zeros(4))


def test_add_upsampled_is_the_upsampled_sum():
    """The PyTorch path against mmdet's own steps (bias, nearest 2x upsampling, add); a level that is
    not twice the coarser one is refused."""
    g = torch.Generator().manual_seed(4)
    fine, coarse, bias = torch.randn(2, 6, 8, 10, generator=g), torch.randn(2, 6, 4, 5, generator=g), torch.randn(6)
    expected = fine + F.interpolate(coarse + bias.view(1, -1, 1, 1), scale_factor=2.0, mode="nearest")
    torch.testing.assert_close(bias_pass.add_upsampled_(fine.clone(), coarse, bias), expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="twice"):
        bias_pass.add_upsampled_(fine, coarse[:, :, :3], bias)


def test_wrapped_modules_compute_what_they_did():
    """On a CPU (PyTorch's own add) and on CUDA (the kernel): the same values, ReLU included."""
    g = torch.Generator().manual_seed(1)
    conv, deconv = nn.Conv2d(8, 5, 3, padding=1), nn.ConvTranspose2d(8, 6, 2, stride=2)
    x = torch.randn(3, 8, 9, 11, generator=g)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for module, relu in ((conv, False), (deconv, True), (conv, True)):
            original = copy.deepcopy(module).to(device)
            inputs = x.to(device, memory_format=torch.channels_last)
            expected = original(inputs)
            if relu:
                expected = expected.relu()
            wrapped = bias_pass.BiasPass(copy.deepcopy(original), relu=relu)
            assert wrapped.weight is wrapped.conv.weight and wrapped.bias is wrapped.conv.bias
            with torch.no_grad():
                torch.testing.assert_close(wrapped(inputs), expected, rtol=0, atol=0)
    with pytest.raises(TypeError, match="2-d convolution"):
        bias_pass.BiasPass(nn.Linear(3, 4))


def test_feature_net_wraps_its_own_convolutions_only(small_base_model):
    options = GraphOptions().eager_fp32()
    net = FeatureNet(small_base_model, options)
    wrapped = [m for m in net.modules() if isinstance(m, bias_pass.BiasPass)]
    # 4 downsampling, 4 FPN outputs, 2 RPN heads, the mask head's logits and deconvolution
    assert len(wrapped) == 4 + 4 + 2 + 2
    assert net.mask_head.upsample.relu and isinstance(net.mask_head.relu, nn.Identity)
    assert isinstance(net.mask_head.upsample.conv, nn.ConvTranspose2d)
    model_head = small_base_model.roi_head.mask_head
    assert isinstance(model_head.relu, nn.ReLU) and type(model_head.upsample).__name__ == "ConvTranspose2d"
    assert not any(isinstance(m, bias_pass.BiasPass) for m in small_base_model.modules())
    plain = FeatureNet(small_base_model, dataclasses.replace(options, bias_pass=False))
    assert not any(isinstance(m, bias_pass.BiasPass) for m in plain.modules())


@needs_cuda
@torch.no_grad()
def test_feature_net_with_bias_passes_gives_the_same_bits(small_base_model):
    """fp16 channels-last FPN levels, RPN outputs and mask logits, with the passes and without."""
    img = torch.randn(1, 3, 192, 320, generator=torch.Generator().manual_seed(2))
    on, off = feature_nets_with_and_without(small_base_model, "bias_pass", img)
    rois = torch.randn(20, 256, 14, 14, generator=torch.Generator().manual_seed(3)).cuda()
    torch.testing.assert_close(mask_head_forward(on.mask_head, rois), mask_head_forward(off.mask_head, rois),
                               rtol=0, atol=0)


if __name__ == "__main__":
    check_kernel("cpu")
