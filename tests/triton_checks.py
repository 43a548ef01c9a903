"""Kernel checks that run compiled on a CUDA machine and under Triton's interpreter elsewhere."""
import os
import subprocess
import sys

import torch


def run_check(check, test_file: str, *args: str) -> None:
    """``check("cuda")`` on a CUDA machine. Without one, ``python test_file *args`` in a subprocess
    with ``TRITON_INTERPRET=1`` (it must be set before Triton is imported), which runs the check on
    CPU tensors."""
    if torch.cuda.is_available():
        check("cuda")
        return
    here = os.path.dirname(os.path.abspath(test_file))
    done = subprocess.run([sys.executable, test_file, *args], capture_output=True, text=True, cwd=here,
                          env={**os.environ, "TRITON_INTERPRET": "1"}, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]


def feature_nets_with_and_without(model, field: str, img: torch.Tensor):
    """Two CUDA FeatureNets over ``model`` (default options, ``field`` on and off); asserts that their
    convolutions (FPN levels, RPN outputs) give the same bits on ``img``, and returns them (on, off)."""
    import copy
    import dataclasses

    from mmdet_opt.graphed.feature_net import FeatureNet
    from mmdet_opt.graphed.options import GraphOptions

    model = copy.deepcopy(model).cuda().eval()
    on, off = (FeatureNet(model, dataclasses.replace(GraphOptions(), **{field: v})).cuda() for v in (True, False))
    with torch.no_grad():
        for got, expected in zip(on.convolutions(img.cuda()), off.convolutions(img.cuda()), strict=True):
            for got_level, expected_level in zip(got, expected, strict=True):
                torch.testing.assert_close(got_level, expected_level, rtol=0, atol=0)
    return on, off
