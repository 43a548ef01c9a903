"""The canvas' row copy writes what PyTorch's strided copy writes, and the canvas filled with it is
the same canvas.

On a CUDA machine the kernel runs compiled; without one, the kernel check runs in a subprocess under
Triton's interpreter on CPU tensors (``python tests/test_row_copy.py``).
"""

import pytest
import torch

import test_level_canvas as lc
from mmdet_opt.graphed import row_copy
from mmdet_opt.graphed.level_canvas import LevelCanvas
from triton_checks import run_check

pytestmark = pytest.mark.skipif(not row_copy.available(), reason="needs Triton")


def check_kernel(device: str) -> None:
    """Levels of a batch of two, into slots of a wider and taller channels-last canvas; rows of a
    few elements and rows longer than one tile."""
    g = torch.Generator().manual_seed(0)
    for channels, (h, w) in [(8, (5, 7)), (256, (13, 21)), (3, (40, 1))]:
        canvas = torch.randn(2, h + 9, w + 30, channels, generator=g).half().to(device).permute(0, 3, 1, 2)
        level = torch.randn(2, channels, h, w, generator=g).half().to(device, memory_format=torch.channels_last)
        expected = canvas.clone()
        expected[:, :, 1:1 + h, 4:4 + w].copy_(level)
        got = canvas.clone()
        row_copy.copy_rows_(got[:, :, 1:1 + h, 4:4 + w], level)
        torch.testing.assert_close(got, expected, rtol=0, atol=0, msg=f"{channels} {h}x{w}")


def test_kernel_is_pytorchs_copy():
    run_check(check_kernel, __file__)


def test_what_it_does_not_take_is_refused():
    canvas = torch.zeros(1, 10, 12, 4).permute(0, 3, 1, 2)
    nchw = torch.zeros(1, 4, 3, 5)
    assert not row_copy.rows_copyable(canvas[:, :, :3, :5], nchw)  # source not channels-last
    assert not row_copy.rows_copyable(canvas[:, :, :3, :5], nchw.half().contiguous(memory_format=torch.channels_last))
    with pytest.raises(ValueError, match="rows are contiguous"):
        row_copy.copy_rows_(torch.zeros(1, 4, 3, 5), nchw.contiguous(memory_format=torch.channels_last))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_canvas_filled_by_rows_is_the_same_canvas(monkeypatch):
    """A batch of two fp16 channels-last images framed at their extents (pad_to_scale), as
    test_roi_align's canvas check: filled by rows or by PyTorch (the kernel unavailable), the same bits."""
    larger = [(h + 3, w + 5) for h, w in lc.level_sizes()]
    g = torch.Generator().manual_seed(5)
    feats = [torch.randn(2, 8, h, w, generator=g).half().cuda().contiguous(memory_format=torch.channels_last)
             for h, w in larger]
    extents = torch.tensor([[lc.PAD_H, lc.PAD_W], [lc.PAD_H - 64, lc.PAD_W - 96]], device="cuda")
    by_rows = LevelCanvas(larger, lc.STRIDES, 8, "cuda", batch=2, half=True)
    monkeypatch.setattr(row_copy, "available", lambda: False)
    plain = LevelCanvas(larger, lc.STRIDES, 8, "cuda", batch=2, half=True)
    assert by_rows.row_copy and not plain.row_copy
    by_rows.fill(feats, extents)
    plain.fill(feats, extents)
    torch.testing.assert_close(by_rows.tensor, plain.tensor, rtol=0, atol=0)


if __name__ == "__main__":
    check_kernel("cpu")
