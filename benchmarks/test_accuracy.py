"""Accuracy beside speed: COCO bbox and segm mAP of stock and each variant over held-out scenes.

Always on the project's trained model (``--checkpoint trained``'s weights, whatever --checkpoint
says): synthetic weights detect nothing a mAP could measure. The scenes are those of ``mmdet-opt
eval --scenes N`` (the first N held-out scenes, each at a size of its own; on a CPU, smaller), run at
the first protocol case's test scale. One timed round per variant: one pass over the scenes, decoding
included, as ``eval`` times it. Its figures go to extra_info (and the report's accuracy table), with
each variant's difference from stock's; a variant's segm mAP may differ from stock's by at most
``eval``'s tolerance, and every scene must be scored.
"""
import gc

import pytest

from mmdet_opt.cli.evaluate import DEFAULT_TOLERANCE, coco_figures, detect_for_coco
from mmdet_opt.suite import defaults
from mmdet_opt.variants import VARIANTS

STOCK = "inference"
FIGURES = ("bbox_mAP", "segm_mAP", "images_per_s")


@pytest.fixture(scope="module")
def scenes(settings, request, tmp_path_factory):
    """(COCO dataset, its images as ImageItems): the held-out scenes written as ``eval`` writes them."""
    from mmdet_opt.cli.dataset import dataset_items, load_annotations
    from mmdet_opt.cli.scenes import write_heldout_scenes

    count = request.config.getoption("--accuracy-scenes")
    count = defaults.accuracy_scenes(settings.on_gpu) if count is None else count
    folder = tmp_path_factory.mktemp("accuracy-scenes")
    dataset = load_annotations(write_heldout_scenes(count, str(folder), defaults.accuracy_short_sides(settings.on_gpu)))
    return dataset, dataset_items(dataset, str(folder))


def accuracy_scale(settings) -> tuple:
    """The first protocol case's test scale, as the stream's."""
    return next((c.scale for c in settings.sizes if not c.natural), settings.sizes[0].scale)


@pytest.fixture(scope="module")
def trained_model(settings):
    """The trained model at ``accuracy_scale``, loaded as ``--checkpoint trained`` loads it."""
    from mmdet_opt.detector import build_detector

    return build_detector(settings.config, "trained", device=settings.device, seed=settings.seed,
                          test_scale=accuracy_scale(settings))


class AccuracyPasses:
    """Each variant's pass over the scenes, in three steps so that only the pass itself is timed;
    stock's figures are kept for the others' differences."""

    def __init__(self, settings, scenes, model):
        self.device, (self.dataset, self.items), self.model = settings.device, scenes, model
        self.kept = {}

    def detector(self, name: str):
        from mmdet_opt.api import Detector
        from mmdet_opt.variants import variant_for_device

        return Detector(self.model, variant_for_device(name, self.device), output="rle")

    def detect(self, det):
        from mmdet_opt.cli.model import default_workers

        # The collector runs as in a user's loop (the suite times with it off): stock's results hold
        # reference cycles, and a pass's full-image masks would pile up in host memory (test_stream.py).
        gc.enable()
        return detect_for_coco(det, self.items, self.dataset, workers=default_workers())

    def figures(self, name: str, det, part) -> dict:
        figures = coco_figures(name, det.variant.name, self.dataset, [part])
        if name == STOCK:
            self.kept[STOCK] = figures
        return figures

    def stock(self) -> dict:
        """Stock's figures, from its own benchmark or (when that did not run) an untimed pass now."""
        if STOCK not in self.kept:
            det = self.detector(STOCK)
            self.figures(STOCK, det, self.detect(det))
            del det
            gc.collect()
        return self.kept[STOCK]


@pytest.fixture(scope="module")
def accuracy_passes(settings, scenes, trained_model):
    return AccuracyPasses(settings, scenes, trained_model)


@pytest.mark.parametrize("accuracy_variant", list(VARIANTS))
def test_accuracy(benchmark, settings, accuracy_passes, accuracy_variant, progress):
    variant = settings.variants.get(accuracy_variant)
    if variant is None:
        pytest.skip(settings.unavailable.get(accuracy_variant, f"{accuracy_variant} not selected (--variants)"))
    passes = accuracy_passes
    stock = None if accuracy_variant == STOCK else passes.stock()  # before the timed pass
    items = passes.items
    progress(f"accuracy {variant.name}: {len(items)} scenes")
    outcome = {"det": passes.detector(accuracy_variant)}
    benchmark.pedantic(lambda: outcome.update(part=passes.detect(outcome["det"])), rounds=1, iterations=1)
    figures = passes.figures(accuracy_variant, outcome["det"], outcome["part"])
    outcome.clear()
    gc.collect()  # the variant's pipeline goes now, not under the next one's memory
    summary = {"scenes": len(items), "scored": figures["images"], **{k: figures[k] for k in FIGURES}}
    if stock is not None:
        summary.update({f"delta_{k}": figures[k] - stock[k] for k in FIGURES})
    benchmark.group = f"accuracy {len(items)} scenes"
    w, h = accuracy_scale(settings)
    benchmark.extra_info.update(variant=variant.name, scale=f"{w}x{h}", accuracy=summary)
    assert figures["images"] == len(items) and not figures["skipped"], (
        f"{figures['skipped']} of {len(items)} scenes could not be scored")
    if stock is not None:
        assert abs(summary["delta_segm_mAP"]) <= DEFAULT_TOLERANCE, (
            f"{variant.name}: segm mAP {figures['segm_mAP']:.4f}, stock's {stock['segm_mAP']:.4f} "
            f"(tolerance {DEFAULT_TOLERANCE})")
