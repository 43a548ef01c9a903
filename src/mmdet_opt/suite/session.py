"""What the benchmark and parity tests share: one base model, pipelines, images, stock results."""
from __future__ import annotations

import torch

from ..detector import build_detector
from ..images import resize_to, sample_image
from ..results import Detections
from ..variants import Variant, variant_for_device


class Suite:
    """Builds each thing once and hands it out again: a model build costs seconds."""

    def __init__(self, device: str = "cpu", config=None, checkpoint=None, seed: int = 0):
        self.device = device
        self.base = build_detector(config, checkpoint, device=device, seed=seed)
        self._pipelines: dict = {}
        self._images: dict = {}
        self._references: dict = {}

    def variant(self, variant: Variant | str) -> Variant:
        """A Variant as given, or the named one as it runs on this suite's device."""
        return variant if isinstance(variant, Variant) else variant_for_device(variant, self.device)

    def pipeline(self, variant: Variant | str, size: tuple[int, int]):
        key = (self.variant(variant), tuple(size))
        if key not in self._pipelines:
            self._pipelines[key] = key[0].build(self.base, size)
        return self._pipelines[key]

    def image(self, name: str, size: tuple[int, int]):
        """The named image resized to ``size``: the network runs at the image's own size."""
        key = (name, tuple(size))
        if key not in self._images:
            self._images[key] = resize_to(sample_image(name), size)
        return self._images[key]

    def reference(self, size: tuple[int, int], image_name: str) -> Detections:
        """Stock ``mmdet.apis.inference_detector`` on the same weights: what every variant must match."""
        from mmdet.apis import inference_detector

        key = (tuple(size), image_name)
        if key not in self._references:
            model = self.pipeline("inference", size).model
            image = self.image(image_name, size)
            with torch.no_grad():
                self._references[key] = Detections.from_mmdet(inference_detector(model, image), image.shape)
        return self._references[key]

    def detections(self, variant: Variant | str, size: tuple[int, int], image_name: str) -> Detections:
        image = self.image(image_name, size)
        return Detections.from_mmdet(self.pipeline(variant, size)(image), image.shape)
