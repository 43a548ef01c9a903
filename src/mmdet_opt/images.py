"""Test images: photographs shipped with scikit-image, a seeded synthetic scene, held-out training
scenes (``scene0``, ``scene1``, ...: what the project's trained model was scored on), a user's
own image files, and resizing."""
from __future__ import annotations

import re

import numpy as np

# scikit-image's sample photographs (RGB), each a different scene.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
SYNTHETIC = "synthetic"
IMAGE_NAMES = PHOTOS + (SYNTHETIC,)
HELDOUT_SCENE = re.compile(r"scene(\d+)")
HELDOUT_SIZE = (1333, 800)


def is_image_name(name: str) -> bool:
    return name in IMAGE_NAMES or HELDOUT_SCENE.fullmatch(name) is not None


def sample_image(name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """A BGR uint8 (H, W, 3) image by name (see IMAGE_NAMES, or ``sceneN``).

    A held-out scene is drawn at ``size`` (w, h) (default 1333x800): its objects are fractions of
    the short side, so it looks alike at any size. The others come at their own size.
    """
    match = HELDOUT_SCENE.fullmatch(name)
    if match:
        from .training.scenes import heldout_scene

        return heldout_scene(int(match.group(1)), size=tuple(size or HELDOUT_SIZE)).image
    if name == SYNTHETIC:
        from .detector import calibration_image

        return calibration_image(seed=7, size=(800, 600))
    if name not in PHOTOS:
        raise ValueError(f"unknown image {name!r}; known: {', '.join(IMAGE_NAMES)}, sceneN (held-out scenes)")
    from skimage import data

    rgb = getattr(data, name)()
    return np.ascontiguousarray(rgb[..., :3][..., ::-1])


def image_by_spec(spec: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """A sample image by name (a held-out scene drawn at ``size``), or else an image file, read through
    the front door every variant uses (``inputs.load_image``: an ``ImageInputError`` names the
    problem with a missing, unreadable or unusable file)."""
    if is_image_name(spec):
        return sample_image(spec, size)
    from .inputs import load_image

    return load_image(spec)


def resize_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The study's protocol: the image itself is resized to (w, h) before inference."""
    import mmcv

    return mmcv.imresize(image, tuple(size))
