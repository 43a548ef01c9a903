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

Only the ring one position past the extent needs the zeros: a 3x3 window (padding 1, stride 1 or
2) centred inside the extent reaches at most one row and one column past it, and 1x1 convolutions
and the FPN's exact 2x upsampling read nothing outside. On a large activation the mask zeroes only
that row and column, O(h + w) positions per image, and what lies beyond them stays as computed,
never read by a position inside. On a small one a pass multiplying by the whole mask is cheaper
(``RING_FROM``; docs/options.md).
"""
from __future__ import annotations

import torch

STRIDES = (2, 4, 8, 16, 32, 64)  # the resolutions of a ResNet + FPN below the input's
RING_FROM = 5_000_000  # elements per image from which zeroing the ring beats a pass over the tensor


class ExtentMask:
    """``mask(x)`` zeroes, in place, what a 3x3 window inside each image's extent would read past it
    in ``x`` (looked up by ``x``'s spatial size); ``inside(h, w)`` is the (B, 1, h, w) bool mask of
    the extent itself.

    ``extents``: (B, 2) long tensor, each image's padded (height, width) in input pixels (a device
    buffer that a captured graph reads at replay); ``input_shape``: the network input's (H, W).
    """

    def __init__(self, extents: torch.Tensor, input_shape: tuple[int, int]):
        height, width = input_shape
        self.limits, self.masks, self.rings = {}, {}, {}
        for stride in STRIDES:
            h, w = -(-height // stride), -(-width // stride)
            if (h, w) in self.masks:
                continue
            limit = at_stride(extents, stride)
            rows, cols = torch.arange(h, device=extents.device), torch.arange(w, device=extents.device)
            self.limits[(h, w)] = limit
            self.masks[(h, w)] = (rows < limit[:, :1])[:, None, :, None] & (cols < limit[:, 1:])[:, None, None, :]

    def inside(self, h: int, w: int) -> torch.Tensor:
        return self.masks[(h, w)]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        size = tuple(x.shape[-2:])
        if x[0].numel() < RING_FROM:
            return x.mul_(self.masks[size])
        if size not in self.rings:  # made on first use: only the large resolutions need one
            self.rings[size] = ring(self.limits[size], *size)
        image, row, col, keep = self.rings[size]
        positions = x.permute(0, 2, 3, 1)  # a view: (image, row, column) -> the position's channels
        positions[image, row, col] = positions[image, row, col] * keep
        return x


def at_stride(extents: torch.Tensor, stride: int) -> torch.Tensor:
    """Each image's extent in positions of a level at ``stride``: ceil(extent / stride)."""
    return (extents + (stride - 1)) // stride


def ring(limit: torch.Tensor, h: int, w: int) -> tuple:
    """Per image, row ``limit[:, 0]`` and column ``limit[:, 1]`` of an (h, w) level, as flat (image,
    row, column) indices, with ``keep``: 0 past the extent, 1 inside it. Where the extent reaches the
    level's edge there is no ring (the convolution's own zero padding is there); the index is then
    clamped onto the last row or column, inside the extent, and ``keep`` leaves it as it is. A
    position listed twice gets the same value both times."""
    count = len(limit)
    ring_row, ring_col = limit[:, :1].clamp(max=h - 1), limit[:, 1:].clamp(max=w - 1)
    rows = torch.arange(h, device=limit.device).expand(count, h)
    cols = torch.arange(w, device=limit.device).expand(count, w)
    row = torch.cat([ring_row.expand(count, w), rows], dim=1)
    col = torch.cat([cols, ring_col.expand(count, h)], dim=1)
    image = torch.arange(count, device=limit.device)[:, None].expand_as(row)
    keep = (row < limit[:, :1]) & (col < limit[:, 1:])
    return image.reshape(-1), row.reshape(-1), col.reshape(-1), keep.reshape(-1, 1)


def no_mask(x: torch.Tensor) -> torch.Tensor:
    """The mask of an input that is exactly every image's extent: nothing to zero."""
    return x
