"""Which photos the static NMS cannot vouch for, and what more rounds cost (inference_graph).

    python tools/nms_rounds.py [--seeds 1,0] [--sizes 640x480@1333x800,1333x800] [--rounds 16,32,64]

Per seed, case, image and ``GraphOptions.nms_rounds``: whether the proposal and detection selections
were exact (settled within the rounds), the median time per call (a photo that is not exact is
redone with mmdet's own code on every call), and parity against stock.
"""
import argparse
import dataclasses

import torch

from mmdet_opt.parity import compare
from mmdet_opt.results import Detections
from mmdet_opt.suite.cases import parse_case
from mmdet_opt.suite.session import Suite
from mmdet_opt.suite.timing import median_ms


@torch.no_grad()
def exact_flags(pipe, img) -> tuple[bool, bool]:
    """(proposals exact, detections exact) for one photo, from the pipeline's own steps."""
    inputs = pipe.preprocess(img)
    feats = pipe.backbone(inputs)
    proposals = pipe.rpn_head(feats, inputs)
    plan = inputs.plan
    detections = plan.steps.detections(proposals, plan.steps.bbox_forward(proposals.rois))
    return bool(proposals.exact), bool(detections.exact)


def main():
    parser = argparse.ArgumentParser(prog="python tools/nms_rounds.py", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,0")
    parser.add_argument("--sizes", default="640x480@1333x800,1333x800")
    parser.add_argument("--images", default="astronaut,coffee,rocket")
    parser.add_argument("--rounds", default="16,32,64")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    print(torch.cuda.get_device_name())
    for seed in (int(s) for s in args.seeds.split(",")):
        suite = Suite("cuda", seed=seed)
        variant = suite.variant("inference_graph")
        for case_text in args.sizes.split(","):
            case = parse_case(case_text)
            for rounds in (int(r) for r in args.rounds.split(",")):
                graph = dataclasses.replace(variant.graph, nms_rounds=rounds)
                pipe = dataclasses.replace(variant, graph=graph).build(suite.base, case.scale)
                for name in args.images.split(","):
                    img = suite.image(name, case)
                    proposals_exact, detections_exact = exact_flags(pipe, img)
                    ms = median_ms(lambda pipe=pipe, img=img: pipe(img), args.runs)
                    report = compare(suite.reference(case, name), Detections.from_mmdet(pipe(img), img.shape))
                    print(f"seed {seed} {case_text} {name} rounds {rounds}: proposals exact {proposals_exact}, "
                          f"detections exact {detections_exact}; {ms:.2f} ms; {report.brief()}", flush=True)
                del pipe


if __name__ == "__main__":
    main()
