"""Compare inference_graph configurations in one run: total time (median) and parity per image.

    python tools/graph_configs.py [--sizes 1333x800,640x480@1333x800] [--runs 30] [--seed 1]
        [--vary tf32,fp16_layers=4/3/2]

``--sizes`` takes the suite's cases: the protocol size, or a photo size @ the test scale. Each
case first prints stock against strict-fp32 stock per image: the spread rounding alone gives.

``--vary`` names GraphOptions fields: ``name`` tries False and True, ``name=a/b/c`` the integer
values given. Every combination runs, the other options at their defaults (``--vary ""``: defaults only).
"""
import argparse
import dataclasses
import itertools

from mmdet_opt.graphed.options import GraphOptions
from mmdet_opt.parity import compare
from mmdet_opt.results import Detections
from mmdet_opt.suite.cases import parse_case
from mmdet_opt.suite.session import Suite
from mmdet_opt.suite.timing import median_ms


def option_values(item: str):
    """``tf32`` -> ("tf32", (False, True)); ``fp16_layers=4/3`` -> ("fp16_layers", (4, 3))."""
    name, _, values = item.partition("=")
    if not values:
        return name, (False, True)
    as_type = bool if GraphOptions.__dataclass_fields__[name].type == "bool" else int  # tf32=0/1 too
    return name, tuple(as_type(int(v)) for v in values.split("/"))


def main():
    parser = argparse.ArgumentParser(prog="python tools/graph_configs.py", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1333x800,3840x2304")
    parser.add_argument("--images", default="astronaut,coffee,rocket")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--vary", default="channels_last,fp16_heads")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic weights")
    args = parser.parse_args()
    suite = Suite("cuda", seed=args.seed)
    variant = suite.variant("inference_graph")
    for size_text in args.sizes.split(","):
        case = parse_case(size_text)
        size = case.scale
        spread = [f"{name} {compare(suite.reference(case, name), suite.reference(case, name, exact=True)).brief()}"
                  for name in args.images.split(",")]
        print(f"{case} stock vs strict-fp32 stock | " + ", ".join(spread), flush=True)
        names, choices = zip(*(option_values(item) for item in args.vary.split(","))) if args.vary else ((), ())
        for values in itertools.product(*choices):
            options = dict(zip(names, values))
            graph = dataclasses.replace(variant.graph, **options)
            pipe = dataclasses.replace(variant, graph=graph).build(suite.base, size)
            images = args.images.split(",")
            first = suite.image(images[0], case)
            ms = median_ms(lambda pipe=pipe, first=first: pipe(first), args.runs)
            reports = []
            for name in images:
                img = suite.image(name, case)
                rep = compare(suite.reference(case, name), Detections.from_mmdet(pipe(img), img.shape))
                reports.append(f"{name} {rep.brief()}")
            label = " ".join(f"{k}={v}" for k, v in options.items())
            print(f"{size_text} {label}: total {ms:.2f} ms, fallbacks {pipe.fallbacks} | " + ", ".join(reports),
                  flush=True)


if __name__ == "__main__":
    main()
