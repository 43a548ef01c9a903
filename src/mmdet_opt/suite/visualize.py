"""Stock mmdet and a variant side by side on one image: masks, boxes, labels, scores, parity.

    python -m mmdet_opt.suite.visualize --variant inference_raw_mask --image astronaut --out side.png
    python -m mmdet_opt.suite.visualize --variant inference_raw_mask --fp32 --device cpu --out side.png

Both panels come from the same weights and the same resized image. Raw 28x28 masks are pasted at
box size (``paste.paste_masks_at_box``), so drawing costs box area, not N full-image masks.
``--fp32`` draws the variant's composition without fp16; on a CPU that is the default, since
fp16 is CUDA-only in mmcv.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from ..arguments import check_device, parse_size

SEPARATOR = 8  # px of background between the two panels
MASK_ALPHA = 0.5
BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)


class VisualizeError(ValueError):
    """A bad option: reported as one line, without a traceback."""


def load_image(spec: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """``images.image_by_spec``, its errors as --image errors."""
    from ..images import IMAGE_NAMES, image_by_spec, is_image_name
    from ..inputs import ImageInputError

    if not is_image_name(spec) and not Path(spec).is_file():
        raise VisualizeError(f"--image: {spec!r} is neither a file nor a sample "
                             f"({', '.join(IMAGE_NAMES)}, sceneN: a held-out training scene)")
    try:
        return image_by_spec(spec, size)
    except ImageInputError as exc:
        raise VisualizeError(f"--image: {exc}") from None


def resolve_variant(name: str, fp32: bool, device: str):
    """The variant to draw: as it runs on ``device``, or its fp32 composition with --fp32."""
    from ..variants import VariantUnavailable, get_variant

    try:
        variant = get_variant(name)
        drawn = variant.for_device("cpu" if fp32 else device)
    except (ValueError, VariantUnavailable) as exc:
        raise VisualizeError(f"--variant: {exc}") from None
    if drawn != variant and not fp32:
        print(f"note: {name} needs CUDA (fp16 or CUDA graphs): drawing its CPU composition {drawn.name} "
              f"on {device}", file=sys.stderr)
    return drawn


def palette(num_classes: int) -> np.ndarray:
    return np.random.default_rng(0).integers(40, 256, size=(num_classes, 3)).astype(np.uint8)


def local_masks(dets, keep: np.ndarray) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """(box-local bool mask, (x0, y0)) of each kept detection: raw ones pasted at box size."""
    from ..paste import box_regions, paste_masks_at_box

    h, w = dets.image_shape
    if dets.raw_masks:
        return paste_masks_at_box(dets.masks[keep], dets.boxes[keep], h, w, threshold=dets.mask_thr)
    return [(dets.masks[i, y0:y1, x0:x1].astype(bool), (int(x0), int(y0)))
            for i, (x0, y0, x1, y1) in zip(keep, box_regions(dets.boxes[keep], h, w))]


def font_scale(width: int) -> float:
    return float(np.clip(width / 2200, 0.35, 1.2))


def draw(image: np.ndarray, dets, classes, score_thr: float) -> np.ndarray:
    """``image`` with the detections scoring >= ``score_thr``: masks first, then boxes and labels
    on top, lowest score first, so two panels differ only where their detections do."""
    panel = image.copy()
    keep = np.flatnonzero(dets.scores >= score_thr)
    keep = keep[np.argsort(dets.scores[keep], kind="stable")]
    colours = palette(max(len(classes), int(dets.labels.max(initial=0)) + 1))
    for i, (mask, (x0, y0)) in zip(keep, local_masks(dets, keep)):
        region = panel[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]]
        region[mask] = (region[mask] * (1 - MASK_ALPHA) + colours[dets.labels[i]] * MASK_ALPHA).astype(np.uint8)
    scale = font_scale(image.shape[1])
    thick = max(1, round(scale * 2))
    for i in keep:
        x0, y0, x1, y1 = (int(round(v)) for v in dets.boxes[i])
        colour = tuple(int(c) for c in colours[dets.labels[i]])
        cv2.rectangle(panel, (x0, y0), (x1, y1), colour, thick)
        name = classes[dets.labels[i]] if dets.labels[i] < len(classes) else str(dets.labels[i])
        text = f"{name} {dets.scores[i]:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale * 0.7, 1)
        ty = max(y0, th + base)
        cv2.rectangle(panel, (x0, ty - th - base), (x0 + tw, ty), colour, cv2.FILLED)
        cv2.putText(panel, text, (x0, ty - base), cv2.FONT_HERSHEY_SIMPLEX, scale * 0.7, TEXT, 1, cv2.LINE_AA)
    return panel


def title_bar(lines: list[str], width: int) -> np.ndarray:
    scale = font_scale(width)
    (_, th), base = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    step = th + base + 6
    bar = np.full((step * len(lines) + 6, width, 3), BACKGROUND, np.uint8)
    for k, line in enumerate(lines):
        cv2.putText(bar, line, (6, step * (k + 1)), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT, 1, cv2.LINE_AA)
    return bar


def side_by_side(left: np.ndarray, right: np.ndarray, left_title: list[str], right_title: list[str]) -> np.ndarray:
    """Two panels of the same size, each under its title, ``SEPARATOR`` px apart."""
    h, w = left.shape[:2]
    lines = max(len(left_title), len(right_title))
    titles = [t + [""] * (lines - len(t)) for t in (left_title, right_title)]
    columns = [np.vstack([title_bar(t, w), p]) for t, p in zip(titles, (left, right))]
    gap = np.full((columns[0].shape[0], SEPARATOR, 3), BACKGROUND, np.uint8)
    return np.hstack([columns[0], gap, columns[1]])


def detect(args):
    """(image, stock Detections, variant Detections, variant, classes) for the parsed options."""
    import torch
    from mmdet.apis import inference_detector

    from ..checkpoint import CheckpointError, resolve_checkpoint
    from ..config import ConfigError
    from ..detector import build_detector
    from ..images import resize_to
    from ..paste import mask_threshold
    from ..quiet import without_image_to_tensor_notice
    from ..results import Detections
    from ..variants import VARIANTS

    try:
        size = parse_size(args.size)
    except ValueError as exc:
        raise VisualizeError(f"--size: {exc}") from None
    try:
        device = check_device(args.device)
    except ValueError as exc:
        raise VisualizeError(f"--device: {exc}") from None
    variant = resolve_variant(args.variant, args.fp32, device)
    if args.checkpoint:
        try:  # the form only: a URL is downloaded when the model is built
            resolve_checkpoint(args.checkpoint, download=False)
        except CheckpointError as exc:
            raise VisualizeError(f"--checkpoint: {exc}") from None
    image = resize_to(load_image(args.image, size), size)  # the study's protocol, as the suite does
    try:
        base = build_detector(checkpoint=args.checkpoint, device=device, seed=args.seed)
    except (CheckpointError, ConfigError) as exc:
        raise VisualizeError(str(exc)) from None
    stock_model = VARIANTS["inference"].build(base, size).model
    with torch.no_grad(), without_image_to_tensor_notice():
        stock = Detections.from_mmdet(inference_detector(stock_model, image), image.shape)
    candidate = Detections.from_mmdet(variant.build(base, size)(image), image.shape, mask_threshold(base))
    return image, stock, candidate, variant, list(base.CLASSES)


def render(image, stock, candidate, variant_name: str, classes, score_thr: float) -> tuple[np.ndarray, str]:
    from ..parity import compare

    report = compare(stock, candidate)

    def counts(d):
        return f"{len(d)} detections, {int((d.scores >= score_thr).sum())} drawn (score >= {score_thr:g})"

    left = ["stock mmdet", counts(stock)]
    right = [f"{variant_name} | parity: matched {report.matched}/{report.reference} "
             f"({report.matched_fraction:.3f}), mask IoU mean {report.mask_iou_mean:.4f}", counts(candidate)]
    picture = side_by_side(draw(image, stock, classes, score_thr), draw(image, candidate, classes, score_thr),
                           left, right)
    return picture, f"{variant_name} vs stock: {report}"


def parser() -> argparse.ArgumentParser:
    from ..images import IMAGE_NAMES
    from ..variants import VARIANTS

    p = argparse.ArgumentParser(prog="python -m mmdet_opt.suite.visualize", description=__doc__.split("\n")[0])
    # Names listed rather than argparse choices: a wrong one gets this tool's one-line error.
    p.add_argument("--variant", default="inference_raw_mask",
                   help=f"variant drawn right of stock, one of {', '.join(VARIANTS)} (default: %(default)s)")
    p.add_argument("--fp32", action="store_true",
                   help="draw the variant's composition without fp16 (the default on a CPU, where fp16 cannot run)")
    p.add_argument("--image", default="astronaut",
                   help=f"a sample, one of {', '.join(IMAGE_NAMES)}, sceneN (held-out scene N of the "
                        "trained model's data, drawn at --size), or an image file (default: %(default)s)")
    p.add_argument("--size", default="1333x800", help="WxH the image is resized to (default: %(default)s)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    p.add_argument("--checkpoint", default=None,
                   help="mmdet checkpoint: a file, or an http(s) URL downloaded once into "
                        "~/.cache/mmdet-opt/checkpoints and checked by the sha256 prefix in its name "
                        "(-xxxxxxxx.pth) or URL#sha256=<64 hex> (default: calibrated synthetic weights)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic weights (default: %(default)s)")
    p.add_argument("--score-thr", type=float, default=0.3,
                   help="draw detections scoring at least this (default: %(default)s)")
    p.add_argument("--out", default="side_by_side.png", help="PNG to write (default: %(default)s)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.device is None:
        from ..arguments import default_device

        args.device = default_device()
    try:
        image, stock, candidate, variant, classes = detect(args)
        picture, summary = render(image, stock, candidate, variant.name, classes, args.score_thr)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out), picture, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
            raise VisualizeError(f"--out: cannot write {out} (is it a .png path?)")
    except (VisualizeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({picture.shape[1]}x{picture.shape[0]}); {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
