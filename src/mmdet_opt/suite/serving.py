"""Client threads sending photos one at a time to one shared pipeline: what the serving benchmark runs."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..parity import compare
from ..results import Detections, mmdet_results_equal

# A photo in a batch may round apart from the photo alone (fp16 kernels picked per batch size): the
# batch criterion of tests/test_batch_cuda.py. A result of another photo matches next to nothing.
BATCHED_MIN_MATCHED, BATCHED_MIN_MASK_IOU = 0.98, 0.97


@dataclass
class ServingRounds:
    """Per request: its photo's index, latency and result (until checked); per round its seconds."""

    round_seconds: list = field(default_factory=list)
    latencies: list = field(default_factory=list)
    unchecked: list = field(default_factory=list)  # (photo index, result)
    checked: int = 0

    def run(self, call, photos: list, clients: int, requests: int) -> None:
        """One round: ``clients`` threads, each sending ``requests // clients`` (at least 1) photos one
        at a time; client c starts at photo c, so different photos are in flight at once."""
        per_client = max(1, requests // clients)

        def client(c: int) -> list:
            sent = []
            for k in range(per_client):
                i = (c + k) % len(photos)
                start = time.perf_counter()
                result = call(photos[i])
                sent.append((i, time.perf_counter() - start, result))
            return sent

        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            sent = [s for future in [pool.submit(client, c) for c in range(clients)] for s in future.result()]
        self.round_seconds.append(time.perf_counter() - start)
        self.latencies += [seconds for _, seconds, _ in sent]
        self.unchecked += [(i, result) for i, _, result in sent]

    def restart(self) -> None:
        """Forget the timings so far (warm-up); their results are still checked."""
        self.round_seconds, self.latencies = [], []

    def check(self, photos: list, references: list, batched: bool) -> list:
        """The photo indices of the results since the last check that are not their photo's own
        (``references``: each photo's single-threaded mmdet result); the results are then dropped."""
        wrong = [i for i, result in self.unchecked if not own_result(result, references[i], photos[i].shape, batched)]
        self.checked += len(self.unchecked)
        self.unchecked = []
        return wrong

    def summary(self) -> dict:
        ms = np.array(self.latencies) * 1000
        return {"requests_per_round": len(self.latencies) // max(1, len(self.round_seconds)),
                "images_per_second": round(len(ms) / sum(self.round_seconds), 2),
                "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def own_result(got, reference, image_shape, batched: bool) -> bool:
    """``got`` (mmdet's result) is the photo's own: bit for bit, or with ``batched`` within a batch's rounding."""
    if mmdet_results_equal(got, reference):
        return True
    if not batched:
        return False
    report = compare(Detections.from_mmdet(reference, image_shape), Detections.from_mmdet(got, image_shape))
    return report.matched_fraction >= BATCHED_MIN_MATCHED and report.mask_iou_mean >= BATCHED_MIN_MASK_IOU
