"""Bilinear resize of uint8 images with tensor ops, bit-exact with ``cv2.resize(..., INTER_LINEAR)``.

mmdet's ``Resize`` calls ``mmcv.imresize`` -> ``cv2.resize(img, (w, h), interpolation=INTER_LINEAR)``.
For 8-bit images OpenCV does not interpolate in floating point but in fixed point
(``cv::hal::resize`` -> ``resizeGeneric_`` with ``HResizeLinear`` / ``VResizeLinear`` in
modules/imgproc/src/resize.cpp), so a float bilinear resize rounded to uint8 lands one grey level
away on about one pixel in ten. This module redoes OpenCV's integer arithmetic step by step:

- Tables (``hal::resize``): ``scale = 1 / (dst / src)`` in double; for each output index
  ``f = float((d + 0.5) * scale - 0.5)``, ``s = floor(f)``, ``f -= s``. Horizontally a tap left of
  the image (``s < 0``) or on/after its last pixel (``s >= src - 1``) is clamped to that pixel with
  ``f = 0``; vertically ``f`` is kept and only the two row indices are clipped to the image (so
  both taps may read the same row with weights that do not round like one tap would). Weights are
  ``cvRound((1.f - f) * 2048)`` and ``cvRound(f * 2048)`` (INTER_RESIZE_COEF_BITS = 11, rounded
  half to even, in float32), so a pair need not sum to exactly 2048.
- Horizontal pass (``HResizeLinear`` / ``HResizeLinearVecU8_X4``): an exact int32 sum
  ``a0 * p[s] + a1 * p[s + 1]`` per row, i.e. the value scaled by ~2048.
- Vertical pass (``VResizeLinear<uchar, int, short, ...>`` and its SIMD ``VResizeLinearVec_32s8u``,
  which round alike): ``(((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16) + 2) >> 2`` with
  arithmetic shifts. It never leaves [0, 255]: h <= 255 * 2049, so each product term is at most
  ``2049 * 32655 >> 16`` and their sum at most 1020.
- ``hal::resize`` sends an exact 2x downscale on both axes to INTER_AREA's fast path,
  ``(a + b + c + d + 2) >> 2``: with all weights 1024 the formulas above give the same value, so
  no case is special. IPP's 8-bit linear resize is not exact and OpenCV leaves it off
  (``useIPP_NotExact``); a same-size "resize" is a copy.

Everything device-side is integer gathers, multiplies, adds and shifts, so results are identical on
CPU and CUDA and the call can be captured in a CUDA graph (tables are uploaded once, at build).
Verified against the installed OpenCV by tests/test_resize_exact.py.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

COEF_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS
COEF_SCALE = 1 << COEF_BITS


def _taps(src: int, dst: int, clamp_weights: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(first index, second index, first weight, second weight) per output index, as hal::resize."""
    scale = 1.0 / (dst / src)  # cv::resize passes inv_scale = dst / src; hal::resize inverts it
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f)
    f = (f - s).astype(np.float32)  # a float's fractional part: exact
    s = s.astype(np.int64)
    if clamp_weights:  # horizontal: a tap outside the image becomes that edge pixel, weight 1
        outside = (s < 0) | (s >= src - 1)
        f[outside] = 0
        s = np.clip(s, 0, src - 1)
    w0 = np.rint((np.float32(1) - f) * np.float32(COEF_SCALE)).astype(np.int64)
    w1 = np.rint(f * np.float32(COEF_SCALE)).astype(np.int64)
    return np.clip(s, 0, src - 1), np.clip(s + 1, 0, src - 1), w0, w1


class BilinearResize:
    """cv2's INTER_LINEAR resize from (src_h, src_w) to (dst_h, dst_w), on ``device``.

    Takes (C, H, W) uint8, any strides (e.g. the ``permute(2, 0, 1)`` view of an uploaded HWC
    image: that is the layout the rest of the preprocessing works in), any C; returns a new
    (C, dst_h, dst_w) uint8 tensor. When the size does not change it returns ``img`` itself (no
    copy; cv2 copies). Tables live on ``device``, built here, so a call makes no host-device copy
    and no host sync: it can run inside a CUDA graph capture.
    """

    def __init__(self, src_h: int, src_w: int, dst_h: int, dst_w: int, device: torch.device | str = "cpu"):
        if min(src_h, src_w, dst_h, dst_w) < 1:
            raise ValueError(f"resize needs sizes >= 1, got {src_h}x{src_w} -> {dst_h}x{dst_w}")
        self.src_shape, self.dst_shape = (src_h, src_w), (dst_h, dst_w)
        y0, y1, b0, b1 = _taps(src_h, dst_h, clamp_weights=False)
        x0, x1, a0, a1 = _taps(src_w, dst_w, clamp_weights=True)
        table = torch.from_numpy(np.concatenate([y0, y1, b0, b1, x0, x1, a0, a1])).to(device)  # one upload
        self.device = table.device  # with its index: "cuda" -> cuda:0, as an image's device reads
        y0, y1, b0, b1 = table[: 4 * dst_h].view(4, dst_h)
        x0, x1, a0, a1 = table[4 * dst_h:].view(4, dst_w)
        # img[:, rows, cols] with rows (2, 1, dst_h, 1) and cols (1, 2, 1, dst_w) gathers the four
        # taps at once: (C, y-tap, x-tap, dst_h, dst_w).
        self._rows = torch.stack([y0, y1]).view(2, 1, dst_h, 1)
        self._cols = torch.stack([x0, x1]).view(1, 2, 1, dst_w)
        self._x_weights = torch.stack([a0, a1]).to(torch.int32).view(2, 1, dst_w)
        self._y_weights = torch.stack([b0, b1]).to(torch.int32).view(2, dst_h, 1)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if img.dtype != torch.uint8 or img.dim() != 3 or tuple(img.shape[1:]) != self.src_shape:
            raise ValueError(f"expected a (C, {self.src_shape[0]}, {self.src_shape[1]}) uint8 tensor, "
                             f"got {tuple(img.shape)} {img.dtype}")
        if img.device != self.device:
            raise ValueError(f"image on {img.device}, resize tables on {self.device}")
        if self.src_shape == self.dst_shape:
            return img
        taps = img[:, self._rows, self._cols]  # uint8 (C, 2, 2, dst_h, dst_w)
        h = taps * self._x_weights  # int32: the horizontal pass, value * ~2048
        h = h[:, :, 0] + h[:, :, 1]  # (C, 2, dst_h, dst_w): rows y0 and y1
        h >>= 4
        h *= self._y_weights
        h >>= 16
        v = h[:, 0] + h[:, 1]
        v += 2
        v >>= 2
        return v.to(torch.uint8)  # in [0, 255] by construction (module docstring)


@functools.lru_cache(maxsize=64)
def bilinear_resize(src_h: int, src_w: int, dst_h: int, dst_w: int, device: torch.device) -> BilinearResize:
    """A shared BilinearResize per (shape, device): tables are uploaded once per size pair."""
    return BilinearResize(src_h, src_w, dst_h, dst_w, device)


def imresize(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(C, H, W) uint8 resized to ``size`` = (new_h, new_w) as ``mmcv.imresize(hwc, (new_w, new_h))``.

    Note the order: (h, w) as torch shapes, not mmcv's (w, h).
    """
    if img.dim() != 3:
        raise ValueError(f"expected a (C, H, W) uint8 tensor, got shape {tuple(img.shape)}")
    return bilinear_resize(img.shape[1], img.shape[2], int(size[0]), int(size[1]), img.device)(img)
