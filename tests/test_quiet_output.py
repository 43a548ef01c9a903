"""Command-line output carries no start-up noise of other packages, and the help says what to type.

Each check runs the command in a fresh interpreter: the notices come at import time.
"""
import importlib.util
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mmdet_opt.images import IMAGE_NAMES
from mmdet_opt.quiet import CPP_EXTENSION_LOGGER
from mmdet_opt.variants import VARIANTS

NOISE = ("No CUDA runtime is found", "CUDA_HOME", "MMCV will release v2.0.0")


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def output(proc: subprocess.CompletedProcess) -> str:
    text = proc.stdout + proc.stderr
    assert not [n for n in NOISE if n in text], text
    return text


@pytest.fixture(scope="module")
def gpu_less_cuda_home():
    """The environment in which torch's cpp_extension logs its notice: a CUDA_HOME, no visible GPU.
    Skips where it never would (a CPU-only torch build), so the checks below are not empty."""
    with tempfile.TemporaryDirectory() as cuda_home:
        env = {"CUDA_HOME": cuda_home, "CUDA_VISIBLE_DEVICES": ""}
        control = run("-c", "import torch.utils.cpp_extension", **env)
        if "No CUDA runtime is found" not in control.stderr:
            pytest.skip("this torch logs no CUDA_HOME notice (a build without CUDA)")
        yield env


def test_report_help_names_the_module_to_run(gpu_less_cuda_home):
    proc = run("-m", "mmdet_opt.suite.report", "--help", **gpu_less_cuda_home)
    assert proc.returncode == 0
    assert output(proc).startswith("usage: python -m mmdet_opt.suite.report ")


def test_visualize_help_lists_every_variant_and_image(gpu_less_cuda_home):
    proc = run("-m", "mmdet_opt.suite.visualize", "--help", **gpu_less_cuda_home)
    assert proc.returncode == 0
    text = " ".join(output(proc).split())  # argparse wraps lines
    assert text.startswith("usage: python -m mmdet_opt.suite.visualize ")
    missing = [n for n in (*VARIANTS, *IMAGE_NAMES) if n not in text]
    assert not missing, text


def test_mmcv_setup_help_is_clean(gpu_less_cuda_home):
    proc = run("-m", "mmdet_opt.mmcv_setup", "--help", **gpu_less_cuda_home)
    assert proc.returncode == 0 and output(proc).startswith("usage:")


def test_visualize_error_is_its_one_line_after_importing_mmcv(gpu_less_cuda_home):
    """A bad --variant is found after mmdet (and so mmcv) is imported: the error is all that is printed."""
    proc = run("-m", "mmdet_opt.suite.visualize", "--device", "cpu", "--variant", "nope", **gpu_less_cuda_home)
    lines = output(proc).splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: --variant:"), lines


def test_only_the_cuda_home_notice_is_dropped():
    import mmdet_opt  # noqa: F401  installs the filter

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger(CPP_EXTENSION_LOGGER)
    logger.addHandler(handler)
    try:
        logger.warning("No CUDA runtime is found, using CUDA_HOME='%s'", "/usr/local/cuda")
        logger.warning("Error checking compiler version for %s", "c++")
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in records] == ["Error checking compiler version for c++"]


def test_mmcv_notice_is_dropped_once_the_package_is_imported():
    mmcv_init = Path(importlib.util.find_spec("mmcv").origin).read_text()
    assert "MMCV will release v2.0.0" in mmcv_init  # the notice this mmcv prints at import
    proc = run("-W", "default", "-c", "import mmdet_opt, mmcv")
    assert proc.returncode == 0 and output(proc) == "", proc.stderr


def test_escape_warnings_are_dropped_for_mmdet_sources_only():
    """Python 3.12 warns (SyntaxWarning; DeprecationWarning before) when it compiles a source with an
    invalid escape, as it compiles mmdet's on a first import; made errors here, so each one shows."""
    check = ("import mmdet_opt\n"
             "compile(SOURCE, '/site-packages/mmdet/models/dense_heads/head.py', 'exec')\n"
             "try:\n"
             "    compile(SOURCE, '/home/me/mine.py', 'exec')\n"
             "except SyntaxError as exc:\n"
             "    print(exc.msg)\n")
    proc = run("-W", "error::SyntaxWarning", "-W", "error::DeprecationWarning", "-c",
               "SOURCE = " + repr(r"'\d'") + "\n" + check)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == r"invalid escape sequence '\d'"


def test_only_mmcvs_own_autocast_calls_are_quiet():
    """mmcv's fp16 mode calls torch.cuda.amp.autocast at every forward (inference_fp16): that deprecation
    notice is dropped where mmcv makes the call, and still shown where anyone else does."""
    import warnings

    import torch

    from mmdet_opt.quiet import ignore_mmcv_autocast_notice

    def notices(module_name: str) -> list:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ignore_mmcv_autocast_notice()
            exec(compile("torch.cuda.amp.autocast(enabled=False)", "fp16_utils.py", "exec"),
                 {"__name__": module_name, "torch": torch})
        return [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]

    assert notices("mmcv.runner.fp16_utils") == []
    assert [n for n in notices("my_app") if "torch.cuda.amp.autocast(args...)` is deprecated" in n]
