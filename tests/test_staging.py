"""The pinned staging ring (graphed/input_plan.py): where uploads are staged, and what the host waits for."""
import numpy as np
import pytest
import torch

from mmdet_opt.graphed.input_plan import HostStaging, StagingRing


class Upload:
    """A stand-in CUDA event: counts the host's waits on it."""

    def __init__(self):
        self.waited = 0

    def synchronize(self):
        self.waited += 1


def test_uploads_follow_each_other_and_wrap_waiting_only_for_what_they_overwrite():
    ring = StagingRing(100)
    uploads = []
    for size, start in [(40, 0), (40, 40), (30, 0), (10, 30), (50, 40)]:
        assert ring.claim(size) == start
        uploads.append(Upload())
        ring.track(start, size, uploads[-1])
    # The first two ran without waiting. The third wrapped over the first ([0, 40)) and waited for it;
    # the fourth, [30, 40), lay in that same, already finished, part; the fifth waited for the second.
    assert [u.waited for u in uploads] == [1, 1, 0, 0, 0]


def test_an_upload_as_large_as_the_ring_waits_for_every_earlier_one():
    ring = StagingRing(64)
    earlier = [Upload() for _ in range(4)]
    starts = []
    for upload in earlier:
        starts.append(ring.claim(16))
        ring.track(starts[-1], 16, upload)
    assert starts == [0, 16, 32, 48] and [u.waited for u in earlier] == [0, 0, 0, 0]
    assert ring.claim(64) == 0 and [u.waited for u in earlier] == [1, 1, 1, 1]


def test_drain_waits_for_everything_in_flight():
    ring = StagingRing(64)
    upload = Upload()
    ring.track(ring.claim(8), 8, upload)
    ring.drain()
    assert upload.waited == 1 and ring.claim(8) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_uploads_in_flight_are_never_overwritten():
    """Photos staged one after another, with no sync between them, behind a kernel that holds the
    stream, through a ring that wraps several times and then grows: every upload lands exactly."""
    staging = HostStaging(pinned=True, capacity=3 * 120 * 160 * 3)
    rng = np.random.default_rng(0)
    sizes = [(120, 160), (100, 100), (120, 160), (60, 80), (120, 160)] * 4 + [(300, 400), (120, 160)]
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    dsts = [torch.empty(image.shape, dtype=torch.uint8, device="cuda") for image in images]
    torch.cuda._sleep(50_000_000)  # every copy below queues behind this, so the earlier ones are in flight
    for image, dst in zip(images, dsts):
        staging.upload(image, dst)
    torch.cuda.synchronize()
    for image, dst in zip(images, dsts):
        np.testing.assert_array_equal(dst.cpu().numpy(), image)
    assert staging.buffer.numel() == 2 * 300 * 400 * 3


def test_on_a_cpu_the_upload_is_a_copy():
    staging = HostStaging(pinned=False)
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    dst = torch.empty((2, 3, 3), dtype=torch.uint8)
    staging.upload(image, dst)
    np.testing.assert_array_equal(dst.numpy(), image)
