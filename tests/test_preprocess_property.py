"""Property: GPU preprocessing (run here on CPU tensors) is mmdet's CPU test pipeline, for any
image size (1..600 a side), test scale and content.

- Both accept the image or both reject it (the front door's size check), never one of them.
- img_metas are identical: ori_shape, img_shape, pad_shape, scale_factor, flip, flip_direction,
  img_norm_cfg and batch_input_shape (set by the pipeline, as BaseDetector.forward_test does).
- Tensors are equal, bit for bit: the GPU path redoes cv2's fixed-point uint8 resize exactly
  (mmdet_opt.resize), and normalising each of the 256 grey levels rounds as mmcv's does.

One stock defect is not repeated (``stock_normalize``): under OpenCV 5, stock does not normalise
images 1 or 3 pixels wide per channel. Where the resized image has such a width, stock's Normalize
is given one more column, which is dropped again: the same per-pixel arithmetic, read per channel.
"""
import copy
import functools

import numpy as np
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mmdet_opt.config import load_config, set_test_scale
from mmdet_opt.gpu_preprocess import PreprocessSpec, gpu_preprocess
from mmdet_opt.inputs import ImageInputError
from mmdet_opt.pipeline import StagedPipeline
from mmdet_opt.stock import stock_inputs, stock_test_pipeline
from stock_normalize import stock_misreads_mean, stock_per_channel

META_KEYS = ("ori_shape", "img_shape", "pad_shape", "scale_factor", "flip", "flip_direction",
             "img_norm_cfg", "batch_input_shape")


class ConfigOnly(torch.nn.Module):
    """What StagedPipeline.preprocess needs of a model: a device and a config."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.anchor = torch.nn.Parameter(torch.zeros(1))


@functools.lru_cache(maxsize=1)
def base_cfg():
    return load_config()


def pipelines(scale):
    cfg = copy.deepcopy(base_cfg())
    set_test_scale(cfg, scale)
    spec, stock_pipeline = PreprocessSpec.from_config(cfg), stock_test_pipeline(cfg)
    model = ConfigOnly(cfg)
    stock = StagedPipeline(model, lambda m, image, device: stock_inputs(m, image, device, stock_pipeline))
    gpu = StagedPipeline(model, lambda m, image, device: gpu_preprocess(spec, image, device))
    return stock, gpu, spec


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b) and np.asarray(a).dtype == np.asarray(b).dtype
    return a == b


def stock_preprocess(pipeline, image):
    """``preprocess_or_error`` of the stock pipeline, per channel where its mmcv is not."""
    inputs = preprocess_or_error(pipeline, image)
    if isinstance(inputs, ImageInputError) or not stock_misreads_mean(inputs.img_metas[0]["img_shape"][1]):
        return inputs
    with stock_per_channel(inputs.img_metas[0]["img_shape"][1]):
        return preprocess_or_error(pipeline, image)


def preprocess_or_error(pipeline, image):
    try:
        return pipeline.preprocess(image)
    except ImageInputError as exc:
        return exc


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(1, 600), w=st.integers(1, 600),
       scale=st.tuples(st.integers(32, 1400), st.integers(32, 900)),
       seed=st.integers(0, 2**32 - 1))
@example(h=1, w=600, scale=(32, 32), seed=0)  # too thin: both reject
@example(h=400, w=600, scale=(600, 400), seed=0)  # already at the test scale: no resize
@example(h=1, w=1, scale=(1333, 800), seed=0)  # one pixel, scaled up 800x
@example(h=10, w=1, scale=(32, 32), seed=0)  # resized to 3 pixels wide
@example(h=40, w=1, scale=(32, 32), seed=0)  # stays 1 pixel wide
def test_gpu_preprocess_is_the_stock_pipeline(h, w, scale, seed):
    image = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    stock_pl, gpu_pl, _ = pipelines(scale)
    stock, gpu = stock_preprocess(stock_pl, image), preprocess_or_error(gpu_pl, image)
    assert isinstance(stock, ImageInputError) == isinstance(gpu, ImageInputError)
    if isinstance(stock, ImageInputError):
        return
    s_meta, g_meta = stock.img_metas[0], gpu.img_metas[0]
    for key in META_KEYS:
        assert same(s_meta[key], g_meta[key]), f"{key}: stock {s_meta[key]!r}, gpu {g_meta[key]!r}"
    assert stock.img.shape == gpu.img.shape and stock.img.dtype == gpu.img.dtype
    assert torch.equal(stock.img, gpu.img), f"{(stock.img != gpu.img).sum().item()} values differ"


def test_stock_misreads_mean_only_where_opencv_5_does():
    """The widths stock_preprocess corrects: 1 and 3 under OpenCV 5, none under OpenCV 4."""
    import cv2

    misread = [w for w in range(1, 9) if stock_misreads_mean(w)]
    assert misread == ([1, 3] if cv2.__version__.startswith("5.") else [])
