"""The held-out scenes as a COCO dataset on disk: PNG files at their own sizes and an annotation file."""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path

ANNOTATIONS = "heldout.json"


def write_heldout_scenes(count: int, directory: str, short_sides=None, processes: int | None = None) -> str:
    """Draw held-out scenes 0 .. count-1, each at its own seeded size, into ``directory`` (in
    ``processes`` processes, default one per core); the path of their COCO annotation file
    (image id = scene index)."""
    from ..training.scenes import HELDOUT_SHORT_SIDES
    from .results_file import write_json

    short_sides = short_sides or HELDOUT_SHORT_SIDES
    Path(directory).mkdir(parents=True, exist_ok=True)
    processes = min(count, processes or os.cpu_count() or 1)
    # Drawing is numpy-bound and holds the GIL: processes, started fresh (no forked CUDA or thread state).
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(pool.map(_write_scene, range(count), repeat(directory), repeat(short_sides)))
    dataset = {"images": [], "annotations": [], "categories": parts[0]["categories"]}
    for index, part in enumerate(parts):
        dataset["images"].append(dict(part["images"][0], id=index))
        for ann in part["annotations"]:
            dataset["annotations"].append(dict(ann, id=len(dataset["annotations"]) + 1, image_id=index))
    path = str(Path(directory) / ANNOTATIONS)
    write_json(path, dataset)
    return path


def _write_scene(index: int, directory: str, short_sides) -> dict:
    import cv2

    from ..training.coco import coco_dataset
    from ..training.scenes import heldout_scene, heldout_size

    scene = heldout_scene(index, heldout_size(index, short_sides))
    part = coco_dataset([scene])
    name = f"heldout_{index:05d}.png"
    part["images"][0]["file_name"] = name
    if not cv2.imwrite(str(Path(directory) / name), scene.image, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"cannot write {Path(directory) / name}")
    return part
