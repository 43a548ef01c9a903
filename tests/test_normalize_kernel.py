"""The one-pass normalisation writes what ``normalize_pad``'s PyTorch ops write, bit for bit.

On a CUDA machine the kernel runs compiled; without one, the checks run in a subprocess under
Triton's interpreter on CPU tensors (``python tests/test_normalize_kernel.py``).
"""

import numpy as np
import pytest
import torch

from mmdet_opt import normalize_kernel, normalize_rule
from mmdet_opt.gpu_preprocess import NormStats, PreprocessSpec, image_metas, normalize_pad, resizer
from triton_checks import run_check

pytestmark = pytest.mark.skipif(not normalize_kernel.available(), reason="needs Triton")

SPEC = PreprocessSpec(scale=(333, 200), mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), to_rgb=True,
                      size_divisor=32)


def stats_in_form(device: str, multiply: bool) -> NormStats:
    """SPEC's statistics as mmcv uses them under OpenCV 4 (divide) or 5 (multiply), whichever is installed."""
    std = normalize_rule.scale_of(torch.tensor(SPEC.std), multiply)
    return NormStats(torch.tensor(SPEC.mean, device=device).view(3, 1, 1), std.to(device).view(3, 1, 1), multiply)


def check_kernel(device: str) -> None:
    """Photos that resize (a contiguous uint8 result) and that do not (the upload's HWC strides), padded
    or not, BGR to RGB or not, in either normalisation form; the buffer starts dirty, as a reused one is."""
    g = np.random.default_rng(0)
    for h, w in [(200, 300), (120, 333), (400, 256), (200, 333)]:
        for to_rgb, multiply in [(True, False), (False, False), (True, True)]:
            spec = PreprocessSpec(SPEC.scale, SPEC.mean, SPEC.std, to_rgb, SPEC.size_divisor)
            image = torch.from_numpy(g.integers(0, 256, (h, w, 3), dtype=np.uint8)).to(device).permute(2, 0, 1)
            metas = image_metas(spec, h, w)
            pad_h, pad_w, _ = metas["pad_shape"]
            stats = stats_in_form(device, multiply)
            expected = normalize_pad(spec, image, metas, out=torch.full((1, 3, pad_h, pad_w), 7.0, device=device),
                                     stats=stats, kernel=False)
            got = torch.full((1, 3, pad_h, pad_w), 7.0, device=device)
            resized = resizer(spec, h, w, device)(image)  # ``image`` itself where the size stays
            normalize_kernel.normalize_pad_(resized, got, stats.mean, stats.scale, to_rgb, multiply)
            torch.testing.assert_close(got, expected, rtol=0, atol=0,
                                       msg=f"{h}x{w} to_rgb={to_rgb} multiply={multiply}")


def test_kernel_is_normalize_pads_ops():
    run_check(check_kernel, __file__)


def test_a_buffer_that_does_not_hold_the_image_is_refused():
    mean, std, _ = stats_in_form("cpu", False)
    with pytest.raises(ValueError, match="holds it"):
        normalize_kernel.normalize_pad_(torch.zeros(3, 40, 50, dtype=torch.uint8), torch.zeros(1, 3, 32, 64),
                                        mean, std, True)
    with pytest.raises(ValueError, match="uint8"):
        normalize_kernel.normalize_pad_(torch.zeros(3, 4, 5), torch.zeros(1, 3, 32, 64), mean, std, True)


if __name__ == "__main__":
    check_kernel("cpu")
