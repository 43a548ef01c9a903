"""Score a checkpoint on held-out scenes with COCOeval, without training: bbox and segm mAP, AP50, by area.

    python -m mmdet_opt.training.evaluate [--checkpoint trained] [--scenes 60] [--size 1333x800] [--device cpu]

``--size 1333x800`` (the default) runs mmdet's ``inference_detector``: the config's test pipeline,
the path parity uses (the manifest's ``heldout_1333x800``). Any other size (multiples of 32) runs
``simple_test`` at the scene's own size, as training's own held-out evaluation does
(``heldout_512x512`` at 512).
"""
from __future__ import annotations

import argparse
import sys
import time

STOCK_SIZE = (1333, 800)


def parse_args(argv=None):
    from ..arguments import check_device, default_device
    from .__main__ import size

    p = argparse.ArgumentParser(prog="python -m mmdet_opt.training.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="trained", help="a path, or 'trained' for the committed one (default)")
    p.add_argument("--scenes", type=int, default=60, help="held-out scenes to score (default 60)")
    p.add_argument("--size", default="1333x800",
                   help="1333x800 (default: inference_detector) or N / WxH, multiples of 32 (simple_test)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default cuda when present)")
    args = p.parse_args(argv)
    try:
        args.device = check_device(args.device or default_device())
        args.size = STOCK_SIZE if args.size == "1333x800" else size(args.size)
    except ValueError as exc:
        p.error(str(exc))
    if args.scenes < 1:
        p.error("--scenes must be at least 1")
    return args


def evaluate_checkpoint(checkpoint: str, scenes: int, size: tuple[int, int], device: str, progress=print) -> dict:
    """COCOeval figures of ``checkpoint`` on the first ``scenes`` held-out scenes drawn at ``size``."""
    import torch

    from ..coco_results import evaluate
    from ..detector import build_detector
    from .coco import heldout_split
    from .train import predict, predict_stock

    model = build_detector(checkpoint=checkpoint, device=device)
    split, dataset = heldout_split(scenes, size)
    results, started = [], time.time()
    with torch.no_grad():
        for start in range(0, scenes, 10):
            images = [s.image for s in split[start:start + 10]]
            results += predict_stock(model, images) if size == STOCK_SIZE else predict(model, images, device)
            progress(f"scored {len(results)}/{scenes} scenes, {time.time() - started:.0f} s", flush=True)
    return evaluate(dataset, results)


def main(argv=None) -> int:
    from ..checkpoint import CheckpointError
    from ..quiet import ignore_image_to_tensor_notice

    ignore_image_to_tensor_notice()
    args = parse_args(argv)
    try:
        scores = evaluate_checkpoint(args.checkpoint, args.scenes, args.size, args.device)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    path = "inference_detector" if args.size == STOCK_SIZE else "simple_test"
    print(f"held-out {args.size[0]}x{args.size[1]}, {args.scenes} scenes ({path}): "
          + "  ".join(f"{k} {v:.3f}" for k, v in scores.items() if isinstance(v, float)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
