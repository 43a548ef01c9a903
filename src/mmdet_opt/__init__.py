"""Fast mmdetection 2.x Mask R-CNN inference, measured stage by stage, with mask parity.

The public API (``api.py``): ``init_detector``, ``inference_detector``, ``Detector``. They are
imported on first use, so that ``import mmdet_opt`` stays cheap (no torch, no mmdet).
"""
from .quiet import quiet_start_up

__version__ = "0.1.0"
__all__ = ["Detector", "inference_detector", "init_detector", "__version__"]

# Before anything imports mmcv or mmdet: every entry point, test run and tool imports this package first.
quiet_start_up()


def __getattr__(name: str):
    if name in ("Detector", "inference_detector", "init_detector"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'mmdet_opt' has no attribute {name!r}")
