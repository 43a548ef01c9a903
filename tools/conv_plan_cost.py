"""What cuDNN charges for the first call of a convolution at a new input shape, by dtype and layout.

    python tools/conv_plan_cost.py [--shapes 6]

ResNet-50's 3x3 and 1x1 convolutions (64-512 channels) at input sizes never seen before in the
process: first call against the median of the next five, per dtype / layout / bias + ReLU fusion.
A new network shape of inference_graph meets ~60 such convolutions (tools/first_call_cost.py).
"""
import argparse
import statistics

import torch
import torch.nn.functional as F

from mmdet_opt.suite.timing import timed

CONVS = [(64, 64, 3), (64, 256, 1), (128, 128, 3), (256, 1024, 1), (512, 512, 3)]


@torch.no_grad()
def main():
    parser = argparse.ArgumentParser(prog="python tools/conv_plan_cost.py", description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=int, default=6, help="new input sizes per configuration")
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = False
    print(f"{torch.cuda.get_device_name()}, cuDNN {torch.backends.cudnn.version()}; ms per convolution")
    size = 40  # every configuration gets sizes no other one used, so nothing is cached across rows
    for dtype in (torch.float16, torch.float32):
        for layout in (torch.channels_last, torch.contiguous_format):
            for fused in (False, True):
                first, cached = [], []
                for _ in range(args.shapes):
                    size += 8
                    for cin, cout, k in CONVS:
                        x = torch.randn(1, cin, size, size + 24, device="cuda", dtype=dtype)
                        x = x.contiguous(memory_format=layout)
                        w = torch.randn(cout, cin, k, k, device="cuda", dtype=dtype).contiguous(memory_format=layout)
                        b = torch.randn(cout, device="cuda", dtype=dtype)
                        if fused:
                            def conv(x=x, w=w, b=b, k=k):
                                return torch.cudnn_convolution_relu(x, w, b, (1, 1), (k // 2, k // 2), (1, 1), 1)
                        else:
                            def conv(x=x, w=w, b=b, k=k):
                                return F.relu(F.conv2d(x, w, b, padding=k // 2))
                        first.append(timed(conv)[1])
                        cached.append(statistics.median(timed(conv)[1] for _ in range(5)))
                name = "channels_last" if layout is torch.channels_last else "NCHW"
                kind = "fused" if fused else "unfused"
                print(f"  {str(dtype):14s} {name:14s} {kind:8s} first call {statistics.median(first):7.2f} "
                      f"(max {max(first):7.2f}), cached {statistics.median(cached):6.3f}", flush=True)


if __name__ == "__main__":
    main()
