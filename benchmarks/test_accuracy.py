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

    count = request.config.getoption("--accuracy-scenes") or defaults.accuracy_scenes(settings.on_gpu,
                                                                                        settings.quick)
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


@pytest.fixture(scope="module")
def accuracy_pass(settings, scenes, trained_model):
    """``run(name)``: one pass of the variant over the scenes, its figures; stock's are kept
    (``stock()`` runs the pass once when stock's own benchmark did not)."""
    from mmdet_opt.api import Detector
    from mmdet_opt.cli.model import default_workers
    from mmdet_opt.variants import variant_for_device

    dataset, items = scenes
    kept = {}

    def run(name: str) -> dict:
        det = Detector(trained_model, variant_for_device(name, settings.device), output="rle")
        figures = coco_figures(name, det.variant.name, dataset,
                               [detect_for_coco(det, items, dataset, workers=default_workers())])
        del det
        gc.collect()
        if name == STOCK:
            kept[STOCK] = figures
        return figures

    run.stock = lambda: kept.get(STOCK) or run(STOCK)
    return run


@pytest.mark.parametrize("accuracy_variant", list(VARIANTS))
def test_accuracy(benchmark, settings, scenes, accuracy_pass, accuracy_variant, progress):
    variant = settings.variants.get(accuracy_variant)
    if variant is None:
        pytest.skip(settings.unavailable.get(accuracy_variant, f"{accuracy_variant} not selected (--variants)"))
    stock = None if accuracy_variant == STOCK else accuracy_pass.stock()  # before the timed pass
    dataset, items = scenes
    outcome = {}
    progress(f"accuracy {variant.name}: {len(items)} scenes")
    benchmark.pedantic(lambda: outcome.update(figures=accuracy_pass(accuracy_variant)), rounds=1, iterations=1)
    figures = outcome["figures"]
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
