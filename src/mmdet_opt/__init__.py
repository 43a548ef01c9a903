"""Fast mmdetection 2.x Mask R-CNN inference, measured stage by stage, with mask parity."""
from .quiet import quiet_start_up

__version__ = "0.1.0"

# Before anything imports mmcv or mmdet: every entry point, test run and tool imports this package first.
quiet_start_up()
