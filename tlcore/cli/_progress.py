"""A minimal terminal progress bar (stderr, only when it is a terminal).

``ProgressBar(label)`` is called as ``bar(done, total)``, the ``progress`` callback
signature of ``tlcore.datasets`` scans; ``cli._datasets`` and ``cli._train`` use it
for scans, decoding and training batches. Nothing is drawn when stderr is a file or
a pipe, so logs stay clean.
"""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """``bar = ProgressBar("Scanning"); bar(done, total); bar.close()``."""

    def __init__(self, label: str, *, stream=None, min_interval: float = 0.1):
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.min_interval = min_interval
        self._last = 0.0
        self._start = time.monotonic()

    def __call__(self, done: int, total: int, suffix: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self._last < self.min_interval:
            return
        self._last = now
        frac = done / total if total else 1.0
        filled = int(frac * 30)
        bar = "#" * filled + "-" * (30 - filled)
        elapsed = now - self._start
        self.stream.write(f"\r{self.label} [{bar}] {done}/{total} {elapsed:5.1f}s {suffix}".rstrip() + " ")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
