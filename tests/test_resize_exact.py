"""BilinearResize is cv2.resize(INTER_LINEAR) / mmcv.imresize on uint8, bit for bit.

- Property: any size pair from 1 to 300 a side, each axis independently (down, up, equal, exact 2x,
  1 pixel), 1, 3 or 4 channels, content from noise to 0/255 checkerboards, on CPU tensors.
- The realistic shapes, sized as mmdet's Resize(keep_ratio) does (mmcv.imrescale), photo and noise.
- The same on CUDA, and replayed from a CUDA graph (skipped without CUDA).
"""
import cv2
import mmcv
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mmdet_opt.images import sample_image
from mmdet_opt.resize import BilinearResize, imresize

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

CONTENTS = ("noise", "checkerboard", "binary", "zeros", "full", "gradient")


def make_image(content: str, h: int, w: int, c: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if content == "noise":
        return rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    if content == "checkerboard":
        board = (np.arange(h)[:, None] + np.arange(w)[None, :]) % 2 * 255
        return np.repeat(board[:, :, None], c, axis=2).astype(np.uint8)
    if content == "binary":
        return (rng.integers(0, 2, (h, w, c)) * 255).astype(np.uint8)
    if content in ("zeros", "full"):
        return np.full((h, w, c), 0 if content == "zeros" else 255, np.uint8)
    ramp = np.linspace(0, 255, h * w * c).reshape(h, w, c)
    return ramp.astype(np.uint8)


def ours(image: np.ndarray, new_h: int, new_w: int, device="cpu") -> np.ndarray:
    """HWC numpy in and out, through the (C, H, W) view the GPU pipeline uses."""
    hwc = torch.from_numpy(image).to(device)
    out = BilinearResize(*image.shape[:2], new_h, new_w, device)(hwc.permute(2, 0, 1))
    return out.permute(1, 2, 0).cpu().numpy()


def cv2_hwc(image: np.ndarray, new_h: int, new_w: int) -> np.ndarray:
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR).reshape(new_h, new_w, -1)


@st.composite
def side_pairs(draw):
    """(src, dst) for one axis: mostly independent, sometimes equal, exact 2x down, or 1 pixel."""
    src = draw(st.integers(1, 300))
    dst = draw(st.one_of(st.integers(1, 300), st.just(src), st.just(max(1, src // 2)), st.just(1)))
    return src, dst


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(height=side_pairs(), width=side_pairs(), channels=st.sampled_from([1, 3, 4]),
       content=st.sampled_from(CONTENTS), seed=st.integers(0, 2**32 - 1))
@example(height=(1, 1), width=(1, 1), channels=3, content="noise", seed=0).via("one pixel, no change")
@example(height=(1, 9), width=(1, 1), channels=3, content="noise", seed=0).via("1x1 -> 9x1")
@example(height=(1, 1), width=(300, 7), channels=3, content="noise", seed=0).via("1xN -> 1xM")
@example(height=(300, 7), width=(1, 1), channels=3, content="noise", seed=0).via("Nx1 -> Mx1")
@example(height=(1, 300), width=(300, 1), channels=3, content="noise", seed=0).via("1xN -> Nx1")
@example(height=(200, 100), width=(300, 150), channels=3, content="noise", seed=0).via("2x down: INTER_AREA path")
@example(height=(5, 300), width=(3, 300), channels=3, content="checkerboard", seed=0).via("large upscale")
@example(height=(300, 2), width=(300, 3), channels=3, content="full", seed=0).via("255 stays 255")
def test_matches_cv2_and_mmcv(height, width, channels, content, seed):
    (h, new_h), (w, new_w) = height, width
    image = make_image(content, h, w, channels, seed)
    expected = cv2_hwc(image, new_h, new_w)
    assert np.array_equal(mmcv.imresize(image, (new_w, new_h)).reshape(expected.shape), expected)
    assert np.array_equal(ours(image, new_h, new_w), expected)


# (h, w) of the input and the config's test scale (w, h): mmdet's Resize(keep_ratio) sizes them by
# mmcv.rescale_size and resizes with mmcv.imresize, which is what mmcv.imrescale does.
REALISTIC = [
    ((3024, 4032), (1333, 800)),  # phone photo, down ~3.8x -> 1067x800
    ((480, 640), (1333, 800)),  # VGA, up 1.67x
    ((800, 1334), (1333, 800)),  # one pixel too wide -> 1333x799
    ((1080, 1920), (1333, 800)),  # full HD -> 1333x750
    ((2000, 3000), (3840, 2304)),  # up to 3456x2304
    ((800, 1333), (1333, 800)),  # already at scale: no resize
]


def realistic_image(content: str, h: int, w: int) -> np.ndarray:
    if content == "noise":
        return make_image("noise", h, w, 3, seed=h * w)
    return cv2.resize(sample_image("astronaut"), (w, h), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("content", ["photo", "noise"])
@pytest.mark.parametrize("shape,scale", REALISTIC, ids=[f"{s[1]}x{s[0]}" for s, _ in REALISTIC])
def test_realistic_sizes_match_mmcv_imrescale(shape, scale, content):
    image = realistic_image(content, *shape)
    expected = mmcv.imrescale(image, scale)
    assert np.array_equal(ours(image, *expected.shape[:2]), expected)


def test_same_size_returns_the_input():
    img = torch.zeros((3, 4, 5), dtype=torch.uint8)
    assert BilinearResize(4, 5, 4, 5)(img) is img


def test_imresize_takes_height_then_width():
    image = make_image("noise", 17, 30, 3, seed=1)
    out = imresize(torch.from_numpy(image).permute(2, 0, 1), (11, 45))
    assert np.array_equal(out.permute(1, 2, 0).numpy(), cv2_hwc(image, 11, 45))


@pytest.mark.parametrize("bad", [torch.zeros((3, 4, 5), dtype=torch.float32), torch.zeros((3, 5, 4), dtype=torch.uint8),
                                 torch.zeros((4, 5), dtype=torch.uint8)])
def test_rejects_wrong_input(bad):
    with pytest.raises(ValueError, match=r"expected a \(C, 4, 5\) uint8 tensor"):
        BilinearResize(4, 5, 8, 10)(bad)


def test_rejects_empty_sizes():
    with pytest.raises(ValueError, match="sizes >= 1"):
        BilinearResize(4, 0, 8, 10)


@needs_cuda
@pytest.mark.parametrize("content", ["photo", "noise"])
@pytest.mark.parametrize("shape,scale", REALISTIC, ids=[f"{s[1]}x{s[0]}" for s, _ in REALISTIC])
def test_cuda_matches_mmcv_imrescale(shape, scale, content):
    image = realistic_image(content, *shape)
    expected = mmcv.imrescale(image, scale)
    assert np.array_equal(ours(image, *expected.shape[:2], device="cuda"), expected)


@needs_cuda
@settings(max_examples=100, deadline=None)
@given(height=side_pairs(), width=side_pairs(), content=st.sampled_from(CONTENTS), seed=st.integers(0, 2**32 - 1))
def test_cuda_matches_cv2(height, width, content, seed):
    (h, new_h), (w, new_w) = height, width
    image = make_image(content, h, w, 3, seed)
    assert np.array_equal(ours(image, new_h, new_w, device="cuda"), cv2_hwc(image, new_h, new_w))


@needs_cuda
def test_cuda_graph_replay_matches_cv2():
    """Built outside the capture, called inside it; replays on new content stay exact."""
    h, w, new_h, new_w = 480, 640, 800, 1067
    resize = BilinearResize(h, w, new_h, new_w, "cuda")
    static_in = torch.zeros((h, w, 3), dtype=torch.uint8, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture, as torch.cuda.graphs advises
        resize(static_in.permute(2, 0, 1))
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = resize(static_in.permute(2, 0, 1))
    for seed in range(3):
        image = make_image("noise", h, w, 3, seed)
        static_in.copy_(torch.from_numpy(image))
        graph.replay()
        assert np.array_equal(static_out.permute(1, 2, 0).cpu().numpy(), cv2_hwc(image, new_h, new_w))
