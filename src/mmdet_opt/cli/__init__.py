"""mmdet-opt: detect over image files (infer) or score a model on a COCO dataset (eval).

Both run under ``torchrun --nproc_per_node N`` as well: one process per GPU, each on a share of the
images, rank 0 writing what a single process would.
"""
from __future__ import annotations

import argparse
import sys

from .errors import CliError


def build_parser() -> argparse.ArgumentParser:
    from . import evaluate, infer

    parser = argparse.ArgumentParser(prog="mmdet-opt", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    infer.add_parser(commands)
    evaluate.add_parser(commands)
    return parser


def main(argv=None) -> int:
    from .. import quiet

    quiet.ignore_mmcv_v2_notice()
    quiet.ignore_mmcv_autocast_notice()
    quiet.ignore_image_to_tensor_notice()
    quiet.ignore_invalid_escape_warnings()
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CliError as exc:
        print(f"mmdet-opt {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before any image was done (infer keeps what was done itself)
        print(f"mmdet-opt {args.command}: interrupted", file=sys.stderr)
        return 130
