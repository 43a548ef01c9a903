"""The extent masks (graphed/extent.py): what is inside a photo's own padding at every stride."""
import pytest
import torch
from torch.nn import functional as F

from mmdet_opt.graphed import extent
from mmdet_opt.graphed.extent import ExtentMask
from mmdet_opt.graphed.feature_net import FeatureNet
from mmdet_opt.graphed.options import GraphOptions


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


def test_a_small_tensor_is_zeroed_in_place_everywhere_past_the_extent():
    x = torch.ones(1, 3, 13, 21, dtype=torch.float16).contiguous(memory_format=torch.channels_last)
    out = ExtentMask(torch.tensor([[384, 608]]), (800, 1344))(x)  # stride 64: 6 x 10 of 13 x 21
    assert out.data_ptr() == x.data_ptr() and out.is_contiguous(memory_format=torch.channels_last)
    assert out[0, :, :6, :10].eq(1).all() and out.sum().item() == 3 * 6 * 10


def test_a_large_tensor_is_zeroed_in_place_on_the_ring_just_past_the_extent(monkeypatch):
    monkeypatch.setattr(extent, "RING_FROM", 3 * 13 * 21)
    x = torch.ones(1, 3, 13, 21, dtype=torch.float16).contiguous(memory_format=torch.channels_last)
    out = ExtentMask(torch.tensor([[384, 608]]), (800, 1344))(x)  # stride 64: 6 x 10 of 13 x 21
    assert out.data_ptr() == x.data_ptr() and out.is_contiguous(memory_format=torch.channels_last)
    assert out[0, :, :6, :10].eq(1).all()
    assert out[0, :, 6, :].eq(0).all() and out[0, :, :, 10].eq(0).all()  # the row and column past it
    assert out.sum().item() == 3 * (13 * 21 - 21 - 13 + 1)  # nothing else touched


def test_no_ring_where_the_extent_reaches_the_edge(monkeypatch):
    monkeypatch.setattr(extent, "RING_FROM", 0)
    x = torch.ones(2, 4, 13, 21)
    ExtentMask(torch.tensor([[800, 1344], [800, 608]]), (800, 1344))(x)  # stride 64: 13 x 21 and 13 x 10
    assert x[0].eq(1).all()
    assert x[1, :, :, :10].eq(1).all() and x[1, :, :, 10].eq(0).all()  # past column 10: never read


@pytest.mark.parametrize("stride_of_conv", [1, 2])
def test_a_3x3_window_inside_the_extent_reads_the_same_as_with_everything_past_it_zeroed(stride_of_conv,
                                                                                        monkeypatch):
    """The ring is all that a 3x3 convolution or max-pool (padding 1) reads from outside the extent:
    inside, its output equals the output over an input zeroed everywhere past the extent."""
    monkeypatch.setattr(extent, "RING_FROM", 0)
    generator = torch.Generator().manual_seed(0)
    height, width = 800, 1344
    extents = torch.tensor([[608, 800], [800, 1344], [480, 1344], [800, 416], [352, 96]])
    mask = ExtentMask(extents, (height, width))
    weight = torch.randn(5, 4, 3, 3, generator=generator)
    for stride in (2, 4, 8, 16, 32, 64):
        h, w = -(-height // stride), -(-width // stride)
        x = torch.randn(len(extents), 4, h, w, generator=generator) + 3  # garbage past the extent, not zero
        zeroed = x * mask.inside(h, w)
        ringed = mask(x.clone())
        for run in (lambda t: F.conv2d(t, weight, stride=stride_of_conv, padding=1),
                    lambda t: F.max_pool2d(t, 3, stride=stride_of_conv, padding=1)):
            want, got = run(zeroed), run(ringed)
            limit = (extents + (stride * stride_of_conv - 1)) // (stride * stride_of_conv)
            for i, (rows, cols) in enumerate(limit.tolist()):
                assert torch.equal(got[i, :, :rows, :cols], want[i, :, :rows, :cols]), (stride, i)


@pytest.mark.slow
@pytest.mark.parametrize("extent", [(192, 256), (96, 320)], ids=["4:3", "panorama"])
@torch.no_grad()
def test_a_cpu_feature_net_gives_a_photo_padded_to_the_box_its_own_extents_features(small_base_model, extent):
    """Backbone, FPN and RPN head on a CPU (GraphOptions.eager_fp32): each position inside the extent
    gets, bit for bit once rounded to fp32 as the pipeline uses them, what the photo padded only to
    its extent gets, although the CPU's convolutions sum in another order for another input size."""
    net = FeatureNet(small_base_model, GraphOptions().eager_fp32()).eval()
    h, w = extent
    own = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    padded = torch.zeros(1, 3, 192, 320)
    padded[..., :h, :w] = own
    mask = ExtentMask(torch.tensor([extent]), (192, 320))
    for got, want in zip(net.convolutions(padded, mask), net.convolutions(own), strict=True):
        for got_level, want_level in zip(got, want, strict=True):
            rows, cols = want_level.shape[-2:]
            assert torch.equal(got_level[..., :rows, :cols].float(), want_level.float()), (extent, rows, cols)
