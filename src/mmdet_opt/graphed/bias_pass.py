"""A convolution's bias (and the ReLU after it) added in one vectorised pass over its output.

PyTorch adds a convolution's bias as a broadcast pass, which misses its vectorised kernel and runs
well below memory speed (docs/options.md). These kernels read and write contiguous rows and compute
what ``add_`` computes (the fp32 sum rounded once), so the result is the same bit for bit; a ReLU
after the bias is the same pass.

``add_upsampled_`` is the FPN's top-down step, one more broadcast pass of the same kind.
``BiasPass`` wraps a model's own convolution to add its bias with ``add_bias_``; off CUDA, without
Triton, or for a layout they do not cover, PyTorch's own passes run.
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

TILE = 8192  # elements per program: 32 a thread over 8 warps


def available() -> bool:
    return triton is not None


if triton is not None:

    @triton.jit(do_not_specialize=["rows"])  # one compilation for every image size
    def _add_bias(x, bias, rows, length, channels, PER_ROW: tl.constexpr, RELU: tl.constexpr,
                  BLOCK_R: tl.constexpr, BLOCK_L: tl.constexpr):
        """``x`` as (rows, length) contiguous; the bias per column (channels-last) or per row (NCHW)."""
        row = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
        col = tl.program_id(1) * BLOCK_L + tl.arange(0, BLOCK_L)
        inside = (row < rows)[:, None] & (col < length)[None, :]
        offsets = row.to(tl.int64)[:, None] * length + col[None, :]
        value = tl.load(x + offsets, mask=inside).to(tl.float32)
        if PER_ROW:
            value += tl.load(bias + row % channels, mask=row < rows).to(tl.float32)[:, None]
        else:
            value += tl.load(bias + col, mask=col < length).to(tl.float32)[None, :]
        if RELU:
            value = tl.where(value < 0.0, 0.0, value)  # PyTorch's relu: NaN stays NaN
        tl.store(x + offsets, value.to(x.dtype.element_ty), mask=inside)

    @triton.jit(do_not_specialize=["rows", "height", "width"])
    def _add_upsampled(fine, coarse, bias, rows, height, width, channels, BLOCK_R: tl.constexpr,
                       BLOCK_C: tl.constexpr):
        """fine[n, y, x] += round(coarse[n, y // 2, x // 2] + bias), channels-last, fine (rows, channels)."""
        row = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
        col = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        inside = (row < rows)[:, None] & (col < channels)[None, :]
        x = row % width
        y = (row // width) % height
        n = row // (width * height)
        source = (n * (height // 2) + y // 2) * (width // 2) + x // 2
        up = tl.load(coarse + source.to(tl.int64)[:, None] * channels + col[None, :], mask=inside).to(tl.float32)
        up += tl.load(bias + col, mask=col < channels).to(tl.float32)[None, :]
        up = up.to(fine.dtype.element_ty).to(tl.float32)  # mmdet's coarse level + bias is a tensor of its own
        offsets = row.to(tl.int64)[:, None] * channels + col[None, :]
        value = tl.load(fine + offsets, mask=inside).to(tl.float32) + up
        tl.store(fine + offsets, value.to(fine.dtype.element_ty), mask=inside)


def tile(length: int) -> tuple:
    """(rows, columns) of a program's tile over rows of ``length`` contiguous elements."""
    columns = min(triton.next_power_of_2(length), 1024)
    return max(1, TILE // columns), columns


def add_bias_(x: torch.Tensor, bias: torch.Tensor, relu: bool = False) -> torch.Tensor:
    """``x.add_(bias.view(1, -1, 1, 1))`` (then ``relu_``) on a (N, C, H, W) tensor, in place: by the
    kernel on CUDA, else (or for a layout or dtype it does not take) by PyTorch."""
    if triton is None or not x.is_cuda or not kernel_layout(x) or bias.dtype != x.dtype or x.numel() == 0:
        x.add_(bias.view(1, -1, 1, 1))
        return x.relu_() if relu else x
    return kernel_add_bias_(x, bias, relu)


def kernel_layout(x: torch.Tensor) -> bool:
    return x.dim() == 4 and (x.is_contiguous(memory_format=torch.channels_last) or x.is_contiguous())


def kernel_add_bias_(x: torch.Tensor, bias: torch.Tensor, relu: bool = False) -> torch.Tensor:
    """``add_bias_`` by the kernel, wherever ``x`` is (a CPU tensor runs under ``TRITON_INTERPRET=1``)."""
    if not kernel_layout(x) or bias.shape != (x.shape[1],) or not bias.is_contiguous():
        raise ValueError("kernel_add_bias_ takes a channels-last or contiguous (N, C, H, W) tensor and a (C,) bias")
    n, c, h, w = x.shape
    per_row = not x.is_contiguous(memory_format=torch.channels_last)  # NCHW: a row is one channel's plane
    rows, length = (n * c, h * w) if per_row else (n * h * w, c)
    block_r, block_l = tile(length)
    grid = (triton.cdiv(rows, block_r), triton.cdiv(length, block_l))
    _add_bias[grid](x, bias, rows, length, c, PER_ROW=per_row, RELU=relu, BLOCK_R=block_r, BLOCK_L=block_l,
                    num_warps=8)
    return x


def add_upsampled_(fine: torch.Tensor, coarse: torch.Tensor, bias: torch.Tensor, kernel: bool = True):
    """The FPN's nearest 2x top-down add with the finer lateral's bias (fused.fpn_forward), in place:
    ``fine += upsample(coarse + bias)``, with ``coarse + bias`` rounded to the dtype as its own tensor
    would be. One pass with ``kernel`` on CUDA (channels-last, one dtype); else PyTorch's two."""
    (h, w), (ch, cw) = fine.shape[-2:], coarse.shape[-2:]
    if (h, w) != (2 * ch, 2 * cw):
        raise ValueError(f"add_upsampled_ takes a level twice the coarser one's size, not {(h, w)} and {(ch, cw)}")
    channels_last = all(t.is_contiguous(memory_format=torch.channels_last) for t in (fine, coarse))
    one_dtype = len({fine.dtype, coarse.dtype, bias.dtype}) == 1
    if not (kernel and triton is not None and fine.is_cuda and channels_last and one_dtype):
        coarse = coarse + bias.view(1, -1, 1, 1)
        fine.unflatten(3, (cw, 2)).unflatten(2, (ch, 2)).add_(coarse[:, :, :, None, :, None])
        return fine
    return kernel_add_upsampled_(fine, coarse, bias)


def kernel_add_upsampled_(fine: torch.Tensor, coarse: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``add_upsampled_`` by the kernel, wherever the tensors are."""
    n, c, h, w = fine.shape
    block_r, block_c = tile(c)
    _add_upsampled[(triton.cdiv(n * h * w, block_r), triton.cdiv(c, block_c))](
        fine, coarse, bias, n * h * w, h, w, c, BLOCK_R=block_r, BLOCK_C=block_c, num_warps=8)
    return fine


class BiasPass(nn.Module):
    """``conv`` (a 2-d convolution or transposed convolution, mmcv's wrappers included) with its
    bias, and with ``relu`` the ReLU after it, added by ``add_bias_``: the same values.

    It holds the convolution (its parameters stay ``conv``'s) and stands in its place in the module
    that calls it (``wrap_bias_pass``); ``weight`` and ``bias`` read through to it.
    """

    def __init__(self, conv: nn.Module, relu: bool = False):
        super().__init__()
        if not isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)):
            raise TypeError(f"BiasPass takes a 2-d convolution, not {type(conv).__name__}")
        self.conv, self.relu = conv, relu

    @property
    def weight(self) -> torch.Tensor:
        return self.conv.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.conv.bias

    def forward(self, x, output_size=None):
        conv = self.conv
        if isinstance(conv, nn.ConvTranspose2d):
            if conv.bias is None or not x.is_cuda or output_size is not None:
                y = nn.ConvTranspose2d.forward(conv, x, output_size)
                return y.relu_() if self.relu else y
            y = F.conv_transpose2d(x, conv.weight, None, conv.stride, conv.padding, conv.output_padding, conv.groups,
                                   conv.dilation)
            return add_bias_(y, conv.bias, self.relu)
        if conv.bias is None or not x.is_cuda or conv.padding_mode != "zeros":
            y = nn.Conv2d.forward(conv, x)
            return y.relu_() if self.relu else y
        return add_bias_(F.conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups),
                         conv.bias, self.relu)


def wrap_bias_pass(parent: nn.Module, name: str, relu: bool = False) -> BiasPass:
    """Put ``BiasPass`` around ``parent``'s child ``name`` (a Sequential's or ModuleList's index too),
    in its place. Only for a model's own copy; with ``relu`` the caller drops its own ReLU."""
    wrapped = BiasPass(getattr(parent, name), relu)
    setattr(parent, name, wrapped)
    return wrapped
