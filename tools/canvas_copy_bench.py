"""Ways to copy an fp16 channels_last FPN level into an fp32 NCHW canvas slot: CUDA-event medians.

    python tools/canvas_copy_bench.py [--runs 50]
"""
import argparse

import torch

from mmdet_opt.graphed.level_canvas import nchw
from mmdet_opt.suite.timing import median_kernel_ms


def ways(feat, slot):
    n, c, h, w = feat.shape
    nhwc = feat.permute(0, 2, 3, 1)  # contiguous (N, H, W, C)
    return {
        "slot.copy_(feat)": lambda: slot.copy_(feat),
        "slot.copy_(feat.contiguous())": lambda: slot.copy_(feat.contiguous()),
        "slot.copy_(feat.float().contiguous())": lambda: slot.copy_(feat.float().contiguous()),
        "slot.copy_(2D transpose)": lambda: slot.copy_(nhwc.reshape(h * w, c).t().contiguous().view(n, c, h, w)),
        "slot.copy_(level_canvas.nchw(feat))": lambda: slot.copy_(nchw(feat)),
        "feat.contiguous() alone": lambda: feat.contiguous(),
        "feat.float() alone (same layout)": lambda: feat.float(),
    }


def main():
    parser = argparse.ArgumentParser(prog="python tools/canvas_copy_bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="timed calls per way (default: %(default)s)")
    args = parser.parse_args()
    for h, w in ((200, 336), (576, 960)):
        feat = torch.randn(1, 256, h, w, device="cuda").half().contiguous(memory_format=torch.channels_last)
        canvas = torch.zeros(1, 256, h + 2, w + 100, device="cuda")
        slot = canvas[:, :, 1:h + 1, 1:w + 1]
        expected = feat.float()
        for name, fn in ways(feat, slot).items():
            fn()
            if name.startswith("slot"):
                assert torch.equal(slot, expected), name
            print(f"{h}x{w}: {name}: {median_kernel_ms(fn, args.runs):.3f} ms", flush=True)


if __name__ == "__main__":
    main()
