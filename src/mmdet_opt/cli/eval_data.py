"""The dataset ``eval`` scores on: a COCO annotation file and its folder, or held-out scenes written for the run."""
from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def evaluation_dataset(args, processes):
    """``(dataset dict, images folder, what it is)``. Scenes are drawn by process 0 (into
    --scenes-dir, else a temporary folder removed afterwards) while the others wait for them."""
    from .dataset import load_annotations

    if not args.scenes:
        dataset = load_annotations(args.ann)
        yield dataset, args.images, describe(dataset, annotations=args.ann, images=args.images)
        return
    temporary = None
    if processes.main:
        from .scenes import write_heldout_scenes

        directory = args.scenes_dir or tempfile.mkdtemp(prefix="mmdet-opt-scenes-")
        temporary = None if args.scenes_dir else directory
    try:
        ann = write_heldout_scenes(args.scenes, directory, args.scene_sizes) if processes.main else None
        ann = processes.broadcast(ann)  # the other processes wait here for the files
        dataset = load_annotations(ann)
        yield dataset, str(Path(ann).parent), describe(dataset, scenes=args.scenes, folder=args.scenes_dir)
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)


def describe(dataset: dict, **source) -> dict:
    """Where the data came from, with its image count and smallest and largest image (by pixels)."""
    sizes = sorted((img["width"] * img["height"], img["width"], img["height"]) for img in dataset["images"])
    smallest, largest = (f"{w}x{h}" for _, w, h in (sizes[0], sizes[-1])) if sizes else (None, None)
    return {**source, "image_count": len(sizes), "smallest": smallest, "largest": largest}
