"""A convolution's bias (and the ReLU after it) added in one vectorised pass over its output.

PyTorch runs a cuDNN convolution with bias as the convolution, then ``output.add_(bias)`` as a
broadcast pass. A broadcast operand keeps that pass off PyTorch's vectorised kernel: on a channels-
last fp16 output it moved ~1 TB/s on an H200, a quarter of the memory's speed, and the 24
convolutions that no cuDNN kernel fuses (FPN outputs, backbone downsampling, RPN heads, the mask
head's deconvolution and logits) spend 0.31 ms a photo in it at 1333x800 (docs/perf.md). This
kernel reads and writes contiguous blocks and computes what ``add_`` computes, the fp32 sum
rounded once to the output's dtype, so the result is the same bit for bit; a ReLU after the bias
(the deconvolution's) is the same pass.

``with_bias_pass`` switches a model's own convolutions to it; off CUDA, without Triton, or for a
layout it does not cover, each runs its own forward.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

try:
    import triton
    import triton.language as tl
except ImportError:  # a CPU-only install: PyTorch's own bias add serves
    triton = None

BLOCK = 4096  # elements per program: 16 a thread over 8 warps


def available() -> bool:
    return triton is not None


if triton is not None:

    @triton.jit(do_not_specialize=["numel"])  # one compilation for every output size
    def _add_bias(x, bias, numel, channels, inner, RELU: tl.constexpr, BLOCK: tl.constexpr):
        offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        inside = offsets < numel
        value = tl.load(x + offsets, mask=inside).to(tl.float32)
        value += tl.load(bias + (offsets // inner) % channels, mask=inside).to(tl.float32)
        if RELU:
            value = tl.where(value < 0.0, 0.0, value)  # PyTorch's relu: NaN stays NaN
        tl.store(x + offsets, value.to(x.dtype.element_ty), mask=inside)


def channel_stride(x: torch.Tensor) -> int | None:
    """How many consecutive elements of ``x``'s memory share a channel: 1 for channels-last, H*W for
    contiguous NCHW; None for any other layout."""
    if x.dim() != 4:
        return None
    if x.is_contiguous(memory_format=torch.channels_last):
        return 1
    if x.is_contiguous():
        return x.shape[2] * x.shape[3]
    return None


def add_bias_(x: torch.Tensor, bias: torch.Tensor, relu: bool = False) -> torch.Tensor:
    """``x.add_(bias.view(1, -1, 1, 1))`` (then ``relu_``) on a (N, C, H, W) tensor, in place: by the
    kernel on CUDA, else (or for a layout or dtype it does not take) by PyTorch."""
    if triton is None or not x.is_cuda or channel_stride(x) is None or bias.dtype != x.dtype or x.numel() == 0:
        x.add_(bias.view(1, -1, 1, 1))
        return x.relu_() if relu else x
    return kernel_add_bias_(x, bias, relu)


def kernel_add_bias_(x: torch.Tensor, bias: torch.Tensor, relu: bool = False) -> torch.Tensor:
    """``add_bias_`` by the kernel, wherever ``x`` is (a CPU tensor runs under ``TRITON_INTERPRET=1``)."""
    inner = channel_stride(x)
    if inner is None or bias.shape != (x.shape[1],) or not bias.is_contiguous():
        raise ValueError("kernel_add_bias_ takes a channels-last or contiguous (N, C, H, W) tensor and a (C,) bias")
    _add_bias[(triton.cdiv(x.numel(), BLOCK),)](x, bias, x.numel(), x.shape[1], inner, RELU=relu, BLOCK=BLOCK,
                                                 num_warps=8)
    return x


class BiasPassConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` whose bias, and with ``relu`` the ReLU after it, is added by ``add_bias_``."""

    relu = False

    def forward(self, x):
        if self.bias is None or not x.is_cuda or self.padding_mode != "zeros":
            y = super().forward(x)
            return y.relu_() if self.relu else y
        return add_bias_(F.conv2d(x, self.weight, None, self.stride, self.padding, self.dilation, self.groups),
                         self.bias, self.relu)


class BiasPassConvTranspose2d(nn.ConvTranspose2d):
    """An ``nn.ConvTranspose2d`` whose bias, and with ``relu`` the ReLU after it, is one pass."""

    relu = False

    def forward(self, x, output_size=None):
        if self.bias is None or not x.is_cuda or output_size is not None:
            y = super().forward(x, output_size)
            return y.relu_() if self.relu else y
        y = F.conv_transpose2d(x, self.weight, None, self.stride, self.padding, self.output_padding, self.groups,
                               self.dilation)
        return add_bias_(y, self.bias, self.relu)


def with_bias_pass(module: nn.Module, relu: bool = False) -> nn.Module:
    """Switch ``module`` (a 2-d convolution or transposed convolution, mmcv's wrappers included), in
    place, to the class above that adds its bias in one pass.

    Only for a model's own copy: the instance keeps its parameters and attributes, and computes the
    same values (mmcv's wrappers only add a path for empty inputs, which PyTorch now handles itself).
    ``relu`` also applies the ReLU that follows it, so the caller drops its own.
    """
    if isinstance(module, nn.Conv2d):
        module.__class__ = BiasPassConv2d
    elif isinstance(module, nn.ConvTranspose2d):
        module.__class__ = BiasPassConvTranspose2d
    else:
        raise TypeError(f"with_bias_pass takes a 2-d convolution, not {type(module).__name__}")
    module.relu = relu
    return module
