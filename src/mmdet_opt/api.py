"""The public API: a user's own mmdet 2.x Mask R-CNN through any variant, as mmdet's own calls are made.

    from mmdet_opt import init_detector, inference_detector

    det = init_detector("mask_rcnn_r50_fpn_2x_coco.py", "model.pth", device="cuda:0")
    bbox_result, segm_result = det("photo.jpg")         # what mmdet.apis.inference_detector returns
    results = inference_detector(det, ["a.jpg", "b.jpg"])

``output`` says what a result's masks are, always grouped as mmdet groups them (per class, in
detection order, next to ``bbox_result``'s per-class (n, 5) boxes):

- ``"masks"``: full-image bool masks thresholded at the config's ``test_cfg.rcnn.mask_thr_binary``,
  exactly what ``mmdet.apis.inference_detector`` returns (a raw-mask variant pastes its 28x28
  probabilities with mmdet's own rule, ``paste.py``, on the model's device);
- ``"rle"``: the same masks as COCO run-length encodings (``pycocotools.mask.encode``'s dicts,
  ``counts`` as ``str``);
- ``"probs"``: each detection's 28x28 float32 probabilities, the raw-mask head's own form (raw-mask
  variants only).

Each variant honours every config setting or refuses it at construction with one line
(``supported.check_supported``; docs/supported.md). ``inference`` is mmdet's own
``inference_detector`` on the same model.

``Detector.CLASSES``: the checkpoint's meta ``CLASSES``, else the config's ``data.test.classes``,
else its test dataset type's ``CLASSES``. A checkpoint's or config's list that does not name each
class of the model's head is refused (``classes.ClassNamesError``); where the dataset type's list
does not fit (COCO's 80 for a 3-class model), the classes are numbered ``class_0``, ``class_1``, ...
"""
from __future__ import annotations

import dataclasses
import os

import torch

from .arguments import check_device
from .classes import class_names, head_classes
from .inputs import prepare_image
from .paste import mask_threshold
from .quiet import without_image_to_tensor_notice
from .supported import UnsupportedConfig, check_supported, is_stock
from .variants import VARIANTS, Variant, variant_for_device

OUTPUTS = ("masks", "rle", "probs")


def init_detector(config=None, checkpoint=None, device: str = "cuda:0", variant: str = "inference_graph",
                  output: str = "masks", pad_to_scale: bool = False,
                  test_scale: tuple[int, int] | None = None) -> Detector:
    """A ``Detector`` for an mmdet 2.x Mask R-CNN config (a file, an mmcv Config, or None: mmdet's
    mask_rcnn_r50_fpn_2x_coco) and ``checkpoint`` (a file, an http(s) URL, ``"trained"``: the
    project's own model, or None: seeded synthetic weights). ``variant``: a name of
    ``variants.VARIANTS``, run on a CPU as its CPU composition. ``test_scale``: (w, h) in place of the
    config's test ``img_scale``, for every variant, stock included (the CLI's ``--scale``). The config
    is checked against the variant before the model is built."""
    from .arguments import parse_size
    from .config import load_config
    from .detector import build_detector

    device = check_device(str(device))
    run_as = _variant(variant, device, pad_to_scale)
    _check_output(output, run_as)
    if test_scale is not None:
        if not (isinstance(test_scale, (tuple, list)) and len(test_scale) == 2
                and all(isinstance(side, int) for side in test_scale)):
            raise ValueError(f"test_scale is (width, height) in pixels, not {test_scale!r}")
        test_scale = parse_size(f"{test_scale[0]}x{test_scale[1]}")  # the CLI's rule: both sides at least 32
    cfg = load_config(config, test_scale)
    check_supported(cfg, run_as)
    return Detector(build_detector(cfg, checkpoint, device=device), run_as, output)


def inference_detector(model, imgs):
    """``mmdet.apis.inference_detector``'s call: one image (array or path) gives one result, a
    list gives a list. ``model``: a ``Detector``, or an mmdet model (then mmdet's own function runs)."""
    if not isinstance(model, Detector):
        from mmdet.apis import inference_detector as mmdet_inference_detector

        return mmdet_inference_detector(model, imgs)
    return model.batch(imgs) if isinstance(imgs, (list, tuple)) else model(imgs)


class Detector:
    """An mmdet Mask R-CNN run by one variant. ``model`` is the mmdet model as given (mmdet's own
    calls still work on it), ``variant`` the ``Variant`` as it runs on the model's device, ``cfg``
    its config, ``CLASSES`` its class names."""

    def __init__(self, model, variant: Variant, output: str = "masks"):
        if getattr(model, "cfg", None) is None:
            raise ValueError("the model has no cfg: build it with mmdet.apis.init_detector, or set model.cfg")
        _check_output(output, variant)
        check_supported(model.cfg, variant)
        self.model, self.variant, self.output, self.cfg = model.eval(), variant, output, model.cfg
        self.CLASSES = _classes(model)
        self.device = next(model.parameters()).device
        self.mask_thr = mask_threshold(model)
        if output == "rle" and self.mask_thr < 0:
            raise UnsupportedConfig(f"test_cfg.rcnn.mask_thr_binary={self.mask_thr} gives soft masks, which "
                                    f"output='rle' cannot encode")
        # Stock runs mmdet's own inference_detector on the model itself (test-time augmentation included).
        self._pipeline = None if is_stock(variant) else variant.build(model)

    @classmethod
    def from_model(cls, model, variant: str = "inference_graph", output: str = "masks",
                   pad_to_scale: bool = False) -> Detector:
        """A Detector over an mmdet model already built (``mmdet.apis.init_detector``'s, say)."""
        device = str(next(model.parameters()).device)
        return cls(model, _variant(variant, device, pad_to_scale), output)

    def __call__(self, image):
        """The result for one image: an (H, W, 3) uint8 BGR array (grayscale, BGRA and uint16 are
        converted as ``inputs.load_image`` says) or a path."""
        array = prepare_image(image, self.cfg)
        with torch.no_grad():
            result = self._run(array, image)
        return self._convert([result], [array.shape])[0]

    def batch(self, images, plan_batch: int | None = None) -> list:
        """Results for a list of images; a graph variant runs the photos of one network shape as
        one batch (``detect_batch``), the others one image at a time. ``plan_batch`` (graph variants):
        fewer photos of a shape than that run in its plan of ``plan_batch`` photos, such as the one
        ``plan_ahead`` built, rather than in a plan of their own number (captured on first use)."""
        arrays = [prepare_image(image, self.cfg) for image in images]
        detect_batch = getattr(self._pipeline, "detect_batch", None)
        if plan_batch is not None and detect_batch is None:
            raise ValueError(f"plan_batch is an option of the graph variants, not of {self.variant.name}")
        with torch.no_grad():
            if detect_batch is not None:
                results = detect_batch(arrays, plan_batch)
            else:
                results = [self._run(array, image) for array, image in zip(arrays, images)]
        return self._convert(results, [array.shape for array in arrays])

    def network_shape(self, image_shape) -> tuple[int, int] | None:
        """The padded (H, W) a graph variant runs an image of ``image_shape`` at (``batch`` runs the
        images of one shape together); None for the other variants, which run each image alone."""
        shape_of = getattr(self._pipeline, "network_shape", None)
        return None if shape_of is None else shape_of(*image_shape[:2])

    def plan_ahead(self, batch: int = 1) -> int:
        """Capture now the graphs that ``batch`` images of either padded box run in, so that no call
        pays for them (``pad_to_scale`` only: otherwise each image size has a shape of its own).
        Returns the batch size built: ``batch``, or the variant's largest (``GraphOptions.max_batch``)."""
        if self.variant.graph is None or not self.variant.graph.pad_to_scale:
            raise ValueError(f"plan_ahead needs a graph variant with pad_to_scale, not {self.variant.name}")
        return self._pipeline.plan_ahead(batch)

    def _run(self, array, image):
        if self._pipeline is not None:
            return self._pipeline(array)
        from mmdet.apis import inference_detector as mmdet_inference_detector

        # A path goes to mmdet as a path: its LoadImageFromFile reads it as the config says.
        with without_image_to_tensor_notice():  # its notice, at every call
            return mmdet_inference_detector(self.model, str(image) if isinstance(image, (str, os.PathLike)) else array)

    def _convert(self, results: list, image_shapes: list) -> list:
        if self.output == "probs":
            return results
        return convert_results(results, image_shapes, self.output, self.device, self.mask_thr)

    def __repr__(self) -> str:
        return f"Detector({self.variant.name}, output={self.output!r}, {len(self.CLASSES)} classes, on {self.device})"


def convert_results(results, image_shapes, output: str, device, threshold: float) -> list:
    """Each (bbox_result, segm_result) with full-image masks (``"masks"``) or COCO RLEs (``"rle"``), from
    results holding either those masks or raw probabilities; the images' RLEs are encoded together
    (``coco_rles_of_batch``)."""
    from .paste import coco_rles_of_batch, full_image_masks

    if output == "masks":
        flats = [full_image_masks(result, shape, device, threshold)
                 for result, shape in zip(results, image_shapes, strict=True)]
    else:
        flats = [[dict(rle, counts=_text(rle["counts"])) for rle in rles]
                 for rles in coco_rles_of_batch(results, image_shapes, device, threshold)]
    return [(result[0], _per_class(result[0], flat)) for result, flat in zip(results, flats)]


def _per_class(bbox_result, flat: list) -> list:
    """``flat`` (one entry per detection, class by class) grouped as ``bbox_result`` is."""
    grouped, start = [], 0
    for boxes in bbox_result:
        grouped.append(list(flat[start:start + len(boxes)]))
        start += len(boxes)
    return grouped


def _text(counts) -> str:
    return counts.decode("ascii") if isinstance(counts, bytes) else counts


def _variant(variant, device: str, pad_to_scale: bool) -> Variant:
    """The variant (a name, or a Variant) as it runs on ``device``, padded to the scale if asked."""
    run_as = variant.for_device(device) if isinstance(variant, Variant) else variant_for_device(variant, device)
    if pad_to_scale:
        if run_as.graph is None:
            graphed = ", ".join(name for name, v in VARIANTS.items() if v.graph is not None)
            raise ValueError(f"pad_to_scale is an option of the graph variants ({graphed}), not of {run_as.name}")
        run_as = dataclasses.replace(run_as, graph=dataclasses.replace(run_as.graph, pad_to_scale=True))
    return run_as


def _check_output(output: str, variant: Variant) -> None:
    if output not in OUTPUTS:
        raise ValueError(f"output {output!r}: expected one of {', '.join(OUTPUTS)}")
    if output == "probs" and not variant.raw_mask:
        raw = ", ".join(name for name, v in VARIANTS.items() if v.raw_mask)
        raise ValueError(f"output='probs' needs a variant with the raw-mask head ({raw}); "
                         f"{variant.name} returns full-image masks")


def _classes(model) -> tuple[str, ...]:
    """``model.CLASSES`` when it names each class of the head (mmdet's init_detector sets COCO's
    when the checkpoint has none), else ``classes.class_names`` from the config."""
    num_classes = head_classes(model)
    given = getattr(model, "CLASSES", None)
    if given is not None and len(given) == num_classes:
        return tuple(given)
    return class_names(model.cfg, None, num_classes)
