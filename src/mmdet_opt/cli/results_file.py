"""The files ``infer`` writes: the COCO results list, and beside it the images it lists."""
from __future__ import annotations

import contextlib
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


def check_writable(path: str, option: str) -> None:
    """``CliError`` now, before any image runs, where ``path`` cannot be written: a folder, or a place
    this user cannot make or write the file in."""
    from .errors import CliError

    target = Path(path)
    try:
        if target.is_dir():
            raise CliError(f"{option} {path}: is a folder; give the file to write")
        folder = next(p for p in (target.parent, *target.parent.parents) if p.exists())  # made if missing
        writable = folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)
    except OSError as exc:  # a folder on the way this user cannot look into
        raise CliError(f"{option} {path}: cannot write there ({exc.strerror or exc})") from None
    if not writable:  # the file itself is replaced whole (write_json), so only its folder counts
        raise CliError(f"{option} {path}: cannot write there ({folder} is not a folder this user can write)")


def write_json(path: str, obj) -> None:
    """Written whole or not at all: a reader never sees half a file, and no partial file is left."""
    from .errors import CliError

    tmp = f"{path}.tmp{os.getpid()}"
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w") as f:
            json.dump(obj, f)
        os.replace(tmp, path)
    except OSError as exc:  # the disk filled, or the place changed since check_writable
        with contextlib.suppress(OSError):
            Path(tmp).unlink(missing_ok=True)
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_results(out: str, done: dict, categories: list, rank: int | None = None) -> None:
    """``done``: image index -> (image record, detections). The detections in image order go to
    ``out`` (or the rank's partial file), the image records and categories beside them."""
    order = sorted(done)
    path = out if rank is None else partial_path(out, rank)
    write_json(path, [d for i in order for d in done[i][1]])
    if rank is None:
        write_json(images_path(out), {"images": [done[i][0] for i in order], "annotations": [],
                                      "categories": categories})
