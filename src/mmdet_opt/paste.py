"""Paste raw (N, 28, 28) mask probabilities into pixels with mmdet's own rule, on demand.

``_do_paste_mask`` (mmdet's port of detectron2's) samples each mask with grid_sample at pixel
centres relative to its box; we call it rather than re-deriving it, so pixels match stock's
``FCNMaskHead.get_seg_masks`` exactly for the same probabilities. Full-image pasting is done in
chunks sized so that the float32 working set stays under ``max_chunk_bytes`` (as mmdet's
GPU_MEM_LIMIT does): 100 masks at 7680x4320 would otherwise need 13 GB.

What users get on the host (``full_image_masks``, ``coco_rles``) is pasted per box region
(``paste_in_regions``): a pixel outside its box's region is never >= 0.5 (mmdet's skip_empty
relies on the same fact), so only the regions are computed, copied and, for RLE, scanned on the
device; the full-image host array is zeros elsewhere. Below 0.5 (the config's ``mask_thr_binary``),
where stock pastes the whole image (a GPU) the regions widen by what the paste reaches (``halo``).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask

from .results import holds_probabilities

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


def pixel_regions(boxes: torch.Tensor, image_hw: torch.Tensor, margin: torch.Tensor | None = None) -> torch.Tensor:
    """(N, 4) int64 (x0, y0, x1, y1): each box's pixels, +-1, clipped to its image (``image_hw``: (h, w),
    one for all boxes or (N, 2)); mmdet's skip_empty region. ``margin`` ((N, 2): x, y pixels,
    ``halo``) widens each box first."""
    lo, hi = boxes[:, :2], boxes[:, 2:]
    if margin is not None:
        lo, hi = lo - margin, hi + margin
    x0y0 = (lo.floor() - 1).clamp(min=0)
    x1y1 = torch.minimum(hi.ceil() + 1, image_hw.flip(-1).to(boxes))
    return torch.cat([x0y0, torch.maximum(x1y1, x0y0)], dim=1).long()


def halo(boxes: torch.Tensor, mask_hw: tuple[int, int], threshold: float) -> torch.Tensor | None:
    """(N, 2) how far past its box (x, y pixels) a whole-image paste can reach ``threshold``; None
    at 0.5 and above. Bilinear sampling blends the mask's edge cells with the zero padding up to
    half a cell out: below 0.5 that blend can pass the threshold, at most box size / (2 * cells) away."""
    if threshold >= 0.5:
        return None
    size = boxes[:, 2:] - boxes[:, :2]
    return size / (2 * size.new_tensor([mask_hw[1], mask_hw[0]]))


def degenerate(boxes: torch.Tensor) -> torch.Tensor:
    """Zero-width or zero-height boxes: stock pastes their centre line over its whole pasted
    region, the whole image on a GPU, so they cannot be pasted per region there."""
    return (boxes[:, 2] == boxes[:, 0]) | (boxes[:, 3] == boxes[:, 1])


def paste_in_regions(masks: torch.Tensor, boxes: torch.Tensor, regions: torch.Tensor, threshold: float = 0.5):
    """(windows, inside): (N, hmax, wmax) bool, mask i pasted over ``regions[i]`` (its top-left at
    [0, 0]) and False beyond it; ``inside`` marks each window's region. Pixel for pixel
    ``_do_paste_mask``'s arithmetic, per mask."""
    sizes = regions[:, 2:] - regions[:, :2]  # (w, h)
    wmax, hmax = (int(v) for v in sizes.max(0).values.tolist())
    rows = torch.arange(hmax, device=masks.device)
    cols = torch.arange(wmax, device=masks.device)
    x0, y0, x1, y1 = torch.split(boxes, 1, dim=1)
    img_y = ((regions[:, 1:2] + rows).to(torch.float32) + 0.5 - y0) / (y1 - y0) * 2 - 1
    img_x = ((regions[:, 0:1] + cols).to(torch.float32) + 0.5 - x0) / (x1 - x0) * 2 - 1
    img_x[torch.isinf(img_x)] = 0  # as _do_paste_mask does for a zero-width box
    img_y[torch.isinf(img_y)] = 0
    n = len(masks)
    grid = torch.stack([img_x[:, None, :].expand(n, hmax, wmax), img_y[:, :, None].expand(n, hmax, wmax)], dim=3)
    pasted = F.grid_sample(masks[:, None].to(torch.float32), grid, align_corners=False)[:, 0] >= threshold
    inside = (rows < sizes[:, 1:2])[:, :, None] & (cols < sizes[:, 0:1])[:, None, :]
    return pasted & inside, inside


def _by_region(masks, boxes, image_hw: torch.Tensor, threshold: float, max_chunk_bytes: int):
    """(indices pasted over the whole image: stock's GPU paste of degenerate boxes; the rest as
    chunks of (indices, regions, windows, inside), each chunk's float working set bounded).
    ``image_hw``: (N, 2) each mask's image (h, w)."""
    on_gpu = masks.device.type != "cpu"  # where stock pastes the whole image, not box +-1
    whole = degenerate(boxes) if on_gpu else torch.zeros_like(boxes[:, 0], dtype=torch.bool)
    return whole.nonzero()[:, 0], _region_chunks(masks, boxes, (~whole).nonzero()[:, 0], image_hw, threshold,
                                                 on_gpu, max_chunk_bytes)


def _one_mask_a_chunk(device: torch.device) -> bool:
    """On a CPU one mask at a time, as stock does there: a window as large as the largest region
    would cost every mask that region's area. (A cost choice only, unlike ``on_gpu``, which follows
    stock's rules per device: tests make the CPU take many masks a chunk.)"""
    return device.type == "cpu"


def _region_chunks(masks, boxes, part, image_hw: torch.Tensor, threshold: float, on_gpu: bool,
                   max_chunk_bytes: int):
    if not len(part):
        return
    margin = halo(boxes[part], masks.shape[-2:], threshold) if on_gpu else None
    regions = pixel_regions(boxes[part], image_hw[part], margin)
    wmax, hmax = (max(1, int(v)) for v in (regions[:, 2:] - regions[:, :2]).max(0).values.tolist())
    chunks = len(part) if _one_mask_a_chunk(part.device) else num_chunks(len(part), hmax, wmax, max_chunk_bytes)
    for k in torch.chunk(torch.arange(len(part), device=part.device), chunks):
        inds = part[k]
        yield (inds, regions[k], *paste_in_regions(masks[inds], boxes[inds], regions[k], threshold))


def _same_image(n: int, img_h: int, img_w: int) -> np.ndarray:
    """(n, 2) int64 ``image_hw``: every mask's image is (img_h, img_w)."""
    return np.tile(np.array([[img_h, img_w]], np.int64), (n, 1))


def host_masks(masks, boxes, img_h: int, img_w: int, threshold: float = 0.5,
               max_chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> np.ndarray:
    """(N, img_h, img_w) bool on the host, equal to ``paste_masks(...).cpu().numpy()`` (stock's
    pixels on the masks' device); only the box regions are pasted and copied."""
    masks = _as_tensor(masks)
    boxes = _as_tensor(boxes, masks.device)
    image_hw = torch.from_numpy(_same_image(len(masks), img_h, img_w)).to(masks.device)
    out = np.zeros((len(masks), img_h, img_w), bool)  # pages stay unwritten outside the regions
    whole, chunks = _by_region(masks, boxes, image_hw, threshold, max_chunk_bytes)
    if len(whole):
        out[whole.cpu().numpy()] = paste_masks(masks[whole], boxes[whole], img_h, img_w, threshold,
                                               max_chunk_bytes).cpu().numpy()
    for inds, regions, windows, inside in chunks:
        bits = windows[inside].cpu().numpy()  # the regions' pixels, one after another, row by row
        offset = 0
        for i, (x0, y0, x1, y1) in zip(inds.tolist(), regions.tolist()):
            h, w = y1 - y0, x1 - x0
            out[i, y0:y1, x0:x1] = bits[offset:offset + h * w].reshape(h, w)
            offset += h * w
    return out


def region_rles(masks, boxes, img_h: int, img_w: int, threshold: float = 0.5,
                max_chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> list[dict]:
    """COCO RLEs equal to ``encode_rle``'s: the run boundaries are found on the device inside each
    box region (column-major, as COCO counts), and only they come to the host."""
    return _sized_rles(masks, boxes, _same_image(len(masks), img_h, img_w), threshold, max_chunk_bytes)


def _sized_rles(masks, boxes, image_hw: np.ndarray, threshold: float = 0.5,
                max_chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> list[dict]:
    """``region_rles`` of masks from images of several sizes (``image_hw``: (N, 2) each mask's image
    (h, w)), all pasted and scanned together: the host's cost is per call, not per image."""
    masks = _as_tensor(masks)
    boxes = _as_tensor(boxes, masks.device)
    hw_on_device = torch.from_numpy(image_hw).to(masks.device)
    rles: list = [None] * len(masks)
    whole, chunks = _by_region(masks, boxes, hw_on_device, threshold, max_chunk_bytes)
    whole = whole.cpu().numpy()
    for h, w in np.unique(image_hw[whole], axis=0).tolist():  # stock's whole-image paste, one size at a time
        group = whole[(image_hw[whole] == (h, w)).all(1)]
        for i, rle in zip(group.tolist(), encode_rle(masks[group], boxes[group], h, w, threshold, max_chunk_bytes)):
            rles[i] = rle
    for inds, regions, windows, _ in chunks:
        # A zero row above and below each region column: a run starts where a pixel differs from
        # the one before it in column-major order.
        columns = F.pad(windows, (0, 0, 1, 1)).transpose(1, 2)
        k, col, row = (columns[:, :, 1:] != columns[:, :, :-1]).nonzero().unbind(1)
        heights = hw_on_device[inds, 0]
        k, starts = torch.stack([k, (regions[k, 0] + col) * heights[k] + regions[k, 1] + row]).cpu().numpy()
        inds = inds.tolist()
        for i, rle in zip(inds, _rles(k, starts, image_hw[inds])):
            rles[i] = rle
    return rles


def _rles(k: np.ndarray, starts: np.ndarray, image_hw: np.ndarray) -> list[dict]:
    """COCO RLEs of ``len(image_hw)`` masks from their run starts (``k``: each start's mask; sorted by
    mask, then position; ``image_hw``: each mask's image (h, w)), every mask at once: a mask's counts
    are the gaps between its boundaries, framed by 0 and its image's end. One loop in numpy instead
    of one per mask: this is a host cost per detection."""
    from pycocotools import mask as mask_utils

    n = len(image_hw)
    if not n:
        return []
    totals = image_hw[:, 0] * image_hw[:, 1]
    # A run that ends at the bottom of a column and one that starts at the top of the next give the
    # same position twice: no boundary. A run that ends with the image needs no boundary either.
    twice = np.flatnonzero((starts[1:] == starts[:-1]) & (k[1:] == k[:-1]))
    keep = starts < totals[k]
    keep[twice] = keep[twice + 1] = False
    k, starts = k[keep], starts[keep]
    per_mask = np.bincount(k, minlength=n)
    first = np.cumsum(per_mask + 2) - (per_mask + 2)  # where each mask's frame starts
    framed = np.empty(len(starts) + 2 * n, np.int64)
    framed[first] = 0
    framed[first + per_mask + 1] = totals
    framed[np.arange(len(starts)) + 2 * k + 1] = starts
    gaps = np.diff(framed)
    counts = [{"size": [h, w], "counts": gaps[f:f + m + 1]}
              for f, m, (h, w) in zip(first.tolist(), per_mask.tolist(), image_hw.tolist())]
    return mask_utils.frPyObjects(counts, *counts[0]["size"])  # each takes its own "size"


def _flat(result):
    """(masks list, (N, 4) boxes) of an mmdet result ``(bbox_results, segm_results)``, class by class."""
    bbox_results, segm_results = result
    masks = [m for per_class in segm_results for m in per_class]
    boxes = np.concatenate([np.asarray(b, np.float32).reshape(-1, 5) for b in bbox_results])[:, :4]
    return masks, boxes


def mask_threshold(model) -> float:
    """The config's ``test_cfg.rcnn.mask_thr_binary``: the probability stock's mask head thresholds at."""
    return float(model.roi_head.test_cfg.get("mask_thr_binary", 0.5))


def full_image_masks(result, image_shape, device="cpu", threshold: float = 0.5):
    """What stock mmdet returns: one full-image bool mask per detection, on the host.

    Stock results already hold them (returned as they are); raw 28x28 ones are pasted on ``device``
    at ``threshold`` (``mask_threshold(model)``).
    """
    masks, boxes = _flat(result)
    h, w = image_shape[:2]
    if not holds_probabilities(masks):
        return masks
    return host_masks(torch.from_numpy(np.stack(masks)).to(device), boxes, h, w, threshold)


def coco_rles(result, image_shape, device="cpu", threshold: float = 0.5) -> list[dict]:
    """COCO run-length encodings, one per detection: mmdet's own encoder for full-image masks,
    pasting on ``device`` chunk by chunk for raw ones."""
    return coco_rles_of_batch([result], [image_shape], device, threshold)[0]


def coco_rles_of_batch(results, image_shapes, device="cpu", threshold: float = 0.5) -> list[list[dict]]:
    """``coco_rles`` of several images' results: their raw masks are pasted and scanned together."""
    from pycocotools import mask as mask_utils

    out: list = []
    raw_places, raw_masks, raw_boxes, raw_hw = [], [], [], []  # the images with raw masks, pasted below
    for result, shape in zip(results, image_shapes, strict=True):
        masks, boxes = _flat(result)
        if holds_probabilities(masks):
            raw_places.append(len(out))
            raw_masks += masks
            raw_boxes.append(boxes)
            raw_hw += [shape[:2]] * len(masks)
            out.append([])
        else:
            out.append([mask_utils.encode(np.asfortranarray(m[:, :, None], dtype=np.uint8))[0] for m in masks])
    if raw_places:
        rles = iter(_sized_rles(torch.from_numpy(np.stack(raw_masks)).to(device), np.concatenate(raw_boxes),
                                np.array(raw_hw, np.int64), threshold))
        for place, boxes in zip(raw_places, raw_boxes):
            out[place] = [next(rles) for _ in boxes]
    return out
