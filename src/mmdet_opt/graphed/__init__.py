from .pipeline import GraphedPipeline

__all__ = ["GraphedPipeline"]
