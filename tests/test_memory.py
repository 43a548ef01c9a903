"""Memory: chunked mask pasting, and raw-mask results whose size follows detections, not pixels.

Working set of one pasting chunk of c masks on an H x W image (mmdet's ``_do_paste_mask`` with
the whole image as region, as on GPU), in bytes per pixel per mask:

    8  the (x, y) float32 sampling grid
    4  grid_sample's float32 output
    4  the previous chunk's float32 output, still referenced while the next chunk is sampled
   --
   16  (``paste.BYTES_PER_PIXEL`` counts the first 12)

plus the (N, H, W) bool result, 1 byte per pixel per mask, for all N masks.
"""
import math

import numpy as np
import pytest
import torch

from mmdet_opt import paste
from mmdet_opt.images import resize_to, sample_image
from mmdet_opt.paste import BYTES_PER_PIXEL, encode_rle, host_masks, num_chunks, paste_masks, region_rles
from mmdet_opt.results import Detections
from mmdet_opt.variants import Variant, get_variant

WORKING_BYTES_PER_PIXEL = 16  # see the module docstring
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def masks_and_boxes(n: int, h: int, w: int, device="cpu", seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    probs = torch.rand(n, 28, 28, generator=gen)
    xy = torch.rand(n, 2, generator=gen) * torch.tensor([w * 0.8, h * 0.8])
    wh = torch.rand(n, 2, generator=gen) * torch.tensor([w * 0.5, h * 0.5]) + 2
    return probs.to(device), torch.cat([xy, xy + wh], dim=1).to(device)


def chunk_sizes(n: int, k: int) -> list:
    """Masks per chunk, as paste_masks splits n masks into num_chunks = k."""
    return [len(c) for c in torch.chunk(torch.arange(n), k)]


# --- chunk boundary ------------------------------------------------------------------------------

N, H, W = 12, 37, 53
PER_MASK = H * W * BYTES_PER_PIXEL


@pytest.mark.parametrize("k", [1, 2, 3])
def test_num_chunks_steps_at_the_boundary(k):
    """max_chunk_bytes holding exactly N/k masks gives k chunks; one byte less gives k + 1."""
    at = N // k * PER_MASK
    assert num_chunks(N, H, W, at) == k
    assert num_chunks(N, H, W, at - 1) == k + 1
    assert len(chunk_sizes(N, k + 1)) == k + 1


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_chunked_results_equal_unchunked(k, device, monkeypatch):
    probs, boxes = masks_and_boxes(N, H, W, device)
    whole = paste_masks(probs, boxes, H, W, max_chunk_bytes=2**40)
    unchunked_rle = encode_rle(probs, boxes, H, W, max_chunk_bytes=2**40)
    calls = []
    real_paste = paste.paste_masks

    def counting_paste(masks, *args, **kwargs):
        calls.append(len(masks))
        return real_paste(masks, *args, **kwargs)

    monkeypatch.setattr(paste, "paste_masks", counting_paste)  # encode_rle pastes chunk by chunk
    for limit, chunks in ((N // k * PER_MASK, k), (N // k * PER_MASK - 1, k + 1)):
        calls.clear()
        assert encode_rle(probs, boxes, H, W, max_chunk_bytes=limit) == unchunked_rle
        assert len(calls) == chunks and sum(calls) == N
        assert torch.equal(real_paste(probs, boxes, H, W, max_chunk_bytes=limit), whole)
        assert np.array_equal(host_masks(probs, boxes, H, W, max_chunk_bytes=limit), whole.cpu().numpy())
        assert region_rles(probs, boxes, H, W, max_chunk_bytes=limit) == unchunked_rle


# --- the per-chunk bound ------------------------------------------------------------------------

CASES = [  # (n, h, w, max_chunk_bytes)
    (100, 2304, 3840, paste.DEFAULT_CHUNK_BYTES),
    (100, 4320, 7680, paste.DEFAULT_CHUNK_BYTES),
    (12, 37, 53, int(2.5 * PER_MASK)),
    (7, 100, 100, 3 * 100 * 100 * BYTES_PER_PIXEL),
    (1, 4320, 7680, 1024),  # one mask larger than the limit: one mask per chunk, the least possible
]


@pytest.mark.parametrize("n, h, w, limit", CASES)
def test_chunks_stay_within_one_mask_of_the_limit(n, h, w, limit):
    per_mask = h * w * BYTES_PER_PIXEL
    largest = max(chunk_sizes(n, num_chunks(n, h, w, limit)))
    assert largest * per_mask <= max(limit, per_mask) + per_mask


@pytest.mark.parametrize("n, h, w, limit", [CASES[1], CASES[2]])
def test_chunks_stay_within_the_limit(n, h, w, limit):
    per_mask = h * w * BYTES_PER_PIXEL
    largest = max(chunk_sizes(n, num_chunks(n, h, w, limit)))
    assert largest * per_mask <= max(limit, per_mask)


@needs_cuda
@pytest.mark.parametrize("h, w", [(2304, 3840), (4320, 7680)], ids=["3840x2304", "7680x4320"])
def test_gpu_paste_peak_memory_follows_the_chunk_size(h, w):
    """Peak extra GPU memory <= the bool result + 16 B/pixel x the largest chunk + 64 MiB.

    With the default 1 GiB chunk: 3840x2304 -> 10 chunks of 10 masks (bound 2.37 GB);
    7680x4320 -> 38 chunks of up to 3 masks (bound 4.98 GB). Unchunked would need 16 B/pixel
    for all 100 masks: 14 GB and 53 GB.
    """
    n, device = 100, torch.device("cuda")
    probs, boxes = masks_and_boxes(n, h, w, device)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    out = paste_masks(probs, boxes, h, w)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    chunk = max(chunk_sizes(n, num_chunks(n, h, w)))
    bound = n * h * w + WORKING_BYTES_PER_PIXEL * chunk * h * w + 64 * 2**20
    print(f"\n{w}x{h}: {num_chunks(n, h, w)} chunks of <= {chunk} masks, peak {peak / 2**30:.2f} GiB, "
          f"bound {bound / 2**30:.2f} GiB")
    assert out.shape == (n, h, w)
    assert peak <= bound
    assert peak < n * h * w * BYTES_PER_PIXEL / 4  # far from what one unchunked paste needs


# --- raw masks: memory follows detections ---------------------------------------------------------

SCALE = (320, 192)  # the scale small_base_model (tests/conftest.py) is built at


@pytest.fixture(scope="module")
def model(small_base_model):
    return small_base_model


def segm_bytes(result) -> int:
    return sum(np.asarray(m).nbytes for per_class in result[1] for m in per_class)


@pytest.mark.slow
def test_raw_mask_result_size_follows_detections_not_area(model):
    """The network runs at 320x192 for both images; only the original image size differs (16x area)."""
    stock = get_variant("inference").build(model, SCALE)
    raw = Variant("raw_fp32", gpu_preprocess=True, raw_mask=True).build(model, SCALE)
    photo = sample_image("astronaut")
    sizes = {}
    for size in ((320, 192), (1280, 768)):
        image = resize_to(photo, size)
        raw_result, stock_result = raw(image), stock(image)
        n = len(Detections.from_mmdet(raw_result, image.shape))
        assert n == len(Detections.from_mmdet(stock_result, image.shape)) > 0
        sizes[size] = (n, segm_bytes(raw_result), segm_bytes(stock_result))
    (n_small, raw_small, stock_small), (n_large, raw_large, stock_large) = sizes.values()
    assert n_small == n_large, "the same number of detections at both sizes makes the sizes comparable"
    assert raw_small == raw_large == n_small * 28 * 28 * 4  # float32 28x28 per detection
    assert stock_small == n_small * 320 * 192 and stock_large == n_large * 1280 * 768  # bool per pixel
    assert math.isclose(stock_large / stock_small, 16)
