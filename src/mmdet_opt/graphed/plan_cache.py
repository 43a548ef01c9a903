"""Bounded least-recently-used caches: the plans of the shapes a stream has seen lately."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from ..gpu_preprocess import image_metas
from .input_plan import InputPlan

T = TypeVar("T")


class LRUCache(Generic[T]):
    """At most ``limit`` values; ``get(key, make)`` builds a missing one and drops the least recently used.

    A dropped value is only dereferenced: what it holds (CUDA graphs, buffers) goes back to its
    allocator once nothing else refers to it. ``on_evict`` sees each dropped value first.
    """

    def __init__(self, limit: int, on_evict: Callable[[T], None] | None = None):
        if limit < 1:
            raise ValueError(f"a plan cache holds at least 1 shape, not {limit}")
        self.limit, self.on_evict = limit, on_evict
        self._values: OrderedDict = OrderedDict()
        self.hits = self.misses = self.evictions = 0

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        if key in self._values:
            self.hits += 1
            self._values.move_to_end(key)
            return self._values[key]
        self.misses += 1
        while len(self._values) >= self.limit:  # make room first: the new value's memory can reuse it
            self._evict()
        value = self._values[key] = make()
        return value

    def peek(self, key: Hashable) -> T:
        """The value, without counting a use."""
        return self._values[key]

    def remove(self, key: Hashable) -> T:
        return self._values.pop(key)

    def clear(self) -> None:
        """Drop every value, least recently used first, each through ``on_evict``."""
        while self._values:
            self._evict()

    def _evict(self) -> None:
        _, value = self._values.popitem(last=False)
        self.evictions += 1
        if self.on_evict is not None:
            self.on_evict(value)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._values

    def keys(self) -> list:
        return list(self._values)


class ShapePlans:
    """Network plans by (padded shape, batch size), and the photo sizes that write into them, each cache
    bounded by ``options``: ``networks`` keeps the plans of batch 1 by padded shape, ``batches`` the
    larger ones by (H, W, N), so that batches of any size never evict the plans single photos run.

    ``make_network(pad_h, pad_w, batch)`` builds a network plan, ``make_photo(h, w, pad)`` a photo size's
    InputPlan. An evicted plan takes the steps photo sizes captured into its slots with it, and both
    free their graphs at once; a photo size left with no step leaves the cache with it.
    """

    def __init__(self, make_network, make_photo, spec, options):
        self.make_network, self.make_photo, self.spec, self.options = make_network, make_photo, spec, options
        self.networks = LRUCache(options.max_plans, on_evict=self._drop_network)
        self.batches = LRUCache(options.max_plans, on_evict=self._drop_network)
        self.photos = LRUCache(options.max_photo_sizes, on_evict=InputPlan.release)

    def plan(self, pad: tuple[int, int], batch: int = 1):
        """The network plan of ``batch`` photos that pad to ``pad``: built on first use, kept while recently used."""
        if batch == 1:
            return self.networks.get(pad, lambda: self.make_network(*pad, 1))
        return self.batches.get((*pad, batch), lambda: self.make_network(*pad, batch))

    def batches_of(self, images: list, size: int) -> list[tuple[tuple[int, int], list[int]]]:
        """(network shape, indices) of ``images`` grouped by the shape they pad to, at most ``size`` each."""
        groups: dict = {}
        for i, image in enumerate(images):
            groups.setdefault(self.network_shape(*image.shape[:2]), []).append(i)
        return [(pad, members[start:start + size]) for pad, members in groups.items()
                for start in range(0, len(members), size)]

    def slots_for(self, sizes: list[tuple[int, int]], network) -> list[int | None]:
        """The index into ``sizes`` of the photo that goes into each of ``network``'s slots (None: a spare
        slot, where there are fewer photos than slots). A photo size takes a free slot it has written
        before, whose step is captured already (each new (size, slot) pair is one more capture); the
        other photos fill the free slots in turn."""
        if len(sizes) > network.batch:
            raise ValueError(f"{len(sizes)} photos do not fit a plan of {network.batch}")
        photo_in_slot: list = [None] * network.batch
        waiting = []
        for i, size in enumerate(sizes):
            written = self.photos.peek(size).slots if size in self.photos else {}  # keys: (network, slot)
            slot = next((s for net, s in written if net is network and photo_in_slot[s] is None), None)
            if slot is None:
                waiting.append(i)
            else:
                photo_in_slot[slot] = i
        free = [s for s, taken in enumerate(photo_in_slot) if taken is None]
        for i, slot in zip(waiting, free):  # as many free slots as waiting photos, or more
            photo_in_slot[slot] = i
        return photo_in_slot

    def photo(self, h: int, w: int) -> InputPlan:
        return self.photos.get((h, w), lambda: self.make_photo(h, w, self.network_shape(h, w)))

    def network_shape(self, h: int, w: int) -> tuple[int, int]:
        """The padded (H, W) the network sees for an (h, w) photo: the next multiple of the config's
        size divisor, or with ``pad_to_scale`` the test scale's padded box (transposed for portraits)."""
        pad_h, pad_w, _ = image_metas(self.spec, h, w)["pad_shape"]
        if not self.options.pad_to_scale:
            return pad_h, pad_w
        landscape, portrait = self.scale_boxes()
        return portrait if pad_h > pad_w else landscape

    def scale_boxes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """With ``pad_to_scale``, the only two network shapes: the test scale's padded box (H, W) for
        landscape and square photos, and its transpose for portrait ones."""
        d = self.spec.size_divisor
        short, long = (-(-s // d) * d for s in sorted(self.spec.scale))
        return (short, long), (long, short)

    def plan_ahead(self, after_each: Callable[[], None] | None = None, batch: int = 1) -> list[tuple[int, int]]:
        """Build the network plans of both boxes for ``batch`` photos now (``pad_to_scale`` only: otherwise
        the shapes depend on the photos), so that no photo's first call pays for one; ``after_each()``
        runs after each."""
        if not self.options.pad_to_scale:
            raise ValueError("network plans can be built ahead only with pad_to_scale: without it, each "
                             "photo size's padded shape is its own")
        if self.options.max_plans < 2:
            raise ValueError(f"building both boxes' plans ahead needs max_plans >= 2, not {self.options.max_plans}")
        boxes = self.scale_boxes()
        for box in boxes:
            self.plan(box, batch)
            if after_each is not None:
                after_each()
        return list(boxes)

    def _drop_network(self, network) -> None:
        for key in self.photos.keys():
            photo = self.photos.peek(key)
            # A photo size that wrote into no other plan leaves with this one, its buffers freed now (as
            # before the new plan's warm-up and capture), not held while later plans are built.
            if photo.forget(network) and not photo.slots:
                self.photos.remove(key).release()
        network.release()
