"""The mmcv-full installer: source patch, wheel choice, error messages, and the no-op path."""
import runpy
import sys
import textwrap

import pytest

from mmdet_opt import mmcv_setup
from mmdet_opt.mmcv_setup import SetupError, find_wheel, patch_setup_py

PY = f"cp{sys.version_info.major}{sys.version_info.minor}"

# The lines of mmcv-full 1.7.2's setup.py that the patch must change, verbatim, with some context.
FAKE_SETUP_PY = textwrap.dedent("""\
    import glob
    import os
    import platform
    import re
    import warnings
    from pkg_resources import DistributionNotFound, get_distribution, parse_version
    from setuptools import find_packages, setup


    def choose_requirement(primary, secondary):
        try:
            name = re.split(r'[!<>=]', primary)[0]
            get_distribution(name)
        except DistributionNotFound:
            return secondary

        return str(primary)


    def get_extensions(torch):
        extra_compile_args = {'cxx': []}
        # c++14 features, the argument ['std=c++14'] must be added here.
        if platform.system() != 'Windows':
            if parse_version(torch.__version__) <= parse_version('1.12.1'):
                extra_compile_args['cxx'] = ['-std=c++14']
            else:
                extra_compile_args['cxx'] = ['-std=c++17']
        else:
            if parse_version(torch.__version__) <= parse_version('1.12.1'):
                extra_compile_args['cxx'] = ['/std:c++14']
            else:
                extra_compile_args['cxx'] = ['/std:c++17']
        return extra_compile_args
    """)


@pytest.fixture()
def fake_setup_py(tmp_path):
    path = tmp_path / "setup.py"
    path.write_text(FAKE_SETUP_PY)
    return path


def test_patch_setup_py_switches_to_cxx20_and_drops_pkg_resources(fake_setup_py):
    patch_setup_py(fake_setup_py)
    text = fake_setup_py.read_text()
    assert "pkg_resources" not in text
    for old in ("-std=c++14", "-std=c++17", "/std:c++14", "/std:c++17"):
        assert old not in text
    assert text.count("'-std=c++20'") == 2
    assert text.count("'/std:c++20'") == 2


def test_patched_setup_py_still_runs(fake_setup_py):
    """The replacement imports give choose_requirement and the version checks the same meaning."""
    patch_setup_py(fake_setup_py)
    namespace = runpy.run_path(str(fake_setup_py))
    assert namespace["choose_requirement"]("pytest>=7", "other") == "pytest>=7"
    assert namespace["choose_requirement"]("no-such-dist-mmdet-opt>=1", "other") == "other"

    class Torch:
        __version__ = "2.14.1"

    if sys.platform != "win32":
        assert namespace["get_extensions"](Torch) == {"cxx": ["-std=c++20"]}


@pytest.mark.parametrize("content", [
    "from setuptools import setup\nsetup(name='something-else')\n",
    # Right flags, but pkg_resources used in a way the patch does not know.
    "import pkg_resources\nextra_compile_args = {'cxx': ['-std=c++17']}\n",
])
def test_patch_setup_py_refuses_other_files(tmp_path, content):
    path = tmp_path / "setup.py"
    path.write_text(content)
    with pytest.raises(SetupError, match="does not look like mmcv-full 1.7.2"):
        patch_setup_py(path)
    assert path.read_text() == content  # left untouched


def test_find_wheel_picks_this_python(tmp_path):
    names = [f"mmcv_full-1.7.2-{py}-{py}-linux_x86_64.whl" for py in ("cp310", "cp311", "cp312", "cp313")]
    names.append(f"mmcv_full-1.7.1-{PY}-{PY}-linux_x86_64.whl")  # another release
    for name in names:
        (tmp_path / name).touch()
    assert find_wheel(tmp_path).name == f"mmcv_full-1.7.2-{PY}-{PY}-linux_x86_64.whl"


def test_find_wheel_none_when_no_match(tmp_path):
    (tmp_path / "mmcv_full-1.7.2-cp27-cp27mu-linux_x86_64.whl").touch()
    assert find_wheel(tmp_path) is None


def test_build_tag_and_cache_dir(monkeypatch, tmp_path):
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    cpu = {"version": "2.14.1", "cuda": None, "has_gpu": False, "arch": None}
    gpu = {"version": "2.11.0+cu130", "cuda": "13.0", "has_gpu": True, "arch": "9.0"}
    assert mmcv_setup.build_tag(cpu, cuda=False) == f"{py}-torch2.14.1-cpu"
    assert mmcv_setup.build_tag(gpu, cuda=True) == f"{py}-torch2.11.0+cu130-cuda13.0-sm90"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert mmcv_setup.cache_dir() == tmp_path / "mmdet-opt" / "wheels"


@pytest.fixture()
def no_mmcv(monkeypatch, tmp_path):
    """Pretend mmcv is missing, with an empty cache; installing or building fails loudly."""
    monkeypatch.setattr(mmcv_setup, "verify", lambda check_cuda: (False, "not importable"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def refuse(*args, **kwargs):
        raise AssertionError("the test must not install or build anything")

    monkeypatch.setattr(mmcv_setup, "pip", refuse)
    monkeypatch.setattr(mmcv_setup, "build_wheel", refuse)


def test_missing_wheelhouse_is_a_clear_error(no_mmcv, tmp_path):
    missing = tmp_path / "no-such-wheelhouse"
    with pytest.raises(SetupError, match=f"wheelhouse '{missing}' is not a directory"):
        mmcv_setup.ensure_mmcv(wheelhouse=str(missing), cuda=False)


def test_main_reports_missing_wheelhouse(no_mmcv, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MMCV_WHEELHOUSE", str(tmp_path / "gone"))
    assert mmcv_setup.main(["--no-cuda"]) == 1
    assert "is not a directory" in capsys.readouterr().out


def test_wheelhouse_is_tried_before_the_cache(no_mmcv, tmp_path, monkeypatch):
    house = tmp_path / "house"
    cached = mmcv_setup.cache_dir() / mmcv_setup.build_tag(mmcv_setup.torch_info(), False)
    wheel = f"mmcv_full-1.7.2-{PY}-{PY}-linux_x86_64.whl"
    for directory in (house, cached):
        directory.mkdir(parents=True)
        (directory / wheel).touch()
    tried = []
    # The wheelhouse's wheel "does not work" (built for another torch), the cached one does.
    monkeypatch.setattr(mmcv_setup, "try_wheel", lambda w, cuda: tried.append(w.parent) or w.parent == cached)
    mmcv_setup.ensure_mmcv(wheelhouse=str(house), cuda=False)
    assert tried == [house, cached]


def test_main_is_a_no_op_when_mmcv_works(monkeypatch, capsys):
    """mmcv-full 1.7.2 is installed in the test environment: nothing to download or build."""
    monkeypatch.delenv("MMCV_WHEELHOUSE", raising=False)

    def refuse(*args, **kwargs):
        raise AssertionError("mmcv works, so nothing may be installed or built")

    monkeypatch.setattr(mmcv_setup, "pip", refuse)
    monkeypatch.setattr(mmcv_setup, "build_wheel", refuse)
    assert mmcv_setup.main([]) == 0
    assert "already installed" in capsys.readouterr().out
