"""The files ``infer`` writes: the COCO results list, and beside it the images it lists."""
from __future__ import annotations

import json
import os
from pathlib import Path


def images_path(out: str) -> str:
    """``results.json`` -> ``results.images.json``."""
    stem = out[:-len(".json")] if out.endswith(".json") else out
    return f"{stem}.images.json"


def partial_path(out: str, rank: int) -> str:
    """Where one of several processes leaves what it did when the run is interrupted."""
    stem = out[:-len(".json")] if out.endswith(".json") else out
    return f"{stem}.rank{rank}.json"


def write_json(path: str, obj) -> None:
    """Written whole or not at all: a reader never sees half a file."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def write_results(out: str, done: dict, categories: list, rank: int | None = None) -> None:
    """``done``: image index -> (image record, detections). The detections in image order go to
    ``out`` (or the rank's partial file), the image records and categories beside them."""
    order = sorted(done)
    path = out if rank is None else partial_path(out, rank)
    write_json(path, [d for i in order for d in done[i][1]])
    if rank is None:
        write_json(images_path(out), {"images": [done[i][0] for i in order], "annotations": [],
                                      "categories": categories})
