"""Where the project keeps what it downloads or builds once per user: built wheels, checkpoints."""
from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir(kind: str) -> Path:
    """``$XDG_CACHE_HOME/mmdet-opt/<kind>`` (``~/.cache`` when XDG_CACHE_HOME is unset); not created here."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "mmdet-opt" / kind
