"""pad_to_scale on a GPU, photo by photo: how far it is from the own-extent pipeline, beside the
rounding spreads that say what "far" means, and what it gives with the extent masks removed.

    python tools/padded_vs_own_extent.py      # CUDA; a small calibrated model (320x192), 10 and 100 detections

Rows per photo: stock as it runs vs stock in strict fp32 (its rounding spread); inference_graph and
the padded pipeline each against strict stock; the own-extent pipeline at batch 2 against batch 1
(kernel choice); padded alone and in one batch of all the photos against own extent; and padded with
ExtentMask made a no-op (the bug the masks prevent).
"""
import argparse
import copy

import torch

from mmdet_opt.detector import build_detector
from mmdet_opt.graphed import extent
from mmdet_opt.graphed.capture import strict_fp32
from mmdet_opt.images import resize_to, sample_image
from mmdet_opt.parity import compare
from mmdet_opt.results import Detections
from mmdet_opt.variants import get_variant, variant_model

SCALE = (320, 192)
PHOTOS = [("astronaut", (640, 480)), ("coffee", (1000, 300)), ("rocket", (500, 500)), ("chelsea", (1280, 720)),
          ("astronaut", (480, 640)), ("coffee", (333, 250))]


def unmasked(variant, model, photos) -> list:
    """The padded pipeline with ExtentMask made a no-op: what the masks prevent."""
    saved = extent.ExtentMask.__call__
    extent.ExtentMask.__call__ = lambda self, x: x
    try:
        pipe = variant.build(model, SCALE)
        return [Detections.from_mmdet(pipe(p), p.shape) for p in photos]
    finally:
        extent.ExtentMask.__call__ = saved


def compare_at(base, keep: int) -> None:
    from mmdet.apis import inference_detector  # after mmdet_opt, which quiets mmcv's start-up notices

    base.roi_head.test_cfg.max_per_img = keep
    gpu = copy.deepcopy(base).cuda()
    stock = variant_model(gpu, get_variant("inference"), SCALE)
    own = get_variant("inference_graph").build(gpu, SCALE)
    padded = get_variant("inference_graph_padded").build(gpu, SCALE)
    photos = [resize_to(sample_image(n), s) for n, s in PHOTOS]
    with torch.no_grad():
        tf32 = [Detections.from_mmdet(inference_detector(stock, p), p.shape) for p in photos]
        with strict_fp32():
            exact = [Detections.from_mmdet(inference_detector(stock, p), p.shape) for p in photos]
        mine = [Detections.from_mmdet(own(p), p.shape) for p in photos]
        pair = [Detections.from_mmdet(own.detect_batch([p, p])[1], p.shape) for p in photos]
        alone = [Detections.from_mmdet(padded(p), p.shape) for p in photos]
        batched = [Detections.from_mmdet(r, p.shape) for r, p in zip(padded.detect_batch(photos), photos)]
        broken = unmasked(get_variant("inference_graph_padded"), gpu, photos)
    for i, (n, s) in enumerate(PHOTOS):
        print(f"keep={keep} {n} {s[0]}x{s[1]}")
        for label, a, b in [("stock tf32 vs exact", exact, tf32), ("own vs exact", exact, mine),
                            ("padded vs exact", exact, alone), ("own b2 vs own", mine, pair),
                            ("padded vs own", mine, alone), ("padded batch vs own", mine, batched),
                            ("unmasked vs own", mine, broken)]:
            r = compare(a[i], b[i])
            print(f"   {label:22s} {r.brief()}  min {r.mask_iou_min:.3f} box {r.box_iou_mean:.4f} "
                  f"ds {r.score_diff_max:.1e}", flush=True)


def main():
    parser = argparse.ArgumentParser(prog="python tools/padded_vs_own_extent.py", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", default="10,100", help="detections kept per photo, comma-separated")
    args = parser.parse_args()
    base = build_detector(test_scale=SCALE)
    for keep in (int(k) for k in args.keep.split(",")):
        compare_at(base, keep)


if __name__ == "__main__":
    main()
