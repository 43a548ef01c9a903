"""The model's config: loading it for inference, and reading or setting its test pipeline.

Everything that walks ``cfg.data.test.pipeline`` lives here, at the bottom of the package: the
preprocessing of every variant follows the config's test pipeline, never constants.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

DEFAULT_CONFIG = "mask_rcnn/mask_rcnn_r50_fpn_2x_coco.py"


class ConfigError(ValueError):
    """The config file is missing or does not describe a Mask R-CNN."""


def mmdet_config_dir() -> Path:
    import mmdet

    return Path(mmdet.__file__).parent / ".mim" / "configs"


def load_config(config: str | os.PathLike | None = None, test_scale: tuple[int, int] | None = None,
                training: bool = False):
    """An mmcv Config for inference; ``test_scale`` (w, h) replaces the test pipeline's img_scale.

    ``training=True`` keeps the model's train_cfg (assigners and samplers), which inference drops.
    """
    import mmcv

    if config is None:
        config = mmdet_config_dir() / DEFAULT_CONFIG
    if isinstance(config, mmcv.Config):
        cfg = copy.deepcopy(config)
    else:
        path = Path(config)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        cfg = mmcv.Config.fromfile(str(path))
    if "roi_head" not in cfg.model or "mask_head" not in cfg.model.roi_head:
        raise ConfigError(f"{config} is not a two-stage detector with a mask head")
    cfg.model.pretrained = None
    cfg.model.backbone.init_cfg = None  # never download torchvision://resnet50
    if not training:
        cfg.model.train_cfg = None
    if test_scale is not None:
        set_test_scale(cfg, test_scale)
    return cfg


# Steps are read with .get: mmdet's inference_detector rewrites the pipeline into plain dicts.
def _multiscale_step(cfg):
    for step in cfg.data.test.pipeline:
        if step.get("type") == "MultiScaleFlipAug":
            return step
    raise ConfigError("the config's test pipeline has no MultiScaleFlipAug step")


def set_test_scale(cfg, test_scale: tuple[int, int]) -> None:
    _multiscale_step(cfg)["img_scale"] = tuple(test_scale)


def test_scale_of(cfg) -> tuple[int, int]:
    """The (w, h) the test pipeline resizes to: preprocessing must use it, never a constant."""
    scale = _multiscale_step(cfg)["img_scale"]
    return tuple(scale[0] if isinstance(scale, list) else scale)


def test_transforms(cfg) -> dict:
    """The test pipeline's transforms inside MultiScaleFlipAug, by type (``Resize``, ``Normalize``, ...)."""
    return {t.get("type"): t for step in cfg.data.test.pipeline for t in step.get("transforms", [])}


def keep_ratio(cfg) -> bool:
    resize = test_transforms(cfg).get("Resize")
    return True if resize is None else bool(resize.get("keep_ratio", True))
