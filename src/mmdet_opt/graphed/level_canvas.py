"""RoI extraction from every FPN level in one RoIAlign call, with static shapes.

mmdet's ``SingleRoIExtractor`` gathers each level's RoIs and runs one RoIAlign per level: shapes
that depend on the data. Running every level on all RoIs instead (mmdet's ONNX formulation) costs
a full RoIAlign output per level plus the passes that merge them. Here the levels sit side by side
in one tensor, each framed by a copy of its own edge pixels, and each RoI is moved into its
level's frame (scaled by the level's ``1 / stride``, shifted by the frame's origin): one RoIAlign
at spatial scale 1 then samples the same points as the per-level calls.

Why the frame: an aligned RoIAlign samples up to half a pixel outside a map and clamps to the
edge there. Inside the canvas, interpolating between an edge pixel and its copy gives that edge
value, so the clamp is reproduced. RoIs must lie inside the image (mmdet clips them).

The canvas is fp32 NCHW for mmcv's RoIAlign, or (``half``) the fp16 levels' own values, channels
last, for ``roi_align.roi_align_nhwc``: the same RoI features without converting and transposing
every level per call.
"""
from __future__ import annotations

import copy

import torch

from . import roi_align
from . import row_copy as row_copy_kernel
from .extent import at_stride


class LevelCanvas:
    """FPN levels side by side in one (batch, C, H, W) tensor, for RoI extractors over them.

    ``level_sizes``: (height, width) of each level, finest first; ``strides``: theirs. ``half``: an
    fp16 canvas in channels-last memory, read by ``roi_align_nhwc`` (Triton), which ``fill`` copies
    the levels into by rows (row_copy.py) where Triton runs on CUDA; else fp32 NCHW.
    """

    def __init__(self, level_sizes: list, strides: list, channels: int, device, batch: int = 1,
                 half: bool = False):
        self.strides = [int(s) for s in strides]
        self.slots = []  # canvas (y, x) of each level's pixel (0, 0), and the level's height, width
        x = 1
        for h, w in level_sizes:
            self.slots.append((1, x, h, w))
            x += w + 2
        height = max(h for h, _ in level_sizes) + 2
        self.half = half
        self.row_copy = half and row_copy_kernel.available()  # fill's level copies by rows
        if half:  # (B, H, W, C) in memory; ``tensor`` is its (B, C, H, W) view
            self.tensor = torch.zeros((batch, height, x - 1, channels), dtype=torch.float16,
                                      device=device).permute(0, 3, 1, 2)
        else:
            self.tensor = torch.zeros((batch, channels, height, x - 1), device=device)  # one canvas per image
        self.origins = torch.tensor([(x0, y0, x0, y0) for y0, x0, _, _ in self.slots],
                                    dtype=torch.float32, device=device)
        self.scales = torch.tensor([1.0 / s for s in self.strides], dtype=torch.float32, device=device)

    def fill(self, feats, extents: torch.Tensor | None = None):
        """Copy each level (any dtype or memory format) into its slot, then frame it.

        ``extents`` ((B, 2) long, extent.py): each image's padded height and width in input pixels,
        where the levels are larger. The frame then goes where stock's level ends, past that extent
        at the level's stride; what lies beyond is never sampled (RoIs are inside the image)."""
        canvas = self.tensor
        if extents is not None:  # each image's own frame, below
            image = torch.arange(len(canvas), device=canvas.device)
        for feat, (y, x, h, w), stride in zip(feats, self.slots, self.strides):
            slot = canvas[:, :, y:y + h, x:x + w]
            if self.row_copy and feat.is_cuda and row_copy_kernel.rows_copyable(slot, feat):
                row_copy_kernel.copy_rows_(slot, feat)
            else:
                slot.copy_(feat if self.half else nchw(feat))
            canvas[:, :, y - 1, x:x + w] = canvas[:, :, y, x:x + w]
            canvas[:, :, y + h, x:x + w] = canvas[:, :, y + h - 1, x:x + w]
            canvas[:, :, y - 1:y + h + 1, x - 1] = canvas[:, :, y - 1:y + h + 1, x]
            canvas[:, :, y - 1:y + h + 1, x + w] = canvas[:, :, y - 1:y + h + 1, x + w - 1]
            if extents is not None:
                ends = at_stride(extents, stride)  # per image, the level's rows and columns in stock
                rows, cols = y + ends[:, 0], x + ends[:, 1]
                canvas[image, :, rows, x - 1:x + w] = canvas[image, :, rows - 1, x - 1:x + w]  # left frame too
                canvas[image, :, y - 1:y + h + 1, cols] = canvas[image, :, y - 1:y + h + 1, cols - 1]

    def extract(self, extractor, rois: torch.Tensor) -> torch.Tensor:
        """``extractor(feats, rois)`` for (N, 5) RoIs (column 0: the image), read from the filled canvas."""
        num_levels = extractor.num_inputs
        if list(extractor.featmap_strides[:num_levels]) != self.strides[:num_levels]:
            raise ValueError(f"extractor strides {extractor.featmap_strides} are not the canvas' {self.strides}")
        levels = extractor.map_roi_levels(rois, num_levels)
        boxes = rois[:, 1:] * self.scales[levels, None] + self.origins[levels]
        if self.half:
            layer = extractor.roi_layers[0]
            return roi_align.roi_align_nhwc(self.tensor.permute(0, 2, 3, 1), torch.cat([rois[:, :1], boxes], dim=1),
                                            layer.output_size, 1.0, layer.sampling_ratio, layer.aligned)
        layer = copy.copy(extractor.roi_layers[0])
        layer.spatial_scale = 1.0  # each RoI was scaled to its own level above
        return layer(self.tensor, torch.cat([rois[:, :1], boxes], dim=1))


def reads_half(extractor) -> bool:
    """Whether ``roi_align_nhwc`` computes what ``extractor``'s RoI layer does (mmcv's, averaging)."""
    from mmcv.ops import RoIAlign

    layer = extractor.roi_layers[0]
    return roi_align.available() and isinstance(layer, RoIAlign) and layer.pool_mode == "avg" \
        and not layer.use_torchvision


def nchw(feat: torch.Tensor) -> torch.Tensor:
    """``feat`` in NCHW layout; a half-precision channels_last one transposed by a matrix product.

    PyTorch's strided copy from channels_last to NCHW is ten times a plain pass (docs/options.md).
    As a product with the identity, cuBLAS does the transpose at full speed, and exactly: each output is one
    input times 1.0 plus zeros, accumulated in fp32, for finite inputs (an inf would turn its
    pixel's other channels into NaN). Not for fp32 input: TF32 would round it.
    """
    n, c, h, w = feat.shape
    if feat.dtype not in (torch.float16, torch.bfloat16) or feat.is_contiguous() \
            or not feat.is_contiguous(memory_format=torch.channels_last):
        return feat
    eye = torch.eye(c, dtype=feat.dtype, device=feat.device)
    if n == 1:
        rows = feat.permute(0, 2, 3, 1).reshape(h * w, c)  # channels_last memory as it is: (H*W, C)
        return torch.mm(eye, rows.t()).view(1, c, h, w)
    rows = feat.permute(0, 2, 3, 1).reshape(n, h * w, c)  # a batch (a plan of batch N): one product per image
    return torch.matmul(eye, rows.transpose(1, 2)).view(n, c, h, w)
