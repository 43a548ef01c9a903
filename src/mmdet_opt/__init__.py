"""Fast mmdetection 2.x Mask R-CNN inference, measured stage by stage, with mask parity."""
__version__ = "0.1.0"
