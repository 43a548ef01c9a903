"""The variants: each a composition of the pieces (precision, preprocessing, mask head).

Names are the original study's, so its tables can be read side by side with ours.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

from .gpu_preprocess import PreprocessSpec, gpu_preprocess
from .pipeline import StagedPipeline
from .stock import stock_inputs, stock_test_pipeline


@dataclass(frozen=True)
class Variant:
    name: str
    fp16: bool = False  # mmcv.runner.wrap_fp16_model (autocast; CUDA only)
    gpu_preprocess: bool = False  # resize / normalize / pad as tensor ops on the device
    raw_mask: bool = False  # FCNMaskHeadWithRawMask: 28x28 probabilities, pasted on demand
    graphed: bool = False  # GPU-resident: static part in fp16 CUDA graphs (graphed.py)
    summary: str = ""

    @property
    def needs_cuda(self) -> bool:
        return self.fp16 or self.graphed

    def build(self, base_model, test_scale: tuple[int, int] | None = None) -> StagedPipeline:
        """A pipeline over a copy of ``base_model`` (same weights) changed as this variant says."""
        model = variant_model(base_model, self, test_scale)
        if self.graphed:
            from .graphed import GraphedPipeline

            return GraphedPipeline(model, PreprocessSpec.from_config(model.cfg))
        return StagedPipeline(model, self._preprocessor(model.cfg), fp16=self.fp16)

    def _preprocessor(self, cfg):
        if self.gpu_preprocess:
            spec = PreprocessSpec.from_config(cfg)
            return lambda model, image, device: gpu_preprocess(spec, image, device)
        pipeline = stock_test_pipeline(cfg)
        return lambda model, image, device: stock_inputs(model, image, device, pipeline)


def variant_model(base_model, variant: Variant, test_scale: tuple[int, int] | None = None):
    from mmcv.runner import wrap_fp16_model
    from mmdet.models.builder import HEADS

    from .config import set_test_scale
    from .raw_mask_head import FCNMaskHeadWithRawMask

    model = copy.deepcopy(base_model)
    if test_scale is not None:
        set_test_scale(model.cfg, test_scale)
    if variant.raw_mask and not isinstance(model.roi_head.mask_head, FCNMaskHeadWithRawMask):
        head_cfg = copy.deepcopy(model.cfg.model.roi_head.mask_head)
        head_cfg.type = "FCNMaskHeadWithRawMask"
        head = HEADS.build(head_cfg)
        head.load_state_dict(model.roi_head.mask_head.state_dict())
        model.roi_head.mask_head = head.to(next(model.parameters()).device).eval()
        model.cfg.model.roi_head.mask_head.type = "FCNMaskHeadWithRawMask"
    if variant.fp16:
        wrap_fp16_model(model)
    return model


VARIANTS = {v.name: v for v in (
    Variant("inference", summary="stock mmdet: CPU pipeline, fp32, full-image masks"),
    Variant("inference_fp16", fp16=True, summary="+ wrap_fp16_model"),
    Variant("inference_fp16_preprocess", fp16=True, gpu_preprocess=True,
            summary="+ resize / normalize / pad on the GPU"),
    Variant("inference_raw_mask", fp16=True, gpu_preprocess=True, raw_mask=True,
            summary="+ raw 28x28 masks, pasted on demand"),
    Variant("inference_graph", gpu_preprocess=True, raw_mask=True, graphed=True,
            summary="GPU-resident: fp16 CUDA graphs for the static part, raw masks"),
)}


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}") from None
