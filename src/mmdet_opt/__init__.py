"""Fast mmdetection 2.x Mask R-CNN inference, measured stage by stage, with mask parity."""
from .quiet import drop_cuda_home_notice

__version__ = "0.1.0"

# Before anything imports mmcv (which imports torch.utils.cpp_extension): every entry point imports this package first.
drop_cuda_home_notice()
