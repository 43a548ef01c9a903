"""What a run shows on stderr: its progress with images/s, and one line per skipped image."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

LOGGED_EVERY_S = 10.0  # off a terminal (a log file, CI), a progress line this often


class Progress:
    """On a terminal a progress bar with images/s (tqdm, when installed); elsewhere a plain line every
    ``LOGGED_EVERY_S``, since a bar's redraws would run into the lines of skipped images in a log."""

    def __init__(self, total: int, show_bar: bool, what: str = "detect"):
        self.total, self.what, self.show = total, what, show_bar
        self.done, self.start = 0, time.monotonic()
        self.last_line = self.start
        self.bar = None
        if show_bar and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, desc=what, unit="img", file=sys.stderr, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.show and time.monotonic() - self.last_line >= LOGGED_EVERY_S:
            self.last_line = time.monotonic()
            rate = self.done / max(self.last_line - self.start, 1e-9)
            print(f"{self.what}: {self.done}/{self.total} images, {rate:.1f} images/s", file=sys.stderr, flush=True)

    def note(self, line: str) -> None:
        """A line on stderr that leaves the bar whole."""
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass
class RunStats:
    images: int = 0
    skipped: int = 0
    detections: int = 0
    seconds: float = 0.0
    decode_wait: float = 0.0  # how long the detector waited for decoded images

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    @classmethod
    def combined(cls, parts: list) -> RunStats:
        """Processes that ran side by side: counts add up, times are the slowest process's."""
        return cls(images=sum(p.images for p in parts), skipped=sum(p.skipped for p in parts),
                   detections=sum(p.detections for p in parts), seconds=max(p.seconds for p in parts),
                   decode_wait=max(p.decode_wait for p in parts))

    def summary(self, processes: int = 1) -> str:
        across = f" ({processes} processes; waits: the longest of any)" if processes > 1 else ""
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        return (f"{self.images} images in {self.seconds:.1f} s, {self.images_per_s:.2f} images/s, "
                f"{self.detections} detections, waited {self.decode_wait:.1f} s for decoded images"
                f"{skipped}{across}")
