"""The photo stream through inference_graph at several plan-cache bounds, in one process.

    python tools/stream_plans.py [--max-plans 8,3,2] [--images 200] [--stock] [--unfused] [--pad-to-scale]

Per bound: images/s (first calls included), p50/p95/p99, network plans built, a new size's first call
over its cached calls (when it built a network plan, and when it did not), and peak reserved
GPU memory over what one shape needs; ``--stock`` also times stock mmdet on the same stream, and
``--pad-to-scale`` each bound a second time with that option. The stream is the suite's
(``benchmarks/test_stream.py``, seed 0, 1333x800).
"""
import argparse
import dataclasses
import gc

import torch

from mmdet_opt.suite.session import Suite
from mmdet_opt.suite.stream import GpuMemory, planned_apart, run_stream, stream_images, suite_stream_sizes
from mmdet_opt.variants import get_variant, variant_model

SCALE = (1333, 800)
SHOWN = ("images_per_second", "p50_ms", "p95_ms", "p99_ms", "new_plans", "first_over_cached_new_plan_median",
         "first_over_cached_known_plan_median", "first_over_cached_known_plan_max",
         "single_shape_reserved_mib", "peak_reserved_mib", "peak_over_single_shape")


def main():
    parser = argparse.ArgumentParser(prog="python tools/stream_plans.py", description=__doc__.splitlines()[0])
    parser.add_argument("--max-plans", default="8,3,2")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--stock", action="store_true")
    parser.add_argument("--unfused", action="store_true", help="GraphOptions.fused_convs=False (no fusion kernels)")
    parser.add_argument("--pad-to-scale", action="store_true", help="each bound again with GraphOptions.pad_to_scale")
    args = parser.parse_args()
    suite = Suite("cuda")
    sizes = suite_stream_sizes(args.images)
    images = stream_images(sizes)
    print(f"{len(sizes)} photos, {len(set(sizes))} sizes, on {torch.cuda.get_device_name()}", flush=True)
    if args.stock:
        from mmdet.apis import inference_detector

        model = variant_model(suite.base, get_variant("inference"), SCALE)
        with torch.no_grad():
            run = run_stream(lambda image: inference_detector(model, image), sizes, images, "cuda")
        print("stock:", {k: v for k, v in run.summary().items() if k in SHOWN}, flush=True)
        del model
    variant = suite.variant("inference_graph")
    runs = [(int(v), pad) for v in args.max_plans.split(",") for pad in (False, True)[:1 + args.pad_to_scale]]
    for bound, pad_to_scale in runs:
        with GpuMemory("cuda") as memory:
            options = dataclasses.replace(variant.graph, max_plans=bound, fused_convs=not args.unfused,
                                          fp16_mask_head=not args.unfused,
                                          pad_to_scale=pad_to_scale)
            lazy, ahead = planned_apart(options)  # as benchmarks/test_stream.py builds it
            pipe = dataclasses.replace(variant, graph=lazy).build(suite.base, SCALE)
            if ahead:
                pipe.plan_ahead(after_each=memory.mark_single)
            run = run_stream(pipe, sizes, images, "cuda", pipe.shapes.networks, after_first=memory.mark_single)
            pipe.shapes.networks.clear()  # free the graphs before the next bound runs
            del pipe
            gc.collect()
        run.memory = memory.figures
        shown = {k: v for k, v in run.summary().items() if k in SHOWN}
        print(f"max_plans={bound} fused_convs={options.fused_convs} pad_to_scale={pad_to_scale}:", shown, flush=True)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
