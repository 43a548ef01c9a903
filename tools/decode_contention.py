"""What decoding threads do to the host copy of each photo, with no model: infer's decode-ahead loop alone.

    python tools/decode_contention.py [--workers 1 2 8] [--gpu-ms 5] [--repeat 3] [--device cpu|cuda:0]

Over the stream's photos of at most --max-mp megapixels, written as JPEG files (infer_rate.py's), the
loop ``infer`` runs: ``DecodeAhead`` decodes with --workers threads, and the main thread copies each photo
through ``HostStaging.upload`` (into pinned memory and to the GPU with --device cuda, into a host tensor
on the CPU), then waits --gpu-ms without the GIL, standing for the detector's GPU work. Each --workers
runs with torch's CPU threads as they are and as infer keeps them beside its decoders
(``torch_threads_beside``), interleaved, --repeat times. Prints, per run, the copy's mean, median and 90th
percentile, the loop's images/s, and how long the loop waited for decoded photos.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from infer_rate import photos_in, write_stream_photos  # noqa: E402


def copy_loop(paths: list, workers: int, gpu_ms: float, device: str, limit: bool) -> dict:
    """One pass of the decode-ahead loop over ``paths``: the copy's times (ms), images/s, decode wait (s)."""
    import numpy as np
    import torch

    from mmdet_opt.cli.prefetch import DecodeAhead, torch_threads_beside
    from mmdet_opt.graphed.input_plan import HostStaging
    from mmdet_opt.inputs import load_image

    cuda = device.startswith("cuda")
    staging = HostStaging(pinned=cuda, capacity=3 * 2_000_000 * 3)
    decoded = DecodeAhead([SimpleNamespace(path=p) for p in paths], load_image, workers, ahead=workers + 1)
    copies, threads = [], torch.get_num_threads()
    started = time.perf_counter()
    with torch_threads_beside(workers) if limit else contextlib.nullcontext():
        threads = torch.get_num_threads()
        for _, image, _ in decoded:
            dst = torch.empty(image.shape, dtype=torch.uint8, device=device)
            t0 = time.perf_counter()
            staging.upload(image, dst)
            copies.append(time.perf_counter() - t0)
            if cuda:
                torch.cuda.synchronize(device)
            time.sleep(gpu_ms / 1e3)
    seconds = time.perf_counter() - started
    ms = np.array(copies) * 1e3
    return {"threads": threads, "mean": ms.mean(), "median": float(np.median(ms)), "p90": float(np.percentile(ms, 90)),
            "rate": len(paths) / seconds, "wait": decoded.waited}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python tools/decode_contention.py", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 8], help="decoding threads (default 1 2 8)")
    parser.add_argument("--gpu-ms", type=float, default=5.0, help="the detector's part of a photo, waited (default 5)")
    parser.add_argument("--max-mp", type=float, default=2.0, help="the largest photo kept, MP (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="passes of each setting, interleaved (default 3)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch

    from mmdet_opt.cli.prefetch import process_cores

    print(f"{process_cores()} cores for this process, torch {torch.__version__} with {torch.get_num_threads()} "
          f"CPU threads, device {args.device}")
    with tempfile.TemporaryDirectory() as tmp:
        write_stream_photos(Path(tmp), args.max_mp)
        paths = photos_in(Path(tmp))
        print(f"{len(paths)} photos; each pass waits {args.gpu_ms} ms a photo after its copy\n")
        copy_loop(paths, 1, 0.0, args.device, False)  # pages, pinned memory and file cache warm
        print("| workers | torch threads | copy mean ms | median | p90 | images/s | decode wait s |\n"
              "|---|---|---|---|---|---|---|")
        for _ in range(args.repeat):
            for workers in args.workers:
                for limit in (False, True):
                    r = copy_loop(paths, workers, args.gpu_ms, args.device, limit)
                    kept = " (kept beside)" if limit else ""
                    print(f"| {workers} | {r['threads']}{kept} | {r['mean']:.3f} | {r['median']:.3f} | {r['p90']:.3f} "
                          f"| {r['rate']:.1f} | {r['wait']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
