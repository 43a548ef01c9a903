"""parity.py on hand-made detections: the matching rule, the metrics and their edge cases."""
import mmcv
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdet_opt.parity import DEFAULT_MIN_MASK_IOU, DEFAULT_MIN_MATCHED, ParityReport, compare, match
from mmdet_opt.results import Detections

H, W = 64, 96


def box_masks(boxes, shape=(H, W)) -> np.ndarray:
    """Full-image bool masks that fill each (integer) box."""
    masks = np.zeros((len(boxes), *shape), dtype=bool)
    for m, (x0, y0, x1, y1) in zip(masks, np.asarray(boxes, dtype=int)):
        m[y0:y1, x0:x1] = True
    return masks


def dets(boxes, labels=None, scores=None, masks=None, shape=(H, W), raw=False) -> Detections:
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    n = len(boxes)
    labels = np.zeros(n, np.int64) if labels is None else np.asarray(labels, np.int64)
    scores = np.linspace(0.9, 0.5, n, dtype=np.float32) if scores is None else np.asarray(scores, np.float32)
    masks = box_masks(boxes, shape) if masks is None else masks
    return Detections(boxes, scores, labels, masks, shape, raw)


def test_identical_detections_are_perfect():
    d = dets([[2, 3, 40, 50], [30, 10, 90, 60], [5, 5, 20, 20]], labels=[0, 3, 0])
    report = compare(d, d)
    assert report.matched == 3 and report.matched_fraction == 1.0
    assert report.mask_iou_mean == 1.0 and report.mask_iou_min == 1.0
    assert report.box_iou_mean == pytest.approx(1.0) and report.score_diff_max == 0.0
    assert report.passes()


def test_defaults_are_the_documented_thresholds():
    # Lowering them would let real regressions through: change the options, not the defaults.
    assert (DEFAULT_MIN_MATCHED, DEFAULT_MIN_MASK_IOU) == (0.95, 0.97)


@pytest.mark.parametrize("matched, iou, ok", [
    (0.95, 0.97, True), (0.9499, 1.0, False), (1.0, 0.9699, False), (1.0, 1.0, True)])
def test_passes_thresholds_are_inclusive(matched, iou, ok):
    report = ParityReport(100, 100, round(matched * 100), matched, iou, iou, iou, iou, 1.0, 0.0)
    assert report.passes() is ok


def test_brief_is_matched_fraction_and_mean_mask_iou():
    report = ParityReport(100, 99, 99, 0.99, 0.96055, 0.99, 0.5, 0.06, 0.9, 0.05)
    assert report.brief() == "0.99/0.9606"


def test_greedy_matching_goes_by_descending_stock_score():
    # One candidate overlaps both stock boxes enough, and overlaps `low` better. The higher-scored
    # stock detection `high` (listed second) claims it first; `low` is left unmatched.
    low, high = [0, 0, 20, 20], [0, 4, 20, 24]
    reference = dets([low, high], scores=[0.6, 0.9])
    candidate = dets([[0, 1, 20, 21]])
    assert match(reference, candidate) == [(1, 0)]
    # Swap the scores and `low` wins it instead.
    reference.scores = np.array([0.9, 0.6], np.float32)
    assert match(reference, candidate) == [(0, 0)]


def test_each_stock_detection_takes_its_best_candidate():
    reference = dets([[0, 0, 20, 20]])
    candidate = dets([[0, 3, 20, 23], [0, 1, 20, 21], [0, 0, 20, 19]])
    assert match(reference, candidate) == [(0, 2)]


def test_label_mismatch_is_not_matched():
    box = [[10, 10, 40, 40]]
    report = compare(dets(box, labels=[1]), dets(box, labels=[2]))
    assert report.matched == 0 and report.matched_fraction == 0.0 and not report.passes()


@pytest.mark.parametrize("y1, matched", [(5.0, 1), (4.9, 0)])
def test_box_iou_below_half_is_not_matched(y1, matched):
    # [0,0,10,y1] inside [0,0,10,10]: IoU = y1 / 10; 0.5 is still a match.
    assert len(match(dets([[0, 0, 10, 10]]), dets([[0, 0, 10, y1]]))) == matched


def test_a_box_without_area_matches_itself():
    # An image 3 px wide clips a box to a line (x0 == x1): its IoU with itself is 0/0 in torchvision.
    line = [[3.0, 645.4, 3.0, 647.0], [1.2, 10.0, 3.0, 40.0]]
    report = compare(dets(line, shape=(1000, 3)), dets(line, shape=(1000, 3)))
    assert report.matched == 2 and report.box_iou_mean == 1.0
    assert not match(dets(line[:1], shape=(1000, 3)), dets([[3.0, 600.0, 3.0, 602.0]], shape=(1000, 3)))


def test_a_raw_mask_is_pasted_as_stock_pastes_it_past_the_box_edge():
    # A box without height on the image's last row: stock's paste still colours that row.
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask

    box, probs = np.array([[0.335, 1000.0, 2.695, 1000.0]], np.float32), np.full((1, 28, 28), 0.5, np.float32)
    full = np.zeros((1, 1000, 3), bool)
    pasted, (rows, cols) = _do_paste_mask(torch.from_numpy(probs)[:, None], torch.from_numpy(box), 1000, 3)
    full[0, rows, cols] = (pasted[0] >= 0.5).numpy()
    assert full.any()
    report = compare(dets(box, masks=full, shape=(1000, 3)), dets(box, masks=probs, shape=(1000, 3), raw=True))
    assert report.matched == 1 and report.mask_iou_mean == 1.0


def test_mask_iou_is_measured_in_pixels():
    reference = dets([[0, 0, 40, 40]])
    half = box_masks([[0, 0, 40, 20]])  # same box, mask covers half of stock's
    report = compare(reference, dets([[0, 0, 40, 40]], masks=half))
    assert report.matched == 1 and report.mask_iou_mean == pytest.approx(0.5)
    assert not report.passes()


def test_shapes_must_agree():
    with pytest.raises(ValueError, match="image shapes differ"):
        compare(dets([[0, 0, 9, 9]]), dets([[0, 0, 9, 9]], shape=(H, W + 1)))


def test_two_empty_results_are_perfect():
    report = compare(dets([]), dets([]))
    assert (report.matched_fraction, report.mask_iou_mean) == (1.0, 1.0)
    assert report.passes()


@pytest.mark.parametrize("ref_n, cand_n", [(0, 2), (2, 0)])
def test_empty_against_non_empty_is_zero(ref_n, cand_n):
    boxes = [[0, 0, 20, 20], [30, 30, 60, 60]]
    report = compare(dets(boxes[:ref_n]), dets(boxes[:cand_n]))
    assert (report.matched_fraction, report.mask_iou_mean) == (0.0, 0.0)
    assert not report.passes()


def stock_and_raw(seed=0, n=6, num_classes=4):
    """Stock full masks from mmdet's own FCNMaskHead.get_seg_masks, and the same logits as raw masks."""
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import FCNMaskHead

    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([W - 30, H - 30])
    wh = 4 + torch.rand(n, 2, generator=g) * 25
    boxes = torch.cat([xy, xy + wh], 1)  # fractional corners: the paste rule matters
    labels = torch.randint(0, num_classes, (n,), generator=g)
    logits = torch.randn(n, num_classes, 28, 28, generator=g) * 4
    head = FCNMaskHead(num_convs=0, num_classes=num_classes)
    segms = head.get_seg_masks(logits, boxes, labels, mmcv.Config(dict(mask_thr_binary=0.5)),
                               (H, W), np.ones(4, np.float32), rescale=True)
    full = np.stack([segms[int(c)].pop(0) for c in labels])  # back to detection order
    raw = logits[torch.arange(n), labels].sigmoid().numpy()
    args = boxes.numpy(), labels.numpy(), np.linspace(0.9, 0.4, n)
    return dets(*args, masks=full), dets(*args, masks=raw, raw=True)


def test_raw_masks_are_pasted_with_mmdets_rule():
    stock, raw = stock_and_raw()
    assert stock.masks.any(axis=(1, 2)).all(), "degenerate test: an empty stock mask"
    report = compare(stock, raw)
    assert report.matched == len(stock) and report.mask_iou_min == 1.0
    assert np.array_equal(raw.full_masks(), stock.masks)
    # Raw against raw and stock against raw agree the other way round, too.
    assert compare(raw, stock).mask_iou_min == 1.0 and compare(raw, raw).mask_iou_min == 1.0


def test_raw_masks_are_not_trivially_equal():
    stock, raw = stock_and_raw()
    raw.masks = raw.masks.transpose(0, 2, 1).copy()
    assert compare(stock, raw).mask_iou_mean < 0.9


def test_from_mmdet_tells_raw_from_full_masks():
    stock, raw = stock_and_raw(n=3, num_classes=2)

    def as_mmdet(d):
        bboxes = [np.zeros((0, 5), np.float32) for _ in range(2)]
        segms = [[], []]
        for box, score, label, mask in zip(d.boxes, d.scores, d.labels, d.masks):
            bboxes[label] = np.vstack([bboxes[label], np.append(box, score)[None]])
            segms[label].append(mask)
        return bboxes, segms

    for d in (stock, raw):
        back = Detections.from_mmdet(as_mmdet(d), (H, W, 3))
        assert back.raw_masks is d.raw_masks and back.image_shape == (H, W)
        assert compare(d, back).passes()


@st.composite
def random_detections(draw):
    n = draw(st.integers(0, 8))
    corners = draw(st.lists(st.tuples(st.integers(0, W - 2), st.integers(0, H - 2),
                                      st.integers(1, W), st.integers(1, H)), min_size=n, max_size=n))
    boxes = [[min(a, c - 1), min(b, d - 1), c, d] for a, b, c, d in corners]
    labels = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    scores = draw(st.lists(st.floats(0.05, 1.0), min_size=n, max_size=n))
    return dets(boxes, labels, scores)


@settings(max_examples=50, deadline=None)
@given(random_detections())
def test_any_detections_match_themselves(d):
    report = compare(d, d)
    assert report.matched == len(d) and report.passes()


def _report(matched_fraction, mask_iou_mean):
    return ParityReport(100, 100, int(matched_fraction * 100), matched_fraction, mask_iou_mean,
                        mask_iou_mean, mask_iou_mean, mask_iou_mean, 1.0, 0.0)


def test_the_rule_takes_the_worse_accepted_deviation_per_metric():
    """fp16 variants: at most the margin under the worse of stock's TF32 spread and stock's own fp16, by metric."""
    spreads = {"tf32": _report(0.99, 0.95), "fp16": _report(0.96, 0.98)}
    assert _report(0.945, 0.935).failures_against_spreads(spreads, margin=0.02) == []
    failures = _report(0.935, 0.925).failures_against_spreads(spreads, margin=0.02)
    assert len(failures) == 2
    assert "under fp16 (0.9600)" in failures[0] and "under tf32 (0.9500)" in failures[1]
    # One deviation alone (fp32 variants): the TF32 spread's 0.99 matched.
    assert len(_report(0.96, 0.97).failures_against_spreads({"tf32": spreads["tf32"]}, margin=0.02)) == 1


def test_the_floors_hold_whatever_the_deviations():
    spreads = {"tf32": _report(0.85, 0.85)}
    failures = _report(0.89, 0.95).failures_against_spreads(spreads, margin=0.02)
    assert failures == ["matched_fraction 0.8900 is under the floor 0.9"]
