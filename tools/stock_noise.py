"""How far stock mmdet is from itself when only its numerics change: the floor under parity figures.

    python tools/stock_noise.py [--sizes 1333x800,3840x2304] [--images astronaut,coffee,rocket]

The reference (``Suite.reference``) runs with PyTorch's defaults: cuDNN convolutions may use TF32,
matrix products do not. Each setting below is as valid a way to compute the same model; its
matched fraction / mean mask IoU against the reference is what rounding alone does to the metric.
"""
import argparse

import torch

from mmdet_opt.arguments import parse_size
from mmdet_opt.graphed.capture import matmul_tf32, strict_fp32
from mmdet_opt.parity import compare
from mmdet_opt.results import Detections
from mmdet_opt.suite.session import Suite

SETTINGS = {
    "strict fp32": strict_fp32,
    "TF32 matmul": lambda: matmul_tf32(True),  # the RoI heads' fully connected layers too
    "cuDNN autotuned": lambda: torch.backends.cudnn.flags(enabled=True, benchmark=True),
}


def main():
    from mmdet.apis import inference_detector  # after mmdet_opt, which quiets mmcv's start-up notices

    parser = argparse.ArgumentParser(prog="python tools/stock_noise.py", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1333x800,3840x2304")
    parser.add_argument("--images", default="astronaut,coffee,chelsea,rocket,synthetic")
    args = parser.parse_args()
    suite = Suite("cuda")
    for size_text in args.sizes.split(","):
        size = parse_size(size_text)
        model = suite.pipeline("inference", size).model
        for label, setting in SETTINGS.items():
            reports = []
            for name in args.images.split(","):
                image = suite.image(name, size)
                reference = suite.reference(size, name)
                with torch.no_grad(), setting():
                    other = Detections.from_mmdet(inference_detector(model, image), image.shape)
                rep = compare(reference, other)
                reports.append(f"{name} {rep.brief()}")
            print(f"{size_text} stock vs stock, {label}: " + ", ".join(reports), flush=True)


if __name__ == "__main__":
    main()
