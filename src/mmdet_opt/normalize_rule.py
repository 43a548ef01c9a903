"""Which float32 arithmetic ``mmcv.imnormalize`` does under the installed OpenCV, for the device to repeat.

mmcv subtracts the mean, then multiplies by the float64 scalar 1 / std with ``cv2.multiply``.
OpenCV 4 multiplies in float64 and rounds once, which a float32 division by std reproduces (for
the grey levels of the configs here; the probe checks); OpenCV 5 multiplies in float32 by
1 / std rounded to float32, which differs from a division in the last bit of many values. So
the installed mmcv is asked once, on every grey level, which of the two it computes.
"""
from __future__ import annotations

from functools import cache

import numpy as np
import torch


def scale_of(std: torch.Tensor, multiply: bool) -> torch.Tensor:
    """What ``normalized`` takes with float32 ``std``: std itself, or 1 / std computed in float64
    and rounded to float32, as mmcv's reciprocal reaches a float32 multiply."""
    return (1 / std.double()).float() if multiply else std


def normalized(x: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor, multiply: bool) -> torch.Tensor:
    """``(x - mean) / std`` or ``(x - mean) * (1 / std)`` in float32; ``scale`` from ``scale_of``."""
    centred = x - mean
    return centred * scale if multiply else centred / scale


@cache
def multiplies(mean: tuple, std: tuple) -> bool:
    """True where the installed mmcv normalises as OpenCV 5 does (times float32 1 / std), False
    where as OpenCV 4 does (what a float32 division gives); raises where it is neither."""
    import cv2
    import mmcv

    greys = np.repeat(np.arange(256, dtype=np.float32), len(mean)).reshape(1, 256, len(mean))
    stock = mmcv.imnormalize(greys, np.array(mean, dtype=np.float32), np.array(std, dtype=np.float32), False)
    x = torch.from_numpy(greys)
    mean_t, std_t = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
    for multiply in (False, True):
        ours = normalized(x, mean_t, scale_of(std_t, multiply), multiply).numpy()
        if np.array_equal(ours.view(np.uint32), np.asarray(stock, dtype=np.float32).view(np.uint32)):
            return multiply
    raise RuntimeError(f"mmcv.imnormalize under OpenCV {cv2.__version__} is neither (x - mean) / std nor "
                       f"(x - mean) * float32(1 / std) in float32, so the device preprocessing cannot repeat it")
