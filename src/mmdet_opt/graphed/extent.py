"""A photo's own padded extent inside a larger network input, so that a shared input shape stays exact.

mmdet pads a resized photo to the next multiple of the size divisor: its *extent*. A network input
shared by photos of many sizes (``GraphOptions.pad_to_scale``) is larger. Past the extent, stock's
convolutions read zeros (their own padding); in the larger input they would read what the layers
before made of the padding (biases through ReLUs), and features near the right and bottom edges
would move. Zeroing, before every convolution or pooling that reads neighbours, what lies past the
extent at that resolution gives each position inside it the inputs it has in stock, bit for bit
where the convolution kernels are the same. At stride s the extent is ceil(extent / s) positions:
every stride-2 step (3x3 convolution, 1x1 downsample, max-pool, the FPN's extra level) halves a
size rounding up.
"""
from __future__ import annotations

import torch

STRIDES = (2, 4, 8, 16, 32, 64)  # the resolutions of a ResNet + FPN below the input's


class ExtentMask:
    """``mask(x)`` zeroes what lies outside each image's extent in ``x`` (in place), looked up by
    ``x``'s spatial size; ``inside(h, w)`` is the (B, 1, h, w) bool mask itself.

    ``extents``: (B, 2) long tensor, each image's padded (height, width) in input pixels (a device
    buffer that a captured graph reads at replay); ``input_shape``: the network input's (H, W).
    """

    def __init__(self, extents: torch.Tensor, input_shape: tuple[int, int]):
        height, width = input_shape
        self.masks = {}
        for stride in STRIDES:
            h, w = -(-height // stride), -(-width // stride)
            limit = (extents + (stride - 1)) // stride  # ceil, per image
            rows = torch.arange(h, device=extents.device) < limit[:, :1]
            cols = torch.arange(w, device=extents.device) < limit[:, 1:]
            self.masks.setdefault((h, w), rows[:, None, :, None] & cols[:, None, None, :])

    def inside(self, h: int, w: int) -> torch.Tensor:
        return self.masks[(h, w)]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul_(self.masks[tuple(x.shape[-2:])])


def no_mask(x: torch.Tensor) -> torch.Tensor:
    """The mask of an input that is exactly every image's extent: nothing to zero."""
    return x
