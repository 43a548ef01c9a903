"""The settings of a run, read from the suite's options (``options.py``): each bad option is one
usage error that names it, raised while pytest starts, before any test is collected.

Imports torch and mmdet (through the variants): the plugin reads the settings after its quiet import.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from ..arguments import check_device, default_device
from ..checkpoint import CheckpointError, describe_checkpoint, resolve_checkpoint
from ..images import IMAGE_NAMES, is_image_name
from ..inputs import ImageInputError, load_image
from ..parity import DEFAULT_MIN_MASK_IOU, DEFAULT_MIN_MATCHED, TRAINED_MIN_MASK_IOU, TRAINED_MIN_MATCHED
from ..variants import VARIANTS, VariantUnavailable, variant_for_device
from . import defaults
from .cases import parse_case
from .defaults import split
from .mutations import OUTPUT_MUTATIONS


@dataclass
class Settings:
    device: str
    sizes: list
    variants: dict  # requested name -> the Variant as it runs on ``device``
    unavailable: dict  # name -> why it cannot run on ``device``
    checkpoint: str | None
    config: str | None
    seed: int
    rounds: int
    warmup_rounds: int
    bench_image: str
    parity_images: list
    min_matched: float
    min_mask_iou: float
    fixed_thresholds: bool  # judge parity by the thresholds above, not stock's own rounding spread
    quick: bool = False
    every_stage: bool = False
    mutation: str | None = None  # an output mutation the parity tests' results go through

    @property
    def on_gpu(self) -> bool:
        return self.device.startswith("cuda")


def read_settings(config) -> Settings:
    opt = config.getoption
    device = _device(opt)
    on_gpu = device.startswith("cuda")
    variants, unavailable = _variants(opt, device)
    checkpoint = opt("--checkpoint")
    trained, quick = checkpoint == "trained", opt("--quick")
    # The project's trained model is judged on held-out scenes of what it was trained for.
    parity_images = split(opt("--parity-images") or ",".join(defaults.parity_images(trained, quick)))
    mutation = _mutation(opt)
    _check_images([opt("--bench-image")] + parity_images)
    _check_checkpoint(checkpoint)
    config_file = _config_file(opt)
    rounds, warmup = _rounds(opt, on_gpu, quick)
    sizes = _sizes(opt, on_gpu, quick)
    min_matched, min_mask_iou = _thresholds(opt, trained)
    return Settings(
        device=device,
        sizes=sizes,
        variants=variants,
        unavailable=unavailable,
        checkpoint=checkpoint,
        config=config_file,
        seed=opt("--seed"),
        rounds=rounds,
        warmup_rounds=warmup,
        bench_image=opt("--bench-image"),
        parity_images=parity_images,
        min_matched=min_matched,
        min_mask_iou=min_mask_iou,
        fixed_thresholds=bool(checkpoint or opt("--parity-min-matched") or opt("--parity-min-mask-iou")),
        quick=quick,
        every_stage=opt("--every-stage"),
        mutation=mutation,
    )


def run_weights(settings: Settings) -> str:
    """Which weights a run measures, as its JSON records them."""
    if settings.checkpoint:
        return f"checkpoint {describe_checkpoint(settings.checkpoint)}"
    return f"synthetic, seed {settings.seed}"


def _device(opt) -> str:
    try:
        return check_device(opt("--device") or default_device())
    except ValueError as exc:
        raise pytest.UsageError(f"--device: {exc}") from None


def _variants(opt, device: str) -> tuple[dict, dict]:
    """The requested variants, each as it runs on ``device`` (on a CPU: its CPU composition), and
    why each of the others cannot run there."""
    names = split(opt("--variants")) if opt("--variants") else list(VARIANTS)
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise pytest.UsageError(f"--variants: unknown {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    variants, unavailable = {}, {}
    for name in names:
        try:
            variants[name] = variant_for_device(name, device)
        except VariantUnavailable as exc:
            unavailable[name] = str(exc)
    return variants, unavailable


def _mutation(opt) -> str | None:
    mutation = opt("--mutation")
    if mutation and mutation not in OUTPUT_MUTATIONS:
        raise pytest.UsageError(f"--mutation: unknown {mutation}; known: {', '.join(OUTPUT_MUTATIONS)}")
    return mutation


def _check_images(images: list) -> None:
    unknown = [i for i in images if not is_image_name(i) and not Path(i).exists()]
    if unknown:
        raise pytest.UsageError(f"unknown image {', '.join(unknown)}; known: {', '.join(IMAGE_NAMES)}, "
                                "sceneN (held-out scenes), or an image file")
    for path in {i for i in images if not is_image_name(i)}:
        try:  # an unusable file is a usage error now, not a failure of every test that uses it
            load_image(path)
        except ImageInputError as exc:
            raise pytest.UsageError(f"image file: {exc}") from None


def _check_checkpoint(checkpoint: str | None) -> None:
    if not checkpoint:
        return
    try:  # the form only: a URL is downloaded when the model is built, not for --collect-only
        resolve_checkpoint(checkpoint, download=False)
    except CheckpointError as exc:
        raise pytest.UsageError(f"--checkpoint: {exc}") from None


def _config_file(opt) -> str | None:
    path = opt("--config")
    if path and not Path(path).is_file():
        raise pytest.UsageError(f"--config: no such file: {path}")
    return path


def _rounds(opt, on_gpu: bool, quick: bool) -> tuple[int, int]:
    default_rounds, default_warmup = defaults.rounds(on_gpu, quick)
    rounds = opt("--rounds") if opt("--rounds") is not None else default_rounds
    warmup = opt("--warmup-rounds") if opt("--warmup-rounds") is not None else default_warmup
    if rounds < 1 or warmup < 0:
        raise pytest.UsageError("--rounds must be >= 1 and --warmup-rounds >= 0")
    return rounds, warmup


def _sizes(opt, on_gpu: bool, quick: bool) -> list:
    try:
        return [parse_case(s) for s in split(opt("--sizes"))] if opt("--sizes") else defaults.sizes(on_gpu, quick)
    except ValueError as exc:
        raise pytest.UsageError(f"--sizes: {exc}") from None


def _thresholds(opt, trained: bool) -> tuple[float, float]:
    """The parity thresholds: given, or the trained model's, or the defaults."""
    min_matched = opt("--parity-min-matched") or (TRAINED_MIN_MATCHED if trained else DEFAULT_MIN_MATCHED)
    min_mask_iou = opt("--parity-min-mask-iou") or (TRAINED_MIN_MASK_IOU if trained else DEFAULT_MIN_MASK_IOU)
    return min_matched, min_mask_iou
