"""Train mmdet's Mask R-CNN R50-FPN on synthetic scenes, over the seeded calibrated weights.

Only some tensors are trained (``is_trained``): backbone stem/layer1/layer2, every BatchNorm's
affine parameters, FPN, RPN head, RoI bbox head except fc6, mask head. Layer3/layer4 convs and
fc6 keep their seeded values, so the checkpoint holds only the trained tensors (in fp16, ~20 MB,
small enough to commit) and the rest is rebuilt from the seed bit for bit. BatchNorm stays in
eval mode (mmdet's norm_eval) with the calibrated running statistics. See docs/training.md.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ..coco_results import evaluate
from ..download import sha256_of
from .coco import heldout_split
from .scenes import training_scene

# Frozen at their seeded values (BatchNorm affine parameters inside them are trained anyway).
FROZEN = ("backbone.layer3.", "backbone.layer4.", "roi_head.bbox_head.shared_fcs.0.")
CHECKPOINT = "trained_heads.pth"
MANIFEST = "manifest.json"
WARMUP_ITERS, WARMUP_RATIO = 200, 0.001
WARMUP_FRACTION = 0.05  # of the run: the warm-up ends by then, however few iterations it made
MOMENTUM, WEIGHT_DECAY, CLIP_NORM = 0.9, 1e-4, 35.0
PROGRESS_SECONDS = 20.0
CURVE_EVERY = 25  # iterations per loss-curve point


def build_training_model(seed: int, device: str, rois: int | None = None):
    """The seeded calibrated detector, rebuilt with the config's train_cfg, in train mode.

    ``rois``: RoIs sampled per image for the RoI heads (the config's 512 when None).
    """
    from mmdet.models import build_detector as mmdet_build_detector

    from ..config import load_config
    from ..detector import build_detector

    base = build_detector(seed=seed)
    cfg = load_config(training=True)
    if rois is not None:
        cfg.model.train_cfg.rcnn.sampler.num = rois
    model = mmdet_build_detector(cfg.model)
    model.load_state_dict(base.state_dict(), strict=True)
    model.CLASSES, model.cfg = base.CLASSES, base.cfg
    model.backbone.frozen_stages = -1  # else ResNet.train() freezes the stem and layer1 again
    restart_logit_layers(model, seed)
    trained = trained_names(model)
    for name, p in model.named_parameters():
        p.requires_grad_(name in trained)
    return model.to(device).train()


def continue_from(model, init: str, seed: int) -> dict:
    """Load an earlier run's checkpoint (a path or ``trained``) over the seeded training model, and
    say what it was: the checkpoint, its sha256, the iterations already in it. It must have been
    trained over the same seed with the same frozen tensors, or the two runs would not add up."""
    from ..checkpoint import CheckpointError, base_seed, load_state_dict, read_checkpoint, resolve_checkpoint

    path = resolve_checkpoint(init)
    state, meta = read_checkpoint(path)
    if base_seed(meta, path) != seed:
        raise CheckpointError(f"--init {init}: trained over seed {base_seed(meta, path)}, not --seed {seed}")
    if meta.get("frozen") != list(FROZEN):
        raise CheckpointError(f"--init {init}: its frozen tensors {meta.get('frozen')} are not this "
                              f"recipe's {list(FROZEN)}")
    load_state_dict(model, path, state, meta)
    return {"checkpoint": init, "sha256": sha256_of(path),
            "iterations_total": int(meta.get("iterations", 0))}


@torch.no_grad()
def restart_logit_layers(model, seed: int) -> None:
    """The calibrated logit layers (``detector.CALIBRATION``) back to a plain small init.

    Calibration scales them up ~50x so untrained outputs look decisive; as a starting point for
    training that means confidently wrong logits (a classification loss of ~15, not log 81).
    """
    from ..detector import CALIBRATION

    g = torch.Generator().manual_seed(seed)
    for name, _ in CALIBRATION:
        layer = model.get_submodule(name)
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * 0.01)
        layer.bias.zero_()


def trained_names(model) -> set[str]:
    bn = {f"{m}.{p}" for m, mod in model.named_modules()
          if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) for p, _ in mod.named_parameters()}
    return {name for name, _ in model.named_parameters() if name in bn or not name.startswith(FROZEN)}


class Scenes(torch.utils.data.Dataset):
    """Training scene ``i`` of run seed ``seed``, with its masks as one (H, W) int16 index map.

    The map (object index, -1 for background) is 1/N the size of the masks: it is what crosses
    from the worker processes and onto the device, where the masks are made again.
    """

    def __init__(self, seed: int, size: tuple[int, int], length: int):
        self.seed, self.size, self.length = seed, size, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        scene = training_scene(self.seed, index, self.size)
        index_map = np.full(scene.image.shape[:2], -1, np.int16)
        for k, m in enumerate(scene.masks):  # visible masks never overlap
            index_map[m] = k
        return scene.image, scene.boxes, scene.labels, index_map


class DeviceMasks:
    """The part of mmdet's BitmapMasks that mask_target uses, with the masks on the device.

    BitmapMasks holds numpy masks and copies all of them to the device for every image; here
    they are made on the device from the index map and only the positives' masks are sampled.
    """

    def __init__(self, index_map: torch.Tensor, count: int):
        self.height, self.width = index_map.shape
        self.masks = index_map[None] == torch.arange(count, device=index_map.device).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.masks)

    def crop_and_resize(self, bboxes, out_shape, inds, device="cpu", interpolation="bilinear", binarize=True):
        from mmcv.ops import roi_align
        from mmdet.core import BitmapMasks

        bboxes = torch.as_tensor(bboxes, device=device)
        inds = torch.as_tensor(inds, device=device)
        rois = torch.cat([torch.arange(len(bboxes), device=device, dtype=bboxes.dtype)[:, None], bboxes], 1)
        masks = self.masks.index_select(0, inds).to(bboxes.dtype)[:, None]
        targets = roi_align(masks, rois, out_shape, 1.0, 0, "avg", True).squeeze(1)
        return BitmapMasks(((targets >= 0.5) if binarize else targets).cpu().numpy(), *out_shape)


def _worker_init(_):
    import cv2

    cv2.setNumThreads(1)  # the workers are the parallelism


def scene_loader(seed, size, batch, workers, length):
    return torch.utils.data.DataLoader(
        Scenes(seed, size, length), batch_size=batch, shuffle=False, num_workers=workers,
        collate_fn=list, persistent_workers=workers > 0, prefetch_factor=4 if workers else None,
        worker_init_fn=_worker_init,
        # A forked worker can inherit a lock held by one of OpenCV's threads and hang in cv2.
        multiprocessing_context="spawn" if workers else None)


def normalise(images: list[np.ndarray], cfg, device) -> torch.Tensor:
    """BGR uint8 (H, W, 3) images -> the (B, 3, H, W) float batch the config's Normalize makes."""
    norm = cfg.img_norm_cfg
    x = torch.from_numpy(np.stack(images)).to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    if norm.get("to_rgb", True):
        x = x.flip(1)
    mean = torch.tensor(norm["mean"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(norm["std"], device=device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


def image_metas(n: int, h: int, w: int) -> list[dict]:
    shape = (h, w, 3)
    return [dict(img_shape=shape, ori_shape=shape, pad_shape=shape, scale_factor=np.ones(4, np.float32),
                 flip=False, flip_direction=None, batch_input_shape=(h, w)) for _ in range(n)]


def lr_at(base_lr: float, iteration: int, progress: float, warmup: int = WARMUP_ITERS) -> float:
    """Linear warm-up over ``warmup`` iterations or the first WARMUP_FRACTION of the run, whichever
    ends first, times a cosine from 1 to 0 over ``progress`` in [0, 1].

    The fraction bounds a slow run's warm-up: a 3.5-minute H100 run that made 86 iterations never
    left a 200-iteration warm-up (peak lr 0.0018 of 0.02).
    """
    warm = min(1.0, max((iteration + 1) / max(warmup, 1), progress / WARMUP_FRACTION))
    return base_lr * (WARMUP_RATIO + (1 - WARMUP_RATIO) * warm) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def train(args) -> dict:
    _set_up_torch(args.seed)
    w, h = args.size
    model = build_training_model(args.seed, args.device, args.rois)
    before = continue_from(model, args.init, args.seed) if args.init is not None else None
    params = [p for p in model.parameters() if p.requires_grad]
    print(f"trainable: {sum(p.numel() for p in params) / 1e6:.2f}M parameters in {len(params)} tensors "
          f"(of {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M)", flush=True)
    optimizer = torch.optim.SGD(params, lr=args.lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    length = args.batch * (args.iters if args.iters is not None else 10 ** 7)
    loader = scene_loader(args.seed, (w, h), args.batch, args.workers, length)
    iteration, train_minutes, data_wait, curve = _train_loop(model, optimizer, params, loader, args)
    del loader  # stops the persistent workers
    model.eval()
    _round_trained_to_fp16(model)
    return dict(model=model, iterations=iteration, train_minutes=train_minutes, curve=curve, init=before,
                data_wait_fraction=round(data_wait / max(train_minutes * 60, 1e-9), 3))


def _set_up_torch(seed: int) -> None:
    torch.manual_seed(seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    # Off: the images have one size, but the mask head sees a different number of positive RoIs at
    # every iteration, and autotuning reruns for each new count. With it on, a 3.5-minute H100 run
    # made 0.4-0.7 it/s while scenes came 10x faster than that (docs/training.md).
    torch.backends.cudnn.benchmark = False


def _train_loop(model, optimizer, params, loader, args) -> tuple:
    """Steps until --iters are done or --minutes have passed: the iterations, the minutes they took,
    the seconds spent waiting for scenes, and the loss curve."""
    budget = args.minutes * 60 if args.iters is None else None
    # A short fixed-length run (a test, a trial) warms up over its first quarter at most.
    warmup = WARMUP_ITERS if args.iters is None else min(WARMUP_ITERS, args.iters // 4)
    curve = _LossCurve()
    iteration, start, data_wait = 0, None, 0.0
    batches = iter(loader)
    while True:
        asked = time.perf_counter()
        batch = next(batches, None)
        if batch is None:
            break
        if start is None:
            start = curve.start = time.perf_counter()  # the clock starts once the workers are up
        else:
            data_wait += time.perf_counter() - asked  # the step waited for scenes this long
        elapsed = time.perf_counter() - start
        progress = elapsed / budget if budget else iteration / args.iters
        if progress >= 1.0:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr_at(args.lr, iteration, progress, warmup)
        loss, terms = _step(model, optimizer, params, batch, args.size, args.device)
        iteration += 1
        curve.add(iteration, loss, terms, optimizer.param_groups[0]["lr"], data_wait, done=iteration == args.iters)
    train_minutes = (time.perf_counter() - (start or time.perf_counter())) / 60
    curve.finish(iteration, train_minutes)
    return iteration, train_minutes, data_wait, curve.points


def _step(model, optimizer, params, batch: list, size: tuple, device) -> tuple:
    """One SGD step on a batch of scenes: the total loss, and each loss term by name."""
    w, h = size
    images, boxes, labels, index_maps = zip(*batch)
    maps = torch.from_numpy(np.stack(index_maps)).to(device, non_blocking=True)
    losses = model.forward_train(
        normalise(images, model.cfg, device), image_metas(len(images), h, w),
        [torch.from_numpy(b).to(device) for b in boxes], [torch.from_numpy(lb).to(device) for lb in labels],
        gt_masks=[DeviceMasks(m, len(lb)) for m, lb in zip(maps, labels)])
    terms = {k: sum(x.mean() for x in v) if isinstance(v, list) else v.mean()
             for k, v in losses.items() if "loss" in k}
    loss = sum(terms.values())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, CLIP_NORM)
    optimizer.step()
    return loss, terms


class _LossCurve:
    """The loss curve, a point (iteration, minutes, mean loss) every CURVE_EVERY iterations, and a
    progress line every PROGRESS_SECONDS; ``start`` is when the first batch came."""

    def __init__(self):
        self.points, self.window, self.last_print, self.start = [], [], 0.0, None

    def add(self, iteration: int, loss, terms: dict, lr: float, data_wait: float, done: bool) -> None:
        self.window.append(torch.stack([loss.detach(), *[t.detach() for t in terms.values()]]))
        if len(self.window) < CURVE_EVERY and not done and not self._print_due():
            return
        means = torch.stack(self.window).mean(0).tolist()  # one sync per window
        self.window.clear()
        if not math.isfinite(means[0]):
            raise RuntimeError(f"loss is {means[0]} at iteration {iteration}: lower --lr")
        minutes = (time.perf_counter() - self.start) / 60
        self.points.append([iteration, round(minutes, 3), round(means[0], 4)])
        if self._print_due() or done:
            self.last_print = time.perf_counter() - self.start
            parts = " ".join(f"{k.replace('loss_', '')} {v:.3f}" for k, v in zip(terms, means[1:]))
            print(f"it {iteration:5d}  {minutes:5.2f} min  {iteration / (minutes * 60):5.2f} it/s  "
                  f"loss {means[0]:.3f} ({parts})  lr {lr:.5f}  "
                  f"waiting for scenes {data_wait / (minutes * 60):.0%}", flush=True)

    def finish(self, iteration: int, train_minutes: float) -> None:
        if self.window:  # the iterations since the last point (a time-budget run ends mid-window)
            mean = torch.stack(self.window).mean(0)[0].item()
            self.points.append([iteration, round(train_minutes, 3), round(mean, 4)])

    def _print_due(self) -> bool:
        return time.perf_counter() - self.start - self.last_print > PROGRESS_SECONDS


def _round_trained_to_fp16(model) -> None:
    """Evaluate what the fp16 checkpoint holds, not the fp32 weights."""
    trained = trained_names(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in trained:
                p.copy_(p.half())


@torch.no_grad()
def predict(model, images: list[np.ndarray], device, batch: int = 8) -> list:
    """mmdet results at the images' own size (as in training): no resize, full-image masks."""
    model.eval()
    results = []
    for i in range(0, len(images), batch):
        chunk = images[i:i + batch]
        h, w = chunk[0].shape[:2]
        results += model.simple_test(normalise(chunk, model.cfg, device), image_metas(len(chunk), h, w),
                                     rescale=True)
    return results


def predict_stock(model, images: list[np.ndarray]) -> list:
    """mmdet's own inference_detector: the test pipeline's resize to its test scale, as parity uses."""
    from mmdet.apis import inference_detector

    return [inference_detector(model, image) for image in images]


def save_checkpoint(model, out: Path, meta: dict) -> dict:
    trained = trained_names(model)
    state = {k: (v.detach().half() if v.is_floating_point() else v.detach()).cpu()
             for k, v in model.state_dict().items() if k in trained}
    path = out / CHECKPOINT
    torch.save({"state_dict": state, "meta": meta}, path)
    data = path.read_bytes()
    return {"file": CHECKPOINT, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
            "tensors": len(state), "parameters": sum(v.numel() for v in state.values())}


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def run(args) -> dict:
    import mmcv
    import mmdet

    from ..config import DEFAULT_CONFIG

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    done = train(args)
    model = done["model"]
    evaluation = {}
    if args.eval_images:
        scenes, dataset = heldout_split(args.eval_images, tuple(args.size))
        evaluation[f"heldout_{args.size[0]}x{args.size[1]}"] = dict(
            images=args.eval_images, path="simple_test at the scene's own size",
            **evaluate(dataset, predict(model, [s.image for s in scenes], args.device)))
    if args.eval_stock:
        scenes, dataset = heldout_split(args.eval_stock, (1333, 800))
        evaluation["heldout_1333x800"] = dict(
            images=args.eval_stock, path="mmdet inference_detector (the config's test pipeline)",
            **evaluate(dataset, predict_stock(model, [s.image for s in scenes])))
    for name, scores in evaluation.items():
        print(f"{name}: " + "  ".join(f"{k} {v:.3f}" for k, v in scores.items() if isinstance(v, float)),
              flush=True)
    before = done["init"]
    total = done["iterations"] + (before["iterations_total"] if before else 0)
    meta = {"base": {"seed": args.seed}, "config": DEFAULT_CONFIG, "iterations": total,
            "frozen": list(FROZEN)}
    checkpoint = save_checkpoint(model, out, meta)
    print(f"checkpoint: {out / CHECKPOINT}, {checkpoint['bytes'] / 2 ** 20:.1f} MiB, "
          f"{checkpoint['parameters'] / 1e6:.2f}M parameters in {checkpoint['tensors']} tensors", flush=True)
    manifest = {
        "config": DEFAULT_CONFIG, "seed": args.seed, "iterations": done["iterations"],
        "iterations_total": total, "init": before, "batch": args.batch,
        "lr": args.lr, "rois": args.rois, "size": list(args.size),
        "minutes_budget": args.minutes if args.iters is None else None,
        "train_minutes": round(done["train_minutes"], 3), "data_wait_fraction": done["data_wait_fraction"],
        "total_minutes": round((time.time() - started) / 60, 3),
        "workers": args.workers, "device": device_name(args.device), "torch": torch.__version__,
        "mmdet": mmdet.__version__, "mmcv": mmcv.__version__,
        "recipe": {"optimizer": "SGD", "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY, "clip_norm": CLIP_NORM,
                   "warmup_iters": WARMUP_ITERS, "schedule": "cosine to 0 over " + (
                       "the time budget" if args.iters is None else "the iterations"), "tf32": True,
                   "frozen": list(FROZEN), "batchnorm": "eval mode, affine trained"},
        "evaluation": evaluation, "loss_curve": {"columns": ["iteration", "minutes", "loss"], "points": done["curve"]},
        "checkpoint": checkpoint,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
