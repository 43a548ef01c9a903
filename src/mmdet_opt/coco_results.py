"""mmdet results as COCO detections, and their COCO bbox / segm mAP (pycocotools' COCOeval).

Category ids are mmdet class index + 1 unless a mapping is given (``image_detections``).
"""
from __future__ import annotations

import contextlib
import io

import numpy as np


def encode_mask(mask: np.ndarray) -> dict:
    """A JSON-ready RLE (``counts`` as str) of one (H, W) mask."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def detections_to_coco(results) -> list[dict]:
    """mmdet results (per image ``(bbox_results, segm_results)``, per class) as COCO detections."""
    return [d for image_id, result in enumerate(results) for d in image_detections(result, image_id)]


def image_detections(result, image_id: int, category_ids=None) -> list[dict]:
    """One image's mmdet result as COCO detections, class by class. ``category_ids[label]`` is the
    category of class ``label`` (None: its detections are left out); default label + 1."""
    bbox_results, segm_results = result
    dets = []
    for label, (boxes, masks) in enumerate(zip(bbox_results, segm_results)):
        category = label + 1 if category_ids is None else category_ids[label]
        if category is None:
            continue
        for (x1, y1, x2, y2, score), mask in zip(np.asarray(boxes, np.float64).reshape(-1, 5), masks):
            rle = mask if isinstance(mask, dict) else encode_mask(mask)
            dets.append({"image_id": image_id, "category_id": category, "score": float(score),
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "segmentation": rle})
    return dets


# COCOeval.stats positions
STATS = {"mAP": 0, "AP50": 1, "mAP_small": 3, "mAP_medium": 4, "mAP_large": 5}


def evaluate(dataset: dict, results) -> dict:
    """{"bbox_mAP", "bbox_AP50", "segm_mAP", "segm_AP50"} of ``results`` against ``dataset``, and
    COCO's mAP by object area (``*_mAP_small`` < 32^2 px, ``_medium``, ``_large`` > 96^2 px)."""
    if len(results) != len(dataset["images"]):
        raise ValueError(f"{len(results)} results for {len(dataset['images'])} images")
    return score_detections(dataset, detections_to_coco(results))


def score_detections(dataset: dict, dets: list[dict], image_ids=None) -> dict:
    """``evaluate``'s figures of COCO detections, over ``image_ids`` only when given (default: all)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    scores = {}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and tables
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        for kind in ("bbox", "segm"):
            if not dets:  # loadRes cannot take an empty list
                scores.update({f"{kind}_{name}": 0.0 for name in STATS})
                continue
            # loadRes reads a det with a "bbox" as a box (its segmentation becomes the box polygon)
            drop = "segmentation" if kind == "bbox" else "bbox"
            kind_dets = [{k: v for k, v in d.items() if k != drop} for d in dets]
            evaluator = COCOeval(gt, gt.loadRes(kind_dets), kind)
            if image_ids is not None:
                evaluator.params.imgIds = sorted(image_ids)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
            # COCOeval's -1 means no object of that kind (or area) to score: counted as 0.
            scores.update({f"{kind}_{name}": max(float(evaluator.stats[i]), 0.0) for name, i in STATS.items()})
    return scores
