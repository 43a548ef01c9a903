"""Which config settings each variant honours; ``check_supported`` refuses every other one.

The policy, one rule for every variant but stock:

- ``inference`` is mmdet's own code and honours whatever mmdet honours (the API runs
  ``mmdet.apis.inference_detector`` itself: test-time augmentation, any architecture).
- Every other variant honours the settings listed in docs/supported.md and refuses any other
  one with a one-line ``UnsupportedConfig`` naming it, checked here, once, before any model work
  (``Variant.build`` and the API's ``init_detector`` / ``Detector.from_model`` call it). Nothing is
  silently ignored.

What each piece adds to the requirements (a variant needs those of every piece it has):

- all but stock: a ``MaskRCNN`` with a ``StandardRoIHead`` (the staged pipeline runs its
  ``simple_test`` steps), single-scale testing (no flip, one ``img_scale``), the image read in
  colour as BGR (the package's image reader), uint8 for GPU preprocessing;
- GPU preprocessing: a test pipeline of ``Resize(keep_ratio=True)`` (bilinear, cv2),
  ``RandomFlip``, ``Normalize``, ``Pad(size_divisor)`` with zeros, then the formatting steps;
- raw-mask head: an ``FCNMaskHead``, ``mask_thr_binary`` > 0 (binary masks);
- graphs: mmdet's ResNet of Bottleneck blocks (depth 50/101/152, BatchNorm, no DCN, plugins or
  deep stem), a plain FPN, an ``RPNHead`` with one convolution, ``SingleRoIExtractor`` + RoIAlign
  for both heads, class-specific ``DeltaXYWHBBoxCoder`` boxes, plain per-class NMS in both stages,
  a mask head of plain conv + ReLU modules.
"""
from __future__ import annotations

FORMATTING = ("ImageToTensor", "DefaultFormatBundle", "Collect")
GPU_TRANSFORMS = ("Resize", "RandomFlip", "Normalize", "Pad") + FORMATTING
RAW_MASK_HEADS = ("FCNMaskHead", "FCNMaskHeadWithRawMask")
BOTTLENECK_DEPTHS = (50, 101, 152)


class UnsupportedConfig(ValueError):
    """A config setting that the chosen variant does not implement; the message names it."""


def check_supported(cfg, variant) -> None:
    """Raise ``UnsupportedConfig`` for the first setting of ``cfg`` that ``variant`` would not honour."""
    if is_stock(variant):
        return
    checks = [model_type, single_scale, image_reading]
    if variant.gpu_preprocess:
        checks.append(gpu_transforms)
    if variant.raw_mask:
        checks.append(raw_mask_head)
    if variant.graph is not None:
        checks += [backbone, neck, rpn_head, roi_extractors, bbox_head, nms, mask_head_modules]
    for check in checks:
        problem = check(cfg)
        if problem:
            raise UnsupportedConfig(f"{problem} is not supported by {variant.name}; use variant='inference' "
                                    f"(mmdet's own inference_detector)")


def is_stock(variant) -> bool:
    return not (variant.fp16 or variant.gpu_preprocess or variant.raw_mask or variant.graph)


# Each check returns what it cannot honour ("where: setting"), or None.

def model_type(cfg):
    model = cfg.model
    if model.type != "MaskRCNN":
        return f"model: type {model.type}"
    if model.roi_head.type != "StandardRoIHead":
        return f"model.roi_head: type {model.roi_head.type}"
    return None


def _test_steps(cfg):
    steps = list(cfg.data.test.pipeline)
    aug = next((s for s in steps if s.get("type") == "MultiScaleFlipAug"), None)
    return steps, aug


def single_scale(cfg):
    _, aug = _test_steps(cfg)
    if aug is None:
        return "test pipeline: no MultiScaleFlipAug step"
    if aug.get("flip"):
        return "test pipeline: flip=True (test-time augmentation)"
    if aug.get("img_scale") is None:
        return "test pipeline: MultiScaleFlipAug scale_factor instead of img_scale"
    scales = aug.get("img_scale")
    if isinstance(scales, list) and len(scales) > 1:
        return f"test pipeline: {len(scales)} img_scales (multi-scale test-time augmentation)"
    return None


def image_reading(cfg):
    steps, _ = _test_steps(cfg)
    load = steps[0] if steps else {}
    if load.get("type") not in ("LoadImageFromFile", "LoadImageFromWebcam"):
        return f"test pipeline: first step {load.get('type')} (images are read as LoadImageFromFile reads them)"
    if load.get("color_type", "color") != "color" or load.get("channel_order", "bgr") != "bgr":
        return (f"test pipeline: LoadImageFromFile color_type={load.get('color_type', 'color')!r} "
                f"channel_order={load.get('channel_order', 'bgr')!r}")
    return None


def gpu_transforms(cfg):
    steps, aug = _test_steps(cfg)
    if steps[0].get("to_float32"):
        return "test pipeline: LoadImageFromFile to_float32=True"
    if len(steps) != 2:
        return f"test pipeline: step {next(s.get('type') for s in steps[1:] if s is not aug)}"
    types = [t.get("type") for t in aug.transforms]
    for t in types:
        if t not in GPU_TRANSFORMS:
            return f"test pipeline: transform {t}"
    if [t for t in types if t in ("Resize", "Normalize", "Pad")] != ["Resize", "Normalize", "Pad"]:
        return f"test pipeline: transforms {types} (GPU preprocessing resizes, normalises, then pads)"
    resize, pad = (next(t for t in aug.transforms if t.get("type") == name) for name in ("Resize", "Pad"))
    for key, default in (("keep_ratio", True), ("interpolation", "bilinear"), ("backend", "cv2")):
        if resize.get(key, default) != default:
            return f"test pipeline: Resize {key}={resize.get(key)!r}"
    if pad.get("size") is not None or pad.get("pad_to_square") or not pad.get("size_divisor"):
        return "test pipeline: Pad without size_divisor, or with size / pad_to_square"
    pad_val = pad.get("pad_val", 0)
    if (pad_val.get("img", 0) if hasattr(pad_val, "get") else pad_val) != 0:
        return f"test pipeline: Pad pad_val={pad_val}"
    return None


def _rcnn_cfg(cfg):
    return (cfg.model.get("test_cfg") or cfg.get("test_cfg")).rcnn


def raw_mask_head(cfg):
    head = cfg.model.roi_head.mask_head
    if head.type not in RAW_MASK_HEADS:
        return f"model.roi_head.mask_head: type {head.type} (the raw-mask head is an FCNMaskHead)"
    threshold = _rcnn_cfg(cfg).get("mask_thr_binary", 0.5)
    if not threshold > 0:
        return f"test_cfg.rcnn.mask_thr_binary={threshold} (not a binary mask threshold)"
    return None


def backbone(cfg):
    b = cfg.model.backbone
    if b.type != "ResNet":
        return f"model.backbone: type {b.type} (the graphs run mmdet's ResNet)"
    if b.depth not in BOTTLENECK_DEPTHS:
        return f"model.backbone: ResNet depth {b.depth} (the graphs fuse Bottleneck blocks: 50, 101, 152)"
    for key in ("dcn", "plugins", "conv_cfg"):
        if b.get(key):
            return f"model.backbone: {key}={b.get(key)}"
    for key in ("deep_stem", "avg_down"):
        if b.get(key):
            return f"model.backbone: {key}=True"
    norm = (b.get("norm_cfg") or {}).get("type", "BN")
    if norm not in ("BN", "SyncBN"):
        return f"model.backbone: norm_cfg type {norm} (the graphs fold BatchNorm into the convolutions)"
    return None


def neck(cfg):
    n = cfg.model.get("neck")
    if n is None or n.type != "FPN":
        return f"model.neck: {'none' if n is None else 'type ' + n.type} (the graphs run an FPN)"
    for key in ("add_extra_convs", "norm_cfg", "act_cfg", "conv_cfg"):
        if n.get(key):
            return f"model.neck: {key}={n.get(key)}"
    mode = (n.get("upsample_cfg") or {}).get("mode", "nearest")
    if mode != "nearest":
        return f"model.neck: upsample_cfg mode {mode}"
    return None


def rpn_head(cfg):
    r = cfg.model.rpn_head
    if r.type != "RPNHead" or r.get("num_convs", 1) != 1:
        return f"model.rpn_head: type {r.type}, num_convs {r.get('num_convs', 1)} (the graphs run RPNHead's one conv)"
    coder = r.get("bbox_coder", {}).get("type", "DeltaXYWHBBoxCoder")
    return None if coder == "DeltaXYWHBBoxCoder" else f"model.rpn_head: bbox_coder {coder}"


def roi_extractors(cfg):
    roi = cfg.model.roi_head
    if roi.get("shared_head"):
        return "model.roi_head: shared_head"
    for name in ("bbox_roi_extractor", "mask_roi_extractor"):
        e = roi.get(name)
        if e is None or e.type != "SingleRoIExtractor" or e.roi_layer.type != "RoIAlign":
            return f"model.roi_head.{name}: {e and e.type} (the graphs read one canvas with RoIAlign)"
    if list(roi.bbox_roi_extractor.featmap_strides) != list(roi.mask_roi_extractor.featmap_strides):
        return "model.roi_head: bbox and mask RoI extractors of different featmap_strides"
    return None


def bbox_head(cfg):
    h = cfg.model.roi_head.bbox_head
    if h.type not in ("Shared2FCBBoxHead", "Shared4Conv1FCBBoxHead", "ConvFCBBoxHead"):
        return f"model.roi_head.bbox_head: type {h.type}"
    if h.get("reg_class_agnostic"):
        return "model.roi_head.bbox_head: reg_class_agnostic=True"
    coder = h.get("bbox_coder", {}).get("type", "DeltaXYWHBBoxCoder")
    if coder != "DeltaXYWHBBoxCoder":
        return f"model.roi_head.bbox_head: bbox_coder {coder}"
    if h.get("loss_cls", {}).get("type", "CrossEntropyLoss") != "CrossEntropyLoss":
        return f"model.roi_head.bbox_head: loss_cls {h.loss_cls.type} (its scores are not a softmax)"
    return None


def nms(cfg):
    test_cfg = cfg.model.get("test_cfg") or cfg.get("test_cfg")
    for stage in ("rpn", "rcnn"):
        setting = dict(test_cfg[stage].nms)
        if setting.pop("type", "nms") != "nms" or setting.get("class_agnostic") or setting.get("offset", 0):
            return f"test_cfg.{stage}.nms: {dict(test_cfg[stage].nms)} (the graphs run plain per-class NMS)"
    return None


def mask_head_modules(cfg):
    head = cfg.model.roi_head.mask_head
    for key in ("norm_cfg", "conv_cfg"):
        if head.get(key):
            return f"model.roi_head.mask_head: {key}={head.get(key)} (the graphs fuse plain conv + ReLU)"
    return None
