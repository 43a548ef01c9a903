"""The public API (api.py): mmdet's result structure and values, output modes, inputs, refusals.

Runs each variant's CPU composition (fp32, eager) on the small calibrated model of conftest.py;
stock is ``mmdet.apis.inference_detector`` on the same model.
"""
import copy
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch
from mmdet.apis import inference_detector as mmdet_inference_detector
from pycocotools import mask as mask_utils

from mmdet_opt import Detector, inference_detector, init_detector
from mmdet_opt.config import ConfigError, load_config, mmdet_config_dir
from mmdet_opt.config import test_scale_of as scale_of  # not collected as a test
from mmdet_opt.images import resize_to, sample_image
from mmdet_opt.inputs import ImageInputError
from mmdet_opt.parity import compare
from mmdet_opt.results import Detections
from mmdet_opt.supported import UnsupportedConfig, check_supported
from mmdet_opt.variants import VariantUnavailable, get_variant, variant_for_device

SMALL_SCALE = (320, 192)  # small_base_model's (tests/conftest.py)
EXACT = ["inference", "inference_fp16_preprocess", "inference_raw_mask"]  # the same arithmetic as stock on a CPU
GRAPHED = ["inference_graph", "inference_graph_padded"]  # BatchNorm folded: the same detections, rounded apart


@pytest.fixture(scope="module")
def image():
    return resize_to(sample_image("astronaut"), (320, 240))


@pytest.fixture(scope="module")
def stock(small_base_model, image):
    return mmdet_inference_detector(small_base_model, image)


@pytest.fixture(scope="module")
def detectors(small_base_model):
    return {}


def detector(detectors, model, variant, output="masks"):
    """Detectors built once per module: a graph pipeline costs a model copy."""
    key = (variant, output)
    if key not in detectors:
        detectors[key] = Detector.from_model(model, variant=variant, output=output)
    return detectors[key]


@pytest.fixture(scope="module")
def graphed(small_base_model, detectors):
    return detector(detectors, small_base_model, "inference_graph")


@pytest.fixture(scope="module")
def graphed_result(graphed, image):
    return graphed(image)


def assert_mmdet_structure(result, num_classes, image_shape):
    bbox_result, segm_result = result
    assert isinstance(result, tuple) and len(bbox_result) == len(segm_result) == num_classes
    for boxes, masks in zip(bbox_result, segm_result):
        assert isinstance(boxes, np.ndarray) and boxes.dtype == np.float32 and boxes.shape == (len(masks), 5)
        assert isinstance(masks, list)
        for mask in masks:
            assert mask.dtype == bool and mask.shape == image_shape[:2]


def assert_same(result, expected):
    (boxes, masks), (want_boxes, want_masks) = result, expected
    for cls, (b, w) in enumerate(zip(boxes, want_boxes, strict=True)):
        np.testing.assert_array_equal(b, w, err_msg=f"class {cls} boxes")
        assert len(masks[cls]) == len(want_masks[cls])
        for m, w in zip(masks[cls], want_masks[cls]):
            np.testing.assert_array_equal(m, w, err_msg=f"class {cls} masks")


# --- the same results as mmdet ---------------------------------------------------------------

@pytest.mark.parametrize("name", EXACT + GRAPHED)
def test_masks_are_mmdets_structure_and_values(name, small_base_model, detectors, image, stock):
    det = detector(detectors, small_base_model, name)
    assert det.variant.name == variant_for_device(name, "cpu").name
    result = det(image)
    assert_mmdet_structure(result, 80, image.shape)
    assert sum(len(b) for b in stock[0]) > 0
    if name in EXACT:
        assert_same(result, stock)
    else:
        report = compare(Detections.from_mmdet(stock, image.shape), Detections.from_mmdet(result, image.shape))
        assert report.matched_fraction == 1.0 and report.passes(), str(report)


def test_rle_encodes_the_masks(small_base_model, detectors, image, graphed_result):
    rles = detector(detectors, small_base_model, "inference_graph", "rle")(image)
    for boxes, rle_boxes in zip(graphed_result[0], rles[0], strict=True):
        np.testing.assert_array_equal(boxes, rle_boxes)
    flat = [r for per_class in rles[1] for r in per_class]
    assert flat and all(isinstance(r["counts"], str) and r["size"] == list(image.shape[:2]) for r in flat)
    for per_class, rle_class in zip(graphed_result[1], rles[1]):
        for mask, rle in zip(per_class, rle_class, strict=True):
            np.testing.assert_array_equal(mask_utils.decode(dict(rle, counts=rle["counts"].encode())), mask)


def test_a_batch_of_rles_is_each_photos_own(small_base_model, detectors, image):
    """``batch`` encodes its photos' RLEs together (``coco_rles_of_batch``): photos of two sizes get
    what each gets alone."""
    det = detector(detectors, small_base_model, "inference_raw_mask", "rle")
    images = [image, resize_to(sample_image("coffee"), (200, 150))]
    batched = det.batch(images)
    assert all(sum(map(len, rles)) > 0 for _, rles in batched), "each photo should have detections"
    for (boxes, rles), (want_boxes, want_rles) in zip(batched, [det(i) for i in images], strict=True):
        for b, w in zip(boxes, want_boxes, strict=True):
            np.testing.assert_array_equal(b, w)
        assert rles == want_rles


def test_a_photo_as_small_as_the_raw_masks_gets_stocks_masks(small_base_model, detectors):
    """A 28x28 photo's raw masks have the photo's own shape: they are still pasted, not taken for
    full-image masks."""
    image = resize_to(sample_image("astronaut"), (28, 28))
    stock = mmdet_inference_detector(small_base_model, image)
    assert sum(map(len, stock[1])) > 0, "stock should find something on the small photo"
    assert_same(detector(detectors, small_base_model, "inference_raw_mask")(image), stock)
    rles = detector(detectors, small_base_model, "inference_raw_mask", "rle")(image)
    for per_class, rle_class in zip(stock[1], rles[1], strict=True):
        for mask, rle in zip(per_class, rle_class, strict=True):
            np.testing.assert_array_equal(mask_utils.decode(dict(rle, counts=rle["counts"].encode())), mask)


def test_stock_rle_is_pycocotools_encoding(small_base_model, detectors, image, stock):
    rles = detector(detectors, small_base_model, "inference", "rle")(image)
    for per_class, rle_class in zip(stock[1], rles[1], strict=True):
        for mask, rle in zip(per_class, rle_class, strict=True):
            expected = mask_utils.encode(np.asfortranarray(mask[:, :, None], dtype=np.uint8))[0]
            assert rle == dict(expected, counts=expected["counts"].decode())


def test_probs_are_the_raw_masks_grouped_by_class(small_base_model, detectors, image, stock):
    bbox_result, probs = detector(detectors, small_base_model, "inference_raw_mask", "probs")(image)
    assert_same((bbox_result, [[] for _ in bbox_result]), (stock[0], [[] for _ in stock[0]]))
    for boxes, per_class in zip(bbox_result, probs):
        assert len(per_class) == len(boxes)
        assert all(p.shape == (28, 28) and p.dtype == np.float32 and 0 <= p.min() <= p.max() <= 1
                   for p in per_class)


def test_probs_need_a_raw_mask_variant(small_base_model):
    with pytest.raises(ValueError, match="output='probs' needs a variant with the raw-mask head"):
        Detector.from_model(small_base_model, variant="inference", output="probs")
    with pytest.raises(ValueError, match="output 'bitmap': expected one of masks, rle, probs"):
        Detector.from_model(small_base_model, variant="inference", output="bitmap")


# --- inputs -----------------------------------------------------------------------------------

def test_path_array_and_grayscale_inputs(graphed, graphed_result, image, tmp_path):
    path = tmp_path / "photo.png"
    mmcv.imwrite(image, str(path))
    assert_same(graphed(path), graphed_result)
    gray = image[:, :, 1].copy()
    assert_same(graphed(gray), graphed(np.repeat(gray[:, :, None], 3, axis=2)))


@pytest.mark.slow
def test_a_batch_gives_each_photo_its_own_result(graphed, graphed_result, image):
    other = resize_to(sample_image("coffee"), (320, 240))  # pads to the image's shape: one batch
    results = graphed.batch([image, other])
    assert isinstance(results, list) and len(results) == 2
    assert [key[2] for key in graphed._pipeline.shapes.batches.keys()] == [2]  # detect_batch ran them together
    for result, alone in zip(results, (graphed_result, graphed(other))):
        assert_mmdet_structure(result, 80, image.shape)
        report = compare(Detections.from_mmdet(alone, image.shape), Detections.from_mmdet(result, image.shape))
        assert report.matched_fraction == 1.0 and report.mask_iou_mean > 0.999, str(report)


@pytest.mark.slow
def test_pad_to_scale_builds_a_batchs_plans_ahead(small_base_model, detectors, image):
    """With pad_to_scale every image runs at one of two shapes, so both boxes' plans for a batch are
    built before the first call, and photos of three sizes then run in them with no new plan."""
    padded = Detector.from_model(small_base_model, variant="inference_graph", pad_to_scale=True)
    assert padded.plan_ahead(3) == 3
    with pytest.raises(ValueError, match="a number of images"):
        padded.plan_ahead(0)
    plans = padded._pipeline.shapes.batches
    assert sorted(plans.keys()) == [(192, 320, 3), (320, 192, 3)] and plans.misses == 2
    photos = [image, resize_to(sample_image("coffee"), (400, 300)), resize_to(sample_image("rocket"), (500, 500))]
    assert [padded.network_shape(p.shape) for p in photos] == [(192, 320)] * 3
    assert padded.network_shape((400, 300, 3)) == (320, 192)  # a portrait photo: the other box
    results = padded.batch(photos)
    assert plans.misses == 2 and len(results) == 3
    for photo, result in zip(photos, results):
        report = compare(Detections.from_mmdet(padded(photo), photo.shape), Detections.from_mmdet(result, photo.shape))
        assert report.matched_fraction == 1.0 and report.mask_iou_mean > 0.999, str(report)


def test_only_pad_to_scale_has_plans_to_build_ahead(small_base_model, detectors, image):
    with pytest.raises(ValueError, match="plan_ahead needs a graph variant with pad_to_scale, not inference_"):
        detector(detectors, small_base_model, "inference_graph").plan_ahead(2)
    assert detector(detectors, small_base_model, "inference_graph").network_shape(image.shape) == (192, 256)
    assert detector(detectors, small_base_model, "inference").network_shape(image.shape) is None


def test_inference_detector_is_a_drop_in(small_base_model, detectors, image, stock):
    det = detector(detectors, small_base_model, "inference")
    assert_same(inference_detector(det, image), stock)
    results = inference_detector(det, [image])
    assert isinstance(results, list) and len(results) == 1
    assert_same(results[0], stock)
    assert_same(inference_detector(small_base_model, image), stock)  # an mmdet model: mmdet's own function


@pytest.mark.parametrize("bad, error, line", [
    ("/nowhere/photo.jpg", ImageInputError, "no such file"),
    (np.zeros((40, 60, 3), np.float32), ImageInputError, "dtype float32 is not supported"),
    (np.zeros((40, 60, 2), np.uint8), ImageInputError, "expected 1 (gray), 3 (BGR) or 4 (BGRA) channels"),
])
def test_bad_images_are_one_clear_line(bad, error, line, small_base_model, detectors):
    det = detector(detectors, small_base_model, "inference_graph")
    with pytest.raises(error) as err:
        det(bad)
    assert line in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(error):
        det.batch([bad])


def test_bad_arguments_are_one_clear_line(tmp_path):
    cases = [
        (dict(config=tmp_path / "missing.py"), ConfigError, "config file not found"),
        (dict(variant="inference_turbo"), ValueError, "unknown variant 'inference_turbo'"),
        (dict(variant="inference_fp16"), VariantUnavailable, "fp16 is all it changes"),
        (dict(variant="inference_raw_mask", pad_to_scale=True), ValueError, "pad_to_scale is an option of the graph"),
    ]
    if not torch.cuda.is_available():
        cases.append((dict(device="cuda:0"), ValueError, "torch sees no CUDA device"))
    for kwargs, error, line in cases:
        with pytest.raises(error) as err:
            init_detector(**{"device": "cpu", **kwargs})
        assert line in str(err.value) and "\n" not in str(err.value), kwargs


# --- settings: refused by the fast variants, honoured by stock --------------------------------

def config_with(edit, path=None):
    cfg = load_config(path)
    edit(cfg)
    return cfg


def multiscale(cfg):
    return next(s for s in cfg.data.test.pipeline if s.type == "MultiScaleFlipAug")


def transform(cfg, name):
    return next(t for t in multiscale(cfg).transforms if t.type == name)


REFUSED = {
    "flip": (lambda c: multiscale(c).update(flip=True), None, "test pipeline: flip=True (test-time augmentation)"),
    "two-scales": (lambda c: multiscale(c).update(img_scale=[(1333, 800), (666, 400)]), None,
                   "test pipeline: 2 img_scales (multi-scale test-time augmentation)"),
    "keep-ratio": (lambda c: transform(c, "Resize").update(keep_ratio=False), None,
                   "test pipeline: Resize keep_ratio=False"),
    "pad-size": (lambda c: transform(c, "Pad").update(size=(1344, 800), size_divisor=None), None,
                 "test pipeline: Pad without size_divisor"),
    "soft-nms": (lambda c: c.model.test_cfg.rcnn.nms.update(type="soft_nms"), None, "test_cfg.rcnn.nms"),
    "resnet18": (lambda c: c.model.backbone.update(depth=18), None, "model.backbone: ResNet depth 18"),
    "regnet": (lambda c: None, "regnet/mask_rcnn_regnetx-3.2GF_fpn_1x_coco.py", "model.backbone: type RegNet"),
    "cascade": (lambda c: None, "cascade_rcnn/cascade_mask_rcnn_r50_fpn_1x_coco.py", "model: type CascadeRCNN"),
    "c4": (lambda c: None, "mask_rcnn/mask_rcnn_r50_caffe_c4_1x_coco.py", "model.neck: none"),
}


@pytest.mark.parametrize("setting", list(REFUSED))
def test_each_unsupported_setting_is_refused_in_one_line(setting):
    edit, path, line = REFUSED[setting]
    cfg = config_with(edit, path and mmdet_config_dir() / path)
    with pytest.raises(UnsupportedConfig) as err:
        init_detector(cfg, device="cpu", variant="inference_graph")  # refused before the model is built
    message = str(err.value)
    assert message.startswith(line) and "\n" not in message
    assert "not supported by inference_graph_eager_fp32; use variant='inference'" in message
    check_supported(cfg, get_variant("inference"))  # stock takes every one


@pytest.mark.parametrize("name, setting", [("inference_fp16_preprocess", "keep-ratio"),
                                           ("inference_raw_mask", "cascade")])
def test_the_earlier_variants_refuse_what_they_do_not_run(name, setting):
    edit, path, line = REFUSED[setting]
    with pytest.raises(UnsupportedConfig, match=line):
        check_supported(config_with(edit, path and mmdet_config_dir() / path), get_variant(name))


def test_the_graphs_take_mmdets_r50_and_r101_configs():
    for name in ("mask_rcnn_r50_fpn_1x_coco.py", "mask_rcnn_r101_fpn_1x_coco.py", "mask_rcnn_r50_caffe_fpn_1x_coco.py"):
        check_supported(load_config(mmdet_config_dir() / "mask_rcnn" / name), get_variant("inference_graph"))


@pytest.mark.slow
def test_stock_honours_test_time_augmentation(small_base_model, image, stock):
    model = copy.deepcopy(small_base_model)
    multiscale(model.cfg).update(flip=True)
    with pytest.raises(UnsupportedConfig, match="flip=True"):
        Detector.from_model(model, variant="inference_graph")
    result = Detector.from_model(model, variant="inference")(image)
    assert_same(result, mmdet_inference_detector(model, image))
    boxes, stock_boxes = np.concatenate(result[0]), np.concatenate(stock[0])
    assert boxes.shape != stock_boxes.shape or not np.array_equal(boxes, stock_boxes), "flip made no difference"


# --- mask_thr_binary ----------------------------------------------------------------------------

def with_mask_threshold(model, threshold):
    model = copy.deepcopy(model)
    model.roi_head.test_cfg.mask_thr_binary = threshold  # what stock's mask head reads
    model.cfg.model.test_cfg.rcnn.mask_thr_binary = threshold
    return model


@pytest.mark.slow
@pytest.mark.parametrize("name", ["inference_raw_mask", "inference_graph"])
def test_mask_threshold_is_honoured(name, small_base_model, image):
    areas = {}
    for threshold in (0.3, 0.7):
        model = with_mask_threshold(small_base_model, threshold)
        result, expected = Detector.from_model(model, variant=name)(image), mmdet_inference_detector(model, image)
        if name == "inference_raw_mask":
            assert_same(result, expected)
        else:
            report = compare(Detections.from_mmdet(expected, image.shape), Detections.from_mmdet(result, image.shape))
            assert report.matched_fraction == 1.0 and report.passes(), f"{threshold}: {report}"
        areas[threshold] = np.array([m.sum() for per_class in result[1] for m in per_class])
    assert len(areas[0.3]) == len(areas[0.7]) > 0
    assert (areas[0.3] >= areas[0.7]).all() and areas[0.3].sum() > areas[0.7].sum()


def test_a_soft_mask_threshold_is_refused_by_raw_mask_variants(small_base_model):
    model = with_mask_threshold(small_base_model, -1)
    with pytest.raises(UnsupportedConfig, match=r"test_cfg.rcnn.mask_thr_binary=-1 \(not a binary mask threshold\)"):
        Detector.from_model(model, variant="inference_raw_mask")
    with pytest.raises(UnsupportedConfig, match="output='rle' cannot encode"):
        Detector.from_model(model, variant="inference", output="rle")


# --- models -------------------------------------------------------------------------------------

def test_a_test_scale_below_32_pixels_is_refused_before_the_model_is_built():
    with pytest.raises(ValueError, match="'20x600' is not WIDTHxHEIGHT with both at least 32"):
        init_detector(None, device="cpu", test_scale=(20, 600))
    with pytest.raises(ValueError, match=r"test_scale is \(width, height\) in pixels, not '640x384'"):
        init_detector(None, device="cpu", test_scale="640x384")


@pytest.mark.slow
def test_the_trained_model_runs_with_its_classes():
    from mmdet.datasets import CocoDataset

    from mmdet_opt.parity import TRAINED_MIN_MASK_IOU, TRAINED_MIN_MATCHED
    from mmdet_opt.training import scenes

    det = init_detector(None, checkpoint="trained", device="cpu", test_scale=(640, 384))
    assert scale_of(det.cfg) == (640, 384)
    assert det.CLASSES == CocoDataset.CLASSES  # no CLASSES in its meta: the config's dataset's
    image = scenes.heldout_scene(0, size=(640, 384)).image
    result = det(image)
    confident = {label for label, boxes in enumerate(result[0]) if (boxes[:, 4] > 0.5).any()}
    assert confident and confident <= set(scenes.LABELS)  # the trained head's six shape classes
    report = compare(Detections.from_mmdet(mmdet_inference_detector(det.model, image), image.shape),
                     Detections.from_mmdet(result, image.shape))
    assert report.passes(TRAINED_MIN_MATCHED, TRAINED_MIN_MASK_IOU), str(report)


@pytest.mark.slow
def test_an_r101_config_runs_through_the_api():
    cfg = load_config(mmdet_config_dir() / "mask_rcnn" / "mask_rcnn_r101_fpn_1x_coco.py", test_scale=(256, 160))
    det = init_detector(cfg, device="cpu", variant="inference_graph")
    assert det.model.backbone.depth == 101 and det.variant.name == "inference_graph_eager_fp32"
    image = resize_to(sample_image("rocket"), (256, 192))
    result, expected = det(image), mmdet_inference_detector(det.model, image)
    assert_mmdet_structure(result, 80, image.shape)
    report = compare(Detections.from_mmdet(expected, image.shape), Detections.from_mmdet(result, image.shape))
    assert report.reference > 0 and report.matched_fraction == 1.0 and report.passes(), str(report)


# --- class names --------------------------------------------------------------------------------

def test_class_names_come_from_the_checkpoint_then_the_config():
    from mmdet_opt.classes import ClassNamesError, class_names

    cfg = load_config(None)
    assert class_names(cfg, {"CLASSES": ("a", "b", "c")}, 3) == ("a", "b", "c")
    assert len(class_names(cfg, {}, 80)) == 80 and class_names(cfg, {}, 80)[0] == "person"
    assert class_names(cfg, {}, 3) == ("class_0", "class_1", "class_2")  # never COCO's for 3 classes
    cfg.data.test.classes = ("cat", "dog")
    assert class_names(cfg, None, 2) == ("cat", "dog")
    with pytest.raises(ClassNamesError, match="the config's data.test.classes lists 2 classes, but the model's "
                                              "head has 3"):
        class_names(cfg, None, 3)
    with pytest.raises(ClassNamesError, match="checkpoint's meta CLASSES lists 2 classes"):
        class_names(cfg, {"CLASSES": ("a", "b")}, 3)


def test_a_detector_never_keeps_class_names_that_do_not_fit(small_base_model):
    model = copy.deepcopy(small_base_model)
    model.CLASSES = ("only", "three", "names")  # as if set for another head
    assert Detector.from_model(model, variant="inference").CLASSES[:2] == ("person", "bicycle")


# --- the documented example ---------------------------------------------------------------------

EXAMPLE = Path(__file__).parents[1] / "docs" / "api_example.py"
README_MARK = "<!-- api-example -->"


def readme_example() -> str | None:
    """The README's copy of the example: the python block after the mark, if the README has one."""
    readme = (EXAMPLE.parents[1] / "README.md").read_text()
    if README_MARK not in readme:
        return None
    block = readme.split(README_MARK, 1)[1].split("```python\n", 1)[1]
    return block.split("```", 1)[0]


@pytest.mark.slow
def test_the_documented_example_runs(tmp_path, monkeypatch, capsys):
    from mmdet_opt.training import scenes

    example = EXAMPLE.read_text()
    copied = readme_example()
    assert copied == example, "the README's example (after <!-- api-example -->) is not docs/api_example.py"
    mmcv.imwrite(scenes.heldout_scene(0, size=(1333, 800)).image, str(tmp_path / "photo.jpg"))
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(example, str(EXAMPLE), "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    shapes = {namespace["det"].CLASSES[label] for label in scenes.LABELS}
    assert len(printed) == sum(len(boxes) for boxes in namespace["bbox_result"])
    confident = [line for line in printed if float(line.split(": ")[1].split()[0]) > 0.5]
    assert confident and all(line.split(":")[0] in shapes for line in confident)
    assert isinstance(namespace["results"], list) and len(namespace["results"]) == 2


# --- on a GPU: mmdet's own configs through the API against stock ----------------------------------

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@CUDA
@pytest.mark.slow
@pytest.mark.parametrize("config", ["mask_rcnn_r101_fpn_1x_coco.py", "mask_rcnn_r50_caffe_fpn_1x_coco.py"])
def test_mmdet_configs_match_stock_on_cuda(config):
    """Synthetic weights, judged as benchmarks/test_parity.py judges them: against stock's own
    rounding spread (stock as it runs against stock in strict fp32)."""
    from mmdet_opt.suite.session import strict_fp32

    det = init_detector(mmdet_config_dir() / "mask_rcnn" / config, device="cuda", variant="inference_graph")
    rles = Detector.from_model(det.model, variant="inference_graph", output="rle")
    images = [resize_to(sample_image(name), (1333, 800)) for name in ("astronaut", "coffee", "rocket")]
    for name, image, batched in zip(("astronaut", "coffee", "rocket"), images, det.batch(images)):
        with torch.no_grad():
            stock = Detections.from_mmdet(mmdet_inference_detector(det.model, image), image.shape)
            with strict_fp32():
                exact = Detections.from_mmdet(mmdet_inference_detector(det.model, image), image.shape)
        result = det(image)
        assert_mmdet_structure(result, 80, image.shape)
        assert len(stock) > 0, f"stock found nothing on {name}: parity would be vacuous"
        spread = compare(stock, exact)
        for ours in (result, batched):
            report = compare(stock, Detections.from_mmdet(ours, image.shape))
            failures = report.failures_against_spread(spread)
            assert not failures, f"{config} {name}: {report}; " + "; ".join(failures)
        decoded = [mask_utils.decode(dict(r, counts=r["counts"].encode())) for c in rles(image)[1] for r in c]
        masks = [m for per_class in result[1] for m in per_class]
        assert len(decoded) == len(masks) and all(np.array_equal(d, m) for d, m in zip(decoded, masks))
