"""The mmdet-opt command on a CPU: infer over a folder, bad input, eval's table, two processes under torchrun."""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import mmdet_opt
from mmdet_opt.cli import main
from mmdet_opt.cli.dataset import category_ids, find_images, items_by_annotation
from mmdet_opt.cli.detect import ImageItem
from mmdet_opt.cli.eval_table import outside_tolerance, table
from mmdet_opt.cli.prefetch import DecodeAhead
from mmdet_opt.cli.results_file import images_path
from mmdet_opt.cli.scenes import write_heldout_scenes
from mmdet_opt.inputs import ImageInputError
from mmdet_opt.training.scenes import heldout_scene, heldout_size

SIZES = [(96, 64), (128, 96), (72, 112)]  # mixed sizes and orientations
# mmdet's default config with fewer proposals and detections, at a small test scale: a short CPU run
SMALL_CONFIG = """_base_ = {base!r}
model = dict(test_cfg=dict(rpn=dict(nms_pre=100, max_per_img=50), rcnn=dict(max_per_img=5)))
"""
SCALE = "320x192"


@pytest.fixture(scope="module")
def model_args(tmp_path_factory) -> list:
    """The model arguments: a user's config file over mmdet's default, the package's trained checkpoint."""
    from mmdet_opt.config import DEFAULT_CONFIG, mmdet_config_dir

    config = tmp_path_factory.mktemp("config") / "small_mask_rcnn.py"
    config.write_text(SMALL_CONFIG.format(base=str(mmdet_config_dir() / DEFAULT_CONFIG)))
    return [str(config), "trained", "--device", "cpu", "--scale", SCALE]


def run_main(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def lines_naming(text: str, word: str) -> list:
    """The stderr lines that name ``word`` (the progress bar's redraws aside)."""
    return [line for line in text.replace("\r", "\n").splitlines() if word in line and "img/s" not in line]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for i, size in enumerate(SIZES):
        cv2.imwrite(str(folder / f"scene{i}.{'jpg' if i % 2 else 'png'}"), heldout_scene(i, size).image)
    (folder / "notes.txt").write_text("not an image, and not listed: its suffix is not an image's")
    return folder


@pytest.fixture(scope="module")
def single_run(photos, tmp_path_factory, model_args) -> tuple[int, Path, str]:
    out = tmp_path_factory.mktemp("single") / "results.json"
    code, stdout, stderr = run_main(["infer", *model_args, str(photos), "--out", str(out), "--batch", "2"])
    return code, out, stdout


def test_infer_writes_coco_results_that_pycocotools_loads(single_run, photos):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    code, out, stdout = single_run
    assert code == 0
    index = json.loads(Path(images_path(str(out))).read_text())
    names = sorted(p.name for p in photos.iterdir() if p.suffix in (".png", ".jpg"))
    assert [(img["id"], img["file_name"]) for img in index["images"]] == list(enumerate(names))
    shapes = {img["id"]: (img["height"], img["width"]) for img in index["images"]}
    assert sorted(shapes.values()) == sorted((h, w) for w, h in SIZES)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(images_path(str(out)))
        results = gt.loadRes(str(out))
    dets = json.loads(out.read_text())
    assert dets and len(results.getAnnIds()) == len(dets)
    assert [d["image_id"] for d in dets] == sorted(d["image_id"] for d in dets)  # in image order
    for d in dets:
        h, w = shapes[d["image_id"]]
        assert d["segmentation"]["size"] == [h, w] and isinstance(d["segmentation"]["counts"], str)
        x, y, bw, bh = d["bbox"]
        assert 0 <= x and 0 <= y and x + bw <= w + 1e-3 and y + bh <= h + 1e-3
        assert 0 < d["score"] <= 1 and 1 <= d["category_id"] <= 80
        assert mask_utils.area(d["segmentation"]) > 0
    assert f"{len(SIZES)} images" in stdout and f"{len(dets)} detections" in stdout and "images/s" in stdout


def test_an_unreadable_image_and_a_missing_path_are_skipped_and_the_rest_kept(photos, single_run, tmp_path, model_args):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for p in photos.iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    out = tmp_path / "results.json"
    code, _, stderr = run_main(["infer", *model_args, str(folder), str(tmp_path / "nothere.jpg"), "--out", str(out)])
    assert code == 1
    assert len(lines_naming(stderr, "broken.png")) == 1
    assert len(lines_naming(stderr, "nothere.jpg")) == 1
    assert "Traceback" not in stderr
    done = json.loads(Path(images_path(str(out))).read_text())["images"]
    assert [img["file_name"] for img in done] == sorted(p.name for p in photos.iterdir() if p.suffix != ".txt")
    # broken.png takes place 0 in path order; the others keep their detections, under their own ids
    by_name = {img["file_name"]: img["id"] for img in done}
    single = json.loads(single_run[1].read_text())
    index = json.loads(Path(images_path(str(single_run[1]))).read_text())["images"]
    renumbered = {img["id"]: by_name[img["file_name"]] for img in index}
    assert json.loads(out.read_text()) == [dict(d, image_id=renumbered[d["image_id"]]) for d in single]


class StandInDetector:
    """The API's Detector as the command sees it, without a model: one box per image, over its top-left
    quarter. ``fail(image)`` says what a call on that image raises, if anything."""

    CLASSES = ("circle", "square")

    def __init__(self, fail=lambda image: None, shape_of=lambda image_shape: None, device="cpu"):
        import torch

        from mmdet_opt.config import load_config

        self.cfg, self.variant, self.fail, self.calls = load_config(None, (320, 192)), "stand-in", fail, 0
        self.network_shape, self.batches, self.plan_batches, self.device = shape_of, [], [], torch.device(device)
        self.torch_threads = set()  # torch.get_num_threads() at each call

    def __call__(self, image):
        import torch

        from mmdet_opt.coco_results import encode_mask

        self.calls += 1
        self.torch_threads.add(torch.get_num_threads())
        problem = self.fail(image)
        if problem is not None:
            raise problem
        h, w = image.shape[:2]
        mask = np.zeros((h, w), bool)
        mask[: h // 2, : w // 2] = True
        return [np.array([[0, 0, w // 2, h // 2, 0.9]], np.float32), np.zeros((0, 5), np.float32)], \
            [[encode_mask(mask)], []]

    def batch(self, images, plan_batch=None):
        self.batches.append([image.shape[:2] for image in images])
        self.plan_batches.append(plan_batch)
        return [self(image) for image in images]

    def plan_ahead(self, batch):
        return batch


def stand_in(monkeypatch, detector: StandInDetector) -> StandInDetector:
    monkeypatch.setattr("mmdet_opt.cli.infer.open_detector", lambda *args, **kwargs: detector)
    return detector


def test_an_interrupted_run_writes_the_images_it_did(monkeypatch, photos, tmp_path):
    detector = stand_in(monkeypatch, StandInDetector(lambda image: KeyboardInterrupt() if detector.calls == 3
                                                     else None))
    out = tmp_path / "results.json"
    code, _, stderr = run_main(["infer", "default", "none", str(photos), "--out", str(out), "--device", "cpu"])
    assert code == 130 and len(lines_naming(stderr, "stopped")) == 1
    done = json.loads(Path(images_path(str(out))).read_text())["images"]
    first_two = sorted(p.name for p in photos.iterdir() if p.suffix != ".txt")[:2]
    assert [img["file_name"] for img in done] == first_two
    assert [d["image_id"] for d in json.loads(out.read_text())] == [0, 1]


def test_an_image_that_fails_in_a_batch_is_skipped_and_the_batch_kept(monkeypatch, photos, tmp_path):
    tall = SIZES.index((72, 112))  # scene2, which the stand-in fails as a GPU out of memory would
    stand_in(monkeypatch, StandInDetector(
        lambda image: RuntimeError("CUDA out of memory.\nmore") if image.shape[:2] == (112, 72) else None))
    out = tmp_path / "results.json"
    code, _, stderr = run_main(["infer", "default", "none", str(photos), "--out", str(out), "--device", "cpu",
                                "--batch", "3"])
    assert code == 1
    assert lines_naming(stderr, f"scene{tall}") == [
        f"skipped {photos / f'scene{tall}.png'}: detection failed (RuntimeError: CUDA out of memory.)"]
    done = json.loads(Path(images_path(str(out))).read_text())["images"]
    assert [img["file_name"] for img in done] == ["scene0.png", "scene1.jpg"]
    assert [(d["image_id"], d["category_id"], d["bbox"]) for d in json.loads(out.read_text())] == [
        (0, 1, [0.0, 0.0, 48.0, 32.0]), (1, 1, [0.0, 0.0, 64.0, 48.0])]


def test_a_batch_takes_images_of_one_network_shape(monkeypatch, tmp_path):
    """Landscape and portrait photos in turn, two of each shape a batch: each batch is of one shape (the
    photos between wait), the last one short of a batch runs alone, and the results keep image order."""
    sizes = [(96, 64), (64, 96), (128, 96), (72, 112), (100, 60)]  # (w, h): L, P, L, P, L
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, size in enumerate(sizes):
        cv2.imwrite(str(folder / f"p{i}.png"), heldout_scene(i, size).image)
    detector = stand_in(monkeypatch, StandInDetector(shape_of=lambda shape: "portrait" if shape[0] > shape[1]
                                                     else "landscape"))
    out = tmp_path / "results.json"
    code, _, _ = run_main(["infer", "default", "none", str(folder), "--out", str(out), "--device", "cpu",
                           "--batch", "2"])
    assert code == 0
    assert detector.batches == [[(64, 96), (96, 128)], [(96, 64), (112, 72)]] and detector.calls == 5
    assert [d["image_id"] for d in json.loads(out.read_text())] == [0, 1, 2, 3, 4]


@pytest.mark.slow
def test_pad_to_scale_builds_the_batches_plans_before_the_first_image(photos, single_run, tmp_path, model_args):
    """--pad-to-scale --batch 2: the two boxes' 2-image plans are built with the model (a line says so),
    the two landscape photos run as one batch, the portrait one alone, and each gets what a run of one
    image a call gives it."""
    runs = {}
    for batch in ("1", "2"):
        out = tmp_path / f"b{batch}.json"
        code, _, stderr = run_main(["infer", *model_args, str(photos), "--out", str(out), "--pad-to-scale",
                                    "--batch", batch])
        assert code == 0
        runs[batch] = json.loads(out.read_text())
    built = lines_naming(stderr, "built the network plans")
    assert len(built) == 1 and built[0].startswith("built the network plans of 2-image batches in")
    assert [d["image_id"] for d in runs["2"]] == [d["image_id"] for d in runs["1"]] and runs["1"]
    for one, two in zip(runs["1"], runs["2"]):
        assert one["category_id"] == two["category_id"]
        np.testing.assert_allclose(two["bbox"], one["bbox"], atol=0.05)


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_with_plans_built_ahead_a_shape_left_short_runs_in_them(monkeypatch, tmp_path, device):
    """--pad-to-scale --batch 4 on a GPU: the two landscape photos left at the end fill half of the
    4-photo plan, so they run in it (plan_batch 4); the portrait one, alone in its shape, runs by itself.
    On a CPU (a plan's cost grows with its slots there) each runs by itself."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, size in enumerate([(96, 64), (72, 112), (128, 96)]):  # (w, h): L, P, L
        cv2.imwrite(str(folder / f"p{i}.png"), heldout_scene(i, size).image)
    detector = stand_in(monkeypatch, StandInDetector(shape_of=lambda shape: "portrait" if shape[0] > shape[1]
                                                     else "landscape", device=device))
    out = tmp_path / "results.json"
    code, _, _ = run_main(["infer", "default", "none", str(folder), "--out", str(out), "--batch", "4",
                           "--pad-to-scale"])
    assert code == 0 and detector.calls == 3
    assert detector.batches == ([[(64, 96), (96, 128)]] if device == "cuda" else [])
    assert detector.plan_batches == ([4] if device == "cuda" else [])
    assert [d["image_id"] for d in json.loads(out.read_text())] == [0, 1, 2]


@pytest.mark.parametrize("device, inside", [("cuda", 3), ("cpu", 4)])
def test_torch_threads_leave_the_decoders_their_cores_on_a_gpu(monkeypatch, photos, tmp_path, device, inside):
    """5 cores, 2 decoding threads: on a GPU torch's CPU threads (4) are kept to the 3 cores left while
    the images run, and are 4 again after; on a CPU (the model's own arithmetic) they stay 4."""
    import torch

    monkeypatch.setattr("mmdet_opt.cli.prefetch.process_cores", lambda: 5)
    detector = stand_in(monkeypatch, StandInDetector(device=device))
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        code, _, _ = run_main(["infer", "default", "none", str(photos), "--out", str(tmp_path / "r.json"),
                               "--workers", "2", "--batch", "2"])
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert code == 0 and detector.calls == len(SIZES)
    assert detector.torch_threads == {inside} and after == 4


def test_many_shapes_keep_at_most_two_batches_waiting():
    from mmdet_opt.cli.detect import ShapeBatches

    batches = ShapeBatches(lambda shape: shape, 2)
    images = [np.zeros((h, 8, 3), np.uint8) for h in (1, 2, 3, 4, 2)]
    items = [ImageItem(i, i, f"{i}.png", f"{i}.png") for i in range(5)]
    ran = [[item.index for item, _ in batches.add(item, image)] for item, image in zip(items, images)]
    assert ran == [[], [], [], [0], [1, 4]]  # four shapes waiting: the largest (the first of the tie) runs
    assert [[item.index for item, _ in group] for group in batches.rest()] == [[2], [3]]


def test_groups_left_at_the_end_run_in_the_plans_built_ahead_when_they_fill_half():
    from mmdet_opt.cli.detect import leftover_calls

    def group(*indices):
        return [(ImageItem(i, i, f"{i}.png", f"{i}.png"), None) for i in indices]

    def calls(groups, planned):
        return [([item.index for item, _ in images], plan_batch)
                for images, plan_batch in leftover_calls(groups, 8, planned)]

    groups = [group(3, 5, 9), group(1, 4, 6, 7, 8), group(2)]
    assert calls(groups, planned=True) == [([1, 4, 6, 7, 8], 8), ([2], None), ([3], None), ([5], None),
                                           ([9], None)]  # 3 of 8 slots: cheaper one at a time
    assert calls(groups, planned=False) == [([i], None) for i in range(1, 10)]  # no plans to run them in


def test_ann_gives_the_image_ids_and_categories_of_an_annotation_file(monkeypatch, photos, tmp_path):
    stand_in(monkeypatch, StandInDetector())
    ann = tmp_path / "ann.json"
    images = [{"id": 42, "file_name": "val/scene1.jpg"}, {"id": 7, "file_name": "scene0.png"}]
    ann.write_text(json.dumps({"images": images, "categories": [{"id": 5, "name": "Circle"}]}))
    out = tmp_path / "results.json"
    code, _, stderr = run_main(["infer", "default", "none", str(photos), "--out", str(out), "--device", "cpu",
                                "--ann", str(ann)])
    assert code == 1 and len(lines_naming(stderr, "scene2.png")) == 1  # not in the annotation file
    assert [(d["image_id"], d["category_id"]) for d in json.loads(out.read_text())] == [(7, 5), (42, 5)]
    assert json.loads(Path(images_path(str(out))).read_text())["categories"] == [{"id": 5, "name": "Circle"}]


@pytest.mark.parametrize("config_arg, checkpoint_arg, variant_arg, says", [
    ("nosuch_config.py", "trained", "stock", "config file not found"),
    ("BROKEN", "trained", "stock", "not a readable mmdet config"),
    ("default", "nosuch.pth", "stock", "nosuch.pth"),
    ("default", "trained", "inference_fast", "unknown variant"),
])
def test_bad_arguments_give_one_line_and_exit_code_2(photos, tmp_path, config_arg, checkpoint_arg, variant_arg,
                                                     says):
    if config_arg == "BROKEN":
        config_arg = tmp_path / "broken.py"
        config_arg.write_text("model = dict(\n")
    out = tmp_path / "results.json"
    code, stdout, stderr = run_main(["infer", str(config_arg), checkpoint_arg, str(photos), "--out", str(out),
                                     "--device", "cpu", "--variant", variant_arg])
    assert code == 2
    assert stderr.count("\n") == 1 and says in stderr and stderr.startswith("mmdet-opt infer: error:")
    assert not out.exists()


@pytest.mark.parametrize("command, where, says", [
    ("infer", "folder", "--out {path}: is a folder"),
    ("infer", "under a file", "--out {path}: cannot write there"),
    ("eval", "folder", "--json {path}: is a folder"),
])
def test_an_output_that_cannot_be_written_is_said_before_any_image_runs(monkeypatch, photos, tmp_path, command,
                                                                      where, says):
    detector = stand_in(monkeypatch, StandInDetector())
    if where == "folder":
        path = tmp_path / "results.json"
        path.mkdir()
    else:
        (tmp_path / "notes.txt").write_text("a file, not a folder\n")
        path = tmp_path / "notes.txt" / "results.json"
    given = (["infer", "default", "none", str(photos), "--out", str(path)] if command == "infer" else
             ["eval", "default", "none", "--scenes", "2", "--json", str(path)])
    code, _, stderr = run_main([*given, "--device", "cpu"])
    assert code == 2 and stderr.count("\n") == 1 and says.format(path=path) in stderr, stderr
    assert detector.calls == 0


def test_a_results_file_that_cannot_be_written_is_one_error_and_leaves_no_temporary_file(monkeypatch, tmp_path):
    import errno

    from mmdet_opt.cli.errors import CliError
    from mmdet_opt.cli.results_file import write_json

    (tmp_path / "notes.txt").write_text("a file\n")
    with pytest.raises(CliError, match="cannot write .*notes.txt/out.json"):
        write_json(str(tmp_path / "notes.txt" / "out.json"), [])

    def disk_full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(CliError, match="cannot write .*out.json: No space left on device"):
        write_json(str(tmp_path / "out.json"), [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("pinned, machine, local_world, cores", [
    (16, 16, "1", 16), (16, 16, "4", 4), (4, 16, "4", 4), (3, 16, "8", 3)])
def test_a_process_counts_the_cores_it_is_pinned_to_or_its_share(monkeypatch, pinned, machine, local_world, cores):
    from mmdet_opt.cli import prefetch

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(pinned)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: machine)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", local_world)
    assert prefetch.process_cores() == cores


def test_a_cuda_device_this_machine_does_not_have_is_refused(monkeypatch):
    import torch

    from mmdet_opt.arguments import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda:1") == "cuda:1" and check_device("cuda") == "cuda"
    with pytest.raises(ValueError, match=r"cuda:2: this machine has 2 CUDA devices \(cuda:0 to cuda:1\)"):
        check_device("cuda:2")


def test_no_images_at_all_is_an_error(tmp_path, model_args):
    code, _, stderr = run_main(["infer", *model_args, str(tmp_path), "--out", str(tmp_path / "r.json")])
    assert code == 2 and "no images to run" in stderr and stderr.count("\n") == 1


@pytest.mark.parametrize("command, says", [(None, "infer"), ("infer", "Image ids"), ("eval", "--scenes")])
def test_help(command, says):
    args = [sys.executable, "-m", "mmdet_opt", *([command] if command else []), "--help"]
    done = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode == 0 and says in done.stdout and "usage: mmdet-opt" in done.stdout


def test_the_package_installs_the_command_and_its_progress_bar():
    import importlib
    import re

    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    module, _, function = project["scripts"]["mmdet-opt"].partition(":")
    assert getattr(importlib.import_module(module), function) is main
    assert "tqdm" in {re.split(r"[\[<>=~! ]", requirement)[0] for requirement in project["dependencies"]}


def test_progress_off_a_terminal_is_whole_lines(monkeypatch, capsys):
    """In a log (stderr not a terminal) progress comes as plain lines, so a skipped image's line
    stays whole; a process that shows no progress prints only its notes."""
    from mmdet_opt.cli import progress

    monkeypatch.setattr(progress, "LOGGED_EVERY_S", 0.0)
    shown, hidden = progress.Progress(3, show_bar=True), progress.Progress(3, show_bar=False)
    for p in (shown, hidden):
        p.update()
        p.note("skipped a.jpg: unreadable")
        p.update(2)
        p.close()
    lines = capsys.readouterr().err.splitlines()
    assert "\r" not in "".join(lines) and len(lines) == 4
    assert lines[0].startswith("detect: 1/3 images, ") and lines[2].startswith("detect: 3/3 images, ")
    assert lines[1] == lines[3] == "skipped a.jpg: unreadable"
    assert lines[0].endswith(" images/s") and lines[2].endswith(" images/s")


@pytest.mark.slow  # the model built twice, stock and the variant
def test_eval_prints_stock_and_a_variant_and_writes_the_same_figures(tmp_path, model_args):
    figures = tmp_path / "eval.json"
    code, stdout, stderr = run_main(["eval", *model_args, "--scenes", "2", "--scene-sizes", "64-96",
                                     "--variants", "inference_graph", "--json", str(figures)])
    rows = json.loads(figures.read_text())["variants"]
    assert [row["variant"] for row in rows] == ["inference", "inference_graph"]
    assert rows[1]["runs_as"] != "inference_graph"  # its CPU composition ran
    for row in rows:
        assert 0 <= row["segm_mAP"] <= 1 and 0 <= row["bbox_mAP"] <= 1 and row["images"] == 2
        line = next(line for line in stdout.splitlines() if line.startswith(row["runs_as"] + " "))
        assert f"{row['segm_mAP']:.4f}" in line and f"{row['images_per_s']:.2f}" in line
    stock_line = next(line for line in stdout.splitlines() if line.startswith("inference (stock)"))
    assert stock_line.split()[3] == "-"
    assert code == (1 if outside_tolerance(rows, 0.005) else 0)


def test_eval_on_an_annotation_file_scores_exact_detections_as_perfect(monkeypatch, photos, tmp_path):
    from mmdet_opt.coco_results import encode_mask

    monkeypatch.setattr("mmdet_opt.cli.evaluate.open_detector", lambda *args, **kwargs: StandInDetector())
    images, annotations = [], []
    for i, (w, h) in enumerate(SIZES):  # each image's one object: the quarter the stand-in finds
        mask = np.zeros((h, w), bool)
        mask[: h // 2, : w // 2] = True
        images.append({"id": 10 + i, "file_name": f"scene{i}.{'jpg' if i % 2 else 'png'}", "width": w, "height": h})
        annotations.append({"id": i + 1, "image_id": 10 + i, "category_id": 3, "segmentation": encode_mask(mask),
                            "area": int(mask.sum()), "bbox": [0, 0, w // 2, h // 2], "iscrowd": 0})
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": annotations,
                               "categories": [{"id": 3, "name": "circle"}, {"id": 4, "name": "square"}]}))
    figures = tmp_path / "eval.json"
    code, stdout, _ = run_main(["eval", "default", "none", "--ann", str(ann), "--images", str(photos),
                                "--variants", "inference_raw_mask", "--device", "cpu", "--json", str(figures)])
    assert code == 0 and "within 0.005 of stock's: every variant" in stdout
    rows = json.loads(figures.read_text())["variants"]
    assert [(row["variant"], row["images"], row["bbox_mAP"], row["segm_mAP"]) for row in rows] == [
        ("inference", 3, 1.0, 1.0), ("inference_raw_mask", 3, 1.0, 1.0)]


def test_the_tolerance_is_on_segm_map_against_stock():
    rows = [{"runs_as": "inference", "bbox_mAP": 0.5, "segm_mAP": 0.5, "images_per_s": 1.0},
            {"runs_as": "a", "bbox_mAP": 0.2, "segm_mAP": 0.5049, "images_per_s": 2.0},
            {"runs_as": "b", "bbox_mAP": 0.5, "segm_mAP": 0.4949, "images_per_s": 3.0}]
    assert [row["runs_as"] for row in outside_tolerance(rows, 0.005)] == ["b"]
    text = table(rows)
    assert "-0.3000" in text and "+0.0049" in text and "-0.0051" in text


def test_scenes_are_written_at_their_own_sizes(tmp_path):
    ann = json.loads(Path(write_heldout_scenes(3, str(tmp_path), (64, 128), processes=2)).read_text())
    assert [img["id"] for img in ann["images"]] == [0, 1, 2]
    for img in ann["images"]:
        assert (img["width"], img["height"]) == heldout_size(img["id"], (64, 128))
        assert 64 <= min(img["width"], img["height"]) <= 128
        assert cv2.imread(str(tmp_path / img["file_name"])).shape[:2] == (img["height"], img["width"])
    assert len({(img["width"], img["height"]) for img in ann["images"]}) == 3
    assert {a["image_id"] for a in ann["annotations"]} == {0, 1, 2}
    assert [a["id"] for a in ann["annotations"]] == list(range(1, len(ann["annotations"]) + 1))


def test_decoding_keeps_order_reports_errors_in_place_and_stays_bounded():
    decoding, most = set(), [0]
    lock = threading.Lock()

    def load(path):
        with lock:
            decoding.add(path)
        time.sleep(0.01)
        if path == "3":
            raise ImageInputError("3: cannot decode")
        return path

    items = [ImageItem(i, i, str(i), str(i)) for i in range(10)]
    decoded = DecodeAhead(items, load, workers=2, ahead=3)
    seen = []
    for item, image, error in decoded:
        with lock:
            most[0] = max(most[0], len(decoding) - len(seen))
        seen.append((item.path, image, error))
    assert seen == [(str(i), None, "3: cannot decode") if i == 3 else (str(i), str(i), None) for i in range(10)]
    assert most[0] <= 3  # never more than `ahead` started and not yet handed over
    assert decoded.waited > 0


def test_image_ids_from_an_annotation_file(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (tmp_path / name).write_bytes(b"")
    found, problems = find_images([str(tmp_path)])
    assert [name for _, name in found] == ["a.jpg", "b.jpg", "c.jpg"] and not problems
    dataset = {"images": [{"id": 17, "file_name": "val/b.jpg"}, {"id": 4, "file_name": "a.jpg"}]}
    items, unlisted = items_by_annotation(found, dataset)
    assert [(item.image_id, item.file_name) for item in items] == [(4, "a.jpg"), (17, "b.jpg")]
    assert len(unlisted) == 1 and "c.jpg" in unlisted[0]


def test_category_ids_follow_names_as_mmdet_reads_them():
    classes = ("person", "sports ball", "stop sign")
    assert category_ids(classes, [{"id": 13, "name": "stop_sign"}, {"id": 37, "name": "sports ball"}]) == [
        None, 37, 13]
    assert category_ids(classes, [{"id": 5, "name": "cat"}]) == [1, 2, 3]  # no name in common
    assert category_ids(classes, None) == [1, 2, 3]


@pytest.mark.slow  # three processes, each importing mmdet and building the model
def test_two_processes_under_torchrun_write_the_single_process_file(photos, tmp_path, model_args):
    command = ["-m", "mmdet_opt", "infer", *model_args, str(photos), "--batch", "2", "--workers", "1"]
    # The same environment for both runs: one thread each, so the arithmetic is the same.
    single = subprocess.run([sys.executable, *command, "--out", str(tmp_path / "single.json")],
                            capture_output=True, text=True, env=_env(), timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run([*torchrun, *command, "--out", str(tmp_path / "two.json")],
                          capture_output=True, text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(2 processes" in done.stdout
    assert (tmp_path / "two.json").read_bytes() == (tmp_path / "single.json").read_bytes()
    assert (tmp_path / "two.images.json").read_bytes() == (tmp_path / "single.images.json").read_bytes()
    assert json.loads((tmp_path / "two.json").read_text())  # not two empty files


def _env() -> dict:
    src = str(Path(mmdet_opt.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1"}
