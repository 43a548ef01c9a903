"""Which images a command runs, under which COCO image ids, and which category each class is.

``infer``: the files given (folders: the image files directly in them), sorted by path; image id
= place in that order, unless ``--ann`` maps file names to ids. ``eval``: the images of the
annotation file, ``--images`` folder / ``file_name``, under their own ids.
"""
from __future__ import annotations

import json
from pathlib import Path

from .detect import ImageItem
from .errors import CliError

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".jp2", ".png", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def find_images(inputs: list) -> tuple[list, list]:
    """``([(path, name), ...] sorted by path, [one line per input that is not there])``.

    ``name`` is the path relative to the folder it was found in, or the file's own name.
    """
    found, problems = {}, []
    for spec in inputs:
        path = Path(spec)
        if path.is_dir():
            files = [f for f in path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
            if not files:
                problems.append(f"{path}: no image files in this folder ({' '.join(IMAGE_SUFFIXES)})")
            for f in files:
                found.setdefault(str(f), f.name)
        elif path.exists():
            found.setdefault(str(path), path.name)
        else:
            problems.append(f"{path}: no such file or folder")
    return sorted(found.items()), problems


def items_in_order(found: list) -> list:
    """Image id = place in path order."""
    return [ImageItem(i, i, path, name) for i, (path, name) in enumerate(found)]


def items_by_annotation(found: list, dataset: dict) -> tuple[list, list]:
    """Image ids of ``dataset`` by file name (its ``file_name``, else that name's last part);
    ``(items, one line per image it does not list)``."""
    by_name = {img["file_name"]: img["id"] for img in dataset["images"]}
    by_base = {}
    for img in dataset["images"]:
        by_base.setdefault(Path(img["file_name"]).name, []).append(img["id"])
    items, problems = [], []
    for path, name in found:
        ids = [by_name[name]] if name in by_name else by_base.get(Path(name).name, [])
        if len(ids) == 1:
            items.append(ImageItem(len(items), ids[0], path, name))
        else:
            problems.append(f"{path}: " + ("no image of the annotation file has this file name" if not ids
                                           else "several images of the annotation file have this file name"))
    return items, problems


def dataset_items(dataset: dict, images_dir: str) -> list:
    """The annotation file's images, by id, as files under ``images_dir``."""
    images = sorted(dataset["images"], key=lambda img: img["id"])
    return [ImageItem(i, img["id"], str(Path(images_dir) / img["file_name"]), img["file_name"])
            for i, img in enumerate(images)]


def load_annotations(path: str) -> dict:
    """A COCO annotation file as a dict; ``CliError`` naming what is wrong with it."""
    try:
        with open(path) as f:
            dataset = json.load(f)
    except FileNotFoundError:
        raise CliError(f"--ann {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise CliError(f"--ann {path}: not a readable JSON file ({exc})") from None
    if not isinstance(dataset, dict) or not {"images", "categories"} <= dataset.keys():
        raise CliError(f"--ann {path}: not a COCO annotation file (needs 'images' and 'categories')")
    dataset.setdefault("annotations", [])
    return dataset


def category_ids(classes, categories: list | None) -> list:
    """For each class, its COCO category id, or None when ``categories`` has no such name.

    Matched by name as mmdet's CocoDataset does ('_' read as ' ', any case); without categories,
    or when no name matches, class index + 1.
    """
    if categories:
        by_name = {_plain(c["name"]): c["id"] for c in categories}
        ids = [by_name.get(_plain(name)) for name in classes]
        if any(i is not None for i in ids):
            return ids
    return [label + 1 for label in range(len(classes))]


def own_categories(classes) -> list:
    return [{"id": label + 1, "name": name} for label, name in enumerate(classes)]


def _plain(name: str) -> str:
    return name.replace("_", " ").strip().lower()
