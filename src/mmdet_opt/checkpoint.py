"""Load a real checkpoint safely: tensors only, keys and shapes checked against the model."""
from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch


class CheckpointError(ValueError):
    """The checkpoint cannot be used: unsafe, unreadable, or made for another model."""


def _summary(names, limit=8):
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def _is_torch_file(path: Path) -> bool:
    """What torch.save writes: a zip archive, or (before torch 1.6) a pickle stream."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    """(state_dict, meta) from an mmdet/PyTorch checkpoint, without executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not _is_torch_file(path):
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (neither the zip archive nor the "
                              f"pickle that torch.save writes)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):  # damaged, rather than carrying code
            raise CheckpointError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0]}") from None
        raise CheckpointError(
            f"refusing {path}: it needs arbitrary pickled code to load, and checkpoints are "
            f"loaded with weights_only=True (tensors and plain containers only). "
            f"Re-save it as a plain state_dict. Detail: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # a truncated or damaged zip archive, ...
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state_dict")
    state = obj.get("state_dict", obj.get("model", obj))
    meta = obj.get("meta") or {}
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{path} has no state_dict of tensors")
    # Weights saved from a DataParallel wrapper carry a "module." prefix.
    state = {re.sub(r"^module\.", "", k): v for k, v in state.items()}
    return state, meta


def load_state_dict(model: torch.nn.Module, path: str | os.PathLike) -> dict:
    """Load ``path`` into ``model`` strictly; return the checkpoint's meta dict."""
    state, meta = read_checkpoint(path)
    expected = model.state_dict()
    missing = expected.keys() - state.keys()
    unexpected = state.keys() - expected.keys()
    wrong_shape = [f"{k} {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
                   for k in expected.keys() & state.keys() if state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_summary(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_summary(unexpected)}")
    if wrong_shape:
        problems.append(f"{len(wrong_shape)} shape mismatches: {_summary(wrong_shape)}")
    if problems:
        raise CheckpointError(f"checkpoint {path} does not fit the model config: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)
    return meta if isinstance(meta, dict) else {}
