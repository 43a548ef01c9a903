"""Load a real checkpoint safely: tensors only, keys and shapes checked against the model.

A checkpoint is named by a local path or an http(s) URL (``resolve_checkpoint``). A URL is
downloaded once into ``~/.cache/mmdet-opt/checkpoints/`` (under ``$XDG_CACHE_HOME`` when set) and
verified: against ``URL#sha256=<64 hex digits>`` when given, else against the sha256 prefix that
mmdet (like torch.hub) puts in its file names, ``name_YYYYMMDD_hhmmss-<8 hex digits>.pth``.
The name ``trained`` is the project's own checkpoint, committed in the package (``TRAINED``).

A *partial* checkpoint (what ``python -m mmdet_opt.training`` writes) has ``meta["base"] =
{"seed": S}``: it holds only the trained tensors, loaded over the synthetic weights of seed S.
"""
from __future__ import annotations

import os
import pickle
import re
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import torch

from .download import DownloadError, fetch, sha256_of
from .user_cache import user_cache_dir

URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
NAME_HASH = re.compile(r"-([0-9a-f]{8})\.pth$")  # the first 8 hex digits of the file's sha256
FRAGMENT_HASH = re.compile(r"sha256=([0-9a-fA-F]{64})")
TRAINED_NAME = "trained"
TRAINED = Path(__file__).parent / "training" / "trained" / "trained_heads.pth"


class CheckpointError(ValueError):
    """The checkpoint cannot be used: unsafe, unreadable, made for another model, or not downloadable."""


@dataclass(frozen=True)
class CheckpointURL:
    """A checkpoint to download: the URL (without its #fragment), its file name, what to check it by."""

    url: str
    name: str
    sha256: str | None = None
    sha256_prefix: str | None = None

    @classmethod
    def parse(cls, spec: str) -> CheckpointURL:
        try:
            parts = urllib.parse.urlsplit(spec)
        except ValueError as exc:
            raise CheckpointError(f"{spec!r} is not a valid URL ({exc})") from None
        if parts.scheme.lower() not in ("http", "https"):
            raise CheckpointError(f"{spec!r}: only http:// and https:// URLs can be downloaded")
        if not parts.hostname:
            raise CheckpointError(f"{spec!r} names no host")
        if any(c.isspace() or not c.isprintable() for c in spec):
            raise CheckpointError(f"{spec!r}: a URL cannot contain spaces or control characters")
        name = Path(urllib.parse.unquote(parts.path)).name
        if name in ("", ".", ".."):
            raise CheckpointError(f"{spec!r} names no file: its path must end in the checkpoint's file name")
        sha256 = None
        if parts.fragment:
            m = FRAGMENT_HASH.fullmatch(parts.fragment)
            if m is None:
                raise CheckpointError(f"{spec!r}: the only fragment understood is #sha256=<64 hex digits>, "
                                      f"not #{parts.fragment}")
            sha256 = m.group(1).lower()
        m = NAME_HASH.search(name)
        return cls(url=urllib.parse.urlunsplit(parts._replace(fragment="")), name=name, sha256=sha256,
                   sha256_prefix=m.group(1) if m else None)

    @property
    def cache_path(self) -> Path:
        return user_cache_dir("checkpoints") / self.name

    def fetch(self) -> Path:
        """The cached file, downloaded and verified first if it is not there yet."""
        cached = self.cache_path.is_file()
        try:
            path = fetch(self.url, self.cache_path, sha256=self.sha256, sha256_prefix=self.sha256_prefix)
        except DownloadError as exc:
            raise CheckpointError(str(exc)) from None
        if not (cached or self.sha256 or self.sha256_prefix):
            print(f"warning: {self.url} was downloaded unverified: its name carries no sha256 prefix "
                  f"(-xxxxxxxx.pth) and no #sha256=<64 hex digits> was given", file=sys.stderr)
        return path


def is_url(spec: str | os.PathLike) -> bool:
    return isinstance(spec, str) and URL_SCHEME.match(spec) is not None


def resolve_checkpoint(spec: str | os.PathLike, download: bool = True) -> Path:
    """The local checkpoint file that ``spec`` (a path, an http(s) URL, or ``trained``) names.

    A URL is downloaded once and then read from the cache. ``download=False`` checks the spec
    without using the network, for option checks: the path returned may not exist yet.
    """
    if spec == TRAINED_NAME:
        if not TRAINED.is_file():
            raise CheckpointError(f"no trained checkpoint committed yet ({TRAINED}); make one with "
                                  f"python -m mmdet_opt.training --out DIR and copy DIR's files there")
        return TRAINED
    if is_url(spec):
        source = CheckpointURL.parse(spec)
        return source.fetch() if download else source.cache_path
    path = Path(spec)
    if not path.is_file():
        raise CheckpointError(f"no such file: {path}")
    return path


def describe_checkpoint(spec: str | os.PathLike) -> str:
    """The spec and the first 8 hex digits of its file's sha256, as mmdet names its files: a run
    records it, since one name (``trained``, a path) can hold other weights from one commit to the next."""
    path = resolve_checkpoint(spec, download=False)
    return f"{spec}, sha256 {sha256_of(path)[:8]}" if path.is_file() else str(spec)


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
        raise CheckpointError(f"no such file: {path}")
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


def base_seed(meta: dict, path) -> int | None:
    """The seed of the synthetic weights a partial checkpoint goes over; None for a full one."""
    base = meta.get("base") if isinstance(meta, dict) else None
    if base is None:
        return None
    if not isinstance(base, dict) or not isinstance(base.get("seed"), int):
        raise CheckpointError(f"checkpoint {path}: meta['base'] must be {{'seed': <int>}}, got {base!r}")
    return base["seed"]


def load_state_dict(model: torch.nn.Module, path: str | os.PathLike, state=None, meta=None) -> dict:
    """Load ``path`` into ``model`` strictly; return the checkpoint's meta dict.

    A partial checkpoint (``base_seed`` not None) may omit keys, which keep the model's values;
    its tensors are cast to the model's dtypes (they are stored in fp16). The model must already
    hold the base weights. ``state``/``meta``: ``read_checkpoint(path)``, when already read.
    """
    if state is None:
        state, meta = read_checkpoint(path)
    partial = base_seed(meta, path) is not None
    expected = model.state_dict()
    missing = set() if partial else expected.keys() - state.keys()
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
    if partial:
        with torch.no_grad():
            for k, v in state.items():
                expected[k].copy_(v)  # casts to the model's dtype
    else:
        model.load_state_dict(state, strict=True)
    return meta if isinstance(meta, dict) else {}
