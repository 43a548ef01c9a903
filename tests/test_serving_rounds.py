"""The serving benchmark's check that each client got its own photo's result (mmdet_opt.suite.serving)."""
import copy

import numpy as np

from mmdet_opt.results import mmdet_results_equal
from mmdet_opt.suite.serving import ServingRounds, own_result

SHAPE = (48, 64, 3)


def result(seed: int, classes: int = 3):
    """mmdet's (bbox_results, segm_results) with full-image bool masks, two detections a class."""
    rng = np.random.default_rng(seed)
    corners = [rng.uniform(0, 20, (2, 2)) for _ in range(classes)]
    boxes = [np.hstack([xy, xy + rng.uniform(10, 20, (2, 2)), rng.uniform(0.5, 1, (2, 1))]).astype(np.float32)
             for xy in corners]
    masks = [[rng.random(SHAPE[:2]) > 0.5 for _ in range(2)] for _ in range(classes)]
    return boxes, masks


def test_equal_results_are_equal_and_any_change_is_seen():
    a = result(0)
    assert mmdet_results_equal(a, copy.deepcopy(a))
    one_pixel = copy.deepcopy(a)
    one_pixel[1][2][1][47, 63] ^= True
    score = copy.deepcopy(a)
    score[0][1][0, 4] = np.nextafter(score[0][1][0, 4], 2)
    fewer = copy.deepcopy(a)
    fewer[1][0].pop()
    as_uint8 = copy.deepcopy(a)
    as_uint8[1][0][0] = as_uint8[1][0][0].astype(np.uint8)
    other_class = (a[0][1:] + a[0][:1], a[1][1:] + a[1][:1])
    for changed in (one_pixel, score, fewer, as_uint8, other_class, result(1)):
        assert not mmdet_results_equal(a, changed)
        assert not mmdet_results_equal(changed, a)


def test_a_non_contiguous_mask_is_compared_by_value():
    a = result(0)
    b = copy.deepcopy(a)
    b[1][0][0] = np.asfortranarray(b[1][0][0])
    assert mmdet_results_equal(a, b)


def test_another_photos_result_is_flagged_batched_or_not():
    photos = [np.zeros(SHAPE, np.uint8)] * 2
    references = [result(0), result(1)]
    rounds = ServingRounds()
    rounds.unchecked = [(0, copy.deepcopy(references[0])), (1, references[0]), (1, copy.deepcopy(references[1]))]
    assert rounds.check(photos, references, batched=False) == [1]
    rounds.unchecked = [(0, references[1]), (1, references[1])]
    assert rounds.check(photos, references, batched=True) == [0]
    assert rounds.checked == 5 and rounds.unchecked == []


def test_a_batched_result_within_rounding_is_its_own():
    reference = result(0)
    rounded = copy.deepcopy(reference)
    rounded[0][0][:, :4] += 0.01  # boxes moved by a rounding's worth: the same detections
    assert not own_result(rounded, reference, SHAPE, batched=False)
    assert own_result(rounded, reference, SHAPE, batched=True)
