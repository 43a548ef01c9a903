"""The image front door (mmdet_opt.inputs): what is accepted, what is rejected, and that every
variant, stock included, takes the same decision before any model work.

Accepted inputs are normalised to what mmdet's own loader (mmcv.imread) gives for the same pixels
in a file; rejected ones raise ImageInputError naming the problem, never an mmcv/cv2 traceback.
"""
import copy

import cv2
import mmcv
import numpy as np
import pytest
import torch

from mmdet_opt.config import load_config
from mmdet_opt.detector import build_detector
from mmdet_opt.inputs import ImageInputError, check_test_size, load_image
from mmdet_opt.parity import compare
from mmdet_opt.pipeline import StagedPipeline
from mmdet_opt.results import Detections
from mmdet_opt.stock import stock_test_pipeline
from mmdet_opt.variants import VARIANTS, Variant, VariantUnavailable, get_variant
from stock_normalize import stock_per_channel

SCALE = (320, 192)  # reduced test scale: the network runs at most at 320x192 here
RNG = np.random.default_rng(0)


def rand_u8(*shape):
    return RNG.integers(0, 256, size=shape, dtype=np.uint8)


def written(tmp_path, name, array) -> str:
    path = str(tmp_path / name)
    assert cv2.imwrite(path, array)
    return path


# --- files -----------------------------------------------------------------------------------

def test_reads_like_mmcv_imread(tmp_path):
    path = written(tmp_path, "a.jpg", rand_u8(40, 60, 3))
    assert np.array_equal(load_image(path), mmcv.imread(path))


@pytest.mark.parametrize("name, array", [
    ("gray.png", rand_u8(21, 35)),
    ("rgba.png", rand_u8(21, 35, 4)),
    ("color16.png", RNG.integers(0, 65536, size=(21, 35, 3), dtype=np.uint16)),
    ("gray16.png", RNG.integers(0, 65536, size=(21, 35), dtype=np.uint16)),
    ("rgba16.png", RNG.integers(0, 65536, size=(21, 35, 4), dtype=np.uint16)),
])
def test_file_and_array_both_give_mmcv_imread(tmp_path, name, array):
    """The file as mmcv reads it, and the same pixels handed over as an array, give one image."""
    path = written(tmp_path, name, array)
    expected = mmcv.imread(path)
    assert expected.shape == (21, 35, 3) and expected.dtype == np.uint8
    assert np.array_equal(load_image(path), expected)
    assert np.array_equal(load_image(array), expected)


def test_gray_hxwx1_is_replicated(tmp_path):
    gray = rand_u8(9, 13)
    out = load_image(gray[:, :, None])
    assert out.shape == (9, 13, 3) and all(np.array_equal(out[..., c], gray) for c in range(3))


def encoded(ext: str, array) -> bytes:
    return cv2.imencode(ext, array)[1].tobytes()


BAD_FILES = {  # kind: (file name, its bytes or None for no file, words the error must contain)
    "missing": ("missing.jpg", None, "no such file"),
    "empty": ("empty.png", b"", "empty file"),
    "text-as-jpg": ("text.jpg", b"not an image", "cannot decode"),
    "truncated-jpg": ("cut.jpg", encoded(".jpg", rand_u8(64, 64, 3))[:1000], "truncated JPEG"),
    "truncated-png": ("cut.png", encoded(".png", rand_u8(64, 64, 3))[:1000], "cannot decode"),
    "float-tiff": ("f.tiff", encoded(".tiff", np.ones((8, 8, 3), np.float32)), "cannot decode"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_files_are_rejected_by_name(tmp_path, kind):
    name, data, words = BAD_FILES[kind]
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(ImageInputError, match=words) as exc:
        load_image(str(path))
    assert str(path) in str(exc.value)
    assert exc.value.__cause__ is None  # a message, not a chained cv2 traceback


def test_directory_is_rejected(tmp_path):
    with pytest.raises(ImageInputError, match="is a directory"):
        load_image(tmp_path)


def test_truncated_jpeg_is_caught_before_decoding(tmp_path):
    """Some OpenCV builds decode a truncated JPEG with a grey fill; the marker check does not rely on that."""
    data = cv2.imencode(".jpg", rand_u8(64, 64, 3))[1].tobytes()
    (tmp_path / "no_eoi.jpg").write_bytes(data[:-2])  # all scans there, only the end marker missing
    with pytest.raises(ImageInputError, match="truncated JPEG"):
        load_image(tmp_path / "no_eoi.jpg")


# --- arrays ----------------------------------------------------------------------------------

def test_an_image_spec_is_a_sample_name_or_a_file_read_like_mmdet(tmp_path):
    from mmdet_opt.images import image_by_spec

    gray = np.random.default_rng(3).integers(0, 256, (70, 50), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    assert np.array_equal(image_by_spec(str(tmp_path / "gray.png")), mmcv.imread(str(tmp_path / "gray.png")))
    assert image_by_spec("scene1", (64, 48)).shape == (48, 64, 3)
    with pytest.raises(ImageInputError, match="no such file"):
        image_by_spec(str(tmp_path / "astronaut.jpg"))


def test_bgr_uint8_contiguous_is_not_copied():
    image = rand_u8(10, 20, 3)
    assert load_image(image) is image


@pytest.mark.parametrize("view", [
    lambda a: a.transpose(1, 0, 2),
    lambda a: a[::2, ::3],
    lambda a: a[:, ::-1],
    lambda a: a[..., ::-1],
    lambda a: np.asfortranarray(a),
], ids=["transposed", "strided", "flipped", "channel-reversed", "fortran"])
def test_views_become_c_contiguous_with_the_same_pixels(view):
    v = view(rand_u8(30, 40, 3))
    out = load_image(v)
    assert out.flags.c_contiguous and out.dtype == np.uint8 and np.array_equal(out, v)


@pytest.mark.parametrize("array, words", [
    (np.zeros((8, 8, 3), np.float32), "float32"),
    (np.zeros((8, 8, 3), np.float64), "float64"),
    (np.zeros((8, 8, 3), bool), "bool"),
    (np.zeros((8, 8, 3), np.int64), "int64"),
    (np.zeros((8, 8, 3), np.int8), "int8"),
    (np.zeros((0, 8, 3), np.uint8), "empty"),
    (np.zeros((8, 0), np.uint8), "empty"),
    (np.zeros((8,), np.uint8), "shape"),
    (np.zeros((1, 8, 8, 3), np.uint8), "shape"),
    (np.zeros((8, 8, 2), np.uint8), "channels"),
    (np.zeros((8, 8, 5), np.uint8), "channels"),
], ids=["float32", "float64", "bool", "int64", "int8", "0xW", "Hx0", "1-D", "4-D", "2-channels",
        "5-channels"])
def test_bad_arrays_are_rejected_by_name(array, words):
    with pytest.raises(ImageInputError, match=words):
        load_image(array)


@pytest.mark.parametrize("thing", [[[0, 0, 0]], torch.zeros(8, 8, 3, dtype=torch.uint8), None, b"\xff\xd8"],
                         ids=["list", "tensor", "none", "bytes"])
def test_non_images_are_rejected(thing):
    with pytest.raises(ImageInputError, match="expected an image path or a numpy array"):
        load_image(thing)


# --- sizes: the keep-ratio resize must leave at least one pixel ---------------------------------

THIN = [(1, 640), (1, 641), (2, 1280), (2, 1281), (640, 1), (641, 1), (1, 1), (3, 1000)]


@pytest.mark.parametrize("h, w", THIN, ids=[f"{h}x{w}" for h, w in THIN])
def test_size_check_rejects_exactly_what_stock_resize_crashes_on(h, w):
    """At test scale 320x192 a 1-pixel-high image may be at most 640 wide (320 * 2, then rounding)."""
    cfg = load_config(test_scale=SCALE)
    try:
        stock_test_pipeline(cfg)(dict(img=np.zeros((h, w, 3), np.uint8)))
        stock_ok = True
    except Exception:  # cv2.resize asserts on a 0-pixel side
        stock_ok = False
    try:
        check_test_size(h, w, cfg)
        ours_ok = True
    except ImageInputError as exc:
        assert "too thin" in str(exc)
        ours_ok = False
    assert ours_ok == stock_ok, f"{h}x{w}: stock {'accepts' if stock_ok else 'crashes'}"


def test_size_check_at_the_default_scale():
    cfg = load_config()  # 1333x800
    check_test_size(1, 2000, cfg)
    check_test_size(1, 1, cfg)
    with pytest.raises(ImageInputError, match="3001x1"):
        check_test_size(1, 3001, cfg)


# --- every variant, one front door ---------------------------------------------------------------

@pytest.fixture(scope="module")
def model():
    base = build_detector(test_scale=SCALE)
    base.roi_head.test_cfg.max_per_img = 10  # fewer masks: cheaper on CPU, same code paths
    return base


@pytest.fixture(scope="module")
def pipelines(model):
    return {name: v.build(model, SCALE) for name, v in (
        ("inference", get_variant("inference")),
        ("gpu_pre_fp32", Variant("gpu_pre_fp32", gpu_preprocess=True)),
        ("raw_fp32", Variant("raw_fp32", gpu_preprocess=True, raw_mask=True)),
    )}


@pytest.fixture(scope="module")
def reference_model(model):
    """Stock mmdet on the same weights, fed file paths (its own LoadImageFromFile)."""
    return copy.deepcopy(model)


BAD = {
    "float": np.zeros((20, 30, 3), np.float32),
    "bool": np.zeros((20, 30, 3), bool),
    "int64": np.zeros((20, 30, 3), np.int64),
    "empty": np.zeros((0, 30, 3), np.uint8),
    "2-channels": np.zeros((20, 30, 2), np.uint8),
    "too-thin": np.zeros((1, 700, 3), np.uint8),
    "missing-file": "/nonexistent/image.jpg",
}


@pytest.fixture(scope="module")
def all_pipelines(pipelines, model):
    """The CPU-capable ones, plus every registered variant that builds on CPU (fp16 needs CUDA)."""
    out = dict(pipelines)
    for variant in VARIANTS.values():
        try:
            variant = variant.for_device("cpu")
        except VariantUnavailable:
            continue
        if variant.name not in out:
            out[variant.name] = variant.build(model, SCALE)
    return out


def model_work(*_, **__):
    raise AssertionError("model or preprocessing work ran on a rejected image")


def rejects(call, image) -> bool:
    try:
        call(image)
    except ImageInputError:
        return True
    return False


@pytest.mark.slow  # builds the detector
@pytest.mark.parametrize("bad", list(BAD))
def test_every_variant_rejects_before_model_work(all_pipelines, bad):
    for name, pipeline in all_pipelines.items():
        guarded = copy.copy(pipeline)
        for attr in ("_preprocess", "backbone", "rpn_head", "roi_head", "plan"):
            if hasattr(guarded, attr):
                setattr(guarded, attr, model_work)
        assert rejects(guarded, BAD[bad]), name
        if type(pipeline) is StagedPipeline:  # its stage entry point too (timed as pre-processing)
            assert rejects(guarded.preprocess, BAD[bad]), name


ODD = {
    "not-multiple-of-32": lambda photo: cv2.resize(photo, (333, 201)),
    "1x1": lambda photo: np.ascontiguousarray(photo[250:251, 250:251]),
    "thin-2x700": lambda photo: cv2.resize(photo, (700, 2)),
    "tall-1000x3": lambda photo: cv2.resize(photo, (3, 1000)),
    "gray": lambda photo: cv2.cvtColor(cv2.resize(photo, (300, 200)), cv2.COLOR_BGR2GRAY),
}


def metas_key(meta):
    return (meta["ori_shape"], meta["img_shape"], meta["pad_shape"], tuple(meta["scale_factor"]),
            meta["batch_input_shape"], meta["flip"])


@pytest.mark.slow
@pytest.mark.parametrize("odd", list(ODD))
def test_odd_images_agree_with_stock(odd, pipelines, reference_model, tmp_path):
    """Stock mmdet reads the image from a file; every variant gets the array in its odd form.

    - the stock variant gives stock's detections exactly;
    - the GPU-preprocessing variants see the same geometry (img_metas) and the same input tensor,
      bit for bit (the resize is cv2's fixed-point one), so the fp32 one gives stock's detections
      exactly;
    - the raw-mask head, fed stock's preprocessed input, gives stock's masks.
    """
    from mmdet.apis import inference_detector

    from mmdet_opt.images import sample_image

    image = ODD[odd](sample_image("astronaut"))
    path = written(tmp_path, "odd.png", image)
    with torch.no_grad():
        stock = Detections.from_mmdet(inference_detector(reference_model, path), image.shape)
    assert len(stock) > 0

    ours = Detections.from_mmdet(pipelines["inference"](image), image.shape)
    assert np.array_equal(ours.boxes, stock.boxes) and np.array_equal(ours.masks, stock.masks)

    stock_inputs = pipelines["inference"].preprocess(image)
    raw = pipelines["raw_fp32"]
    feats = raw.backbone(stock_inputs)
    result = raw.roi_head(feats, raw.rpn_head(feats, stock_inputs), stock_inputs)
    raw_dets = Detections.from_mmdet(result, image.shape)
    assert raw_dets.raw_masks
    assert compare(stock, raw_dets).passes(min_matched=1.0, min_mask_iou=0.99), str(compare(stock, raw_dets))

    # Where stock's OpenCV does not normalise this width per channel, the GPU path is held to stock
    # made per channel (stock_normalize), its detections included.
    with stock_per_channel(stock_inputs.img_metas[0]["img_shape"][1]), torch.no_grad():
        stock_inputs = pipelines["inference"].preprocess(image)
        stock = Detections.from_mmdet(inference_detector(reference_model, path), image.shape)
    for name in ("gpu_pre_fp32", "raw_fp32"):
        inputs = pipelines[name].preprocess(image)
        assert metas_key(inputs.img_metas[0]) == metas_key(stock_inputs.img_metas[0]), name
        assert torch.equal(inputs.img, stock_inputs.img), name

    gpu = Detections.from_mmdet(pipelines["gpu_pre_fp32"](image), image.shape)
    assert np.array_equal(gpu.boxes, stock.boxes) and np.array_equal(gpu.masks, stock.masks)
