"""python -m mmdet_opt.training --out DIR [--minutes M | --iters N] ...: see docs/training.md."""
from __future__ import annotations

import argparse
import os
import sys


def size(text: str) -> tuple[int, int]:
    from ..arguments import parse_size

    w, h = parse_size(text if "x" in text else f"{text}x{text}")
    if w % 32 or h % 32:  # no padding step in training: the FPN needs sizes divisible by 32
        raise ValueError(f"{text}: both sides must be multiples of 32")
    return w, h


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m mmdet_opt.training", description=__doc__)
    p.add_argument("--out", required=True, help="directory for trained_heads.pth and manifest.json")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, default=5.0, help="training time budget (default 5)")
    length.add_argument("--iters", type=int, help="a fixed number of iterations instead of a time budget")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.02, help="peak learning rate (default 0.02, for batch 16)")
    p.add_argument("--workers", type=int, default=min(12, max((os.cpu_count() or 1) - 1, 0)),
                   help="scene-generating processes (default min(12, cores - 1); 0: in the main process)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default cuda when present)")
    p.add_argument("--size", type=size, default=(512, 512), help="training scene size, N or WxH (default 512)")
    p.add_argument("--rois", type=int, default=None,
                   help="RoIs sampled per image for the RoI heads (default: the config's 512)")
    p.add_argument("--eval-images", type=int, default=100, help="held-out scenes at --size to evaluate")
    p.add_argument("--eval-stock", type=int, default=20,
                   help="held-out 1333x800 scenes evaluated through mmdet's inference_detector (0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the base weights and of the scenes")
    p.add_argument("--init", default=None,
                   help="go on from an earlier run's checkpoint (a path, or 'trained' for the committed one); "
                        "its iterations add up in the manifest")
    args = p.parse_args(argv)
    from ..arguments import check_device, default_device

    try:
        args.device = check_device(args.device or default_device())
    except ValueError as exc:
        p.error(str(exc))
    if args.init is not None:
        from ..checkpoint import CheckpointError, resolve_checkpoint

        try:
            resolve_checkpoint(args.init, download=False)
        except CheckpointError as exc:
            p.error(f"--init: {exc}")
    if args.iters is not None and args.iters < 1 or args.batch < 1 or args.workers < 0:
        p.error("--iters and --batch must be at least 1, --workers at least 0")
    return args


def main(argv=None) -> int:
    from .train import run

    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
