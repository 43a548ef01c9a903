"""The dynamic batcher (mmdet_opt.serving): batches form, each caller gets its own result or error,
close() serves what is queued and stops the worker."""
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from mmdet_opt.images import resize_to, sample_image
from mmdet_opt.parity import compare
from mmdet_opt.results import Detections
from mmdet_opt.serving import DynamicBatcher
from mmdet_opt.variants import get_variant

SMALL_SCALE = (320, 192)  # small_base_model's test scale (tests/conftest.py)
LONG_WAIT_MS = 60_000  # a batch then closes when it is full (or at close()), never on the clock


class Echo:
    """A pipeline whose result names the photo and how it ran; photo "bad" raises."""

    def __init__(self):
        self.batches = []

    def __call__(self, image):
        if image == "bad":
            raise ValueError("bad photo")
        return ("alone", image)

    def detect_batch(self, images):
        self.batches.append(list(images))
        return [self(image) and ("batch", image) for image in images]


class EchoAlone:
    """The same, with no detect_batch."""

    def __call__(self, image):
        return Echo()(image)


def call_from_threads(batcher, photos) -> list:
    with ThreadPoolExecutor(len(photos)) as pool:
        return list(pool.map(batcher, photos))


def test_concurrent_callers_form_one_batch_and_each_gets_its_own_result():
    echo = Echo()
    with DynamicBatcher(echo, max_batch=8, max_wait_ms=LONG_WAIT_MS) as batcher:
        results = call_from_threads(batcher, list(range(8)))
    assert results == [("batch", i) for i in range(8)]
    assert len(echo.batches) == 1 and sorted(echo.batches[0]) == list(range(8))
    assert batcher.batch_sizes == [8]


def test_batches_hold_at_most_max_batch_and_close_serves_the_rest():
    echo = Echo()
    batcher = DynamicBatcher(echo, max_batch=4, max_wait_ms=LONG_WAIT_MS)
    futures = [batcher.submit(i) for i in range(10)]
    batcher.close()  # the last two would wait for two more: the stop mark ends their wait
    assert [f.result(timeout=0) for f in futures] == [("batch", i) for i in range(10)]
    assert batcher.batch_sizes == [4, 4, 2] and echo.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_an_error_goes_to_the_caller_whose_photo_failed():
    echo = Echo()
    with DynamicBatcher(echo, max_batch=3, max_wait_ms=LONG_WAIT_MS) as batcher:
        futures = [batcher.submit(p) for p in (1, "bad", 2)]
        alone = batcher.submit("bad")  # a batch of one: close() ends its wait
    with pytest.raises(ValueError, match="bad photo"):
        futures[1].result()
    assert futures[0].result() == ("alone", 1) and futures[2].result() == ("alone", 2)  # redone one by one
    assert isinstance(alone.exception(), ValueError) and batcher.batch_sizes == [3, 1]


def test_a_pipeline_without_detect_batch_runs_photo_by_photo():
    with DynamicBatcher(EchoAlone(), max_batch=4, max_wait_ms=LONG_WAIT_MS) as batcher:
        results = call_from_threads(batcher, [0, 1, 2, 3])
    assert results == [("alone", i) for i in range(4)] and batcher.batch_sizes == [4]


def test_close_stops_the_worker_and_refuses_new_requests():
    batcher = DynamicBatcher(Echo(), max_batch=2, max_wait_ms=0)
    assert batcher(5) == ("alone", 5)
    batcher.close()
    batcher.close()  # twice is fine
    assert not any(t.name == "DynamicBatcher" and t.is_alive() for t in threading.enumerate())
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(6)


@pytest.mark.parametrize("max_batch, max_wait_ms", [(0, 1), (1, -1)])
def test_bad_settings_are_refused(max_batch, max_wait_ms):
    with pytest.raises(ValueError, match="max_batch" if max_batch < 1 else "max_wait_ms"):
        DynamicBatcher(Echo(), max_batch=max_batch, max_wait_ms=max_wait_ms)


@pytest.mark.slow
def test_the_graph_pipeline_through_the_batcher_gives_each_photo_its_own_result(small_base_model):
    """Four callers at once, one batch of four (two network shapes): each result is its photo's alone
    result, within the batch's own rounding (tests/test_batch.py)."""
    pipeline = get_variant("inference_graph").for_device("cpu").build(small_base_model, SMALL_SCALE)
    photos = [resize_to(sample_image(name), size) for name, size in
              [("astronaut", (640, 480)), ("coffee", (400, 300)), ("rocket", (640, 480)), ("chelsea", (300, 400))]]
    with torch.no_grad():
        alone = [Detections.from_mmdet(pipeline(p), p.shape) for p in photos]
    with DynamicBatcher(pipeline, max_batch=4, max_wait_ms=LONG_WAIT_MS) as batcher:
        results = call_from_threads(batcher, photos)
    assert batcher.batch_sizes == [4]
    for photo, result, expected in zip(photos, results, alone, strict=True):
        got = Detections.from_mmdet(result, photo.shape)
        assert len(expected) > 0
        report = compare(expected, got)
        assert report.matched_fraction == 1.0 and report.mask_iou_mean > 0.999, str(report)
        np.testing.assert_allclose(got.scores, expected.scores, atol=1e-4)


@pytest.mark.slow
def test_an_api_detector_through_the_batcher_runs_its_batch_call_and_gives_its_output(small_base_model,
                                                                                      monkeypatch):
    """A Detector (output="rle") wrapped as the README shows: three callers at once run as one
    Detector.batch call, and each gets its own photo's result in the Detector's form."""
    from mmdet_opt.api import Detector

    det = Detector.from_model(small_base_model, "inference_graph", output="rle")
    calls = []
    batch = det.batch
    monkeypatch.setattr(det, "batch", lambda images: calls.append(len(images)) or batch(images))
    photos = [resize_to(sample_image(name), size) for name, size in
              [("astronaut", (640, 480)), ("coffee", (400, 300)), ("chelsea", (300, 400))]]
    with DynamicBatcher(det, max_batch=3, max_wait_ms=LONG_WAIT_MS) as batcher:
        results = call_from_threads(batcher, photos)
    assert calls == [3] and batcher.batch_sizes == [3]
    for photo, (boxes, rles) in zip(photos, results, strict=True):
        alone_boxes, _ = det(photo)
        assert [len(b) for b in boxes] == [len(r) for r in rles] and sum(map(len, boxes)) > 0
        assert all(set(rle) == {"size", "counts"} and rle["size"] == list(photo.shape[:2])
                   for per_class in rles for rle in per_class)
        np.testing.assert_allclose(np.concatenate(boxes), np.concatenate(alone_boxes), atol=1e-3)


def test_the_report_has_a_serving_table():
    from mmdet_opt.suite.report import markdown

    def bench(variant, clients, ips, p50, p99):
        figures = {"images_per_second": ips, "p50_ms": p50, "p99_ms": p99}
        return {"stats": {"median": 1.0},
                "extra_info": {"variant": variant, "size": "1333x800", "clients": clients, "serving": figures}}

    run = {"benchmarks": [bench("inference", 1, 8.0, 120.0, 130.5), bench("inference", 4, 9.5, 400.0, 450.0),
                          bench("inference_graph", 4, 150.0, 25.0, 31.0)]}
    lines = markdown(run).splitlines()  # a serving-only run has a report
    assert "### 1333x800 serving (images/s, p50 / p99 ms)" in lines
    assert "| inference | 8.0, 120.0 / 130.5 | 9.5, 400.0 / 450.0 |" in lines
    assert "| inference_graph |  | 150.0, 25.0 / 31.0 |" in lines
