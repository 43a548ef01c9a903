"""How closely a variant's detections match stock mmdet's on the same image and weights.

Matching: greedy in descending stock score, each stock detection takes the unmatched candidate
of the same label with the highest box IoU, if that IoU >= 0.5. Masks of matched pairs are
compared as pixels (raw 28x28 masks pasted with mmdet's rule), inside the region covering both
boxes, so memory stays proportional to box area even at 3840x2304.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torchvision.ops import box_iou

from .paste import box_regions, paste_masks
from .results import Detections

DEFAULT_MIN_MATCHED = 0.95
DEFAULT_MIN_MASK_IOU = 0.97
# The project's trained model (``--checkpoint trained``): smooth masks that rounding barely moves,
# so the targets are strict.
TRAINED_MIN_MATCHED = 0.98
TRAINED_MIN_MASK_IOU = 0.98
# Synthetic weights are judged against the deviations from stock that mmdet users already accept:
# stock's own TF32 rounding spread (stock as it runs vs stock in strict fp32) and, for a variant that
# computes in fp16, stock's own fp16 (``inference_fp16``, mmcv's wrap_fp16_model, vs stock). A variant
# may be at most SPREAD_MARGIN further from stock than the worse of those, on both metrics, and never
# under the floors.
SPREAD_MARGIN = 0.02
FLOOR_MATCHED = 0.90
FLOOR_MASK_IOU = 0.90


@dataclass
class ParityReport:
    reference: int  # stock detections
    candidate: int  # variant detections
    matched: int
    matched_fraction: float
    mask_iou_mean: float
    mask_iou_median: float
    mask_iou_p5: float
    mask_iou_min: float
    box_iou_mean: float
    score_diff_max: float

    def passes(self, min_matched=DEFAULT_MIN_MATCHED, min_mask_iou=DEFAULT_MIN_MASK_IOU) -> bool:
        return self.matched_fraction >= min_matched and self.mask_iou_mean >= min_mask_iou

    def failures_against_spread(self, spread: ParityReport, margin: float = SPREAD_MARGIN) -> list[str]:
        """Why this report fails the rule against stock's own rounding spread alone (empty: it passes)."""
        return self.failures_against_spreads({"stock's own rounding spread": spread}, margin)

    def failures_against_spreads(self, spreads: dict[str, ParityReport], margin: float = SPREAD_MARGIN) -> list[str]:
        """Why this report fails the rule (empty: it passes): on each metric, at most ``margin`` under the
        worst of the accepted deviations ``spreads`` (name -> that deviation's report against stock), and
        never under the floor."""
        failures = []
        for metric, floor in (("matched_fraction", FLOOR_MATCHED), ("mask_iou_mean", FLOOR_MASK_IOU)):
            name, worst = min(((n, getattr(r, metric)) for n, r in spreads.items()), key=lambda item: item[1])
            value = getattr(self, metric)
            if value < worst - margin:
                failures.append(f"{metric} {value:.4f} is more than {margin} under {name} ({worst:.4f})")
            if value < floor:
                failures.append(f"{metric} {value:.4f} is under the floor {floor}")
        return failures

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def brief(self) -> str:
        """``matched fraction / mean mask IoU``, as the docs' tables show it."""
        return f"{self.matched_fraction:.2f}/{self.mask_iou_mean:.4f}"

    def __str__(self) -> str:
        return (f"matched {self.matched}/{self.reference} ({self.matched_fraction:.3f}), "
                f"mask IoU mean {self.mask_iou_mean:.4f} median {self.mask_iou_median:.4f} "
                f"p5 {self.mask_iou_p5:.4f} min {self.mask_iou_min:.4f}, "
                f"box IoU mean {self.box_iou_mean:.4f}, max |score diff| {self.score_diff_max:.4f}")


def boxes_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Box IoU matrix, where a box equals itself even when it has no area (a box clipped to a 1-px-wide
    image can be a line: torchvision gives 0/0 there)."""
    ious = np.nan_to_num(box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy(), nan=0.0)
    ious[(a[:, None, :] == b[None, :, :]).all(-1)] = 1.0
    return ious


def match(reference: Detections, candidate: Detections, min_box_iou: float = 0.5) -> list[tuple[int, int]]:
    """(reference index, candidate index) pairs."""
    if len(reference) == 0 or len(candidate) == 0:
        return []
    ious = boxes_iou(reference.boxes, candidate.boxes)
    ious[reference.labels[:, None] != candidate.labels[None, :]] = -1
    taken = np.zeros(len(candidate), dtype=bool)
    pairs = []
    for i in np.argsort(-reference.scores, kind="stable"):
        row = np.where(taken, -1, ious[i])
        j = int(row.argmax())
        if row[j] >= min_box_iou:
            taken[j] = True
            pairs.append((int(i), j))
    return pairs


def mask_in_region(dets: Detections, i: int, region) -> np.ndarray:
    """Detection i's bool mask inside the pixel region (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = region
    if not dets.raw_masks:
        return dets.masks[i, y0:y1, x0:x1].astype(bool)
    # The full-image paste, over the region: it reaches the pixel past a box's edge as stock's does
    # (a box without height at the image's last row still colours that row).
    box = dets.boxes[i:i + 1] - np.array([x0, y0, x0, y0], dtype=np.float32)
    return paste_masks(dets.masks[i:i + 1], box, y1 - y0, x1 - x0, threshold=dets.mask_thr)[0].cpu().numpy()


def mask_iou(reference: Detections, i: int, candidate: Detections, j: int) -> float:
    h, w = reference.image_shape
    both = np.concatenate([box_regions(reference.boxes[i:i + 1], h, w),
                           box_regions(candidate.boxes[j:j + 1], h, w)])
    # One pixel of margin: a pasted mask may reach the pixel its box edge falls in.
    region = (max(0, both[:, 0].min() - 1), max(0, both[:, 1].min() - 1),
              min(w, both[:, 2].max() + 1), min(h, both[:, 3].max() + 1))
    a, b = mask_in_region(reference, i, region), mask_in_region(candidate, j, region)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def compare(reference: Detections, candidate: Detections) -> ParityReport:
    if reference.image_shape != candidate.image_shape:
        raise ValueError(f"image shapes differ: stock {reference.image_shape}, "
                         f"variant {candidate.image_shape}")
    pairs = match(reference, candidate)
    mask_ious = np.array([mask_iou(reference, i, candidate, j) for i, j in pairs]) if pairs else np.zeros(0)
    box_ious = np.array([boxes_iou(reference.boxes[i:i + 1], candidate.boxes[j:j + 1]).item() for i, j in pairs])
    score_diffs = np.array([abs(reference.scores[i] - candidate.scores[j]) for i, j in pairs])
    n_ref = len(reference)
    empty = not pairs
    return ParityReport(
        reference=n_ref,
        candidate=len(candidate),
        matched=len(pairs),
        # Nothing to find and nothing found is perfect agreement.
        matched_fraction=len(pairs) / n_ref if n_ref else float(len(candidate) == 0),
        mask_iou_mean=float(mask_ious.mean()) if not empty else float(n_ref == 0 and len(candidate) == 0),
        mask_iou_median=float(np.median(mask_ious)) if not empty else 0.0,
        mask_iou_p5=float(np.percentile(mask_ious, 5)) if not empty else 0.0,
        mask_iou_min=float(mask_ious.min()) if not empty else 0.0,
        box_iou_mean=float(box_ious.mean()) if not empty else 0.0,
        score_diff_max=float(score_diffs.max()) if not empty else 0.0,
    )
