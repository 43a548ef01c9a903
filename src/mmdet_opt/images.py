"""Test images: photographs shipped with scikit-image, a seeded synthetic scene, and resizing."""
from __future__ import annotations

import numpy as np

# scikit-image's sample photographs (RGB), each a different scene.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
SYNTHETIC = "synthetic"
IMAGE_NAMES = PHOTOS + (SYNTHETIC,)


def sample_image(name: str) -> np.ndarray:
    """A BGR uint8 (H, W, 3) image by name (see IMAGE_NAMES)."""
    if name == SYNTHETIC:
        from .detector import calibration_image

        return calibration_image(seed=7, size=(800, 600))
    if name not in PHOTOS:
        raise ValueError(f"unknown image {name!r}; known: {', '.join(IMAGE_NAMES)}")
    from skimage import data

    rgb = getattr(data, name)()
    return np.ascontiguousarray(rgb[..., :3][..., ::-1])


def resize_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The study's protocol: the image itself is resized to (w, h) before inference."""
    import mmcv

    return mmcv.imresize(image, tuple(size))
