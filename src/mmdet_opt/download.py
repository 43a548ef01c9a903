"""Fetch a URL into a cache once, verified: a temporary file beside the target, checked, then renamed.

Not ``torch.hub.download_url_to_file``: it has no timeout, takes a body cut short of its
Content-Length for a whole one, and lets urllib's exceptions through as they are. Here every
failure is one line naming the URL and the cause, and leaves nothing in the cache.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import socket
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

CHUNK = 1 << 20
TIMEOUT_S = 60.0  # to connect, and each wait for more of the body
PROGRESS_AFTER_S = 1.0  # a quick download prints nothing
PROGRESS_EVERY_S = 0.5  # on a terminal, where one line is rewritten in place
PROGRESS_EVERY_S_LOGGED = 10.0  # elsewhere (a log file), where each update is a new line


class DownloadError(OSError):
    """The download failed or did not verify; nothing was left in the cache."""


def fetch(url: str, dest: str | os.PathLike, *, sha256: str | None = None, sha256_prefix: str | None = None,
          timeout: float | None = None) -> Path:
    """``dest``, downloaded from ``url`` unless it is there already: then the network is not used.

    The file must have the ``sha256`` hex digest, or else one starting with ``sha256_prefix``; a
    file found in the cache is checked the same way (locally), since a run without a hash may have
    put it there. ``timeout`` (default ``TIMEOUT_S``) bounds connecting and each wait for data.
    """
    timeout = TIMEOUT_S if timeout is None else timeout
    dest = Path(dest)
    if dest.is_file():
        problem = _hash_problem(sha256_of(dest), sha256, sha256_prefix) if sha256 or sha256_prefix else None
        if problem:
            raise DownloadError(f"{dest} (cached from {url}): {problem}; delete it to download again")
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = _temporary_beside(dest)
    except OSError as exc:
        raise DownloadError(f"cannot download {url}: cannot write in {dest.parent}: {_cause(exc, timeout)}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _download(url, out, dest.name, timeout)
        problem = _hash_problem(digest, sha256, sha256_prefix)
        if problem:
            raise DownloadError(f"cannot use {url}: {problem}")
        os.replace(tmp, dest)
    except DownloadError:
        raise
    except (OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"cannot download {url}: {_cause(exc, timeout)}") from None
    finally:
        tmp.unlink(missing_ok=True)  # gone already once renamed
    return dest


def _temporary_beside(dest: Path) -> tuple[int, str]:
    """A new hidden file in ``dest``'s folder, so the final rename is atomic (same file system)."""
    return tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")


def _download(url: str, out, label: str, timeout: float) -> str:
    """Write the body of ``url`` to ``out``; its sha256 hex digest."""
    request = urllib.request.Request(url, headers={"User-Agent": "mmdet-opt"})
    hasher = hashlib.sha256()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        done = 0
        progress = DownloadProgress(label, total)
        try:
            while chunk := response.read1(CHUNK):  # what has arrived, so progress keeps up
                out.write(chunk)
                hasher.update(chunk)
                done += len(chunk)
                progress.update(done)
        finally:
            progress.close(done)
    # http.client ends the body with an empty read, not an error, when the server closes early.
    if total is not None and done < total:
        raise DownloadError(f"cannot download {url}: the connection closed after {done} of {total} bytes "
                            f"(a broken download)")
    return hasher.hexdigest()


def sha256_of(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def _hash_problem(digest: str, sha256: str | None, sha256_prefix: str | None) -> str | None:
    if sha256 and digest != sha256:
        return f"its sha256 is {digest}, not the expected {sha256}"
    if not sha256 and sha256_prefix and not digest.startswith(sha256_prefix):
        return f"its sha256 is {digest}, which does not start with the expected {sha256_prefix}"
    return None


def _cause(exc: BaseException, timeout: float) -> str:
    """What went wrong, in a few words, on one line."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):  # urllib's wrapper around a connection failure
        return _cause(exc.reason, timeout) if isinstance(exc.reason, BaseException) else str(exc.reason)
    if isinstance(exc, http.client.IncompleteRead):
        return "the connection closed before the end of the body (a broken download)"
    if isinstance(exc, TimeoutError):
        return f"timed out (nothing received for {timeout:g} s)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name (no network, or no such host): {exc.strerror}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there, or no network)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


class DownloadProgress:
    """'name: 12.3 / 170.0 MB' on stderr for a download that takes a while: one line rewritten in
    place on a terminal, an occasional line elsewhere; nothing for a quick one."""

    def __init__(self, label: str, total: int | None):
        self.label, self.total = label, total
        self.stream = sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self.last: float | None = None

    def update(self, done: int) -> None:
        now = time.monotonic()
        every = PROGRESS_EVERY_S if self.tty else PROGRESS_EVERY_S_LOGGED
        if now - self.start < PROGRESS_AFTER_S or (self.last is not None and now - self.last < every):
            return
        self.last = now
        self._show(done)

    def close(self, done: int) -> None:
        """The final count, where progress was shown at all, and the end of the line."""
        if self.last is None:
            return
        self._show(done)
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()

    def _show(self, done: int) -> None:
        of = f" / {self.total / 1e6:.1f}" if self.total is not None else ""
        text = f"downloading {self.label}: {done / 1e6:.1f}{of} MB"
        self.stream.write(f"\r{text}\033[K" if self.tty else f"{text}\n")
        self.stream.flush()
