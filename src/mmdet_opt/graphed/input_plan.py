"""What one photo size adds to the network plans it pads to: upload buffer, exact resize, metas."""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

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


class StagingRing:
    """Where in a buffer of ``capacity`` bytes each upload is staged: right after the previous one, or
    at 0 where it would not fit. So a photo's host copy overlaps the uploads before it, and the host
    waits (``claim``) only for an upload still reading the part it is about to overwrite."""

    def __init__(self, capacity: int):
        self.capacity, self.next = capacity, 0
        self.in_flight: list = []  # (start, end, done): uploads that may still be reading [start, end)

    def claim(self, size: int) -> int:
        """The start of ``size`` bytes to stage into, once the uploads reading them are done."""
        start = self.next if self.next + size <= self.capacity else 0
        end = start + size
        keep = []
        for entry in self.in_flight:
            if entry[0] < end and start < entry[1]:
                entry[2].synchronize()
            else:
                keep.append(entry)
        self.in_flight, self.next = keep, end
        return start

    def track(self, start: int, size: int, done) -> None:
        """An upload of [start, start + size) whose completion ``done.synchronize()`` waits for."""
        self.in_flight.append((start, start + size, done))

    def drain(self) -> None:
        for _, _, done in self.in_flight:
            done.synchronize()
        self.in_flight, self.next = [], 0


class HostStaging:
    """Pinned host memory that every photo size's upload goes through, used as a ring (StagingRing),
    grown when a larger photo comes.

    Pinned memory makes the upload asynchronous, but pinning is slow (docs/options.md), so the buffer
    is pinned at start-up for ``capacity`` bytes, and only a larger photo pays for growing it (to two
    such photos), once.
    No graph reads it (the upload is a plain copy), so it may move when it grows.
    """

    def __init__(self, pinned: bool, capacity: int = 0):
        self.pinned = pinned
        self.buffer = torch.empty(capacity if pinned else 0, dtype=torch.uint8, pin_memory=pinned)
        self.ring = StagingRing(self.buffer.numel())

    def upload(self, image: np.ndarray, dst: torch.Tensor) -> None:
        """Copy ``image`` into the device tensor ``dst`` (same shape), through the pinned buffer on a GPU."""
        if not self.pinned:
            dst.copy_(torch.from_numpy(image))
            return
        size = image.size
        if size > self.buffer.numel():  # room for two, so that such photos' copies still overlap
            self.ring.drain()
            self.buffer = torch.empty(2 * size, dtype=torch.uint8, pin_memory=True)
            self.ring = StagingRing(2 * size)
        start = self.ring.claim(size)
        staged = self.buffer[start:start + size].view(image.shape)
        staged.copy_(torch.from_numpy(image))
        dst.copy_(staged, non_blocking=True)
        done = torch.cuda.Event()
        done.record(torch.cuda.current_stream(dst.device))
        self.ring.track(start, size, done)


class Slot(NamedTuple):
    """One photo's part of a network plan's buffers (NetworkPlan.slot), which its InputPlan writes."""
    normalized: torch.Tensor  # (1, 3, H_pad, W_pad)
    img_shape: torch.Tensor  # (2,)
    scale_factor: torch.Tensor  # (4,)
    extent: torch.Tensor | None  # (1, 2), with pad_to_scale
    stats: tuple  # the plan's mean / std tables (gpu_preprocess.mean_std)


class InputPlan:
    """An (h, w) photo's preprocessing into a slot of a network plan of its padded shape: one step per
    (plan, slot) it has written, each captured as a graph the first time.

    The step also writes the photo's ``img_shape``, ``scale_factor`` and extent into the slot's
    buffers, so the shared graphs clip and rescale for this photo.
    """

    def __init__(self, spec, options, h: int, w: int, pad_shape: tuple[int, int], device, staging: HostStaging,
                 pool=None):
        self.spec, self.options, self.staging, self.pool = spec, options, staging, pool
        self.pad_shape = pad_shape  # the network plans' it writes into
        self.metas, extent = photo_metas(spec, h, w, pad_shape)
        new_h, new_w, _ = self.metas["img_shape"]
        self.image = torch.zeros((h, w, 3), dtype=torch.uint8, device=device)
        self.resize = resizer(spec, h, w, device)
        self.img_shape = torch.tensor([new_h, new_w], dtype=torch.float32, device=device)
        self.scale_factor = torch.from_numpy(self.metas["scale_factor"]).to(device)
        self.extent = torch.tensor([extent], device=device)
        self.slots: dict = {}  # (network plan, slot index) -> Steps: the normalize step into that slot

    def release(self) -> None:
        for steps in self.slots.values():
            steps.release()
        self.slots = {}

    def forget(self, network) -> bool:
        """Free the steps that write into ``network`` (it is being evicted); whether there were any."""
        keys = [key for key in self.slots if key[0] is network]
        for key in keys:
            self.slots.pop(key).release()
        return bool(keys)

    def preprocess(self, image: np.ndarray, network, slot: int = 0) -> torch.Tensor:
        """(h, w, 3) uint8 BGR -> slot ``slot`` of ``network``'s (N, 3, H_pad, W_pad) input (batch 1:
        the input itself); one host-to-device copy."""
        steps = self.steps(network, slot)
        self.staging.upload(image, self.image)
        return steps.normalize()

    def steps(self, network, slot: int) -> Steps:
        """The normalize step into ``network``'s slot ``slot``, captured on its first use."""
        key = (network, slot)
        if key not in self.slots:
            steps = self.slots[key] = Steps(normalize=partial(self._normalize, network.slot(slot)))
            if self.options.graphs:
                with capture_flags(self.options.tf32):
                    steps.capture("normalize", pool=self.pool, warmup=self.options.warmup_calls)
        return self.slots[key]

    def _normalize(self, slot: Slot) -> torch.Tensor:
        slot.img_shape.copy_(self.img_shape)
        slot.scale_factor.copy_(self.scale_factor)
        if slot.extent is not None:
            slot.extent.copy_(self.extent)
        return normalize_pad(self.spec, self.image.permute(2, 0, 1), self.metas, out=slot.normalized,
                             stats=slot.stats, resize=self.resize, kernel=self.options.normalize_kernel)
