"""--checkpoint URL: downloaded once into the user cache, verified by sha256, one-line errors, no partial files.

A local HTTP server on 127.0.0.1 (port 0, in a thread) serves a small checkpoint made by torch.save;
every network wait is bounded by a short timeout.
"""
import hashlib
import io
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from mmdet_opt import download
from mmdet_opt.checkpoint import CheckpointError, CheckpointURL, read_checkpoint, resolve_checkpoint
from mmdet_opt.download import DownloadError, fetch

MMDET_R50_2X = ("https://download.openmmlab.com/mmdetection/v2.0/mask_rcnn/mask_rcnn_r50_fpn_2x_coco/"
                "mask_rcnn_r50_fpn_2x_coco_bbox_mAP-0.392__segm_mAP-0.354_20200505_003907-3e542a40.pth")


def checkpoint_bytes(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


TINY_STATE = {"conv.weight": torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2), "conv.bias": torch.ones(2)}
TINY = checkpoint_bytes({"state_dict": TINY_STATE, "meta": {"CLASSES": ("a", "b")}})
TINY_SHA256 = hashlib.sha256(TINY).hexdigest()
GOOD_NAME = f"tiny_20200505_003907-{TINY_SHA256[:8]}.pth"
WRONG_NAME = f"tiny_20200505_003907-{'0' * 8 if TINY_SHA256[:8] != '0' * 8 else '1' * 8}.pth"


class Server:
    """Serves ``files`` at /files/NAME, and at /broken/NAME announces the whole length but sends half
    and closes; 404 otherwise. Counts the requests it gets."""

    def __init__(self, files: dict):
        self.files = files
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                kind, _, name = self.path.lstrip("/").partition("/")
                if kind not in ("files", "broken") or name not in server.files:
                    self.send_error(404)
                    return
                body = server.files[name]
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if kind == "files" else body[:len(body) // 2])
                self.close_connection = True

            def log_message(self, *args):  # keep the test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    s = Server({GOOD_NAME: TINY, WRONG_NAME: TINY, "tiny.pth": TINY, "big.bin": bytes(3_100_000)})
    yield s
    s.close()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """An empty user cache per test, and short timeouts: nothing here may wait long."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(download, "TIMEOUT_S", 5.0)
    return tmp_path / "cache" / "mmdet-opt" / "checkpoints"


def cached_files(cache) -> list:
    """Everything in the cache folder, hidden temporary files included."""
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def one_line_error(err, url: str) -> str:
    message = str(err.value)
    assert "\n" not in message and url in message, message
    return message


def test_the_name_hash_prefix_is_checked_and_the_file_cached(server, cache, capsys):
    path = resolve_checkpoint(server.url(f"files/{GOOD_NAME}"))
    assert path == cache / GOOD_NAME and path.read_bytes() == TINY
    assert cached_files(cache) == [GOOD_NAME]
    state, meta = read_checkpoint(path)
    assert torch.equal(state["conv.weight"], TINY_STATE["conv.weight"]) and meta["CLASSES"] == ("a", "b")
    assert "unverified" not in capsys.readouterr().err


def test_the_mmdet_checkpoint_name_carries_its_hash_prefix(cache):
    source = CheckpointURL.parse(MMDET_R50_2X)
    assert source.sha256_prefix == "3e542a40" and source.sha256 is None
    assert source.name == MMDET_R50_2X.rsplit("/", 1)[1]
    assert resolve_checkpoint(MMDET_R50_2X, download=False) == cache / source.name  # no network used


def test_a_full_sha256_after_the_url_is_checked(server, cache, capsys):
    url = server.url("files/tiny.pth")
    path = resolve_checkpoint(f"{url}#sha256={TINY_SHA256.upper()}")
    assert path == cache / "tiny.pth" and path.read_bytes() == TINY
    assert server.requests == ["/files/tiny.pth"]  # the fragment stays here
    assert "unverified" not in capsys.readouterr().err


@pytest.mark.parametrize("how", ["name prefix", "full sha256"])
def test_a_wrong_hash_is_an_error_and_leaves_nothing(server, cache, how):
    if how == "name prefix":
        url = spec = server.url(f"files/{WRONG_NAME}")
    else:
        url = server.url("files/tiny.pth")
        spec = f"{url}#sha256={'ab' * 32}"
    with pytest.raises(CheckpointError) as err:
        resolve_checkpoint(spec)
    message = one_line_error(err, url)
    assert TINY_SHA256 in message and "expected" in message
    assert cached_files(cache) == []


def test_a_download_cut_short_is_an_error_and_leaves_nothing(server, cache):
    url = server.url(f"broken/{GOOD_NAME}")
    with pytest.raises(CheckpointError) as err:
        resolve_checkpoint(url)
    message = one_line_error(err, url)
    assert f"closed after {len(TINY) // 2} of {len(TINY)} bytes" in message
    assert cached_files(cache) == []


def test_http_404_is_an_error(server, cache):
    url = server.url("files/missing-3e542a40.pth")
    with pytest.raises(CheckpointError) as err:
        resolve_checkpoint(url)
    assert "HTTP 404" in one_line_error(err, url)
    assert cached_files(cache) == []


def free_port() -> int:
    """A port on 127.0.0.1 with nothing listening on it (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_server_is_an_error_and_leaves_nothing(cache):
    url = f"http://127.0.0.1:{free_port()}/{GOOD_NAME}"
    with pytest.raises(CheckpointError) as err:
        resolve_checkpoint(url)
    assert "connection refused" in one_line_error(err, url)
    assert cached_files(cache) == []


def test_a_server_that_never_answers_times_out(cache, monkeypatch):
    monkeypatch.setattr(download, "TIMEOUT_S", 0.5)
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/{GOOD_NAME}"
        with pytest.raises(CheckpointError) as err:
            resolve_checkpoint(url)
    assert "timed out" in one_line_error(err, url)
    assert cached_files(cache) == []


def test_a_cached_checkpoint_does_not_touch_the_network(server, cache):
    url = server.url(f"files/{GOOD_NAME}")
    first = resolve_checkpoint(url)
    second = resolve_checkpoint(url)
    assert first == second and second.read_bytes() == TINY
    assert server.requests == [f"/files/{GOOD_NAME}"]


def test_an_unverifiable_download_says_so_in_one_line(server, cache, capsys):
    url = server.url("files/tiny.pth")
    assert resolve_checkpoint(url).read_bytes() == TINY
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "unverified" in warning[0] and url in warning[0]
    resolve_checkpoint(url)  # from the cache: nothing to say again
    assert capsys.readouterr().err == ""


def test_a_cached_file_that_does_not_match_a_given_sha256_is_refused(server, cache):
    url = server.url("files/tiny.pth")
    resolve_checkpoint(url)  # unverified, into the cache
    with pytest.raises(CheckpointError) as err:
        resolve_checkpoint(f"{url}#sha256={'ab' * 32}")
    assert "delete it" in one_line_error(err, url)
    assert len(server.requests) == 1


def test_a_slow_download_shows_one_progress_line_not_a_flood(server, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(download, "PROGRESS_AFTER_S", 0.0)  # every download counts as slow
    size = len(server.files["big.bin"])
    fetch(server.url("files/big.bin"), tmp_path / "big.bin")
    lines = capsys.readouterr().err.splitlines()
    assert 1 <= len(lines) <= 3, lines  # the first update, the final count; not one per chunk
    total = f"{size / 1e6:.1f}"
    assert lines[-1] == f"downloading big.bin: {total} / {total} MB"


def test_fetch_errors_are_download_errors(tmp_path):
    with pytest.raises(DownloadError, match="connection refused"):
        fetch(f"http://127.0.0.1:{free_port()}/x.bin", tmp_path / "x.bin", timeout=2)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("spec, words", [
    ("ftp://127.0.0.1/model.pth", "only http:// and https://"),
    ("https:///model.pth", "names no host"),
    ("https://127.0.0.1/", "names no file"),
    ("https://127.0.0.1/model.pth#md5=0123", "#sha256=<64 hex digits>"),
    ("https://127.0.0.1/model.pth#sha256=abc", "#sha256=<64 hex digits>"),
    ("https://127.0.0.1/my model.pth", "spaces"),
])
def test_a_bad_url_is_a_one_line_error_without_network(spec, words):
    with pytest.raises(CheckpointError) as err:
        resolve_checkpoint(spec, download=False)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_build_detector_from_a_url(tmp_path, cache):
    """A whole Mask R-CNN checkpoint through the URL path into build_detector: same tensors."""
    from mmdet.models import build_detector as mmdet_build_detector

    from mmdet_opt.config import load_config
    from mmdet_opt.detector import build_detector

    scale = (320, 192)
    cfg = load_config(None, scale)
    state = mmdet_build_detector(cfg.model, test_cfg=cfg.get("test_cfg")).state_dict()
    data = checkpoint_bytes(state)
    served = Server({"mask_rcnn.pth": data})
    try:
        url = f"{served.url('files/mask_rcnn.pth')}#sha256={hashlib.sha256(data).hexdigest()}"
        model = build_detector(checkpoint=url, test_scale=scale)
    finally:
        served.close()
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert cached_files(cache) == ["mask_rcnn.pth"]
