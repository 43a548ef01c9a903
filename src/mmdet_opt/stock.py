"""Stock mmdet input preparation, exactly as ``mmdet.apis.inference_detector`` does it."""
from __future__ import annotations

import copy

import numpy as np
import torch

from .quiet import without_image_to_tensor_notice


def stock_test_pipeline(cfg):
    """The config's test pipeline for an in-memory image (LoadImageFromWebcam, as inference_detector)."""
    from mmdet.datasets import replace_ImageToTensor
    from mmdet.datasets.pipelines import Compose

    cfg = copy.deepcopy(cfg)  # Config.copy is shallow: the edit below would reach model.cfg
    cfg.data.test.pipeline[0].type = "LoadImageFromWebcam"
    with without_image_to_tensor_notice():
        return Compose(replace_ImageToTensor(cfg.data.test.pipeline))


def stock_inputs(model, image: np.ndarray, device: str | torch.device, pipeline=None):
    """(img, img_metas) for one BGR image: CPU pipeline, collate, then scatter to ``device``."""
    from mmcv.parallel import collate, scatter

    pipeline = pipeline or stock_test_pipeline(model.cfg)
    data = collate([pipeline(dict(img=image))], samples_per_gpu=1)
    img = data["img"][0].data[0]
    img_metas = data["img_metas"][0].data[0]
    if torch.device(device).type == "cuda":
        img = scatter(img, [torch.device(device).index or 0])[0]
    return img, img_metas
