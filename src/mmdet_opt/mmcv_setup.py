"""Install mmcv-full 1.7.2 with compiled ops that match the installed torch.

mmcv-full 1.7.2 (the last 1.x release) is published only as an sdist, and as
shipped it does not compile against torch >= 2.10: its setup.py forces
``-std=c++17`` while torch's headers need C++20, and it imports
``pkg_resources``, which current setuptools no longer ships. This tool, in order:

1. does nothing when an mmcv-full 1.7.2 whose ops run is already importable;
2. installs a wheel from a wheelhouse (``--wheelhouse`` or ``MMCV_WHEELHOUSE``);
3. installs a wheel this tool built earlier (user cache directory);
4. downloads the sdist, patches it, builds a wheel (8-26 minutes on 2 cores: README, "Compiling mmcv-full"),
   caches it and installs it.

Every candidate wheel is checked by running ``RoIAlign`` and ``nms``: a wheel
built against another torch fails that check and the next source is tried.

    python -m mmdet_opt.mmcv_setup [--wheelhouse DIR] [--cuda | --no-cuda]
"""
from __future__ import annotations

import argparse
import hashlib
import html
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from .user_cache import user_cache_dir

MMCV_VERSION = "1.7.2"
SDIST = f"mmcv-full-{MMCV_VERSION}.tar.gz"

# Runs in a fresh interpreter so that a broken install cannot poison this one.
VERIFY_SNIPPET = r"""
import sys, torch, mmcv
from mmcv.ops import RoIAlign, nms
assert mmcv.__version__ == "{version}", "mmcv " + mmcv.__version__ + " is installed, not {version}"
devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and {check_cuda} else [])
for device in devices:
    feats = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32, device=device).reshape(2, 3, 8, 8)
    rois = torch.tensor([[0, 0, 0, 4, 4], [1, 2, 2, 7, 7]], dtype=torch.float32, device=device)
    out = RoIAlign((2, 2), 1.0, 2)(feats, rois)
    assert out.shape == (2, 3, 2, 2), out.shape
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]],
                         dtype=torch.float32, device=device)
    scores = torch.tensor([0.9, 0.8, 0.7], device=device)
    dets, keep = nms(boxes, scores, 0.5)
    assert keep.tolist() == [0, 2], keep.tolist()
print("mmcv-full", mmcv.__version__, "ops run on", ", ".join(devices), "with torch", torch.__version__)
"""


class SetupError(RuntimeError):
    """A step failed; the message says what and what to do."""


def log(msg: str) -> None:
    print(f"[mmcv-setup] {msg}", flush=True)


def torch_info() -> dict:
    try:
        import torch
    except ImportError as exc:  # the project depends on torch, so this is a broken env
        raise SetupError("torch is not importable; install torch first "
                         "(pip install torch torchvision)") from exc
    has_gpu = torch.cuda.is_available()
    arch = None
    if has_gpu:
        major, minor = torch.cuda.get_device_capability()
        arch = f"{major}.{minor}"
    return {"version": torch.__version__, "cuda": torch.version.cuda, "has_gpu": has_gpu, "arch": arch}


def cache_dir() -> Path:
    return user_cache_dir("wheels")


def build_tag(info: dict, cuda: bool) -> str:
    """The ABI a built wheel belongs to: Python, torch and (for CUDA builds) the GPU arch."""
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    target = f"cuda{info['cuda']}-sm{info['arch'].replace('.', '')}" if cuda else "cpu"
    return f"{py}-torch{info['version']}-{target}"


def verify(check_cuda: bool) -> tuple[bool, str]:
    code = VERIFY_SNIPPET.format(version=MMCV_VERSION, check_cuda=check_cuda)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode == 0:
        return True, proc.stdout.strip()
    lines = proc.stderr.strip().splitlines()
    return False, lines[-1] if lines else f"exit code {proc.returncode}"


def pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"`{' '.join(cmd)}` failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


def find_wheel(directory: Path) -> Path | None:
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    hits = sorted(directory.glob(f"mmcv_full-{MMCV_VERSION}-{py}-{py}-*.whl"))
    return hits[-1] if hits else None


def try_wheel(wheel: Path, check_cuda: bool) -> bool:
    log(f"installing {wheel}")
    pip("install", "--no-deps", "--force-reinstall", str(wheel))
    ok, msg = verify(check_cuda)
    log(("ok: " if ok else "this wheel does not work with the installed torch: ") + msg)
    return ok


def index_url() -> str:
    """pip's configured index (PIP_INDEX_URL or pip config), else PyPI."""
    url = os.environ.get("PIP_INDEX_URL")
    if not url:
        proc = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                              capture_output=True, text=True)
        url = proc.stdout.strip() if proc.returncode == 0 else ""
    return (url or "https://pypi.org/simple").rstrip("/")


def fetch_sdist(workdir: Path) -> Path:
    """Download the sdist from the package index and check its sha256.

    Not ``pip download``: that runs the sdist's setup.py, which imports pkg_resources and fails
    before we get a chance to patch it.
    """
    page_url = f"{index_url()}/mmcv-full/"
    log(f"downloading {SDIST} (index: {page_url})")
    try:
        with urllib.request.urlopen(page_url, timeout=60) as resp:
            page = resp.read().decode()
        link = re.search(r'href="([^"]*/' + re.escape(SDIST) + r'#sha256=([0-9a-f]{64}))"', page)
        if link is None:
            raise SetupError(f"{SDIST} is not listed on {page_url}")
        url = urllib.parse.urljoin(page_url, html.unescape(link.group(1)).split("#")[0])
        dest = workdir / SDIST
        with urllib.request.urlopen(url, timeout=300) as resp, open(dest, "wb") as fh:
            shutil.copyfileobj(resp, fh)
    except OSError as exc:
        raise SetupError(f"cannot download {SDIST} from {page_url}: {exc}") from None
    digest = hashlib.sha256(dest.read_bytes()).hexdigest()
    if digest != link.group(2):
        raise SetupError(f"{SDIST}: sha256 {digest} does not match the index's {link.group(2)}")
    return dest


def patch_setup_py(setup_py: Path) -> None:
    """C++20 for torch >= 2.10 headers; importlib/packaging instead of pkg_resources."""
    text = setup_py.read_text()
    text, n_std = re.subn(r"-std=c\+\+1[47]", "-std=c++20", text)
    text = re.sub(r"/std:c\+\+1[47]", "/std:c++20", text)
    text = text.replace(
        "from pkg_resources import DistributionNotFound, get_distribution, parse_version",
        "from importlib.metadata import PackageNotFoundError as DistributionNotFound\n"
        "from importlib.metadata import distribution as get_distribution\n"
        "from packaging.version import parse as parse_version")
    if n_std == 0 or "pkg_resources" in text:
        raise SetupError(f"{setup_py} does not look like mmcv-full {MMCV_VERSION}'s setup.py")
    setup_py.write_text(text)


def run_build(src: Path, outdir: Path, env: dict, logfile: Path) -> Path:
    """pip wheel with a heartbeat: ninja's [done/total] counter, every 30 s."""
    cmd = [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
           "-w", str(outdir), str(src)]
    start = time.monotonic()
    last_step = ["starting"]
    with open(logfile, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env)

        def pump():
            for line in proc.stdout:
                fh.write(line)
                m = re.match(r"\s*\[(\d+)/(\d+)\]", line)
                if m:
                    last_step[0] = f"{m.group(1)}/{m.group(2)} compile steps"

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        while proc.poll() is None:
            reader.join(timeout=30)
            if proc.poll() is None:
                log(f"building... {last_step[0]}, {int(time.monotonic() - start) // 60} min "
                    f"{int(time.monotonic() - start) % 60} s elapsed (log: {logfile})")
        reader.join()
    if proc.returncode != 0:
        tail = "".join(open(logfile).readlines()[-40:])
        raise SetupError(f"building mmcv-full failed (full log: {logfile}):\n{tail}")
    log(f"built in {(time.monotonic() - start) / 60:.1f} min")
    wheel = find_wheel(outdir)
    if wheel is None:
        raise SetupError(f"the build finished but left no wheel in {outdir}")
    return wheel


def build_wheel(info: dict, cuda: bool, dest: Path) -> Path:
    # Build requirements: no build isolation, since the ops must compile against this torch.
    pip("install", "setuptools", "packaging", "wheel", "ninja")
    jobs = os.environ.get("MAX_JOBS") or str(os.cpu_count() or 2)
    env = dict(os.environ, MMCV_WITH_OPS="1", MAX_JOBS=jobs, FORCE_CUDA="1" if cuda else "0")
    if cuda:
        env.setdefault("TORCH_CUDA_ARCH_LIST", info["arch"])
    else:
        env["CUDA_VISIBLE_DEVICES"] = ""  # mmcv's setup.py builds CUDA ops when it sees a GPU
    what = f"CUDA ops for sm_{info['arch'].replace('.', '')}" if cuda else "CPU ops"
    log(f"building mmcv-full {MMCV_VERSION} with {what} against torch {info['version']} "
        f"using {jobs} jobs. This took 8-26 minutes on 2 cores (6 on 16) where measured; "
        f"the wheel is cached in {dest} so it happens once per torch version.")
    with tempfile.TemporaryDirectory(prefix="mmcv-build-") as tmp:
        tmp = Path(tmp)
        sdist = fetch_sdist(tmp)
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter="data")
        src = tmp / f"mmcv-full-{MMCV_VERSION}"
        patch_setup_py(src / "setup.py")
        dest.mkdir(parents=True, exist_ok=True)
        wheel = run_build(src, tmp / "dist", env, dest / "build.log")
        return Path(shutil.copy2(wheel, dest / wheel.name))


def ensure_mmcv(wheelhouse: str | None = None, cuda: bool | None = None) -> str:
    info = torch_info()
    if cuda is None:
        cuda = info["has_gpu"] and shutil.which("nvcc") is not None
    if cuda and not info["has_gpu"]:
        raise SetupError("--cuda needs a visible GPU to pick the architecture to build for")
    ok, msg = verify(cuda)
    if ok:
        log(f"already installed: {msg}")
        return msg
    log(f"no working mmcv-full {MMCV_VERSION} yet ({msg or 'not importable'})")

    candidates = []
    if wheelhouse:
        if not Path(wheelhouse).is_dir():
            raise SetupError(f"wheelhouse {wheelhouse!r} is not a directory")
        candidates.append(Path(wheelhouse))
    cached = cache_dir() / build_tag(info, cuda)
    candidates.append(cached)
    for directory in candidates:
        wheel = find_wheel(directory) if directory.is_dir() else None
        if wheel and try_wheel(wheel, cuda):
            return verify(cuda)[1]
    wheel = build_wheel(info, cuda, cached)
    if not try_wheel(wheel, cuda):
        raise SetupError(f"the freshly built {wheel} does not pass the ops check; "
                         f"see {cached / 'build.log'}")
    return verify(cuda)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmdet_opt.mmcv_setup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheelhouse", default=os.environ.get("MMCV_WHEELHOUSE") or None,
                        help="directory with a prebuilt mmcv_full wheel to try first "
                             "(default: $MMCV_WHEELHOUSE)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--cuda", dest="cuda", action="store_true", default=None,
                       help="build CUDA ops (default: when a GPU and nvcc are present)")
    group.add_argument("--no-cuda", dest="cuda", action="store_false", help="build CPU ops only")
    args = parser.parse_args(argv)
    try:
        ensure_mmcv(args.wheelhouse, args.cuda)
    except SetupError as exc:
        log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
