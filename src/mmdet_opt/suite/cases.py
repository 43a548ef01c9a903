"""A benchmark case: the size a photo is at, and the test scale the network runs at.

The study's protocol resizes the photo to the test scale first, so the two are equal (id
``1333x800``). Users feed photos at their own size (id ``4032x3024@1333x800``): every variant
then resizes, and stock pastes full-resolution masks.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..arguments import parse_size


@dataclass(frozen=True)
class Case:
    image: tuple[int, int]  # (w, h) of the photo fed to the pipeline
    scale: tuple[int, int]  # (w, h) of the test pipeline's img_scale

    @property
    def natural(self) -> bool:
        return self.image != self.scale

    @property
    def id(self) -> str:
        scale = f"{self.scale[0]}x{self.scale[1]}"
        return f"{self.image[0]}x{self.image[1]}@{scale}" if self.natural else scale

    def __str__(self) -> str:
        return self.id


def parse_case(text: str) -> Case:
    """``1333x800`` (protocol) or ``4032x3024@1333x800`` (photo size @ test scale)."""
    image, _, scale = text.strip().partition("@")
    image_size = parse_size(image)
    return Case(image_size, parse_size(scale) if scale else image_size)
