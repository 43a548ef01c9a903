"""The extent masks (graphed/extent.py): what is inside a photo's own padding at every stride."""
import torch

from mmdet_opt.graphed.extent import ExtentMask


def test_each_stride_keeps_the_ceiling_of_the_extent_over_it():
    extents = torch.tensor([[608, 800], [800, 1344]])  # two photos in a 800 x 1344 input
    mask = ExtentMask(extents, (800, 1344))
    for stride in (2, 4, 8, 16, 32, 64):
        h, w = -(-800 // stride), -(-1344 // stride)
        inside = mask.inside(h, w)
        assert inside.shape == (2, 1, h, w)
        rows, cols = inside[0, 0].sum(0).max().item(), inside[0, 0].sum(1).max().item()
        assert (rows, cols) == (-(-608 // stride), -(-800 // stride))
        assert inside[1].all()  # the second photo fills the input


def test_the_mask_zeroes_in_place_what_lies_past_the_extent():
    x = torch.ones(1, 3, 13, 21, dtype=torch.float16).contiguous(memory_format=torch.channels_last)
    out = ExtentMask(torch.tensor([[384, 608]]), (800, 1344))(x)  # stride 64: 6 x 10 of 13 x 21
    assert out.data_ptr() == x.data_ptr() and out.is_contiguous(memory_format=torch.channels_last)
    assert out[0, :, :6, :10].eq(1).all() and out.sum().item() == 3 * 6 * 10
