"""infer's images/s over a folder of photos, beside the padded stream benchmark's loop over the same photos.

    python tools/infer_rate.py [--photos DIR] [--max-mp 2] [--batch 1 8] [--workers W ...] [--threads kept as-is]
                               [--device cuda:0]

Without --photos, the suite's stream photos (``suite_stream_sizes(200)``) of at most --max-mp megapixels
are written as JPEG files to a temporary folder. In one process, each on a detector of its own (first
calls and graph captures included, as both pay them), synthetic weights:
- the stream benchmark's loop (``run_stream``) with ``inference_graph_padded`` over the same photos,
  decoded first: no files, no RLEs, one photo a call;
- ``mmdet-opt infer default none DIR --pad-to-scale --batch N`` itself (files decoded ahead, COCO RLEs,
  the results file), for each N, and with each ``--workers W`` given (decoding threads; default: infer's),
  and each ``--threads``: torch's CPU threads ``kept`` beside the decoders as infer keeps them
  (``prefetch.torch_threads_beside``, the default) or left ``as-is``.
A discarded first run takes the process's one-time costs, so that every run compared starts warm.
Prints each one's images/s, infer's as a share of the stream's, infer's own summary lines (how long
it waited for decoded images), and where each run's time went: seconds and calls in ``detect_batch``,
one-photo calls (also inside ``detect_batch``), the RLE conversion and graph captures (inside the others;
each with its eager warm-up call and device sync), model building and plans built ahead included. All
are host times: a call that ends with a device sync includes the GPU work it waited for.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import re
import tempfile
import time
from pathlib import Path


def write_stream_photos(folder: Path, max_mp: float) -> None:
    import cv2

    from mmdet_opt.suite.stream import stream_images, suite_stream_sizes

    kept = [(i, (w, h)) for i, (w, h) in enumerate(suite_stream_sizes(200)) if w * h <= max_mp * 1e6]
    images = stream_images([size for _, size in kept])
    for i, size in kept:
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), images[size])


def photos_in(folder: Path) -> list[str]:
    """The folder's image files, as infer finds them."""
    from mmdet_opt.cli.dataset import find_images

    return [path for path, _ in find_images([folder])[0]]


def stream_rate(folder: Path, device: str) -> float:
    """Images/s of the stream benchmark's padded loop over the folder's photos, decoded beforehand."""
    import torch

    from mmdet_opt.detector import build_detector
    from mmdet_opt.inputs import prepare_image
    from mmdet_opt.suite.stream import planned_apart, run_stream
    from mmdet_opt.variants import variant_for_device

    model = build_detector(device=device)
    images = dict(enumerate(prepare_image(path, model.cfg) for path in photos_in(folder)))
    variant = variant_for_device("inference_graph_padded", device)
    graph, ahead = planned_apart(variant.graph)
    pipeline = dataclasses.replace(variant, graph=graph).build(model)  # the config's scale, as infer's
    if ahead:  # start-up, timed apart in the benchmark too
        pipeline.plan_ahead()
    with torch.no_grad():
        run = run_stream(pipeline, list(images), images, device)
    return len(run.seconds) / sum(run.seconds)


def where_time_goes():
    """``{name: (owner, attribute)}``: the calls whose time each run's split line gives."""
    from mmdet_opt.api import Detector
    from mmdet_opt.graphed.capture import CapturedCall
    from mmdet_opt.graphed.pipeline import GraphedPipeline

    return {"detect_batch": (GraphedPipeline, "detect_batch"), "one photo": (GraphedPipeline, "__call__"),
            "conversion": (Detector, "_convert"), "graph captures": (CapturedCall, "__init__")}


@contextlib.contextmanager
def time_spent(targets: dict):
    """Yields ``{name: [seconds, calls]}``, filled while the block runs by wrapping each target."""
    spent = {name: [0.0, 0] for name in targets}

    def timed(name, fn):
        def call(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name][0] += time.perf_counter() - started
                spent[name][1] += 1
        return call

    originals = {name: getattr(owner, attr) for name, (owner, attr) in targets.items()}
    for name, (owner, attr) in targets.items():
        setattr(owner, attr, timed(name, originals[name]))
    try:
        yield spent
    finally:
        for name, (owner, attr) in targets.items():
            setattr(owner, attr, originals[name])


def split_line(spent: dict) -> str:
    return ", ".join(f"{name} {seconds:.3f} s ({calls} calls)" for name, (seconds, calls) in spent.items())


@contextlib.contextmanager
def torch_threads(how: str):
    """infer with torch's CPU threads ``kept`` beside its decoders (as it runs) or left ``as-is``."""
    from mmdet_opt.cli import detect

    kept = detect.torch_threads_beside
    if how == "as-is":
        detect.torch_threads_beside = lambda workers: contextlib.nullcontext()
    try:
        yield
    finally:
        detect.torch_threads_beside = kept


def infer_rate(folder: Path, batch: int, device: str, out: Path, workers: int | None = None,
               threads: str = "kept") -> tuple[float, str]:
    """(images/s, infer's summary line) of ``mmdet-opt infer`` over the folder."""
    from mmdet_opt.cli import main

    printed = io.StringIO()
    decoders = [] if workers is None else ["--workers", str(workers)]
    with contextlib.redirect_stdout(printed), torch_threads(threads):
        code = main(["infer", "default", "none", str(folder), "--out", str(out), "--pad-to-scale",
                     "--batch", str(batch), "--device", device, *decoders])
    line = (printed.getvalue().strip().splitlines() or [""])[-1]
    rate = re.search(r"([\d.]+) images/s", line)
    if code != 0 or rate is None:
        raise SystemExit(f"infer --batch {batch} failed (exit {code}): {line}")
    return float(rate.group(1)), line


def main() -> None:
    parser = argparse.ArgumentParser(prog="python tools/infer_rate.py", description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, help="folder of photos (default: the stream's, written as JPEG)")
    parser.add_argument("--max-mp", type=float, default=2.0, help="without --photos: the largest photo kept, MP")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="infer's --batch values (default 1 8)")
    parser.add_argument("--workers", type=int, nargs="+", default=[None],
                        help="infer's --workers values, each run at every --batch (default: infer's own)")
    parser.add_argument("--threads", nargs="+", choices=("kept", "as-is"), default=["kept"],
                        help="torch's CPU threads kept beside the decoders (infer's way, default) or as-is; "
                             "each run at every --batch and --workers")
    parser.add_argument("--device", default="cuda:0")
    args = parser.parse_args()

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.photos
        if folder is None:
            folder = Path(tmp) / "photos"
            folder.mkdir()
            write_stream_photos(folder, args.max_mp)
        count = len(photos_in(folder))
        if not count:
            raise SystemExit(f"no photos in {folder}")
        device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
        print(f"{count} photos ({folder}), {device_name}, torch {torch.__version__}")
        stream_rate(folder, args.device)  # the process's one-time costs (CUDA, cuDNN, kernels): all runs start warm
        with time_spent(where_time_goes()) as spent:
            stream = stream_rate(folder, args.device)
        rows, lines = [("stream benchmark's loop, padded, photos decoded", stream)], [f"stream: {split_line(spent)}"]
        for batch in args.batch:
            for workers in args.workers:
                for threads in args.threads:
                    name = f"--batch {batch}" + ("" if workers is None else f" --workers {workers}")
                    name += "" if args.threads == ["kept"] else f", torch threads {threads}"
                    with time_spent(where_time_goes()) as spent:
                        rate, line = infer_rate(folder, batch, args.device, Path(tmp) / f"infer_b{batch}.json",
                                                workers, threads)
                    rows.append((f"infer --pad-to-scale {name}", rate))
                    lines += [f"{name}: {line}", f"{name}: {split_line(spent)}"]
    print("| run | images/s | share of the stream's |\n|---|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:.4g} | {rate / stream:.0%} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
