"""What one photo size adds to the network plan it pads to: upload buffer, exact resize, metas."""
from __future__ import annotations

import numpy as np
import torch

from ..gpu_preprocess import image_metas, normalize_pad, resizer
from .capture import Steps, capture_flags


def photo_metas(spec, h: int, w: int, pad_shape: tuple[int, int]) -> tuple[dict, tuple[int, int]]:
    """The img_metas of an (h, w) photo in a plan padded to ``pad_shape`` (which must hold it), and
    the photo's own padded (height, width), its extent (extent.py), as stock pads it."""
    metas = image_metas(spec, h, w)
    extent = metas["pad_shape"][:2]
    new_h, new_w, _ = metas["img_shape"]
    pad_h, pad_w = pad_shape
    if new_h > pad_h or new_w > pad_w or pad_h % spec.size_divisor or pad_w % spec.size_divisor:
        raise ValueError(f"a {w}x{h} photo resizes to {new_w}x{new_h}: it does not pad to {pad_w}x{pad_h}")
    metas.update(pad_shape=(pad_h, pad_w, 3), batch_input_shape=(pad_h, pad_w))
    return metas, extent


class HostStaging:
    """One pinned host buffer that every photo size's upload goes through, grown when a larger photo comes.

    Pinned memory makes the upload asynchronous, but pinning is slow (docs/options.md), so the buffer
    is pinned at start-up for ``capacity`` bytes, and only a larger photo pays for growing it, once.
    No graph reads it (the upload is a plain copy), so it may move when it grows.
    """

    def __init__(self, pinned: bool, capacity: int = 0):
        self.pinned = pinned
        self.buffer = torch.empty(capacity if pinned else 0, dtype=torch.uint8, pin_memory=pinned)
        self.uploaded = torch.cuda.Event() if pinned else None  # the last copy out of the buffer

    def upload(self, image: np.ndarray, dst: torch.Tensor) -> None:
        """Copy ``image`` into the device tensor ``dst`` (same shape) through the pinned buffer."""
        if self.pinned:
            self.uploaded.synchronize()  # the previous image's copy must have left the buffer
        size = image.size
        if size > self.buffer.numel():
            self.buffer = torch.empty(size, dtype=torch.uint8, pin_memory=self.pinned)
        staged = self.buffer[:size].view(image.shape)
        staged.copy_(torch.from_numpy(image))
        dst.copy_(staged, non_blocking=True)
        if self.pinned:
            self.uploaded.record()


class InputPlan:
    """An (h, w) photo's preprocessing into ``network``'s static input, captured as one graph.

    The step also writes the photo's ``img_shape`` and ``scale_factor`` into the network plan's
    buffers, so the shared graphs clip and rescale for this photo.
    """

    def __init__(self, network, h: int, w: int, staging: HostStaging):
        dev, spec, options = network.device, network.spec, network.options
        self.network, self.spec, self.staging = network, spec, staging
        self.metas, extent = photo_metas(spec, h, w, network.pad_shape)
        new_h, new_w, _ = self.metas["img_shape"]
        self.image = torch.zeros((h, w, 3), dtype=torch.uint8, device=dev)
        self.resize = resizer(spec, h, w, dev)
        self.img_shape = torch.tensor([new_h, new_w], dtype=torch.float32, device=dev)
        self.scale_factor = torch.from_numpy(self.metas["scale_factor"]).to(dev)
        self.extent = torch.tensor([extent], device=dev)
        self.steps = Steps(normalize=self._normalize)
        if options.graphs:
            with capture_flags(options.tf32):
                self.steps.capture("normalize", pool=network.pool, warmup=options.warmup_calls)

    def release(self) -> None:
        self.steps.release()

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """(h, w, 3) uint8 BGR -> the network plan's (1, 3, H_pad, W_pad) input; one host-to-device copy."""
        self.staging.upload(image, self.image)
        return self.steps.normalize()

    def _normalize(self) -> torch.Tensor:
        net = self.network
        net.img_shape.copy_(self.img_shape)
        net.scale_factor.copy_(self.scale_factor)
        if net.extents is not None:
            net.extents.copy_(self.extent)
        return normalize_pad(self.spec, self.image.permute(2, 0, 1), self.metas, out=net.normalized,
                             stats=net.stats, resize=self.resize, kernel=net.options.normalize_kernel)
