"""Preprocessing on the device: the config's Resize(keep_ratio) / Normalize / Pad, with tensor ops.

Produces the same ``img_metas`` as mmdet's CPU test pipeline (``ori_shape``, ``img_shape``,
``pad_shape``, ``scale_factor``, ...) and the same tensor: the resize is cv2's fixed-point
INTER_LINEAR redone in integer tensor ops (``resize.BilinearResize``), and normalising a grey
level rounds as mmcv's does under the installed OpenCV (normalize_rule.py; tests/test_preprocess_property.py
checks equality bit for bit). The target scale and normalisation come from the model's test
pipeline, never constants.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torchvision.transforms.functional as TF

from . import normalize_kernel, normalize_rule
from .resize import BilinearResize, bilinear_resize


@dataclass(frozen=True)
class PreprocessSpec:
    """What the config's test pipeline does to an image."""

    scale: tuple[int, int]  # (w, h) bound of Resize(keep_ratio=True)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    to_rgb: bool
    size_divisor: int

    @classmethod
    def from_config(cls, cfg) -> PreprocessSpec:
        from .config import test_scale_of, test_transforms

        transforms = test_transforms(cfg)
        missing = {"Resize", "Normalize", "Pad"} - transforms.keys()
        if missing:
            raise ValueError(f"the test pipeline lacks {sorted(missing)}; GPU preprocessing mirrors them")
        resize, norm, pad = transforms["Resize"], transforms["Normalize"], transforms["Pad"]
        if not resize.get("keep_ratio", True) or pad.get("size_divisor") is None:
            raise ValueError("GPU preprocessing supports Resize(keep_ratio=True) and Pad(size_divisor)")
        return cls(test_scale_of(cfg), tuple(norm.mean), tuple(norm.std), bool(norm.to_rgb),
                   int(pad.size_divisor))


def resized_shape(spec: PreprocessSpec, h: int, w: int) -> tuple[int, int]:
    """(h, w) after Resize(keep_ratio=True), by mmcv's own rule."""
    import mmcv

    new_w, new_h = mmcv.rescale_size((w, h), spec.scale)
    return new_h, new_w


def image_metas(spec: PreprocessSpec, h: int, w: int) -> dict:
    """The img_meta mmdet's test pipeline would produce for an (h, w, 3) image."""
    new_h, new_w = resized_shape(spec, h, w)
    d = spec.size_divisor
    pad_h, pad_w = math.ceil(new_h / d) * d, math.ceil(new_w / d) * d
    w_scale, h_scale = new_w / w, new_h / h
    return {
        "filename": None,
        "ori_filename": None,
        "ori_shape": (h, w, 3),
        "img_shape": (new_h, new_w, 3),
        "pad_shape": (pad_h, pad_w, 3),
        "scale_factor": np.array([w_scale, h_scale, w_scale, h_scale], dtype=np.float32),
        "flip": False,
        "flip_direction": None,
        "img_norm_cfg": {"mean": np.array(spec.mean, dtype=np.float32),
                         "std": np.array(spec.std, dtype=np.float32), "to_rgb": spec.to_rgb},
        "batch_input_shape": (pad_h, pad_w),
    }


def upload(image: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """HWC uint8 image to the device as (3, H, W) uint8: the only host-to-device copy."""
    return torch.from_numpy(np.ascontiguousarray(image)).to(device, non_blocking=True).permute(2, 0, 1)


class NormStats(NamedTuple):
    """The normalisation as mmcv computes it under the installed OpenCV (normalize_rule.py)."""

    mean: torch.Tensor  # (3, 1, 1) float32
    scale: torch.Tensor  # (3, 1, 1) float32: std to divide by, or 1 / std to multiply by
    multiply: bool


def mean_std(spec: PreprocessSpec, device) -> NormStats:
    """The config's mean and std on ``device``, in the form mmcv uses them; made outside a CUDA
    graph capture, which forbids copies."""
    multiply = normalize_rule.multiplies(spec.mean, spec.std)
    scale = normalize_rule.scale_of(torch.tensor(spec.std, dtype=torch.float32), multiply)
    return NormStats(torch.tensor(spec.mean, dtype=torch.float32, device=device).view(3, 1, 1),
                     scale.to(device).view(3, 1, 1), multiply)


def resizer(spec: PreprocessSpec, h: int, w: int, device) -> BilinearResize:
    """The exact resize ``normalize_pad`` applies to an (h, w) image; build it outside a CUDA graph capture."""
    return bilinear_resize(h, w, *resized_shape(spec, h, w), torch.device(device))


def normalize_pad(spec: PreprocessSpec, img: torch.Tensor, metas: dict, out: torch.Tensor | None = None,
                  stats: NormStats | None = None, resize: BilinearResize | None = None,
                  kernel: bool = True):
    """(3, H, W) uint8 on the device -> (1, 3, H_pad, W_pad) normalised, as the CPU pipeline.

    Writes into ``out`` when given (a static buffer, e.g. a CUDA graph's input); ``stats`` are
    ``mean_std(spec, device)`` and ``resize`` is ``resizer(spec, H, W, device)``: both upload small
    tables, so inside a graph capture pass them in, built before it. With ``kernel``, a CUDA
    ``out`` is written in one pass (normalize_kernel.py, the same values).
    """
    new_h, new_w, _ = metas["img_shape"]
    pad_h, pad_w, _ = metas["pad_shape"]
    if tuple(img.shape[1:]) != (new_h, new_w):
        # cv2's INTER_LINEAR on uint8 (mmcv's default), bit for bit: see resize.py.
        if resize is None:
            resize = bilinear_resize(img.shape[1], img.shape[2], new_h, new_w, img.device)
        if resize.dst_shape != (new_h, new_w):
            raise ValueError(f"resize goes to {resize.dst_shape}, img_shape is {(new_h, new_w)}")
        img = resize(img)
    mean, scale, multiply = stats or mean_std(spec, img.device)
    if kernel and out is not None and img.is_cuda and normalize_kernel.available():
        return normalize_kernel.normalize_pad_(img, out, mean, scale, spec.to_rgb, multiply)
    img = img.float()
    if spec.to_rgb:
        img = img.flip(0)
    img = normalize_rule.normalized(img, mean, scale, multiply)
    if out is None:
        return TF.pad(img, [0, 0, pad_w - new_w, pad_h - new_h], fill=0).unsqueeze(0)  # l, t, r, b
    out.zero_()
    out[0, :, :new_h, :new_w] = img
    return out


def gpu_preprocess(spec: PreprocessSpec, image: np.ndarray, device) -> tuple[torch.Tensor, list[dict]]:
    """(img (1, 3, H_pad, W_pad) float32, [img_meta]) computed on ``device``."""
    metas = image_metas(spec, *image.shape[:2])
    return normalize_pad(spec, upload(image, device), metas), [metas]
