"""Where a variant's time goes on the CPU side and the GPU side: torch.profiler over N runs.

    python tools/profile_stages.py --variant inference_graph --size 1333x800 [--rows 25]
    python tools/profile_stages.py --batch 8 --sort self_cuda_time_total   # detect_batch of 8 photos
    python tools/profile_stages.py --batch 8 --python                      # the host's Python, by function
    python tools/profile_stages.py --batch 16 --no-graphs --shapes        # each op by its input shapes
"""
import argparse
import dataclasses

import torch
from torch.profiler import ProfilerActivity, profile

from mmdet_opt.arguments import parse_size
from mmdet_opt.suite.session import Suite


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python tools/profile_stages.py", description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="inference_graph")
    parser.add_argument("--size", default="1333x800")
    parser.add_argument("--image", default="astronaut")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--sort", default="self_cpu_time_total", help="e.g. self_cuda_time_total")
    parser.add_argument("--batch", type=int, default=1,
                        help="photos per call through the pipeline's detect_batch (inference_graph; default 1: "
                             "one photo per call); the table is then per call of N photos")
    parser.add_argument("--no-graphs", action="store_true",
                        help="inference_graph run eagerly, so each kernel is charged to the op that launched it")
    parser.add_argument("--shapes", action="store_true",
                        help="one row per op and input shapes (with --no-graphs, each kernel's op is known)")
    parser.add_argument("--name-width", type=int, default=55, help="characters of each name shown")
    parser.add_argument("--with", dest="switches", default="", metavar="FIELD=True|False,...",
                        help="boolean GraphOptions fields set for the run (a lever's kernels)")
    parser.add_argument("--python", action="store_true",
                        help="cProfile of the host's Python instead (functions by own time), no torch.profiler")
    return parser


def main():
    parser = arguments()
    args = parser.parse_args()
    size = parse_size(args.size)
    suite = Suite("cuda")
    variant = suite.variant(args.variant)
    switches = args.switches + (",graphs=False" if args.no_graphs else "")
    if switches:
        if variant.graph is None:
            parser.error(f"--with, --no-graphs: {args.variant} has no GraphOptions (inference_graph has)")
        try:
            variant = dataclasses.replace(variant, graph=variant.graph.with_switches(switches))
        except ValueError as error:
            parser.error(f"--with: {error}")
    pipeline = suite.pipeline(variant, size)
    image = suite.image(args.image, size)
    if args.batch > 1 and not hasattr(pipeline, "detect_batch"):
        parser.error(f"--batch: {args.variant} has no detect_batch (inference_graph has)")

    def call():
        return pipeline.detect_batch([image] * args.batch) if args.batch > 1 else pipeline(image)

    for _ in range(5):
        call()
    torch.cuda.synchronize()
    if args.python:
        import cProfile
        import pstats

        with cProfile.Profile() as python_profile:
            for _ in range(args.runs):
                call()
            torch.cuda.synchronize()
        pstats.Stats(python_profile).sort_stats("tottime").print_stats(args.rows)
        return
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=args.shapes) as prof:
        for _ in range(args.runs):
            call()
        torch.cuda.synchronize()
    table = prof.key_averages(group_by_input_shape=args.shapes).table(
        sort_by=args.sort, row_limit=args.rows, max_name_column_width=args.name_width,
        max_shapes_column_width=120)
    print(table)


if __name__ == "__main__":
    main()
