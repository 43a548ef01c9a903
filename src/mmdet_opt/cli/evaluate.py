"""Score a Mask R-CNN with pycocotools' COCOeval (bbox and segm mAP), stock mmdet (variant
`inference`) and each variant over the same images, as a table with each variant's difference
from stock and its images/s (over the whole pass, decoding included: a graph variant's captures
for each new input shape count in it).

The dataset: --ann ANN.json --images DIR (a COCO annotation file and its image folder), or
--scenes N: held-out scenes 0 .. N-1 of the package's own scene generator, each drawn at a size of
its own (short side log-uniform in --scene-sizes, long side 1 to 1.8 times it) and written as PNG
files with their COCO annotations (into --scenes-dir, else a temporary folder), so the test
pipeline resizes each from its own size as it would a photo. With CHECKPOINT 'trained' that is
the data the package's own model was trained for.

Exit code 0: every variant's segm mAP within --tolerance of stock's and every image scored; 1:
otherwise; 2: bad arguments. Under torchrun --nproc_per_node N each process detects every N-th
image and process 0 scores them all.
"""
from __future__ import annotations

import argparse
import gc
import sys
from contextlib import closing

from ..coco_results import image_detections, score_detections
from .dataset import category_ids, dataset_items
from .detect import detect_images
from .distributed import run_in_processes
from .errors import CliError
from .eval_data import evaluation_dataset
from .eval_table import report
from .model import STOCK, add_model_arguments, open_detector, read_config, variant_label, variant_name
from .progress import Progress, RunStats
from .results_file import check_writable

DEFAULT_TOLERANCE = 0.005


def add_parser(commands) -> None:
    p = commands.add_parser("eval", help="COCO bbox / segm mAP of stock and each variant",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--ann", metavar="ANN.json", help="COCO annotation file (with --images)")
    source.add_argument("--scenes", type=_count, metavar="N", help="the first N held-out scenes, at their own sizes")
    p.add_argument("--images", metavar="DIR", help="folder the annotation file's file_names are in")
    p.add_argument("--scene-sizes", type=_short_sides, default=None, metavar="MIN-MAX",
                   help="--scenes: range of the scenes' short sides in pixels (default 480-1600)")
    p.add_argument("--scenes-dir", metavar="DIR", help="--scenes: keep the scenes and heldout.json in DIR")
    p.add_argument("--variants", default=None,
                   help="comma-separated variants to compare with stock (default: every other variant)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help=f"largest |segm mAP - stock's| a variant may have (default {DEFAULT_TOLERANCE})")
    p.add_argument("--json", metavar="OUT.json", help="also write the figures here")
    p.set_defaults(run=run)


def run(args) -> int:
    if args.ann and not args.images:
        raise CliError("--ann needs --images DIR, the folder its file_names are in")
    if args.json:
        check_writable(args.json, "--json")
    return run_in_processes(args, evaluate)


def evaluate(args, processes, device: str) -> int:
    names = variant_names(args.variants)
    cfg = read_config(args.config, args.scale)
    with evaluation_dataset(args, processes) as (dataset, images_dir, source):
        items = dataset_items(dataset, images_dir)
        rows = [score_variant(args, processes, device, cfg, name, items, dataset) for name in names]
    if not processes.main:
        return 0
    return report(args, [row for row in rows if row], source, device, processes.world)


def variant_names(spec: str | None) -> list:
    """Stock first, then the variants asked for (default: all the others), each once."""
    from ..variants import VARIANTS

    asked = [v.strip() for v in spec.split(",") if v.strip()] if spec else list(VARIANTS)
    names = [STOCK]
    for name in map(variant_name, asked):
        if name not in names:
            names.append(name)
    return names


def score_variant(args, processes, device: str, cfg, name: str, items: list, dataset: dict) -> dict | None:
    """The variant's COCOeval figures and speed over ``items`` (on rank 0; None elsewhere, or when
    a variant other than stock cannot run here, said in one line)."""
    try:
        det = open_detector(args, cfg, name, device)
    except CliError as exc:
        if name == STOCK:
            raise
        if processes.main:
            print(f"not run: {exc}", file=sys.stderr)  # the API names the variant
        return None
    label = variant_label(det)
    part = detect_for_coco(det, processes.shard(items), dataset, args.batch, args.workers, label, processes.main)
    del det
    _release_device_memory(device)
    parts = processes.gather(part)
    if not processes.main:
        return None
    return coco_figures(name, label, dataset, parts)


def coco_figures(name: str, label: str, dataset: dict, parts: list) -> dict:
    """The figures of variant ``name`` (running as ``label``) from each process's ``detect_for_coco``."""
    found = sorted((entry for part, _ in parts for entry in part), key=lambda entry: entry[0])
    dets = [d for _, _, image_dets in found for d in image_dets]
    total = RunStats.combined([part_stats for _, part_stats in parts])
    scores = score_detections(dataset, dets, image_ids=[image_id for _, image_id, _ in found])
    return {"variant": name, "runs_as": label, **scores, "images": total.images, "skipped": total.skipped,
            "seconds": total.seconds, "images_per_s": total.images_per_s, "decode_wait_s": total.decode_wait}


def detect_for_coco(det, items: list, dataset: dict, batch: int = 1, workers: int = 1, label: str = "",
                    show_bar: bool = False):
    """([(index, image id, COCO detections)], RunStats) of ``det`` over ``items``, decoded ahead
    by ``workers`` threads, ``batch`` images per call."""
    ids = category_ids(det.CLASSES, dataset["categories"])
    stats, found = RunStats(), []
    progress = Progress(len(items), show_bar, what=label)
    try:
        with closing(detect_images(det, items, batch, workers, progress, stats)) as detections:
            for item, _, result in detections:
                found.append((item.index, item.image_id, image_detections(result, item.image_id, ids)))
                stats.images += 1
                stats.detections += len(found[-1][2])
                progress.update()
    finally:
        progress.close()
    return found, stats


def _release_device_memory(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of scenes (at least 1)")
    return int(text)


def _short_sides(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    if not (low.isdigit() and high.isdigit()) or not 32 <= int(low) <= int(high):
        raise argparse.ArgumentTypeError(f"{text!r} is not MIN-MAX pixels with 32 <= MIN <= MAX (e.g. 480-1600)")
    return int(low), int(high)
