"""Where stock's own normalisation is not per channel, so the tests compare around it.

Under OpenCV 5, mmcv 1.7.2's ``imnormalize`` reads its (1, 3) mean and 1 / std as a row of pixels
when the image is 1 or 3 pixels wide: it subtracts nothing at width 1 and one channel's mean per
column at width 3. The device preprocessing normalises those images per channel, as stock does at
every other width.
"""
import contextlib
import functools
from unittest import mock

import mmcv
import numpy as np

IMNORMALIZE = mmcv.imnormalize


@functools.cache
def stock_misreads_mean(width: int) -> bool:
    """Whether the installed mmcv.imnormalize fails to normalise per channel at this image width."""
    image = np.full((2, width, 3), 100, np.float32)
    mean, std = np.array([10, 20, 30], np.float32), np.ones(3, np.float32)
    return not np.array_equal(IMNORMALIZE(image, mean, std, False), image - mean)


def imnormalize_per_channel(img, mean, std, to_rgb=True):
    """mmcv.imnormalize on the image with its first column appended, that column dropped after:
    the same per-pixel arithmetic at a width it reads per channel."""
    wider = np.concatenate([img, img[:, :1]], axis=1)
    return np.ascontiguousarray(IMNORMALIZE(wider, mean, std, to_rgb)[:, :-1])


@contextlib.contextmanager
def stock_per_channel(width: int):
    """Stock's pipeline normalises per channel inside the block, for an image ``width`` pixels wide
    after its resize: mmcv.imnormalize is swapped for ``imnormalize_per_channel`` where it misreads."""
    if not stock_misreads_mean(width):
        yield
        return
    with mock.patch.object(mmcv, "imnormalize", imnormalize_per_channel):
        yield
