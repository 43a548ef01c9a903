"""The one front door for images: every variant, stock included, takes its input through here.

A file is read exactly as mmdet's ``LoadImageFromFile`` reads it (``mmcv.imfrombytes``, flag
``color``: cv2's IMREAD_COLOR). An array is normalised to what that read would give for the same
pixels in a file:

    grayscale (H, W) or (H, W, 1)  -> channel replicated to BGR
    4 channels (BGRA)              -> alpha dropped, not composited
    uint16                         -> value >> 8, as cv2 converts 16-bit files to 8-bit
    any strides                    -> a C-contiguous copy

Everything else (float, bool and other integer dtypes, 0-sized, other channel counts, files that
do not decode) raises ``ImageInputError`` naming the problem, before any model or device work.
So does an image that the test pipeline's keep-ratio resize would squash below one pixel: cv2
asserts in stock mmdet there (e.g. 1x700 at test scale 320x192).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

JPEG_SOI, JPEG_SOS, JPEG_EOI = b"\xff\xd8", b"\xff\xda", b"\xff\xd9"


class ImageInputError(ValueError):
    """The image cannot be used: unreadable, or of a kind stock mmdet does not handle."""


def load_image(image) -> np.ndarray:
    """A BGR uint8 (H, W, 3) C-contiguous array from a path or an array (see the module doc).

    A BGR uint8 C-contiguous array is returned as it is, without a copy.
    """
    if isinstance(image, (str, os.PathLike)):
        return _read_file(Path(image))
    if isinstance(image, np.ndarray):
        return _normalise(image, "image array")
    raise ImageInputError(f"expected an image path or a numpy array, got {type(image).__name__}")


def prepare_image(image, cfg) -> np.ndarray:
    """``load_image``, then the size check against the model's test pipeline."""
    image = load_image(image)
    check_test_size(image.shape[0], image.shape[1], cfg)
    return image


def check_test_size(h: int, w: int, cfg) -> None:
    """Reject an (h, w) image that Resize(keep_ratio) to the test scale would make 0 pixels wide or high."""
    import mmcv

    from .config import keep_ratio, test_scale_of

    if not keep_ratio(cfg):
        return  # resized to the test scale itself, never 0
    scale = test_scale_of(cfg)
    new_w, new_h = mmcv.rescale_size((w, h), scale)
    if new_w < 1 or new_h < 1:
        raise ImageInputError(
            f"image {w}x{h} is too thin for test scale {scale[0]}x{scale[1]}: the keep-ratio resize "
            f"would make it {new_w}x{new_h} pixels; each side must resize to at least 1 pixel "
            f"(long side / short side below about {2 * max(scale)})")


def _read_file(path: Path) -> np.ndarray:
    import cv2
    import mmcv

    if path.is_dir():
        raise ImageInputError(f"{path}: is a directory, not an image file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageInputError(f"{path}: no such file") from None
    except OSError as exc:
        raise ImageInputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise ImageInputError(f"{path}: empty file")
    # Some OpenCV builds decode a truncated JPEG, filling the missing part with grey, and only
    # print a warning. A complete JPEG ends its last scan with an end-of-image marker.
    if data.startswith(JPEG_SOI) and data.rfind(JPEG_EOI) < data.rfind(JPEG_SOS):
        raise ImageInputError(f"{path}: truncated JPEG (no end-of-image marker after the last scan)")
    try:
        img = mmcv.imfrombytes(data, flag="color", channel_order="bgr")
    except cv2.error as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise ImageInputError(f"{path}: OpenCV cannot decode it ({reason})") from None
    if img is None:
        raise ImageInputError(f"{path}: OpenCV cannot decode it (corrupt, truncated or not an image)")
    return _normalise(img, str(path))


def _normalise(a: np.ndarray, what: str) -> np.ndarray:
    if a.ndim not in (2, 3):
        raise ImageInputError(f"{what}: expected (H, W) or (H, W, C), got shape {a.shape}")
    if a.size == 0:
        raise ImageInputError(f"{what}: empty image, shape {a.shape}")
    channels = 1 if a.ndim == 2 else a.shape[2]
    if channels not in (1, 3, 4):
        raise ImageInputError(f"{what}: expected 1 (gray), 3 (BGR) or 4 (BGRA) channels, got {channels}")
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)  # cv2's 16-to-8-bit conversion when reading a file as colour
    elif a.dtype != np.uint8:
        hint = ("float images are ambiguous (0..1 or 0..255)" if np.issubdtype(a.dtype, np.floating)
                else "only uint8 and uint16 are images")
        raise ImageInputError(f"{what}: dtype {a.dtype} is not supported ({hint}); convert to uint8 BGR")
    if channels == 1:
        a = np.repeat(a.reshape(a.shape[0], a.shape[1], 1), 3, axis=2)
    elif channels == 4:
        a = a[:, :, :3]
    return np.ascontiguousarray(a)
