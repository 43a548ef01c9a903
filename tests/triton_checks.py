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


SMALL_SCALE = (320, 192)  # small_base_model's test scale (tests/conftest.py)


def assert_selectors_ask(model, field: str, setting: str) -> None:
    """Asserts that a plan's two selectors have ``nms.<setting>`` exactly when ``field`` is set."""
    for value in (False, True):
        plan = plan_with(model, field, value)
        assert getattr(plan.select_proposals.nms, setting) is value, (field, value)
        assert getattr(plan.select_detections.nms, setting) is value, (field, value)


def plan_with(model, field: str, value: bool):
    """The network plan that an eager fp32 pipeline over ``model`` builds for one photo, ``field`` set to ``value``."""
    import dataclasses

    from mmdet_opt.gpu_preprocess import PreprocessSpec
    from mmdet_opt.graphed import GraphedPipeline
    from mmdet_opt.graphed.options import GraphOptions
    from mmdet_opt.images import resize_to, sample_image
    from mmdet_opt.variants import get_variant, variant_model

    model = variant_model(model, get_variant("inference_graph"), SMALL_SCALE)
    options = dataclasses.replace(GraphOptions().eager_fp32(), **{field: value})
    with torch.no_grad():
        return GraphedPipeline(model, PreprocessSpec.from_config(model.cfg), options).preprocess(
            resize_to(sample_image("astronaut"), SMALL_SCALE)).plan


def graphed_results_agree(model, field: str, monkeypatch, module, kernel: str) -> None:
    """Asserts that two CUDA graphed pipelines over ``model``, ``field`` off and on (default options
    otherwise), give every photo the same boxes, scores and masks, and that ``module.<kernel>`` ran."""
    import dataclasses

    import numpy as np

    from mmdet_opt.gpu_preprocess import PreprocessSpec
    from mmdet_opt.graphed import GraphedPipeline
    from mmdet_opt.graphed.options import GraphOptions
    from mmdet_opt.images import resize_to, sample_image
    from mmdet_opt.variants import get_variant, variant_model

    calls = []
    run = getattr(module, kernel)
    monkeypatch.setattr(module, kernel, lambda *args: calls.append(1) or run(*args))
    model = variant_model(model, get_variant("inference_graph"), SMALL_SCALE).cuda()
    spec = PreprocessSpec.from_config(model.cfg)
    pipes = [GraphedPipeline(model, spec, dataclasses.replace(GraphOptions(), **{field: v})) for v in (False, True)]
    for name in ("astronaut", "coffee", "rocket"):
        image = resize_to(sample_image(name), SMALL_SCALE)
        with torch.no_grad():
            (boxes_off, masks_off), (boxes_on, masks_on) = (pipe(image) for pipe in pipes)
        assert all(np.array_equal(a, b) for a, b in zip(boxes_off, boxes_on, strict=True)), name
        assert all(np.array_equal(a, b) for off, on in zip(masks_off, masks_on, strict=True)
                   for a, b in zip(off, on, strict=True)), name
    assert calls, f"{kernel} never ran"  # at capture, by both selectors
