"""Command-line values every entry point reads the same way: sizes and devices."""
from __future__ import annotations

import re


def parse_size(text: str) -> tuple[int, int]:
    """``"1333x800"`` -> (1333, 800); ``ValueError`` saying what is wrong otherwise."""
    m = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not m or int(m.group(1)) < 32 or int(m.group(2)) < 32:
        raise ValueError(f"{text!r} is not WIDTHxHEIGHT with both at least 32 (e.g. 1333x800)")
    return int(m.group(1)), int(m.group(2))


def check_device(device: str) -> str:
    """``device`` if it is cpu, cuda or cuda:N and present here; ``ValueError`` otherwise."""
    import torch

    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise ValueError(f"{device!r} is not cpu, cuda or cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"{device}: torch sees no CUDA device on this machine")
    index = int(device.partition(":")[2] or 0)
    if device.startswith("cuda") and index >= torch.cuda.device_count():
        raise ValueError(f"{device}: this machine has {torch.cuda.device_count()} CUDA devices (cuda:0 to "
                         f"cuda:{torch.cuda.device_count() - 1})")
    return device


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
