"""The default suite: what ``pytest benchmarks`` runs when given no options, on a GPU and on a CPU.

The plugin and the benchmark files take their defaults from here, and ``baseline.py`` derives
from the same what a complete run holds.

Which stages at which case: every stage of stock, ``inference_raw_mask`` (the study's two rows)
and ``inference_graph`` (the regression gate's) at the study's protocol cases; ``total`` for the
other variants there, and for every variant on photos at their own size. Stock's full-image masks
and RLE of a 12 MP photo take seconds a call, and timing every stage of every variant at every
case made a GPU run last well over half an hour; ``--every-stage`` still runs that grid.
"""
from __future__ import annotations

from .cases import Case, parse_case

# The study's protocol cases (photo resized to the test scale), then photos at their own size.
GPU_SIZES = "1333x800,3840x2304,4032x3024@1333x800,640x480@1333x800,4032x3024@3840x2304"
CPU_SIZES = "640x384,1024x768@640x384"
# --quick: the headline table, each variant's total at the study's two sizes against stock.
QUICK_GPU_SIZES = "1333x800,3840x2304"
QUICK_CPU_SIZES = "640x384"

PARITY_IMAGES = ("astronaut", "coffee", "rocket")
TRAINED_PARITY_IMAGES = ("scene0", "scene1", "scene2")  # held-out scenes of the trained model

BREAKDOWN_VARIANTS = ("inference", "inference_raw_mask", "inference_graph")
THROUGHPUT_VARIANTS = ("inference", "inference_graph")
GPU_BATCHES, CPU_BATCHES = (1, 4, 8, 16), (1,)  # a batch of 16 takes minutes on a CPU
STREAM_VARIANTS = ("inference", "inference_raw_mask", "inference_graph", "inference_graph_padded")
GPU_STREAM_IMAGES, CPU_STREAM_IMAGES = 200, 6
# Accuracy: held-out scenes scored with COCOeval, on the trained model. On a CPU, smaller scenes
# (short side in pixels; GPU: the generator's own range) and fewer of them keep a variant's pass short.
GPU_ACCURACY_SCENES, CPU_ACCURACY_SCENES = 100, 4
CPU_ACCURACY_SHORT_SIDES = (240, 480)

# (timed rounds, warm-up rounds) per benchmark.
GPU_ROUNDS, CPU_ROUNDS, QUICK_ROUNDS = (20, 5), (3, 1), (10, 2)
ROUND_BUDGET_S = 20.0  # seconds of timed rounds per benchmark before a slow call gets fewer


def split(value: str) -> list:
    return [v.strip() for v in value.split(",") if v.strip()]


def sizes(on_gpu: bool, quick: bool = False) -> list:
    text = (QUICK_GPU_SIZES if quick else GPU_SIZES) if on_gpu else (QUICK_CPU_SIZES if quick else CPU_SIZES)
    return [parse_case(s) for s in split(text)]


def parity_images(trained: bool, quick: bool = False) -> tuple:
    images = TRAINED_PARITY_IMAGES if trained else PARITY_IMAGES
    return images[:1] if quick else images


def stages(variant: str, case: Case, quick: bool = False, every_stage: bool = False) -> tuple:
    """The stages timed for ``variant`` (its name as requested, before any CPU renaming) at ``case``."""
    from ..pipeline import OUTPUT_STAGES, STAGES, TOTAL  # torch: not needed for the options' help

    if quick:
        return (TOTAL,)
    if every_stage or (not case.natural and variant in BREAKDOWN_VARIANTS):
        return STAGES + OUTPUT_STAGES
    return (TOTAL,)


def batches(on_gpu: bool) -> tuple:
    return GPU_BATCHES if on_gpu else CPU_BATCHES


def stream_images(on_gpu: bool) -> int:
    return GPU_STREAM_IMAGES if on_gpu else CPU_STREAM_IMAGES


def accuracy_scenes(on_gpu: bool) -> int:
    return GPU_ACCURACY_SCENES if on_gpu else CPU_ACCURACY_SCENES


def accuracy_short_sides(on_gpu: bool):
    """The scenes' short sides in pixels: None is the generator's own range."""
    return None if on_gpu else CPU_ACCURACY_SHORT_SIDES


def rounds(on_gpu: bool, quick: bool = False) -> tuple:
    """(timed rounds, warm-up rounds)."""
    if not on_gpu:
        return CPU_ROUNDS
    return QUICK_ROUNDS if quick else GPU_ROUNDS
