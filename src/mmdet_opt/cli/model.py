"""The arguments both commands share (model, device, scale, batching) and building the detector from them."""
from __future__ import annotations

import argparse
from pathlib import Path

from .errors import CliError, one_line

STOCK = "inference"  # the variant that is stock mmdet
ALIASES = {"stock": STOCK}


def default_workers() -> int:
    """Decoding threads per process: its share of the host's cores, at most 8."""
    from .prefetch import process_cores

    return min(8, process_cores())


def add_model_arguments(p) -> None:
    p.add_argument("config", metavar="CONFIG",
                   help="mmdet 2.x config file, or 'default' (mmdet's mask_rcnn_r50_fpn_2x_coco)")
    p.add_argument("checkpoint", metavar="CHECKPOINT",
                   help="checkpoint file or http(s) URL, 'trained' (this package's own model, trained on "
                        "its scenes) or 'none' (seeded synthetic weights)")
    p.add_argument("--device", default=None,
                   help="cpu, cuda or cuda:N (default cuda when present); under torchrun each process "
                        "takes cuda:LOCAL_RANK")
    p.add_argument("--scale", type=_scale, default=None, metavar="WxH",
                   help="test scale replacing the config's (default: the config's own, 1333x800 for COCO)")
    p.add_argument("--batch", type=_positive, default=1,
                   help="images per detector call (default 1); a graph variant takes images of one padded "
                        "shape together")
    p.add_argument("--workers", type=_positive, default=default_workers(),
                   help="threads decoding images ahead of the detector (default: cores / processes, at most 8)")


def variant_name(name: str) -> str:
    """A known variant's name (``stock`` for ``inference``); ``CliError`` for an unknown one."""
    from ..variants import get_variant

    try:
        return get_variant(ALIASES.get(name, name)).name
    except ValueError as exc:
        raise CliError(f"{exc}, or 'stock'") from None


def read_config(config: str, scale):
    """The mmcv Config of ``config`` ('default': mmdet's), at test scale ``scale`` when given."""
    from ..config import ConfigError, load_config

    _check_python_syntax(config)
    try:
        return load_config(None if config == "default" else config, scale)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    except Exception as exc:  # mmcv raises many kinds for a file it cannot parse
        raise CliError(f"{config}: not a readable mmdet config ({one_line(exc)})") from None


def _check_python_syntax(config: str) -> None:
    """A .py config that does not parse, said here: mmcv would report it from a temporary copy."""
    path = Path(config)
    if path.suffix != ".py" or not path.is_file():
        return
    try:
        compile(path.read_bytes(), str(path), "exec")
    except SyntaxError as exc:
        raise CliError(f"{config}: not a readable mmdet config (line {exc.lineno}: {exc.msg})") from None


def open_detector(args, cfg, variant: str, device: str, pad_to_scale: bool = False):
    """The detector of ``args.checkpoint`` giving COCO RLE masks; ``CliError`` with the one line
    saying why it cannot be built (the variant cannot run on ``device`` or refuses the config, say)."""
    from .. import init_detector
    from ..checkpoint import CheckpointError

    checkpoint = None if args.checkpoint.lower() == "none" else args.checkpoint
    try:
        return init_detector(cfg, checkpoint, device=device, variant=variant, output="rle",
                             pad_to_scale=pad_to_scale)
    except CheckpointError as exc:
        raise CliError(f"checkpoint {args.checkpoint}: {exc}") from None
    except ValueError as exc:  # the API's one-line refusals: variant, device, config, option
        raise CliError(str(exc)) from None


def variant_label(det) -> str:
    """The name of the variant as it runs (on a CPU, its CPU composition)."""
    return getattr(det.variant, "name", str(det.variant))


def _scale(text: str) -> tuple[int, int]:
    from ..arguments import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value
