"""The training recipe on CPU: scenes, COCO evaluation, a 2-iteration run and its checkpoint."""
import copy
import json

import numpy as np
import pytest
import torch

from mmdet_opt import coco_results
from mmdet_opt.checkpoint import CheckpointError, load_state_dict, read_checkpoint, resolve_checkpoint
from mmdet_opt.training import coco, scenes, train
from mmdet_opt.training.__main__ import main, parse_args


def test_scenes_are_reproducible_and_disjoint():
    a, b = scenes.heldout_scene(3), scenes.heldout_scene(3)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(scenes.heldout_scene(3).image, scenes.training_scene(0, 3).image)
    assert not np.array_equal(scenes.training_scene(0, 3).image, scenes.training_scene(1, 3).image)


def test_labels_are_the_named_coco_classes():
    from mmdet.core import get_classes

    assert [get_classes("coco")[i] for i in scenes.LABELS] == list(scenes.COCO_NAMES)
    assert len(set(scenes.LABELS)) == len(scenes.SHAPES)


@pytest.mark.parametrize("index", range(6))
def test_masks_are_exact(index):
    s = scenes.training_scene(0, index)
    assert s.image.shape == (512, 512, 3) and s.image.dtype == np.uint8
    assert s.masks.dtype == bool and s.masks.shape == (len(s), 512, 512)
    assert 1 <= len(s) <= scenes.OBJECTS[1] and set(s.labels.tolist()) <= set(scenes.LABELS)
    assert s.masks.sum((1, 2)).min() > 0
    assert s.masks.sum(0).max() <= 1, "visible masks overlap"
    for m, (x1, y1, x2, y2) in zip(s.masks, s.boxes.astype(int)):
        assert m[y1:y2, x1:x2].sum() == m.sum()  # inside the box
        inner = m[y1:y2, x1:x2]
        assert inner[0].any() and inner[-1].any() and inner[:, 0].any() and inner[:, -1].any()  # tight


def test_later_objects_occlude_earlier_ones(monkeypatch):
    # Two concentric circles: the second, smaller one makes a hole in the first one's mask.
    draws = iter([(0, 0.2, (100, 100)), (0, 0.1, (100, 100))])

    def shape_mask(rng, shape, centre, r, w, h):
        _, frac, c = next(draws)
        yy, xx = np.mgrid[0:h, 0:w]
        return (yy - c[1]) ** 2 + (xx - c[0]) ** 2 < (frac * w) ** 2

    monkeypatch.setattr(scenes, "OBJECTS", (2, 2))
    monkeypatch.setattr(scenes, "shape_mask", shape_mask)
    s = scenes.draw_scene(0, (200, 200))
    outer, inner = s.masks
    assert inner[100, 100] and not outer[100, 100] and outer[100, 100 + 30]
    assert not (outer & inner).any()


@pytest.mark.parametrize("size", [(1333, 800), (96, 64)])
def test_any_size(size):
    s = scenes.heldout_scene(0, size)
    assert s.image.shape == (size[1], size[0], 3) and s.masks.shape[1:] == (size[1], size[0])
    assert len(s) >= 1


def test_coco_perfect_predictions_score_one_and_degraded_lower():
    split, dataset = coco.heldout_split(3, (256, 256))
    json.dumps(dataset)  # JSON-ready
    assert {a["category_id"] for a in dataset["annotations"]} <= {c["id"] for c in dataset["categories"]}
    perfect = coco.ground_truth_results(split)
    scores = coco_results.evaluate(dataset, perfect)
    assert set(scores) == {f"{k}_{n}" for k in ("bbox", "segm") for n in coco_results.STATS}
    areas = {a["area"] for a in dataset["annotations"]}
    assert min(areas) < 32 ** 2 < max(areas), "the split should hold small and larger objects"
    # Every area range with objects scores 1; one without any (COCOeval's -1) counts as 0.
    large = 1.0 if max(areas) > 96 ** 2 else 0.0
    assert all(v == (large if k.endswith("_large") else 1.0) for k, v in scores.items()), scores
    shifted = [([b + np.array([5, 5, 5, 5, 0], np.float32) for b in boxes],
                [[np.roll(m, 5, (0, 1)) for m in ms] for ms in masks]) for boxes, masks in perfect]
    worse = coco_results.evaluate(dataset, shifted)
    assert worse["bbox_mAP"] < 0.9 and worse["segm_mAP"] < 0.9
    empty = [([np.zeros((0, 5), np.float32)] * 80, [[] for _ in range(80)]) for _ in split]
    assert coco_results.evaluate(dataset, empty)["segm_mAP"] == 0.0


def test_lr_schedule():
    assert train.lr_at(0.02, 0, 0.0) == pytest.approx(0.02 * (train.WARMUP_RATIO + 0.999 / 200))
    assert train.lr_at(0.02, 500, 0.0) == pytest.approx(0.02)
    assert train.lr_at(0.02, 500, 0.5) == pytest.approx(0.01)
    assert train.lr_at(0.02, 500, 1.0) == pytest.approx(0.0)


def test_cli_rejects_sizes_the_fpn_cannot_take():
    with pytest.raises(SystemExit):
        parse_args(["--out", "x", "--size", "500", "--device", "cpu"])
    assert parse_args(["--out", "x", "--size", "256", "--device", "cpu"]).size == (256, 256)


# Two iterations of the recipe on a CPU, at a small size: seconds, not hours.
TINY_RUN = ["--iters", "2", "--batch", "2", "--workers", "0", "--device", "cpu", "--eval-images", "2",
            "--eval-stock", "0", "--size", "256", "--rois", "64"]


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    assert main(["--out", str(out), *TINY_RUN]) == 0
    return out


def test_training_writes_checkpoint_and_manifest(trained_dir):
    manifest = json.loads((trained_dir / train.MANIFEST).read_text())
    assert manifest["iterations"] == 2 and manifest["seed"] == 0
    assert set(manifest["evaluation"]["heldout_256x256"]) >= {"bbox_mAP", "bbox_AP50", "segm_mAP", "segm_AP50"}
    assert manifest["loss_curve"]["points"][-1][0] == 2
    data = (trained_dir / train.CHECKPOINT).read_bytes()
    assert manifest["checkpoint"]["bytes"] == len(data) < 25 * 2 ** 20
    state, meta = read_checkpoint(trained_dir / train.CHECKPOINT)
    assert meta["base"] == {"seed": 0}
    assert all(v.dtype == torch.float16 for v in state.values())
    assert not any(k.startswith(train.FROZEN) and ".bn" not in k and "downsample.1" not in k for k in state)
    assert "roi_head.mask_head.conv_logits.weight" in state and "backbone.layer2.0.conv1.weight" in state


def test_the_recipe_run_again_gives_the_same_checkpoint_bit_for_bit_on_a_cpu(trained_dir, tmp_path):
    """Scenes, sampling and initialisation all come from the seed. (On a GPU, atomic adds in
    RoIAlign's backward pass make runs differ in the last bits, so there a reproduction is judged by
    its figures.)"""
    again = tmp_path / "again"
    assert main(["--out", str(again), *TINY_RUN]) == 0
    first, second = (json.loads((d / train.MANIFEST).read_text()) for d in (trained_dir, again))
    assert second["checkpoint"]["sha256"] == first["checkpoint"]["sha256"]
    assert second["evaluation"] == first["evaluation"]


def test_build_detector_loads_the_partial_checkpoint_over_the_seed(trained_dir, small_base_model):
    from mmdet_opt.detector import build_detector

    path = trained_dir / train.CHECKPOINT
    state, _ = read_checkpoint(path)
    loaded = build_detector(checkpoint=path).state_dict()
    seeded = small_base_model.state_dict()  # seed 0: the test scale does not change the weights
    assert loaded.keys() == seeded.keys()
    for k, v in loaded.items():
        expected = state[k].float() if k in state else seeded[k]
        assert torch.equal(v, expected), k
    assert any(not torch.equal(loaded[k], seeded[k]) for k in state)


def test_partial_checkpoint_with_a_wrong_key_or_shape_is_refused(trained_dir, small_base_model, tmp_path):
    state, meta = read_checkpoint(trained_dir / train.CHECKPOINT)
    model = copy.deepcopy(small_base_model)
    for name, bad in [("key", {**state, "roi_head.no_such.weight": torch.zeros(3)}),
                      ("shape", {**state, "roi_head.mask_head.conv_logits.weight": torch.zeros(3, 3)})]:
        path = tmp_path / f"{name}.pth"
        torch.save({"state_dict": bad, "meta": meta}, path)
        with pytest.raises(CheckpointError, match="unexpected keys" if name == "key" else "shape mismatch"):
            load_state_dict(model, path)
    path = tmp_path / "bad_base.pth"
    torch.save({"state_dict": state, "meta": {"base": {"seed": "zero"}}}, path)
    with pytest.raises(CheckpointError, match="seed"):
        load_state_dict(model, path)


def test_trained_name_resolves_to_the_committed_file(monkeypatch, tmp_path):
    from mmdet_opt import checkpoint

    monkeypatch.setattr(checkpoint, "TRAINED", tmp_path / "absent.pth")
    with pytest.raises(CheckpointError, match="no trained checkpoint committed yet"):
        resolve_checkpoint("trained")
    (tmp_path / "absent.pth").write_bytes(b"x")
    assert resolve_checkpoint("trained") == tmp_path / "absent.pth"


def test_a_slow_run_still_reaches_its_peak_learning_rate():
    from mmdet_opt.training.train import WARMUP_FRACTION, lr_at

    # 86 iterations in a time budget: the warm-up ends at WARMUP_FRACTION of the time, not at iteration 200.
    assert lr_at(0.02, 10, WARMUP_FRACTION) > 0.019
    assert lr_at(0.02, 0, 0.0) < 0.001
    assert lr_at(0.02, 199, 0.01) > 0.019  # a fast run: 200 iterations come first


def test_training_goes_on_from_an_earlier_checkpoint(trained_dir, tmp_path):
    """--init: the earlier run's tensors are where training starts, and the iterations add up."""
    import hashlib

    earlier = trained_dir / train.CHECKPOINT
    model = train.build_training_model(0, "cpu", 64)
    summary = train.continue_from(model, str(earlier), 0)
    assert summary["iterations_total"] == 2
    state = torch.load(earlier, weights_only=True)["state_dict"]
    now = model.state_dict()
    assert state and all(torch.equal(now[k], v.float()) for k, v in state.items())
    out = tmp_path / "more"
    assert main(["--out", str(out), "--iters", "1", "--batch", "2", "--workers", "0", "--device", "cpu",
                 "--eval-images", "1", "--eval-stock", "0", "--size", "256", "--rois", "64",
                 "--init", str(earlier)]) == 0
    manifest = json.loads((out / train.MANIFEST).read_text())
    assert manifest["iterations"] == 1 and manifest["iterations_total"] == 3
    assert manifest["init"]["sha256"] == hashlib.sha256(earlier.read_bytes()).hexdigest()
    assert torch.load(out / train.CHECKPOINT, weights_only=True)["meta"]["iterations"] == 3


def test_going_on_over_another_seed_is_refused(trained_dir):
    with pytest.raises(CheckpointError, match="seed 0, not --seed 1"):
        train.continue_from(train.build_training_model(1, "cpu", 64), str(trained_dir / train.CHECKPOINT), 1)
    with pytest.raises(SystemExit):  # a missing file is the parser's one-line error
        parse_args(["--out", "x", "--device", "cpu", "--init", str(trained_dir / "no-such.pth")])


@pytest.mark.slow
def test_evaluate_scores_the_committed_checkpoint(capsys):
    from mmdet_opt.training.evaluate import main as evaluate_main

    assert evaluate_main(["--scenes", "2", "--size", "256", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "scored 2/2 scenes" in out
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("held-out 256x256, 2 scenes (simple_test)")
    words = summary.split(": ", 1)[1].split()
    figures = dict(zip(words[::2], map(float, words[1::2])))
    assert {"bbox_mAP", "segm_mAP", "segm_AP50"} <= figures.keys()
    assert all(0.0 <= v <= 1.0 for v in figures.values())


def test_evaluate_refuses_a_missing_checkpoint_in_one_line(tmp_path, capsys):
    from mmdet_opt.training.evaluate import main as evaluate_main

    assert evaluate_main(["--checkpoint", str(tmp_path / "absent.pth"), "--scenes", "1", "--size", "64",
                          "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "absent.pth" in err and len(err.splitlines()) == 1


@pytest.mark.slow  # pytest in a subprocess: the trained model, stock and the graph pipeline on a CPU
def test_the_suite_runs_parity_on_the_committed_trained_model():
    """`--checkpoint trained` through the benchmark suite, as the nightly runs it on a GPU: a held-out
    scene at a photo size that must be resized, judged by the strict fixed targets."""
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "--device=cpu",
                           "benchmarks/test_parity.py", "--checkpoint=trained", "--variants=inference_graph",
                           "--sizes=640x480@320x192", "--parity-images=scene0"],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "parity inference_graph_eager_fp32 640x480@320x192 scene0: matched" in done.stdout
    assert "1 passed" in done.stdout
