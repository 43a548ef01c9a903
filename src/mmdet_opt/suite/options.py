"""The suite's command-line options, in pytest's "mmdet-opt" group.

On a GPU the defaults are the study's: both sizes, every variant, 20 timed rounds. On a CPU they
shrink to a smoke run: one reduced size, the variants that run there, few rounds. The defaults
themselves are in ``defaults.py``, which also says what a complete run holds.
"""
from __future__ import annotations

from .defaults import CPU_SIZES, GPU_SIZES, PARITY_IMAGES, QUICK_GPU_SIZES, TRAINED_PARITY_IMAGES


def add_options(parser) -> None:
    group = parser.getgroup("mmdet-opt", "mmdet-opt benchmark and parity options")
    group.addoption("--variants", default=None,
                    help="comma-separated variants (default: all; those needing CUDA are skipped on CPU)")
    group.addoption("--sizes", default=None,
                    help="comma-separated cases: WxH (the study's protocol: the photo resized to the test scale "
                         f"WxH) or WxH@WxH (a photo at its own size @ test scale); default {GPU_SIZES} on GPU, "
                         f"{CPU_SIZES} on CPU")
    group.addoption("--device", default=None, help="cuda, cuda:N or cpu (default: cuda if available)")
    group.addoption("--checkpoint", default=None,
                    help="real mmdet checkpoint: a file, or an http(s) URL downloaded once into "
                         "~/.cache/mmdet-opt/checkpoints and checked by the sha256 prefix in its name "
                         "(-xxxxxxxx.pth) or URL#sha256=<64 hex> (default: seeded, calibrated synthetic weights)")
    group.addoption("--config", default=None,
                    help="mmdet config file (default: mmdet's mask_rcnn_r50_fpn_2x_coco)")
    group.addoption("--seed", type=int, default=0, help="seed of the synthetic weights")
    group.addoption("--rounds", type=int, default=None,
                    help="timed rounds per benchmark (default 20 GPU, 10 with --quick, 3 CPU)")
    group.addoption("--warmup-rounds", type=int, default=None,
                    help="untimed rounds first (default 5 GPU, 2 with --quick, 1 CPU)")
    group.addoption("--quick", action="store_true",
                    help=f"the headline table only: each variant's total at {QUICK_GPU_SIZES} (GPU) against stock, "
                         "10 rounds, and parity on one image; no throughput, stream, serving or accuracy")
    group.addoption("--every-stage", action="store_true",
                    help="time every stage at every case (default: every stage of the study's variants at the "
                         "protocol cases, total elsewhere; the full grid takes well over half an hour on a GPU)")
    _add_parity_options(group)


def _add_parity_options(group) -> None:
    group.addoption("--mutation", default=None,
                    help="break every variant's results for the parity tests with this mutation of "
                         "mmdet_opt.suite.mutations (transpose_masks, shift_8px, roll_labels; identity is the "
                         "control): the parity tests must then fail")
    group.addoption("--bench-image", default="astronaut",
                    help="image the timings use: a sample name, sceneN, or an image file (resized to each case's "
                         "photo size, as the samples are)")
    group.addoption("--parity-images", default=None,
                    help=f"comma-separated images the parity tests use, names or image files (default "
                         f"{','.join(PARITY_IMAGES)}; with --checkpoint trained, held-out scenes "
                         f"{','.join(TRAINED_PARITY_IMAGES)}; the first alone with --quick)")
    group.addoption("--parity-min-matched", type=float, default=None,
                    help="fraction of stock detections a variant must match (default 0.95; given, or with "
                         "--checkpoint, these fixed thresholds replace the rounding-spread rule)")
    group.addoption("--parity-min-mask-iou", type=float, default=None,
                    help="mean mask IoU over matched detections (default 0.97)")
