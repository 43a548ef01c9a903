"""Fast mmdetection 2.x Mask R-CNN inference, measured stage by stage, with mask parity.

The public API (``api.py``): ``init_detector``, ``inference_detector``, ``Detector``. They are
imported on first use, so that ``import mmdet_opt`` stays cheap (no torch, no mmdet).
"""
from .quiet import drop_cuda_home_notice

__version__ = "0.1.0"
__all__ = ["Detector", "inference_detector", "init_detector", "__version__"]

# Before anything imports mmcv (which imports torch.utils.cpp_extension): every entry point imports this package first.
drop_cuda_home_notice()


def __getattr__(name: str):
    if name in ("Detector", "inference_detector", "init_detector"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'mmdet_opt' has no attribute {name!r}")
