"""Deliberately broken pipelines: the parity check must be able to fail, and these show it does.

Two kinds. Output mutations rewrite a correct result (mmdet's per-class ``(bbox_results,
segm_results)``) the way a plausible bug would (``OUTPUT_MUTATIONS``). ``ChannelsLastFeatures``
and ``channels_last_model`` are real pipeline changes: the
memory-format pitfall (docs/parity-log.md), where mmcv's RoIAlign reads channels_last
features as if they were NCHW, without an error.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ..paste import box_regions
from ..pipeline import StagedPipeline


def identity(result):
    """The control: a parity check that fails this is broken, not strict."""
    return result


def _is_raw(mask: np.ndarray) -> bool:
    return mask.dtype != bool


def transpose_masks(result):
    """Each mask mirrored about its box's diagonal (a row/column mix-up in mask handling).

    Raw masks are in box coordinates, so each 28x28 is transposed. A full-image mask is
    transposed in the same box-normalised coordinates: its box crop, transposed and resized
    back to the box, which is what pasting the transposed raw mask would give.
    """
    bboxes, segms = result
    out = []
    for boxes, masks in zip(bboxes, segms):
        out.append([m.T.copy() if _is_raw(m) else _transpose_in_box(m, b) for b, m in zip(boxes, masks)])
    return bboxes, out


def _transpose_in_box(mask: np.ndarray, box) -> np.ndarray:
    (x0, y0, x1, y1), = box_regions(np.asarray(box[None, :4], np.float32), *mask.shape)
    out = np.zeros_like(mask)
    if x1 > x0 and y1 > y0:
        crop = mask[y0:y1, x0:x1].T.astype(np.uint8)
        out[y0:y1, x0:x1] = cv2.resize(crop, (int(x1 - x0), int(y1 - y0)), interpolation=cv2.INTER_NEAREST) > 0
    return out


def shift(dx: int):
    """Every detection moved ``dx`` pixels right, box and mask together (an offset bug, e.g. in
    padding or scale handling). Raw masks follow their box when pasted; full masks are shifted."""

    def shifted(result):
        bboxes, segms = result
        out_boxes, out_masks = [], []
        for boxes, masks in zip(bboxes, segms):
            boxes = boxes.copy()
            boxes[:, [0, 2]] += dx
            if len(masks) and not _is_raw(masks[0]):  # full masks: keep boxes inside the image
                boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, masks[0].shape[1])
            out_boxes.append(boxes)
            out_masks.append([m if _is_raw(m) else _shift_mask(m, dx) for m in masks])
        return out_boxes, out_masks

    shifted.__name__ = f"shift_{dx}px"
    return shifted


def _shift_mask(mask: np.ndarray, dx: int) -> np.ndarray:
    out = np.zeros_like(mask)
    if dx >= 0:
        out[:, dx:] = mask[:, : mask.shape[1] - dx]
    else:
        out[:, :dx] = mask[:, -dx:]
    return out


def roll_labels(result):
    """Every detection labelled as the next class (an off-by-one in the class index)."""
    bboxes, segms = result
    return bboxes[-1:] + bboxes[:-1], segms[-1:] + segms[:-1]


OUTPUT_MUTATIONS = {f.__name__: f for f in (identity, transpose_masks, shift(8), roll_labels)}


class ChannelsLastFeatures:
    """A pipeline whose backbone stage hands the FPN outputs on in channels_last layout.

    Same values, different strides: any op that honours strides is unaffected, so this fails
    parity only if something downstream (mmcv's RoIAlign) reads raw memory as NCHW. Every
    stage but ``backbone`` is the wrapped pipeline's.
    """

    def __init__(self, pipeline):
        self.inner = pipeline

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def backbone(self, inputs):
        return tuple(f.contiguous(memory_format=torch.channels_last) for f in self.inner.backbone(inputs))

    def __call__(self, image):
        return StagedPipeline.__call__(self, image)


def channels_last_model(pipeline) -> StagedPipeline:
    """The pitfall as it is usually written: ``model.to(memory_format=torch.channels_last)``.

    Converts ``pipeline.model`` in place (a variant's model is already its own copy).
    """
    pipeline.model.to(memory_format=torch.channels_last)
    return pipeline
