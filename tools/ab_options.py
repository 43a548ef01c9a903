"""Time one GraphOptions field off against on, interleaved in one process, at batch 1 and batch N.

    python tools/ab_options.py --option fp16_canvas [--sizes 1333x800:8,3840x2304:4] [--blocks 6]
                               [--with nms_kernel=True,...]

Both pipelines share the weights. Blocks alternate which goes first; each block times 40 calls at
batch 1 and 10 of ``detect_batch`` at batch N, and the medians of the block medians are printed.
First, per image, how far the two results are from each other (``parity.compare``).
"""
import argparse
import dataclasses
import statistics

from mmdet_opt.arguments import parse_size
from mmdet_opt.graphed.options import GraphOptions
from mmdet_opt.parity import compare
from mmdet_opt.results import Detections
from mmdet_opt.suite.session import Suite
from mmdet_opt.suite.timing import median_ms


def main():
    parser = argparse.ArgumentParser(prog="python tools/ab_options.py", description=__doc__.splitlines()[0])
    switches = GraphOptions.switches()
    parser.add_argument("--option", required=True, choices=switches, metavar="FIELD",
                        help=f"a boolean GraphOptions field: {', '.join(switches)}")
    parser.add_argument("--sizes", default="1333x800:8,3840x2304:4", help="WxH:batch, comma-separated")
    parser.add_argument("--images", default="astronaut,coffee,rocket")
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--with", dest="switches", default="", metavar="FIELD=True|False,...",
                        help="boolean fields set on both sides (a lever timed on top of others)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic weights")
    args = parser.parse_args()
    try:
        GraphOptions().with_switches(args.switches)
    except ValueError as error:
        parser.error(f"--with: {error}")
    if args.option in (item.partition("=")[0].strip() for item in args.switches.split(",")):
        parser.error(f"--with sets {args.option}, the field that --option times off against on")
    suite = Suite("cuda", seed=args.seed)
    base = suite.variant("inference_graph")
    base = dataclasses.replace(base, graph=base.graph.with_switches(args.switches))
    for item in args.sizes.split(","):
        size_text, _, batch_text = item.partition(":")
        size, batch = parse_size(size_text), int(batch_text or 1)
        pipes = {}
        for value in (False, True):
            graph = dataclasses.replace(base.graph, **{args.option: value})
            pipes[value] = dataclasses.replace(base, name=f"{base.name}_{args.option}_{value}", graph=graph).build(
                suite.base, size)
        for name in args.images.split(","):
            img = suite.image(name, size)
            off, on = (Detections.from_mmdet(pipes[v](img), img.shape) for v in (False, True))
            print(f"{size_text} {name}: on against off {compare(off, on).brief()}", flush=True)
        img = suite.image(args.images.split(",")[0], size)
        photos = [img] * batch
        blocks = {v: ([], []) for v in pipes}
        for block in range(args.blocks):
            for value in (False, True) if block % 2 == 0 else (True, False):
                pipe = pipes[value]
                blocks[value][0].append(median_ms(lambda pipe=pipe, img=img: pipe(img), 40))
                blocks[value][1].append(median_ms(lambda pipe=pipe, photos=photos: pipe.detect_batch(photos), 10))
        for value, (single, batched) in blocks.items():
            ms = statistics.median(batched)
            print(f"{size_text} {args.option}={value}: batch 1 {statistics.median(single):.3f} ms "
                  f"(blocks {min(single):.3f}-{max(single):.3f}); batch {batch} {ms:.2f} ms, "
                  f"{batch * 1000 / ms:.1f} images/s", flush=True)
        del pipes


if __name__ == "__main__":
    main()
