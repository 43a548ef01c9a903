"""The fp16 canvas' Triton RoIAlign gives mmcv's RoIAlign on the fp32 copy of the same values.

On a CUDA machine the kernel runs compiled. Without one, the same checks run in a subprocess under
Triton's interpreter (``TRITON_INTERPRET=1``, which must be set before Triton is imported), on the
CPU and against mmcv's CPU RoIAlign: ``python tests/test_roi_align.py``.
"""
import sys

import pytest
import torch
import torchvision
from mmcv.ops import RoIAlign

import test_level_canvas as lc
from mmdet_opt.graphed import roi_align
from mmdet_opt.graphed.level_canvas import LevelCanvas, reads_half
from triton_checks import run_check

pytestmark = pytest.mark.skipif(not roi_align.available(), reason="needs Triton")


def rois_of_every_kind(height: int, width: int, n: int, seed: int) -> torch.Tensor:
    """Two images' RoIs of every size: on the edges, a point, a whole map, a pixel past it."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([width, height])
    wh = torch.rand(n, 2, generator=g) * torch.tensor([width, height])
    rois = torch.cat([torch.arange(n).remainder(2)[:, None].float(), xy, (xy + wh).clamp(max=torch.tensor(
        [width, height]).float())], 1)
    special = torch.tensor([[0, 0, 0, width, height], [1, width - 1, height - 1, width, height],
                            [0, 3, 3, 3, 3], [1, -0.5, -0.5, width + 1, height + 1]], dtype=torch.float32)
    return torch.cat([rois, special])


def check_against_mmcv(device: str) -> None:
    """The kernel against mmcv's op: both output sizes, adaptive and fixed sampling, unaligned."""
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(2, 24, 19, 33, generator=g).half().to(device)
    rois = rois_of_every_kind(19, 33, 40, seed=1).to(device)
    for size, ratio, scale, aligned in [((7, 7), 0, 1.0, True), ((14, 14), 0, 1.0, True),
                                        ((7, 7), 2, 1.0, True), ((7, 7), 0, 0.5, False)]:
        boxes = rois.clone()
        boxes[:, 1:] /= scale
        expected = RoIAlign(size, scale, ratio, "avg", aligned)(feat.float(), boxes)
        got = roi_align.roi_align_nhwc(feat.permute(0, 2, 3, 1).contiguous(), boxes, size, scale, ratio, aligned)
        torch.testing.assert_close(got, expected, rtol=0, atol=0, msg=f"{size} {ratio} {scale} {aligned}")


def check_half_canvas(device: str) -> None:
    """A batch of two fp16 channels-last images, framed at their extents (pad_to_scale): the fp16
    canvas gives the fp32 canvas' RoI features, bit for bit."""
    larger = [(h + 3, w + 5) for h, w in lc.level_sizes()]
    g = torch.Generator().manual_seed(5)
    feats = [torch.randn(2, 8, h, w, generator=g).half().to(device).contiguous(memory_format=torch.channels_last)
             for h, w in larger]
    extents = torch.tensor([[lc.PAD_H, lc.PAD_W], [lc.PAD_H - 64, lc.PAD_W - 96]], device=device)
    fp32, half = (LevelCanvas(larger, lc.STRIDES, 8, device, batch=2, half=h) for h in (False, True))
    fp32.fill(feats, extents)
    half.fill(feats, extents)
    assert half.tensor.dtype == torch.float16 and half.tensor.permute(0, 2, 3, 1).is_contiguous()
    torch.testing.assert_close(half.tensor.float(), fp32.tensor, rtol=0, atol=0)
    rois = lc.rois_inside_image(6, 60).to(device)
    rois[1::2, 0] = 1
    for size in (7, 14):
        ext = lc.extractor(size)
        torch.testing.assert_close(half.extract(ext, rois), fp32.extract(ext, rois), rtol=0, atol=0)


CHECKS = {"mmcv": check_against_mmcv, "canvas": check_half_canvas}


@pytest.mark.parametrize("check", CHECKS)
def test_kernel(check):
    run_check(CHECKS[check], __file__, check)


def test_reads_half_only_what_it_computes():
    assert reads_half(lc.extractor(7))
    for layer in (dict(pool_mode="max"), dict(use_torchvision=True)):
        ext = lc.extractor(7)
        for key, value in layer.items():
            setattr(ext.roi_layers[0], key, value)
        assert not reads_half(ext), layer
    other = lc.extractor(7)
    other.roi_layers[0] = torchvision.ops.RoIAlign(7, 1.0, 0, aligned=True)  # another library's RoIAlign
    assert not reads_half(other)


def test_a_canvas_that_is_not_channels_last_is_refused():
    with pytest.raises(ValueError, match="contiguous"):
        roi_align.roi_align_nhwc(torch.zeros(1, 8, 5, 5).permute(0, 2, 3, 1), torch.zeros(1, 5), (7, 7))


if __name__ == "__main__":
    CHECKS[sys.argv[1]]("cpu")
