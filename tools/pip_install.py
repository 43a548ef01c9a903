"""pip install with the project's pinned versions and, on a machine without an NVIDIA GPU, torch's CPU build.

tox runs every install through this (``install_command`` in tox.ini), so a fresh machine and CI resolve
the same versions (constraints.txt). PyPI's Linux torch bundles CUDA (about 3 GB of libraries); a
machine without an NVIDIA GPU gets the CPU build from PyTorch's own index instead, when that index is
reachable. ``MMDET_OPT_TORCH_INDEX`` overrides the choice: an index URL, or empty for PyPI's build.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

CONSTRAINTS = Path(__file__).resolve().parent.parent / "constraints.txt"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def has_nvidia_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia").exists()


def reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=10):
            return True
    except OSError:
        return False


def torch_index() -> str | None:
    """The extra index torch comes from, or None for PyPI's default build."""
    chosen = os.environ.get("MMDET_OPT_TORCH_INDEX")
    if chosen is not None:
        return chosen or None
    if has_nvidia_gpu():
        return None
    if reachable(f"{CPU_INDEX}/torch/"):
        return CPU_INDEX
    print(f"pip_install: no NVIDIA GPU, but {CPU_INDEX} is unreachable: torch comes from PyPI "
          "(its CUDA build); set MMDET_OPT_TORCH_INDEX to a CPU index to avoid that", file=sys.stderr)
    return None


def pip_command(args: list[str]) -> list[str]:
    command = [sys.executable, "-m", "pip", "install", "-c", str(CONSTRAINTS)]
    index = torch_index()
    return command + (["--extra-index-url", index] if index else []) + args


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(f"usage: python tools/pip_install.py [pip install arguments]\n\n{__doc__.strip()}")
        return 0
    return subprocess.call(pip_command(args))


if __name__ == "__main__":
    sys.exit(main())
