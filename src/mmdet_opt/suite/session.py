"""What the benchmark and parity tests share: one base model, pipelines, images, stock results."""
from __future__ import annotations

import contextlib

import torch

from ..detector import build_detector
from ..graphed.capture import strict_fp32
from ..images import image_by_spec, resize_to
from ..parity import ParityReport, compare
from ..paste import mask_threshold
from ..results import Detections
from ..variants import Variant, variant_for_device
from .cases import Case


def as_case(case: Case | tuple[int, int]) -> Case:
    """A Case as given; a (w, h) size is the study's protocol case at that size."""
    return case if isinstance(case, Case) else Case(tuple(case), tuple(case))


TF32_SPREAD = "stock's own TF32 spread"
FP16_SPREAD = "stock's own fp16 (inference_fp16)"


class Suite:
    """Builds each thing once and hands it out again: a model build costs seconds."""

    def __init__(self, device: str = "cpu", config=None, checkpoint=None, seed: int = 0, mutation: str | None = None):
        """``mutation``: the name of an output mutation (``mutations.OUTPUT_MUTATIONS``) every variant's
        detections go through, so that the parity tests must fail."""
        from .mutations import OUTPUT_MUTATIONS

        self.device = device
        self.mutate = OUTPUT_MUTATIONS[mutation] if mutation else None
        self.base = build_detector(config, checkpoint, device=device, seed=seed)
        self._pipelines: dict = {}
        self._images: dict = {}
        self._references: dict = {}

    def variant(self, variant: Variant | str) -> Variant:
        """A Variant as given, or the named one as it runs on this suite's device."""
        return variant if isinstance(variant, Variant) else variant_for_device(variant, self.device)

    def pipeline(self, variant: Variant | str, case: Case | tuple[int, int]):
        key = (self.variant(variant), as_case(case).scale)
        if key not in self._pipelines:
            self._pipelines[key] = key[0].build(self.base, key[1])
        return self._pipelines[key]

    def image(self, name: str, case: Case | tuple[int, int]):
        """The named image (or image file) at the case's photo size (the study's protocol: the test
        scale itself)."""
        key = (name, as_case(case).image)
        if key not in self._images:
            self._images[key] = resize_to(image_by_spec(name, size=key[1]), key[1])
        return self._images[key]

    def reference(self, case: Case | tuple[int, int], image_name: str, exact: bool = False) -> Detections:
        """Stock ``mmdet.apis.inference_detector`` on the same weights: what every variant must match.

        ``exact``: stock recomputed without TF32 (as exactly as fp32 allows); how far that moves from
        stock as it runs is the spread that rounding alone gives the parity metrics.
        """
        from mmdet.apis import inference_detector

        key = (as_case(case), image_name, exact)
        if key not in self._references:
            model = self.pipeline("inference", case).model
            image = self.image(image_name, case)
            with torch.no_grad(), (strict_fp32() if exact else contextlib.nullcontext()):
                self._references[key] = Detections.from_mmdet(inference_detector(model, image), image.shape)
        return self._references[key]

    def detections(self, variant: Variant | str, case: Case | tuple[int, int], image_name: str) -> Detections:
        image, pipeline = self.image(image_name, case), self.pipeline(variant, case)
        result = pipeline(image)
        return Detections.from_mmdet(self.mutate(result) if self.mutate else result, image.shape,
                                     mask_threshold(pipeline.model))

    def accepted_deviations(self, variant: Variant | str, case: Case | tuple[int, int],
                            image_name: str) -> dict[str, ParityReport]:
        """The deviations from stock that mmdet users already accept, against which parity on synthetic
        weights is judged: stock's own TF32 spread, and for a variant computing in fp16, stock's own fp16
        (never mutated: --mutation breaks the variants under test, not the yardstick)."""
        reference = self.reference(case, image_name)
        spreads = {TF32_SPREAD: compare(reference, self.reference(case, image_name, exact=True))}
        if self.variant(variant).computes_in_fp16:
            image, fp16 = self.image(image_name, case), self.pipeline("inference_fp16", case)
            spreads[FP16_SPREAD] = compare(reference, Detections.from_mmdet(fp16(image), image.shape,
                                                                            mask_threshold(fp16.model)))
        return spreads
