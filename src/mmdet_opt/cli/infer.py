"""Detect over image files and write COCO results: a JSON list of {image_id, category_id, bbox
[x, y, w, h], score, segmentation (RLE)}, in image order, each image's detections class by class.

Image ids: the images (files given, and the image files directly in folders given) sorted by path,
numbered 0, 1, ...; with --ann, the annotation file's id of the image with that file_name (the
path under the folder given, else the last part of it). Beside OUT.json, OUT.images.json lists
each image done ({id, file_name, width, height}) and the categories: a COCO file that
pycocotools' COCO().loadRes(OUT.json) can take. Category id = class index + 1, or with --ann the
annotation file's category of the same name.

An image that cannot be read or detected is skipped with one line on stderr; the others are kept.
Exit code 0: every image done; 1: some skipped; 2: bad arguments; 130: interrupted (what was
done is written). Under torchrun --nproc_per_node N each process takes every N-th image and
process 0 writes the same file a single process would.
"""
from __future__ import annotations

import argparse
import sys
import time
from contextlib import closing

from ..coco_results import image_detections
from .dataset import category_ids, find_images, items_by_annotation, items_in_order, load_annotations, own_categories
from .detect import detect_images
from .distributed import run_in_processes
from .errors import CliError
from .model import STOCK, add_model_arguments, open_detector, read_config, variant_name
from .progress import Progress, RunStats
from .results_file import check_writable, images_path, partial_path, write_results


def add_parser(commands) -> None:
    p = commands.add_parser("infer", help="detect over images, write COCO results JSON", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p)
    p.add_argument("inputs", nargs="+", metavar="IMAGES_OR_DIR", help="image files and folders of them")
    p.add_argument("--out", required=True, metavar="OUT.json",
                   help="results file to write (its folder is made if missing)")
    p.add_argument("--variant", default="inference_graph",
                   help=f"how to run the model (default inference_graph; stock mmdet: {STOCK} or 'stock'); "
                        "on a CPU a variant runs as its CPU composition")
    p.add_argument("--pad-to-scale", action="store_true",
                   help="graph variants: pad every image to the test scale's box (one CUDA graph for all sizes)")
    p.add_argument("--ann", metavar="ANN.json", help="COCO annotation file whose image ids and categories to use")
    p.set_defaults(run=run)


def run(args) -> int:
    for path in (args.out, images_path(args.out)):
        check_writable(path, "--out")
    return run_in_processes(args, infer)


def infer(args, processes, device: str) -> int:
    variant = variant_name(args.variant)
    cfg = read_config(args.config, args.scale)
    dataset = None if args.ann is None else load_annotations(args.ann)
    items, problems = _images(args.inputs, dataset)
    if processes.main:
        for line in problems:
            print(f"skipped {line}", file=sys.stderr)
    det = open_detector(args, cfg, variant, device, args.pad_to_scale)
    batch, planned = args.batch, args.pad_to_scale and args.batch > 1
    if planned:
        batch = _plan_batches_ahead(det, batch, processes.main)
    return _detect_and_write(args, processes, det, items, dataset, len(problems), batch, planned)


def _plan_batches_ahead(det, batch: int, show: bool) -> int:
    """--pad-to-scale: every image runs at one of two shapes, so a whole batch's graphs are built with
    the model, before the first image (as the stream benchmark builds its plans), not during the run.
    Returns the batch size built: at most the variant's largest batch."""
    started = time.perf_counter()
    built = det.plan_ahead(batch)
    if show:
        seconds = time.perf_counter() - started
        largest = f" (the variant's largest batch; --batch {batch} asked for)" if built < batch else ""
        print(f"built the network plans of {built}-image batches{largest} in {seconds:.1f} s", file=sys.stderr)
    return built


def _images(inputs: list, dataset: dict | None) -> tuple[list, list]:
    found, problems = find_images(inputs)
    if dataset is None:
        items = items_in_order(found)
    else:
        items, unlisted = items_by_annotation(found, dataset)
        problems += unlisted
    if not items:
        raise CliError("no images to run: " + ("; ".join(problems) or "none given"))
    return items, problems


def _detect_and_write(args, processes, det, items: list, dataset: dict | None, missing: int, batch: int,
                      planned: bool) -> int:
    categories = dataset["categories"] if dataset else own_categories(det.CLASSES)
    ids = category_ids(det.CLASSES, categories)
    shard = processes.shard(items)
    stats, done, finished = RunStats(), {}, False
    progress = Progress(len(shard), show_bar=processes.main)
    try:
        with closing(detect_images(det, shard, batch, args.workers, progress, stats, planned)) as detections:
            for item, (h, w), result in detections:
                dets = image_detections(result, item.image_id, ids)
                done[item.index] = ({"id": item.image_id, "file_name": item.file_name, "width": w, "height": h},
                                    dets)
                stats.images += 1
                stats.detections += len(dets)
                progress.update()
        finished = True
    except KeyboardInterrupt:
        pass
    finally:
        progress.close()
        if not finished:  # interrupted or failed: keep what was done
            rank = processes.rank if processes.distributed else None
            write_results(args.out, done, categories, rank)
            progress.note(f"stopped: {stats.summary()}; wrote what was done to "
                          f"{args.out if rank is None else partial_path(args.out, rank)}")
    if not finished:
        return 130
    return _gather_and_write(args, processes, done, stats, categories, missing)


def _gather_and_write(args, processes, done: dict, stats, categories: list, missing: int) -> int:
    parts = processes.gather((done, stats))
    if not processes.main:
        return 0
    merged = {index: entry for part, _ in parts for index, entry in part.items()}
    total = RunStats.combined([part_stats for _, part_stats in parts])
    total.skipped += missing
    write_results(args.out, merged, categories)
    print(f"{total.summary(processes.world)}; wrote {args.out} and {images_path(args.out)}")
    return 1 if total.skipped else 0
