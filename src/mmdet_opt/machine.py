"""What a benchmark ran on, for pytest-benchmark's machine_info and storage folders."""
from __future__ import annotations

import re


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return "cpu"


def device_slug(device: str) -> str:
    """A folder name for the device: 'NVIDIA_H100_80GB_HBM3', 'cpu'."""
    return re.sub(r"[^A-Za-z0-9.]+", "_", device_name(device)).strip("_")


def accelerator_info(device: str) -> dict:
    import mmcv
    import mmdet
    import torch

    info = {
        "device": device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "mmcv": mmcv.__version__,
        "mmdet": mmdet.__version__,
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        info["gpu_memory_gib"] = round(props.total_memory / 1024**3, 1)
        info["gpu_capability"] = f"{props.major}.{props.minor}"
    return info
