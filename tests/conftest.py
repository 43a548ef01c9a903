"""Fixtures shared by the test modules."""
import pytest

SMALL_SCALE = (320, 192)


@pytest.fixture(scope="session")
def small_base_model():
    """A calibrated detector at a small test scale keeping 10 detections: built once (a build costs
    ~30 s on 2 cores) and only ever used as the base that variants deep-copy."""
    from mmdet_opt.detector import build_detector

    model = build_detector(test_scale=SMALL_SCALE)
    model.roi_head.test_cfg.max_per_img = 10
    return model
