"""The variants: each a composition of the pieces (precision, preprocessing, mask head, graphs).

Names are the original study's, so its tables can be read side by side with ours. On a CPU a
variant runs as its CPU composition (``for_device``): fp32 where fp16 is CUDA-only, eager where
CUDA graphs are, and the name says so.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace

from .gpu_preprocess import PreprocessSpec, gpu_preprocess
from .graphed.options import GraphOptions
from .pipeline import StagedPipeline
from .stock import stock_inputs, stock_test_pipeline
from .supported import check_supported


class VariantUnavailable(ValueError):
    """The variant cannot run on this device; the message says why in one line."""


@dataclass(frozen=True)
class Variant:
    name: str
    fp16: bool = False  # mmcv.runner.wrap_fp16_model (autocast; CUDA only)
    gpu_preprocess: bool = False  # resize / normalize / pad as tensor ops on the model's device
    raw_mask: bool = False  # FCNMaskHeadWithRawMask: 28x28 probabilities, pasted on demand
    graph: GraphOptions | None = None  # GPU-resident pipeline (graphed/) with these options
    summary: str = ""

    @property
    def needs_cuda(self) -> bool:
        return self.fp16 or (self.graph is not None and self.graph.needs_cuda)

    @property
    def computes_in_fp16(self) -> bool:
        """Whether any part runs in fp16; parity then also accepts stock's own fp16 deviation."""
        g = self.graph
        return self.fp16 or (g is not None and (g.fp16_backbone or g.fp16_heads or g.fp16_mask_head))

    def for_device(self, device: str) -> Variant:
        """This variant as it runs on ``device``: itself on CUDA, its CPU composition on a CPU."""
        if str(device).startswith("cuda") or not self.needs_cuda:
            return self
        if self.fp16 and not (self.gpu_preprocess or self.raw_mask or self.graph):
            raise VariantUnavailable(f"{self.name}: fp16 is all it changes, and mmcv's fp16 is CUDA-only")
        graph = self.graph.eager_fp32() if self.graph else None
        name = self.name.replace("_fp16", "") + ("_eager" if graph else "") + "_fp32"
        return replace(self, name=name, fp16=False, graph=graph,
                       summary=f"{self.summary} (CPU composition: fp32{', no CUDA graphs' if graph else ''})")

    def build(self, base_model, test_scale: tuple[int, int] | None = None):
        """A pipeline over a copy of ``base_model`` (same weights) changed as this variant says;
        ``UnsupportedConfig`` first for a config setting it would not honour (supported.py)."""
        check_supported(base_model.cfg, self)
        model = variant_model(base_model, self, test_scale)
        if self.graph is not None:
            from .graphed import GraphedPipeline

            return GraphedPipeline(model, PreprocessSpec.from_config(model.cfg), self.graph)
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
    Variant("inference_graph", gpu_preprocess=True, raw_mask=True, graph=GraphOptions(),
            summary="GPU-resident: fp16 CUDA graphs for the static part, raw masks"),
    Variant("inference_graph_padded", gpu_preprocess=True, raw_mask=True, graph=GraphOptions(pad_to_scale=True),
            summary="inference_graph with every photo padded to the scale's box, masked to its own extent"),
)}


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}") from None


def variant_for_device(name: str, device: str) -> Variant:
    """The named variant as it runs on ``device``; ``ValueError`` for an unknown name,
    ``VariantUnavailable`` (saying why) for one that cannot run there."""
    return get_variant(name).for_device(device)
