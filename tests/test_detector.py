"""The detector factory: reproducible calibrated weights, and safe, strict checkpoint loading.

Building calibrated weights runs the network on a calibration image (tens of seconds on a small
CPU), so models are built once per module at a reduced test scale.
"""
import numpy as np
import pytest
import torch

from mmdet_opt import detector
from mmdet_opt.checkpoint import CheckpointError
from mmdet_opt.detector import build_detector
from mmdet_opt.images import sample_image

SCALE = (640, 384)


def detections(model, name="astronaut"):
    from mmdet.apis import inference_detector

    return inference_detector(model, sample_image(name))


def assert_same_detections(a, b):
    (boxes_a, masks_a), (boxes_b, masks_b) = a, b
    assert len(boxes_a) == len(boxes_b)
    for cls, (ba, bb) in enumerate(zip(boxes_a, boxes_b)):
        np.testing.assert_array_equal(ba, bb, err_msg=f"class {cls} boxes")
        assert len(masks_a[cls]) == len(masks_b[cls])
        for ma, mb in zip(masks_a[cls], masks_b[cls]):
            np.testing.assert_array_equal(ma, mb, err_msg=f"class {cls} masks")


@pytest.fixture(scope="module")
def model():
    return build_detector(seed=0, test_scale=SCALE)


@pytest.fixture(scope="module")
def reference(model):
    return detections(model)


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("checkpoints")


@pytest.fixture(scope="module")
def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_same_seed_gives_bit_identical_weights(model):
    again = build_detector(seed=0, test_scale=SCALE)
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys()
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differing, f"same seed, different tensors: {differing[:5]}"


def test_different_seed_gives_different_weights(model, monkeypatch):
    # Calibration only rescales a few layers and sets BatchNorm statistics; the seed decides the
    # initial weights, so compare without it and save a forward pass or three.
    monkeypatch.setattr(detector, "calibrate", lambda model, cfg: None)
    other = build_detector(seed=1, test_scale=SCALE).state_dict()
    a = model.state_dict()
    # Random conv kernels; biases and norms start at constants whatever the seed.
    convs = [k for k in a if k.endswith("conv1.weight") or (k.startswith("neck.") and k.endswith("conv.weight"))]
    assert convs
    same = [k for k in convs if torch.equal(a[k], other[k])]
    assert not same, f"seed 0 and seed 1 share {same[:5]}"


def test_calibrated_model_detects_on_a_photograph(model, reference):
    assert model.cfg.model.test_cfg.rcnn.score_thr == 0.05  # the config's own threshold, not lowered
    boxes, masks = reference
    scores = np.concatenate([b[:, 4] for b in boxes])
    assert len(scores) >= 20, f"only {len(scores)} detections on astronaut"
    assert scores.min() >= 0.05
    assert sum(len(m) for m in masks) == len(scores)


class Payload:
    """Stands for code hidden in a checkpoint: unpickling it would call ``_executed``."""

    def __reduce__(self):
        return _executed, ()


EXECUTED = []


def _executed():
    EXECUTED.append(True)
    return "pwned"


def test_checkpoint_with_pickled_code_is_refused(ckpt_dir, state):
    path = ckpt_dir / "tampered.pth"
    torch.save({"state_dict": state, "meta": {"hook": Payload()}}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        build_detector(checkpoint=path, test_scale=SCALE)
    assert not EXECUTED, "loading ran code from the checkpoint"


@pytest.mark.parametrize("damage, key, what", [
    ("drop", "roi_head.bbox_head.fc_cls.bias", "missing"),
    ("reshape", "roi_head.mask_head.conv_logits.weight", "shape"),
    ("add", "roi_head.extra_head.weight", "unexpected"),
])
def test_mismatched_checkpoint_names_the_key(ckpt_dir, state, damage, key, what):
    bad = dict(state)
    if damage == "drop":
        del bad[key]
    elif damage == "reshape":
        bad[key] = torch.zeros(81, 256, 1, 1)  # 81 classes instead of 80
    else:
        bad[key] = torch.zeros(1)
    path = ckpt_dir / f"{damage}.pth"
    torch.save(bad, path)
    with pytest.raises(CheckpointError, match=what) as err:
        build_detector(checkpoint=path, test_scale=SCALE)
    assert key in str(err.value)


def test_state_dict_checkpoint_gives_identical_detections(ckpt_dir, state, reference):
    path = ckpt_dir / "plain.pth"
    torch.save(state, path)
    loaded = build_detector(checkpoint=path, test_scale=SCALE)
    assert_same_detections(detections(loaded), reference)


def test_mmdet_style_checkpoint_loads_with_its_classes(ckpt_dir, state, reference):
    classes = [f"thing{i}" for i in range(80)]
    path = ckpt_dir / "mmdet.pth"
    torch.save({"state_dict": state, "meta": {"CLASSES": classes, "epoch": 24}}, path)
    loaded = build_detector(checkpoint=path, test_scale=SCALE)
    assert list(loaded.CLASSES) == classes
    assert_same_detections(detections(loaded), reference)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "nowhere" / "model.pth"
    with pytest.raises(CheckpointError, match="no such file") as err:
        build_detector(checkpoint=path, test_scale=SCALE)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("content", [b"hello, not a checkpoint\n", bytes(range(256)) * 4],
                         ids=["text", "binary"])
def test_a_file_that_is_no_checkpoint_is_named_as_such(tmp_path, content):
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint") as err:
        build_detector(checkpoint=path, test_scale=SCALE)
    assert str(path) in str(err.value)
