"""How far each backbone configuration's features are from exact fp32, before any chaotic head.

    python tools/feature_error.py [--sizes 640x480@1333x800,4032x3024@3840x2304] [--images coffee,rocket] [--seed 1]

Per case and image: the relative error (||got - exact|| / ||exact||) of the four backbone stages and
the five FPN levels, exact being the model's own modules in strict fp32 (no TF32). Rows: stock as it
runs (TF32 convolutions), inference_fp16 (autocast), and inference_graph's FeatureNet under several
GraphOptions. Mask IoU against stock is chaotic on the calibrated weights; this is the smooth
quantity under it.
"""
import argparse
import dataclasses

import torch

from mmdet_opt.gpu_preprocess import PreprocessSpec, gpu_preprocess
from mmdet_opt.graphed.capture import strict_fp32
from mmdet_opt.graphed.feature_net import FeatureNet
from mmdet_opt.graphed.options import GraphOptions
from mmdet_opt.suite.cases import parse_case
from mmdet_opt.suite.session import Suite
from mmdet_opt.variants import get_variant, variant_model

CONFIGS = {
    "graph default (folded, fused)": {},
    "graph folded, unfused": dict(fused_convs=False, fp16_mask_head=False),  # that head runs fused
    "graph BatchNorm unfolded": dict(fold_batchnorm=False),
    "graph fp32 backbone": dict(fp16_backbone=False),
}


def relative_errors(got, exact) -> str:
    return " ".join(f"{((g.float() - e).norm() / e.norm()).item():.5f}" for g, e in zip(got, exact))


@torch.no_grad()
def main():
    parser = argparse.ArgumentParser(prog="python tools/feature_error.py", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="640x480@1333x800,4032x3024@3840x2304")
    parser.add_argument("--images", default="coffee,rocket,astronaut,chelsea")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic weights")
    args = parser.parse_args()
    suite = Suite("cuda", seed=args.seed)
    print(f"relative error against strict fp32 on {torch.cuda.get_device_name()}: backbone stages 1-4 | FPN levels")
    for case_text in args.sizes.split(","):
        case = parse_case(case_text)
        model = variant_model(suite.base, get_variant("inference"), case.scale)
        spec = PreprocessSpec.from_config(model.cfg)
        for name in args.images.split(","):
            img, _ = gpu_preprocess(spec, suite.image(name, case), "cuda")
            with strict_fp32():
                exact_stages = model.backbone(img)
                exact_levels = model.neck(exact_stages)
            stages = model.backbone(img)  # stock's numerics: cuDNN in TF32
            rows = {"stock (TF32)": (stages, model.neck(stages))}
            with torch.autocast("cuda", dtype=torch.float16):  # inference_fp16: mmcv's fp16 is autocast
                stages = model.backbone(img)
                rows["inference_fp16 (autocast)"] = (stages, model.neck(stages))
            for label, changes in CONFIGS.items():
                net = FeatureNet(model, dataclasses.replace(GraphOptions(), **changes)).eval()
                got_stages = net.backbone_stages(img)
                rows[label] = (got_stages, net.fpn_levels(got_stages))
                del net
            print(f"{case} {name}")
            for label, (got_stages, got_levels) in rows.items():
                print(f"  {label:32s} {relative_errors(got_stages, exact_stages)} | "
                      f"{relative_errors(got_levels, exact_levels)}", flush=True)


if __name__ == "__main__":
    main()
