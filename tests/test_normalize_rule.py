"""The device normalisation follows what mmcv computes under the installed OpenCV (normalize_rule.py).

OpenCV 4 and 5 are each faked by replacing ``mmcv.imnormalize`` with its arithmetic; the real one
is checked against stock by tests/test_preprocess_property.py and tests/test_inputs.py.
"""
import cv2
import mmcv
import numpy as np
import pytest

from mmdet_opt import normalize_rule
from mmdet_opt.gpu_preprocess import PreprocessSpec, gpu_preprocess, mean_std

SPEC = PreprocessSpec(scale=(333, 200), mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), to_rgb=True,
                      size_divisor=32)


def opencv4(img, mean, std, to_rgb=True):
    """mmcv.imnormalize under OpenCV 4: cv2.multiply by a float64 scalar computes in float64, rounds once."""
    img = img[..., ::-1] if to_rgb else img
    return ((img.astype(np.float64) - np.float64(mean)) * (1 / np.float64(std))).astype(np.float32)


def opencv5(img, mean, std, to_rgb=True):
    """mmcv.imnormalize under OpenCV 5: float32 arithmetic, the reciprocal rounded to float32."""
    img = img[..., ::-1] if to_rgb else img
    return (img.astype(np.float32) - mean.astype(np.float32)) * (1 / np.float64(std)).astype(np.float32)


def neither(img, mean, std, to_rgb=True):
    return opencv5(img, mean, std, to_rgb) * np.float32(1.0001)


@pytest.fixture
def fresh_probe():
    normalize_rule.multiplies.cache_clear()
    yield
    normalize_rule.multiplies.cache_clear()  # the next user probes the real mmcv again


@pytest.mark.parametrize("fake, multiply", [(opencv4, False), (opencv5, True)], ids=["opencv4", "opencv5"])
def test_the_probe_picks_each_opencvs_arithmetic_and_the_device_path_then_gives_its_bits(fake, multiply,
                                                                                        fresh_probe, monkeypatch):
    monkeypatch.setattr(mmcv, "imnormalize", fake)
    assert normalize_rule.multiplies(SPEC.mean, SPEC.std) is multiply
    assert mean_std(SPEC, "cpu").multiply is multiply
    image = np.random.default_rng(0).integers(0, 256, (200, 333, 3), dtype=np.uint8)  # at the scale: no resize
    got, metas = gpu_preprocess(SPEC, image, "cpu")
    assert metas[0]["img_shape"] == image.shape and metas[0]["pad_shape"] == (224, 352, 3)
    expected = fake(image, np.array(SPEC.mean, dtype=np.float32), np.array(SPEC.std, dtype=np.float32))
    got = got[0, :, :200, :333].permute(1, 2, 0).contiguous().numpy()
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))


def test_the_two_opencvs_differ_on_this_configs_grey_levels():
    """Why the probe is needed: no one float32 formula gives both."""
    greys = np.repeat(np.arange(256, dtype=np.float32), 3).reshape(1, 256, 3)
    mean, std = np.array(SPEC.mean, dtype=np.float32), np.array(SPEC.std, dtype=np.float32)
    assert not np.array_equal(opencv4(greys, mean, std, False), opencv5(greys, mean, std, False))


def test_an_arithmetic_that_is_neither_is_named_with_the_opencv_version(fresh_probe, monkeypatch):
    monkeypatch.setattr(mmcv, "imnormalize", neither)
    with pytest.raises(RuntimeError, match=f"under OpenCV {cv2.__version__} is neither"):
        mean_std(SPEC, "cpu")


def test_the_probe_runs_once_per_mean_and_std(fresh_probe, monkeypatch):
    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return opencv4(*args, **kwargs)

    monkeypatch.setattr(mmcv, "imnormalize", counting)
    for _ in range(3):
        mean_std(SPEC, "cpu")
    assert len(calls) == 1
    normalize_rule.multiplies((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert len(calls) == 2
