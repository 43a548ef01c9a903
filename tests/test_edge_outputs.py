"""Edge outputs: no detections at all, and boxes on, across or degenerate at the image border.

Mask pasting is checked against mmdet's own ``FCNMaskHead.get_seg_masks`` fed logits whose
sigmoid is exactly the probabilities our functions get (the same ``sigmoid`` on the same tensor).
"""
import copy

import mmcv
import numpy as np
import pytest
import torch
from mmdet.models.roi_heads.mask_heads.fcn_mask_head import FCNMaskHead
from pycocotools import mask as mask_utils

from mmdet_opt.detector import build_detector
from mmdet_opt.images import resize_to, sample_image
from mmdet_opt.parity import compare
from mmdet_opt.paste import box_regions, encode_rle, host_masks, paste_masks, paste_masks_at_box, region_rles
from mmdet_opt.pipeline import stage_calls
from mmdet_opt.results import Detections
from mmdet_opt.variants import Variant, get_variant

SCALE = (320, 192)
CPU_VARIANTS = {
    "inference": get_variant("inference"),
    "gpu_pre_fp32": Variant("gpu_pre_fp32", gpu_preprocess=True),
    "raw_fp32": Variant("raw_fp32", gpu_preprocess=True, raw_mask=True),
}
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                   reason="needs CUDA"))]


# --- zero detections ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def no_detections_model():
    """The calibrated detector with a score threshold no score reaches: a model that finds nothing."""
    model = build_detector(test_scale=SCALE)
    model.roi_head.test_cfg.score_thr = 1.01
    return model


@pytest.fixture(scope="module")
def image():
    return resize_to(sample_image("astronaut"), SCALE)


@pytest.fixture(scope="module")
def stock_empty(no_detections_model, image):
    from mmdet.apis import inference_detector

    with torch.no_grad():
        result = inference_detector(copy.deepcopy(no_detections_model), image)
    return Detections.from_mmdet(result, image.shape)


@pytest.mark.slow
@pytest.mark.parametrize("which", list(CPU_VARIANTS))
def test_no_detections_through_every_variant(which, no_detections_model, image, stock_empty):
    assert len(stock_empty) == 0
    pipeline = CPU_VARIANTS[which].build(no_detections_model, SCALE)
    dets = Detections.from_mmdet(pipeline(image), image.shape)
    assert len(dets) == 0
    assert dets.boxes.shape == (0, 4) and dets.full_masks().shape == (0,) + image.shape[:2]
    report = compare(stock_empty, dets)
    assert report.matched_fraction == 1.0 and report.mask_iou_mean == 1.0 and report.passes(), str(report)
    assert not {"mask forward", "mask post-processing"} & stage_calls(pipeline, image).keys()


def test_empty_against_non_empty_is_not_perfect():
    empty = Detections.from_mmdet(([np.zeros((0, 5), np.float32)] * 80, [[] for _ in range(80)]), (192, 320))
    assert len(empty) == 0 and compare(empty, empty).passes()
    one = Detections(np.array([[1, 1, 9, 9]], np.float32), np.array([0.9], np.float32),
                     np.array([0]), np.ones((1, 192, 320), bool), (192, 320))
    assert compare(empty, one).matched_fraction == 0.0
    assert compare(one, empty).matched_fraction == 0.0


@pytest.mark.parametrize("device", DEVICES)
def test_pasting_nothing(device):
    none = torch.zeros(0, 28, 28, device=device)
    boxes = torch.zeros(0, 4, device=device)
    assert paste_masks(none, boxes, 37, 53).shape == (0, 37, 53)
    assert paste_masks_at_box(none, boxes, 37, 53) == []
    assert encode_rle(none, boxes, 37, 53) == []


# --- boxes at the border, and degenerate boxes ---------------------------------------------------

H, W = 37, 53
BORDER_BOXES = {
    "touching-top-left": [0, 0, 10, 10],
    "touching-bottom-right": [40, 20, W, H],
    "crossing-top-left": [-8.3, -5.2, 12.7, 9.9],
    "crossing-bottom-right": [45.5, 30.2, W + 9.1, H + 7.7],
    "covering-the-image": [-20, -20, W + 20, H + 20],
    "sub-pixel": [30, 12, 30.3, 12.2],
}
# Zero width or height: mmdet's _do_paste_mask turns the infinite grid coordinates into 0, so it
# samples the mask's centre line over the whole pasted region. That region is the box +- 1 pixel
# on CPU (skip_empty) and the whole image on GPU, so stock itself gives different pixels per device.
DEGENERATE_BOXES = {
    "zero-width-on-pixel-edge": [10, 10, 10, 20],
    "zero-width-on-pixel-centre": [10.5, 10, 10.5, 20],
    "zero-width-at-right-border": [W, 5, W, 20],
    "zero-height": [5, 7.5, 25, 7.5],
    "point": [20, 20, 20, 20],
}


def mask_inputs(boxes: dict, device: str, num_classes: int = 3, seed: int = 0):
    """(logits (N, C, 28, 28), probabilities of each detection's class (N, 28, 28), boxes, labels)."""
    gen = torch.Generator().manual_seed(seed)
    n = len(boxes)
    logits = (torch.randn(n, num_classes, 28, 28, generator=gen) * 4).to(device)
    labels = torch.randint(0, num_classes, (n,), generator=gen).to(device)
    probs = logits.sigmoid()[torch.arange(n, device=device), labels]  # the op get_seg_masks applies
    return logits, probs, torch.tensor(list(boxes.values()), dtype=torch.float32, device=device), labels


def stock_masks(logits, boxes, labels, h=H, w=W, threshold=0.5) -> np.ndarray:
    """(N, h, w) bool from mmdet's FCNMaskHead.get_seg_masks, back in detection order."""
    head = FCNMaskHead(num_convs=1, in_channels=8, conv_out_channels=8, num_classes=logits.shape[1])
    det_bboxes = torch.cat([boxes, torch.ones_like(boxes[:, :1])], dim=1)
    segms = head.get_seg_masks(logits, det_bboxes, labels, mmcv.ConfigDict(mask_thr_binary=threshold),
                               (h, w, 3), np.ones(4, np.float32), rescale=True)
    per_class = {c: iter(s) for c, s in enumerate(segms)}
    return np.stack([next(per_class[int(label)]) for label in labels])


def at_box_on_canvas(probs, boxes, h=H, w=W) -> np.ndarray:
    canvas = np.zeros((len(probs), h, w), bool)
    for i, (mask, (x0, y0)) in enumerate(paste_masks_at_box(probs, boxes, h, w)):
        canvas[i, y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]] = mask
    return canvas


def decoded(rles) -> np.ndarray:
    return mask_utils.decode(rles).transpose(2, 0, 1).astype(bool)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("boxes", [BORDER_BOXES, DEGENERATE_BOXES], ids=["border", "degenerate"])
def test_full_image_paste_matches_stock(device, boxes):
    logits, probs, b, labels = mask_inputs(boxes, device)
    expected = stock_masks(logits, b, labels)
    assert expected.any(), "the probabilities should put some pixels in"
    assert np.array_equal(paste_masks(probs, b, H, W).cpu().numpy(), expected)
    assert np.array_equal(decoded(encode_rle(probs, b, H, W)), expected)
    # What users get on the host: pasted per box region, the same pixels and the same RLE bytes.
    assert np.array_equal(host_masks(probs, b, H, W), expected)
    assert region_rles(probs, b, H, W) == encode_rle(probs, b, H, W)


@pytest.mark.parametrize("device", DEVICES)
def test_region_rle_of_runs_that_cross_columns_and_end_the_image(device):
    """Certain masks over full-height boxes: runs go on from one column into the next and end
    with the image, which COCO writes without a boundary."""
    probs = torch.ones(4, 28, 28, device=device)
    boxes = torch.tensor([[0, 0, W, H], [2, 0, W / 2, H], [0.3, 0, 5, H], [W - 3.5, 0, W, H]], device=device)
    assert region_rles(probs, boxes, H, W) == encode_rle(probs, boxes, H, W)
    assert np.array_equal(host_masks(probs, boxes, H, W), paste_masks(probs, boxes, H, W).cpu().numpy())


@pytest.mark.parametrize("device", DEVICES)
def test_box_local_paste_matches_stock_at_the_border(device):
    logits, probs, b, labels = mask_inputs(BORDER_BOXES, device)
    assert np.array_equal(at_box_on_canvas(probs, b), stock_masks(logits, b, labels))


def test_box_local_paste_of_degenerate_boxes_stays_inside_the_box():
    """Inside its pixel region it is stock's paste; outside, stock's centre-line artefact is left out."""
    logits, probs, b, labels = mask_inputs(DEGENERATE_BOXES, "cpu")
    expected = stock_masks(logits, b, labels)
    ours = at_box_on_canvas(probs, b)
    for i, (x0, y0, x1, y1) in enumerate(box_regions(b, H, W)):
        assert np.array_equal(ours[i, y0:y1, x0:x1], expected[i, y0:y1, x0:x1])
        outside = ours[i].copy()
        outside[y0:y1, x0:x1] = False
        assert not outside.any()


# --- thresholds other than 0.5 (the config's mask_thr_binary) ------------------------------------

BIG_H, BIG_W = 150, 240
# Boxes much larger than the 28x28 mask, so that well below 0.5 a whole-image paste (stock on a GPU)
# reaches more than a pixel past each box.
LARGE_BOXES = {"wide": [20.3, 30.6, 200.2, 90.1], "tall": [150.5, 5.2, 190.7, 140.4], "square": [40, 40, 140, 140]}


def confident_edge(logits, probs, boxes, labels):
    """The inputs with a confident right column (p = 0.99): its blend with the zero padding passes 0.1
    up to 2.5 pixels past these boxes. ``probs`` is again the sigmoid get_seg_masks takes of each
    detection's logits."""
    logits = logits.clone()
    logits[..., -1] = torch.logit(torch.tensor(0.99))
    return logits, logits.sigmoid()[torch.arange(len(labels), device=labels.device), labels], boxes, labels


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("threshold", [0.1, 0.5, 0.7])
def test_host_paste_at_any_threshold_matches_stock(device, threshold):
    logits, probs, b, labels = confident_edge(*mask_inputs(LARGE_BOXES, device))
    expected = stock_masks(logits, b, labels, BIG_H, BIG_W, threshold)
    assert np.array_equal(host_masks(probs, b, BIG_H, BIG_W, threshold), expected)
    assert region_rles(probs, b, BIG_H, BIG_W, threshold) == encode_rle(probs, b, BIG_H, BIG_W, threshold)
    assert np.array_equal(decoded(encode_rle(probs, b, BIG_H, BIG_W, threshold)), expected)


def test_below_half_a_whole_image_paste_reaches_into_the_halo():
    """What stock pastes over the whole image (its GPU rule) at 0.1 lies past box +-1, and inside the
    regions widened by ``halo``."""
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask

    from mmdet_opt.paste import halo, pixel_regions

    _, probs, boxes, _ = confident_edge(*mask_inputs(LARGE_BOXES, "cpu"))
    whole = _do_paste_mask(probs[:, None], boxes, BIG_H, BIG_W, skip_empty=False)[0] >= 0.1
    assert halo(boxes, (28, 28), 0.5) is None
    for widened, reaches_out in ((None, True), (halo(boxes, (28, 28), 0.1), False)):
        inside = torch.zeros_like(whole)
        for i, (x0, y0, x1, y1) in enumerate(pixel_regions(boxes, boxes.new_tensor([BIG_H, BIG_W]), widened).tolist()):
            inside[i, y0:y1, x0:x1] = True
        assert bool((whole & ~inside).any()) is reaches_out


def test_rles_of_many_masks_at_once_equal_pycocotools():
    """``region_rles`` turns one chunk's run starts into every mask's RLE at once (a chunk holds many
    masks on a GPU, one on a CPU): here a chunk of masks that are empty, full, running from one
    column into the next, ending with the image, or ending where the next mask starts, against
    pycocotools' own encoding."""
    from mmdet_opt.paste import _rles

    h, w = 7, 5
    rng = np.random.default_rng(0)
    masks = [np.zeros((h, w), bool), np.ones((h, w), bool)]
    crossing = np.zeros((h, w), bool)
    crossing[4:, 1], crossing[:3, 2] = True, True  # a run down column 1 that goes on at the top of 2
    ending = np.zeros((h, w), bool)
    ending[2:, 4] = True  # a run that ends with the image
    top, below = np.zeros((h, w), bool), np.zeros((h, w), bool)
    top[0, 0], below[1:, 0] = True, True  # one mask's last boundary is the next one's first: not a pair
    masks += [crossing, ending, top, below] + [rng.random((h, w)) < p for p in (0.1, 0.5, 0.9) for _ in range(3)]
    ks, starts = [], []
    for k, m in enumerate(masks):  # as region_rles finds them: each column framed by a zero row above and below
        columns = np.pad(m.T, ((0, 0), (1, 1)))
        col, row = np.nonzero(columns[:, 1:] != columns[:, :-1])
        ks.append(np.full(len(col), k))
        starts.append(col * h + row)
    rles = _rles(np.concatenate(ks), np.concatenate(starts), np.tile([h, w], (len(masks), 1)))
    assert rles == [mask_utils.encode(np.asfortranarray(m[:, :, None], dtype=np.uint8))[0] for m in masks]
    assert _rles(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2), np.int64)) == []


# --- several images' RLEs at once (Detector.batch, infer --batch) -------------------------------

def raw_result(probs, boxes, labels, num_classes: int = 3):
    """An mmdet-shaped result holding each detection's (28, 28) probabilities, class by class."""
    probs, boxes, labels = probs.cpu().numpy(), boxes.cpu().numpy(), labels.cpu().numpy()
    bbox = [np.concatenate([boxes[labels == c], np.ones(((labels == c).sum(), 1), np.float32)], 1)
            for c in range(num_classes)]
    return bbox, [list(probs[labels == c]) for c in range(num_classes)]


def by_class(masks: np.ndarray, labels) -> np.ndarray:
    return masks[np.argsort(labels.cpu().numpy(), kind="stable")]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("threshold", [0.1, 0.5])
@pytest.mark.parametrize("chunked", [False, True], ids=["one-mask-a-chunk", "many-masks-a-chunk"])
def test_rles_of_a_batch_are_each_images_own(device, threshold, chunked, monkeypatch):
    """Images of other sizes converted together: borders, degenerate boxes, no detections and a
    stock result of full-image masks in one batch. Each image's RLEs are the ones it gets alone,
    and they encode stock's pixels for its own size."""
    from mmdet_opt import paste

    if chunked:  # a CPU converts one mask at a time; put many masks of many images in one chunk
        monkeypatch.setattr(paste, "_one_mask_a_chunk", lambda _: False)
    elif device == "cuda":
        pytest.skip("a GPU always takes many masks a chunk")
    cases = [(BORDER_BOXES, H, W), (LARGE_BOXES, BIG_H, BIG_W), (DEGENERATE_BOXES, H, W),
             (LARGE_BOXES, BIG_H + 7, BIG_W - 10), (DEGENERATE_BOXES, H + 5, W + 9)]
    results, shapes, expected = [], [], []
    for seed, (boxes, h, w) in enumerate(cases):
        logits, probs, b, labels = confident_edge(*mask_inputs(boxes, device, seed=seed))
        results.append(raw_result(probs, b, labels))
        shapes.append((h, w, 3))
        expected.append(by_class(stock_masks(logits, b, labels, h, w, threshold), labels))
    results.append(([np.zeros((0, 5), np.float32)] * 3, [[], [], []]))  # no detections
    shapes.append((H, W, 3))
    expected.append(np.zeros((0, H, W), bool))
    full = expected[0][:2]  # stock's own form: full-image masks
    results.append(([np.ones((2, 5), np.float32), np.zeros((0, 5), np.float32)], [list(full), []]))
    shapes.append((H, W, 3))
    expected.append(full)

    together = paste.coco_rles_of_batch(results, shapes, device, threshold)
    assert len(together) == len(results)
    for result, shape, rles, want in zip(results, shapes, together, expected):
        assert rles == paste.coco_rles(result, shape, device, threshold)
        assert rles == (mask_utils.encode(np.asfortranarray(want.transpose(1, 2, 0), dtype=np.uint8)) if len(want)
                        else [])
