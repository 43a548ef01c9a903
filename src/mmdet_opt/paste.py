"""Paste raw (N, 28, 28) mask probabilities into pixels with mmdet's own rule, on demand.

``_do_paste_mask`` (mmdet's port of detectron2's) samples each mask with grid_sample at pixel
centres relative to its box; we call it rather than re-deriving it, so pixels match stock's
``FCNMaskHead.get_seg_masks`` exactly for the same probabilities. Full-image pasting is done in
chunks sized so that the float32 working set stays under ``max_chunk_bytes`` (as mmdet's
GPU_MEM_LIMIT does): 100 masks at 7680x4320 would otherwise need 13 GB.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask

DEFAULT_CHUNK_BYTES = 1024**3  # mmdet's GPU_MEM_LIMIT
BYTES_PER_PIXEL = 4 + 8  # float32 mask + float32 (x, y) sampling grid, per pixel per mask


def _as_tensor(x, device=None, dtype=torch.float32) -> torch.Tensor:
    t = x if torch.is_tensor(x) else torch.from_numpy(np.asarray(x))
    return t.to(device=device or t.device, dtype=dtype)


def num_chunks(n: int, img_h: int, img_w: int, max_chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """How many chunks keep each ``torch.chunk`` piece within ``max_chunk_bytes`` (one mask at least)."""
    per_chunk = max(1, max_chunk_bytes // (img_h * img_w * BYTES_PER_PIXEL))
    return max(1, math.ceil(n / per_chunk))


def paste_masks(masks, boxes, img_h: int, img_w: int, threshold: float = 0.5,
                max_chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> torch.Tensor:
    """(N, img_h, img_w) bool masks from (N, h, w) probabilities and (N, 4) boxes (x1, y1, x2, y2).

    Computed on the device the masks are on; bounded memory whatever N and the image size.
    """
    masks = _as_tensor(masks)
    boxes = _as_tensor(boxes, masks.device)
    n = len(masks)
    out = torch.zeros(n, img_h, img_w, dtype=torch.bool, device=masks.device)
    if n == 0:
        return out
    on_cpu = masks.device.type == "cpu"
    # CPU: one mask at a time restricted to its box (skip_empty), as stock does. GPU: whole-image
    # chunks, bounded in size.
    chunks = n if on_cpu else num_chunks(n, img_h, img_w, max_chunk_bytes)
    for inds in torch.chunk(torch.arange(n, device=masks.device), chunks):
        pasted, region = _do_paste_mask(masks[inds, None], boxes[inds], img_h, img_w, skip_empty=on_cpu)
        out[(inds,) + region] = pasted >= threshold
    return out


def box_regions(boxes, img_h: int | None = None, img_w: int | None = None) -> np.ndarray:
    """Integer (x0, y0, x1, y1) pixel regions that hold every pixel a box's mask can cover."""
    b = _as_tensor(boxes, "cpu").numpy()
    x0, y0 = np.floor(b[:, 0]), np.floor(b[:, 1])
    x1, y1 = np.ceil(b[:, 2]), np.ceil(b[:, 3])
    if img_w is not None:
        x0, x1 = np.clip(x0, 0, img_w), np.clip(x1, 0, img_w)
    if img_h is not None:
        y0, y1 = np.clip(y0, 0, img_h), np.clip(y1, 0, img_h)
    return np.stack([x0, y0, np.maximum(x1, x0), np.maximum(y1, y0)], axis=1).astype(np.int64)


def paste_masks_at_box(masks, boxes, img_h: int | None = None, img_w: int | None = None,
                       threshold: float = 0.5) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """Box-local masks for drawing: [(mask (h_i, w_i) bool, (x0, y0))] per detection.

    Each equals the full-image paste cropped to its region, at a cost proportional to box area.
    """
    masks = _as_tensor(masks)
    boxes = _as_tensor(boxes, masks.device)
    out = []
    for mask, box, (x0, y0, x1, y1) in zip(masks, boxes, box_regions(boxes, img_h, img_w)):
        local = box - box.new_tensor([x0, y0, x0, y0])
        pasted, _ = _do_paste_mask(mask[None, None], local[None], int(y1 - y0), int(x1 - x0),
                                   skip_empty=False)
        out.append(((pasted[0] >= threshold).cpu().numpy(), (int(x0), int(y0))))
    return out


def encode_rle(masks, boxes, img_h: int, img_w: int, threshold: float = 0.5,
               max_chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> list[dict]:
    """COCO run-length encodings of the full-image masks, pasted chunk by chunk."""
    from pycocotools import mask as mask_utils

    masks = _as_tensor(masks)
    rles = []
    chunk = max(1, len(masks) // num_chunks(len(masks), img_h, img_w, max_chunk_bytes))
    for start in range(0, len(masks), chunk):
        full = paste_masks(masks[start:start + chunk], _as_tensor(boxes)[start:start + chunk],
                           img_h, img_w, threshold, max_chunk_bytes)
        arr = np.asfortranarray(full.permute(1, 2, 0).cpu().numpy().astype(np.uint8))
        rles.extend(mask_utils.encode(arr))
    return rles


def _flat(result):
    """(masks list, (N, 4) boxes) of an mmdet result ``(bbox_results, segm_results)``, class by class."""
    bbox_results, segm_results = result
    masks = [m for per_class in segm_results for m in per_class]
    boxes = np.concatenate([np.asarray(b, np.float32).reshape(-1, 5) for b in bbox_results])[:, :4]
    return masks, boxes


def full_image_masks(result, image_shape, device="cpu"):
    """What stock mmdet returns: one full-image bool mask per detection, on the host.

    Stock results already hold them (returned as they are); raw 28x28 ones are pasted on ``device``.
    """
    masks, boxes = _flat(result)
    h, w = image_shape[:2]
    if not masks or masks[0].shape == (h, w):
        return masks
    return paste_masks(torch.from_numpy(np.stack(masks)).to(device), boxes, h, w).cpu().numpy()


def coco_rles(result, image_shape, device="cpu") -> list[dict]:
    """COCO run-length encodings, one per detection: mmdet's own encoder for full-image masks,
    pasting on ``device`` chunk by chunk for raw ones."""
    from pycocotools import mask as mask_utils

    masks, boxes = _flat(result)
    h, w = image_shape[:2]
    if not masks or masks[0].shape == (h, w):
        return [mask_utils.encode(np.asfortranarray(m[:, :, None], dtype=np.uint8))[0] for m in masks]
    return encode_rle(torch.from_numpy(np.stack(masks)).to(device), boxes, h, w)
