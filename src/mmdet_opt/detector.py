"""Build the Mask R-CNN detector: mmdet config + a real checkpoint or calibrated synthetic weights.

No pretrained checkpoint is required. With ``checkpoint=None`` the weights are seeded random
initialisations whose three logit layers are rescaled so that their outputs have the spread of a
trained model's (see ``calibrate``): plain init gives classification logits with std ~0.05, so no
box passes ``score_thr=0.05``; calibrated, an image gives ~100 detections with decisive masks.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import os

import numpy as np
import torch

from .checkpoint import base_seed, load_state_dict, read_checkpoint, resolve_checkpoint
from .classes import class_names, head_classes
from .config import ConfigError, load_config, set_test_scale

# Target std of each logit layer's output on the calibration image, in the order they are
# calibrated (each one changes what the next sees).
CALIBRATION = (
    ("rpn_head.rpn_cls", 2.0),
    ("roi_head.bbox_head.fc_cls", 3.0),
    ("roi_head.mask_head.conv_logits", 4.0),
)
CALIBRATION_SCALE = (640, 384)


def build_detector(config=None, checkpoint: str | os.PathLike | None = None, device: str = "cpu",
                   seed: int = 0, test_scale: tuple[int, int] | None = None):
    """The detector in eval mode on ``device``, with ``model.cfg`` set as mmdet's init_detector does.

    ``checkpoint``: a local file, an http(s) URL or ``trained`` (see ``checkpoint.resolve_checkpoint``).
    A partial checkpoint (see ``checkpoint``) goes over the synthetic weights of its base seed.
    ``model.CLASSES``: from the checkpoint's meta or the config (``classes.class_names``).
    """
    from mmdet.models import build_detector as mmdet_build_detector

    from . import raw_mask_head  # noqa: F401  registers FCNMaskHeadWithRawMask

    cfg = load_config(config, test_scale)
    model = mmdet_build_detector(cfg.model, test_cfg=cfg.get("test_cfg"))
    meta = {}
    if checkpoint is None:
        synthetic_weights(model, cfg, seed)
    else:
        path = resolve_checkpoint(checkpoint)
        state, meta = read_checkpoint(path)
        seed = base_seed(meta, path)
        if seed is not None:
            synthetic_weights(model, cfg, seed)
        meta = load_state_dict(model, path, state, meta)
    model.CLASSES = class_names(cfg, meta, head_classes(model))
    model.cfg = cfg
    return model.to(device).eval()


def synthetic_weights(model, cfg, seed: int) -> None:
    """Seeded init followed by logit calibration; the same seed gives the same weights, bit for bit."""
    with torch.random.fork_rng(devices=[]), quiet_mmcv_logger():
        torch.manual_seed(seed)
        np.random.seed(seed)
        model.init_weights()
    calibrate(model, cfg)


@contextlib.contextmanager
def quiet_mmcv_logger():
    """init_weights logs one INFO record per parameter; keep warnings only."""
    logger = logging.getLogger("mmcv")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


@torch.no_grad()
def set_batchnorm_statistics(backbone, img) -> None:
    """Each BatchNorm's running mean / var := those of its input on ``img``, in forward order."""

    def set_stats(bn, inputs):
        x = inputs[0]
        bn.running_mean.copy_(x.mean((0, 2, 3)))
        bn.running_var.copy_(x.var((0, 2, 3)))

    hooks = [m.register_forward_pre_hook(set_stats) for m in backbone.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    try:
        backbone(img)
    finally:
        for h in hooks:
            h.remove()


def calibration_image(seed: int = 1234, size: tuple[int, int] = CALIBRATION_SCALE) -> np.ndarray:
    """A smooth, textured BGR image with blobs: a stand-in for a photograph, made from a seed."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for _ in range(12):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(0.05, 0.25) * min(h, w)
        blob = np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)))
        img += blob[..., None] * rng.uniform(0, 255, size=3)
    img += rng.normal(0, 12, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@torch.no_grad()
def calibrate(model, cfg) -> None:
    """Make the random network behave like a trained one on images, in two steps.

    1. Backbone BatchNorm statistics from the calibration image, as training would have set
       them: un-normalised random activations carry a large constant component that swamps the
       informative part, so rounding (fp16, TF32) flips scores by up to 0.1 and parity with stock
       becomes meaningless.
    2. Each logit layer rescaled so its outputs have the target std.
    """
    from .stock import stock_inputs

    model.eval()
    cal_cfg = copy.deepcopy(cfg)
    set_test_scale(cal_cfg, CALIBRATION_SCALE)
    model.cfg = cal_cfg
    img, img_metas = stock_inputs(model, calibration_image(), device="cpu")
    set_batchnorm_statistics(model.backbone, img)
    for name, target in CALIBRATION:
        try:
            layer = model.get_submodule(name)
        except AttributeError:
            raise ConfigError(f"synthetic weights are calibrated for Mask R-CNN's layers, and this model has no "
                              f"{name}: give it a checkpoint") from None
        outputs = []
        handle = layer.register_forward_hook(
            lambda _m, _i, out, outputs=outputs: outputs.append(out.detach().flatten()))
        try:
            model(return_loss=False, rescale=True, img=[img], img_metas=[img_metas])
        finally:
            handle.remove()
        if not outputs:
            raise RuntimeError(f"cannot calibrate {name}: it did not run on the calibration image")
        std = torch.cat(outputs).float().std().item()
        if not std > 0:
            raise RuntimeError(f"cannot calibrate {name}: its outputs have std {std}")
        layer.weight.mul_(target / std)
        layer.bias.mul_(target / std)
