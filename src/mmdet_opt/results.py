"""One flat view of a detector result, whatever form its masks come in."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def holds_probabilities(masks) -> bool:
    """Whether a result's masks are the raw-mask head's (28, 28) probabilities: float, where stock's
    full-image masks are bool (uint8 when soft). Their shape cannot tell: a 28x28 photo's are 28x28."""
    return len(masks) > 0 and np.asarray(masks[0]).dtype.kind == "f"


@dataclass
class Detections:
    """N detections of one image, in the order mmdet lists them (class by class).

    ``masks`` is either (N, H, W) bool (full-image, as stock mmdet gives) or (N, h, w) float
    probabilities (raw, as ``FCNMaskHeadWithRawMask`` gives); ``raw_masks`` says which, and raw
    ones are pasted at ``mask_thr`` (the config's ``mask_thr_binary``, ``paste.mask_threshold``).
    """

    boxes: np.ndarray  # (N, 4) float32, x1 y1 x2 y2, original image pixels
    scores: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) int64
    masks: np.ndarray
    image_shape: tuple[int, int]  # (H, W) of the original image
    raw_masks: bool = False
    mask_thr: float = 0.5

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def from_mmdet(cls, result, image_shape, mask_thr: float = 0.5) -> Detections:
        """From ``(bbox_results, segm_results)``, mmdet's per-class lists."""
        bbox_results, segm_results = result
        h, w = image_shape[:2]
        dets = [np.asarray(b, dtype=np.float32).reshape(-1, 5) for b in bbox_results]
        labels = np.concatenate([np.full(len(d), c, dtype=np.int64) for c, d in enumerate(dets)])
        stacked = np.concatenate(dets) if dets else np.zeros((0, 5), np.float32)
        masks = [m for per_class in segm_results for m in per_class]
        raw = holds_probabilities(masks)
        if masks:
            masks = np.stack(masks)
        else:
            masks = np.zeros((0, h, w), dtype=bool)
        if len(masks) != len(stacked):
            raise ValueError(f"{len(stacked)} boxes but {len(masks)} masks")
        return cls(stacked[:, :4], stacked[:, 4], labels, masks, (h, w), raw, mask_thr)

    def identical(self, other: Detections) -> bool:
        """The same detections bit for bit: boxes, scores, labels and masks, in the same order."""
        return self.image_shape == other.image_shape and all(
            np.array_equal(getattr(self, f), getattr(other, f)) for f in ("boxes", "scores", "labels", "masks"))

    def full_masks(self) -> np.ndarray:
        """(N, H, W) bool masks, pasting raw ones with mmdet's rule."""
        if not self.raw_masks:
            return self.masks.astype(bool)
        from .paste import paste_masks

        return paste_masks(self.masks, self.boxes, *self.image_shape, threshold=self.mask_thr).numpy()


def mmdet_results_equal(a, b) -> bool:
    """Two of mmdet's ``(bbox_results, segm_results)`` bit for bit, class by class, without stacking
    the masks into one array first (at full image size that copy costs as much as the comparison)."""
    (boxes_a, masks_a), (boxes_b, masks_b) = a, b
    if len(boxes_a) != len(boxes_b) or len(masks_a) != len(masks_b):
        return False
    return all(_same_array(x, y) for x, y in zip(boxes_a, boxes_b)) and all(
        len(x) == len(y) and all(_same_array(p, q) for p, q in zip(x, y)) for x, y in zip(masks_a, masks_b))


def _same_array(p, q) -> bool:
    p, q = np.asarray(p), np.asarray(q)
    if p.shape != q.shape or p.dtype != q.dtype:
        return False
    if p.dtype.kind in "bui" and p.flags.c_contiguous and q.flags.c_contiguous and p.nbytes % 8 == 0:
        # full-image bool masks: 8 bytes at a time, several times faster than element by element
        return np.array_equal(p.reshape(-1).view(np.uint64), q.reshape(-1).view(np.uint64))
    return np.array_equal(p, q)
