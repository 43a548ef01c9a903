"""The held-out scenes as a COCO dataset (scored by ``coco_results.evaluate``).

Category ids are mmdet class index + 1; only the classes the scenes use are listed, so (as in
COCO itself) detections of other classes are not counted against the model.
"""
from __future__ import annotations

import numpy as np

from ..coco_results import encode_mask
from .scenes import COCO_NAMES, LABELS, Scene, heldout_scene


def coco_dataset(scenes: list[Scene]) -> dict:
    """A COCO instance-segmentation dict with image ids 0, 1, ... in the order of ``scenes``."""
    images, annotations = [], []
    for image_id, scene in enumerate(scenes):
        h, w = scene.image.shape[:2]
        images.append({"id": image_id, "width": w, "height": h, "file_name": f"heldout_{image_id:05d}.png"})
        for mask, label, (x1, y1, x2, y2) in zip(scene.masks, scene.labels, scene.boxes.tolist()):
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": int(label) + 1,
                "segmentation": encode_mask(mask), "area": int(mask.sum()),
                "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": 0})
    categories = [{"id": label + 1, "name": name} for label, name in sorted(zip(LABELS, COCO_NAMES))]
    return {"images": images, "annotations": annotations, "categories": categories}


def heldout_split(count: int, size=(512, 512)) -> tuple[list[Scene], dict]:
    scenes = [heldout_scene(i, size) for i in range(count)]
    return scenes, coco_dataset(scenes)


def ground_truth_results(scenes: list[Scene], classes: int = 80) -> list:
    """The scenes' own annotations as mmdet results with score 1: a perfect detector's output."""
    results = []
    for scene in scenes:
        bbox_results, segm_results = [], []
        for c in range(classes):
            keep = scene.labels == c
            bbox_results.append(np.hstack([scene.boxes[keep], np.ones((keep.sum(), 1), np.float32)]))
            segm_results.append(list(scene.masks[keep]))
        results.append((bbox_results, segm_results))
    return results
