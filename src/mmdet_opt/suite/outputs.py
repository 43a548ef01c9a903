"""Where a run's files go: the folders of --benchmark-json and --benchmark-histogram, and each
device's own folder of stored runs."""
from __future__ import annotations

from pathlib import Path

import pytest

from ..machine import device_slug


def make_output_folders(config) -> None:
    """The folders that --benchmark-json and --benchmark-histogram write into, made before anything
    runs: pytest-benchmark writes the JSON only at the end, into a folder that must already exist."""
    json_path = config.getoption("benchmark_json", None)
    if hasattr(json_path, "write"):  # older pytest-benchmark opens the file while parsing; newer gives a Path
        json_path = json_path.name
    histogram = config.getoption("benchmark_histogram", None)  # [prefix]: files PREFIX-<group>.svg
    if json_path and Path(json_path).is_dir():
        raise pytest.UsageError(f"--benchmark-json: {json_path} is a folder; give a file path")
    folders = {"--benchmark-json": json_path and Path(json_path).parent,
               "--benchmark-histogram": histogram and Path(f"{histogram[0]}.svg").parent}
    for option, folder in folders.items():
        try:
            if folder:
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise pytest.UsageError(f"{option}: cannot make the folder {folder}: {exc.strerror or exc}") from None


def store_runs_by_device(config, device: str) -> None:
    """Keep each device's runs apart (baselines/<device>/), so --benchmark-compare only compares
    like with like."""
    storage = config.getoption("benchmark_storage", None)
    if storage and storage.rstrip("/").endswith("baselines"):
        config.option.benchmark_storage = f"{storage.rstrip('/')}/{device_slug(device)}"
