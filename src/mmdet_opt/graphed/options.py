"""The GPU-resident pipeline's options: one frozen value that a ``Variant`` carries.

docs/options.md has what each field does and what it was measured to change. A new configuration
is ``dataclasses.replace(GraphOptions(), field=value)``.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

from .static_post import NMS_ROUNDS


@dataclass(frozen=True)
class GraphOptions:
    graphs: bool = True  # False runs the same steps eagerly (the CPU composition, profiling)
    fp16_backbone: bool = True
    fold_batchnorm: bool = True
    fp16_heads: bool = True  # FPN and RPN head
    fp16_layers: int | None = None  # residual stages in fp16 (None: all)
    fused_convs: bool = True
    fp16_canvas: bool = True  # with fp16_heads: the RoI extractors read the fp16 levels (roi_align.py)
    fp16_mask_head: bool = True
    bias_pass: bool = True
    normalize_kernel: bool = True
    max_pool_kernel: bool = True  # the stem's max-pool in one channels-last pass (max_pool.py)
    channels_last: bool = True
    # CPU only: the convolutional front in float64, so that its float32 result does not depend on
    # the input's size (CPU kernels pick their summation order by size); eager_fp32 sets it.
    float64_on_cpu: bool = False
    tf32: bool = True  # in the RoI heads' matrix products, baked in at capture (as stock runs)
    nms_rounds: int = NMS_ROUNDS  # PyTorch's fixed point's; an unsettled NMS falls back to mmdet's own code
    nms_kernel: bool = False  # the NMS suppression matrix in one pass (suppression_kernel.py); off until timed
    # Greedy NMS exactly, in one kernel on CUDA (greedy_kernel.py): no rounds there, no fallback. Off until timed.
    nms_greedy_kernel: bool = False
    max_plans: int = 8  # network input shapes whose graphs are kept
    pad_to_scale: bool = False  # pad every photo to the scale's box, masked to its own extent
    plans_ahead: bool = True  # with pad_to_scale: build both boxes' plans with the pipeline
    upload_pixels: int = 6000 * 4000  # photos up to this size upload through the pre-pinned buffer
    max_photo_sizes: int = 32
    max_batch: int = 16  # photos of one network shape per batch (detect_batch)
    warmup_calls: int = 1  # eager calls of a step before its capture (lazy initialisation)

    def __post_init__(self):
        for name in self.switches():
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"GraphOptions.{name} is True or False, not {value!r}")
        if self.fp16_layers is not None and not (_is_int(self.fp16_layers) and 0 <= self.fp16_layers <= 4):
            raise ValueError(f"GraphOptions.fp16_layers is None or a stage count 0..4, not {self.fp16_layers!r}")
        for name, least in (("nms_rounds", 1), ("max_plans", 1), ("max_photo_sizes", 1), ("max_batch", 1),
                            ("upload_pixels", 0), ("warmup_calls", 0)):
            value = getattr(self, name)
            if not _is_int(value) or value < least:
                raise ValueError(f"GraphOptions.{name} is an integer >= {least}, not {value!r}")
        if self.pad_to_scale and self.plans_ahead and self.max_plans < 2:
            raise ValueError(f"GraphOptions.max_plans: building both boxes' plans ahead (pad_to_scale, plans_ahead) "
                             f"needs max_plans >= 2, not {self.max_plans}")

    @property
    def needs_cuda(self) -> bool:
        return self.graphs or self.fp16_backbone or self.fp16_heads or self.fp16_mask_head or self.channels_last

    @classmethod
    def switches(cls) -> list[str]:
        """The names of the boolean fields."""
        return [f.name for f in fields(cls) if f.type in ("bool", bool)]

    def with_switches(self, text: str) -> GraphOptions:
        """These options with the boolean fields of ``text`` ("nms_kernel=True,graphs=False") set."""
        switches = self.switches()
        settings = {}
        for item in filter(None, text.split(",")):
            name, _, value = (part.strip() for part in item.partition("="))
            if name not in switches or value not in ("True", "False"):
                raise ValueError(f"{item!r} is not FIELD=True or FIELD=False of a boolean GraphOptions field "
                                 f"({', '.join(switches)})")
            settings[name] = value == "True"
        return replace(self, **settings)

    def eager_fp32(self) -> GraphOptions:
        """The same pipeline as a CPU runs it: no graphs, fp32 (the convolutional front summed in
        fp64 on a CPU), NCHW."""
        return replace(self, graphs=False, fp16_backbone=False, fp16_heads=False, channels_last=False,
                       fp16_mask_head=False, float64_on_cpu=True)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
