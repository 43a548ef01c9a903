"""The names of a model's classes, from where mmdet keeps them, never guessed.

In order: the checkpoint's ``meta["CLASSES"]``; the config's ``data.test.classes``; the
``CLASSES`` of the config's test dataset type (``CocoDataset``: COCO's 80). A list from the
checkpoint or the config that does not have one name per class of the model's head is refused
(``ClassNamesError``); a dataset type's own list of another length (a COCO config retrained for 3
classes, say), or no dataset at all, gives numbered names: ``class_0``, ``class_1``, ...
"""
from __future__ import annotations


class ClassNamesError(ValueError):
    """The class names the checkpoint or config gives do not fit the model's head."""


def head_classes(model) -> int:
    """How many classes the model's box head scores (the last stage's, for a cascade)."""
    from torch import nn

    head = model.roi_head.bbox_head
    return (head[-1] if isinstance(head, nn.ModuleList) else head).num_classes


def numbered(num_classes: int) -> tuple[str, ...]:
    return tuple(f"class_{i}" for i in range(num_classes))


def class_names(cfg, meta: dict | None, num_classes: int) -> tuple[str, ...]:
    """The model's class names (see the module docstring)."""
    given = (meta or {}).get("CLASSES")
    source = "the checkpoint's meta CLASSES"
    if given is None:
        given, source = _config_classes(cfg), "the config's data.test.classes"
    if given is None:
        default = _dataset_classes(cfg)
        return tuple(default) if default is not None and len(default) == num_classes else numbered(num_classes)
    if len(given) != num_classes:
        raise ClassNamesError(f"{source} lists {len(given)} classes, but the model's head has {num_classes}")
    return tuple(given)


def _test_dataset(cfg) -> dict | None:
    test = cfg.get("data", {}).get("test") if hasattr(cfg, "get") else None
    return test if hasattr(test, "get") else None  # a list (several test sets) names no one dataset


def _config_classes(cfg):
    import mmcv

    test = _test_dataset(cfg)
    classes = test.get("classes") if test is not None else None
    if isinstance(classes, str):  # mmdet reads a file of names, one a line
        return tuple(mmcv.list_from_file(classes))
    return classes


def _dataset_classes(cfg):
    from mmdet.datasets import DATASETS

    test = _test_dataset(cfg)
    dataset = DATASETS.get(test.get("type")) if test is not None and isinstance(test.get("type"), str) else None
    return getattr(dataset, "CLASSES", None)
