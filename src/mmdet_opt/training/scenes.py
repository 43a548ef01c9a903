"""Seeded instance-segmentation scenes: flat shapes on noisy backgrounds, with exact masks.

A scene holds 8 to 30 objects of six shape classes, each standing for one COCO class so the
model keeps mmdet's 80-class head (the pairing is arbitrary). Objects are painted in order, so
later ones occlude earlier ones; each mask is the object's *visible* part, and objects left with
a tiny visible area are dropped from the annotations.

Sizes are fractions of the image's short side, so a scene looks the same at any resolution: a
3840x2304 scene resized by the test pipeline to 1333x800 is the same kind of picture as a
1333x800 one. An object's diameter is log-uniform between 24/512 and 0.4 of the short side
(24 to 205 px at 512x512). At the test scale (short side 800) the model sees objects 1.56 times
larger than at 512, so training scenes use ``zoom`` (sizes times U(0.8, 1.6)) to cover that.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SHAPES = ("circle", "rectangle", "triangle", "ellipse", "star", "ring")
# 0-based indices in mmdet's COCO class order (mmdet.core.get_classes("coco")).
COCO_NAMES = ("sports_ball", "book", "kite", "frisbee", "stop_sign", "donut")
LABELS = (32, 73, 33, 29, 11, 54)

TRAIN_SIZE = (512, 512)
# Of the short side: 24 px at 512, so a compact shape's box (about 20x20) overlaps the smallest
# RPN anchor (32x32) with IoU >= 0.3, which the RPN's assigner needs to give it a positive anchor.
MIN_DIAMETER = 24 / 512
MAX_DIAMETER = 0.4
OBJECTS = (8, 30)
MIN_VISIBLE = (8 / 512) ** 2  # of the short side squared: smaller visible parts are dropped
MIN_VISIBLE_FRACTION = 0.1  # of the object's own area
# Seed streams: training and held-out scenes never share a seed; held-out sizes have their own.
TRAIN_STREAM, HELDOUT_STREAM, HELDOUT_SIZE_STREAM = 0, 1, 2
HELDOUT_SHORT_SIDES = (480, 1600)


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) uint8 BGR
    masks: np.ndarray  # (N, H, W) bool, the visible part of each object
    labels: np.ndarray  # (N,) int64, 0-based mmdet class indices
    boxes: np.ndarray  # (N, 4) float32 x1 y1 x2 y2, tight: x2 = last mask column + 1

    def __len__(self) -> int:
        return len(self.labels)


def training_scene(seed: int, index: int, size=TRAIN_SIZE, zoom=(0.8, 1.6)) -> Scene:
    rng = np.random.default_rng(np.random.SeedSequence([TRAIN_STREAM, seed, index]))
    return draw_scene(rng, size, zoom=rng.uniform(*zoom))


def heldout_scene(index: int, size=TRAIN_SIZE) -> Scene:
    """A scene from a seed space disjoint from training's."""
    return draw_scene(np.random.default_rng(np.random.SeedSequence([HELDOUT_STREAM, index])), size)


def heldout_size(index: int, short_sides=HELDOUT_SHORT_SIDES) -> tuple[int, int]:
    """A seeded (w, h) of its own for held-out scene ``index``, as photos come: the short side
    log-uniform in ``short_sides``, the long side 1 to 1.8 times it, landscape or portrait."""
    rng = np.random.default_rng(np.random.SeedSequence([HELDOUT_SIZE_STREAM, index]))
    short = int(round(np.exp(rng.uniform(np.log(short_sides[0]), np.log(short_sides[1])))))
    long = int(round(short * rng.uniform(1.0, 1.8)))
    return (long, short) if rng.random() < 0.7 else (short, long)


def draw_scene(rng, size=TRAIN_SIZE, zoom: float = 1.0) -> Scene:
    """A scene of ``size`` (w, h) from a numpy Generator, a SeedSequence or an int seed."""
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    w, h = size
    short = min(w, h)
    image = background(rng, w, h)
    owner = np.full((h, w), -1, np.int32)  # which object is on top at each pixel
    labels, areas = [], []
    for k in range(rng.integers(OBJECTS[0], OBJECTS[1] + 1)):
        shape = int(rng.integers(len(SHAPES)))
        diameter = min(np.exp(rng.uniform(np.log(MIN_DIAMETER), np.log(MAX_DIAMETER))) * zoom, 0.55) * short
        centre = rng.uniform((0, 0), (w, h))
        mask = shape_mask(rng, SHAPES[shape], centre, diameter / 2, w, h)
        if not mask.any():
            continue
        paint(rng, image, mask)
        owner[mask] = k
        labels.append(LABELS[shape])
        areas.append(int(mask.sum()))
    finish(rng, image, short)

    visible = np.bincount(owner.ravel() + 1, minlength=len(labels) + 1)[1:]
    keep = [k for k in range(len(labels))
            if visible[k] >= max(MIN_VISIBLE * short * short, MIN_VISIBLE_FRACTION * areas[k])]
    masks = owner[None] == np.asarray(keep, np.int32).reshape(-1, 1, 1)
    labels = np.asarray(labels, np.int64)[keep].reshape(-1)
    return Scene(as_uint8(image), masks, labels, tight_boxes(masks))


def tight_boxes(masks: np.ndarray) -> np.ndarray:
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        boxes[i] = cols[0], rows[0], cols[-1] + 1, rows[-1] + 1
    return boxes


def background(rng, w: int, h: int) -> np.ndarray:
    """A flat colour or a linear gradient between two colours, as float32 BGR."""
    c0 = rng.uniform(0, 255, 3).astype(np.float32)
    if rng.random() < 0.4:
        return np.broadcast_to(c0, (h, w, 3)).copy()
    c1 = rng.uniform(0, 255, 3).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = xx * np.cos(angle) / w + yy * np.sin(angle) / h
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    return c0 + t[..., None] * (c1 - c0)


def shape_mask(rng, shape: str, centre, r: float, w: int, h: int) -> np.ndarray:
    """The shape's full mask (clipped to the image) with bounding radius ``r``, randomly rotated."""
    angle = rng.uniform(0, 2 * np.pi)
    hole = None
    if shape == "circle":
        pts = ellipse(r, r)
    elif shape == "ellipse":
        pts = ellipse(r, r * rng.uniform(0.35, 0.75))
    elif shape == "rectangle":
        aspect = rng.uniform(0.3, 1.0)
        a = r / np.hypot(1, aspect)
        b = a * aspect
        pts = np.array([(-a, -b), (a, -b), (a, b), (-a, b)])
    elif shape == "triangle":
        t = np.array([0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(-0.35, 0.35, 3)
        pts = r * rng.uniform(0.8, 1.0, (3, 1)) * np.stack([np.cos(t), np.sin(t)], 1)
    elif shape == "star":
        points = int(rng.integers(5, 9))
        t = np.arange(2 * points) * np.pi / points
        radius = np.where(np.arange(2 * points) % 2 == 0, r, r * rng.uniform(0.4, 0.6))
        pts = radius[:, None] * np.stack([np.cos(t), np.sin(t)], 1)
    elif shape == "ring":
        b = r * rng.uniform(0.7, 1.0)
        pts = ellipse(r, b)
        hole = pts * rng.uniform(0.45, 0.7)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [fixed_point(pts, angle, centre)], 1, lineType=cv2.LINE_8, shift=4)
    if hole is not None:
        cv2.fillPoly(mask, [fixed_point(hole, angle, centre)], 0, lineType=cv2.LINE_8, shift=4)
    return mask.view(bool)


def ellipse(a: float, b: float) -> np.ndarray:
    n = int(np.clip(a, 16, 256))  # enough vertices that the outline looks round at any size
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([a * np.cos(t), b * np.sin(t)], 1)


def fixed_point(pts: np.ndarray, angle: float, centre) -> np.ndarray:
    """Rotate, translate, and convert to cv2's 4-bit fixed point (sub-pixel vertices)."""
    c, s = np.cos(angle), np.sin(angle)
    rotated = pts @ np.array([[c, s], [-s, c]]) + np.asarray(centre)
    return np.round(rotated * 16).astype(np.int32)


def paint(rng, image: np.ndarray, mask: np.ndarray) -> None:
    """Fill the mask with a colour that stands out from what is under it, with a light gradient."""
    under = image[mask].mean(0)
    for _ in range(10):
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        if np.abs(colour - under).sum() > 90:
            break
    ys, xs = np.nonzero(mask)
    shade = rng.uniform(-40, 40, 2) / max(np.ptp(xs) + np.ptp(ys), 1)
    image[ys, xs] = colour + ((xs - xs.mean()) * shade[0] + (ys - ys.mean()) * shade[1])[:, None]


def finish(rng, image: np.ndarray, short: int) -> None:
    """Optional blur (soft edges, as a downscaled photo has) and sensor-like noise, in place."""
    if rng.random() < 0.5:
        sigma = rng.uniform(0.3, 1.0) * short / 512
        cv2.GaussianBlur(image, (0, 0), sigma, dst=image)
    image += rng.standard_normal(image.shape, dtype=np.float32) * rng.uniform(2, 12)


def as_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(image, 0, 255).astype(np.uint8)
