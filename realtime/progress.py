"""A small progress bar for long work: quiet when stderr is not a terminal or with -q."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _fmt_seconds(s: float) -> str:
    s = int(max(0, s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


class Progress:
    """``Progress(total, "training")``; ``update(n, loss=0.3)``; ``close()``.

    Draws at most ten times a second on ``stream`` (stderr), only when it is a terminal,
    unless ``enabled`` says otherwise. Shows count, rate, elapsed time, ETA and any
    keyword values given to ``update``.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        enabled: bool | None = None,
        stream: TextIO | None = None,
        initial: int = 0,
    ) -> None:
        self.total = total
        self.initial = initial  # work done before this bar started (a resumed run): not in the rate
        self.desc = desc
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.n = initial
        self.start = time.monotonic()
        self._last_draw = 0.0
        self._postfix = ""

    def update(self, n: int = 1, **values: float | str) -> None:
        self.n += n
        if values:
            self._postfix = " ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
            )
        now = time.monotonic()
        if self.enabled and (now - self._last_draw > 0.1 or (self.total and self.n >= self.total)):
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        elapsed = now - self.start
        done = self.n - self.initial
        rate = done / elapsed if elapsed > 0 else 0.0
        # Slow work reads better as seconds per unit (training steps of a CPU run).
        speed = f"{1 / rate:.2f} s/{self.unit}" if 0 < rate < 1 else f"{rate:.1f} {self.unit}/s"
        if self.total:
            pct = 100.0 * self.n / self.total
            eta = (self.total - self.n) / rate if rate > 0 else 0.0
            head = f"{self.desc}: {pct:3.0f}% {self.n}/{self.total} {speed} {_fmt_seconds(elapsed)}<{_fmt_seconds(eta)}"
        else:
            head = f"{self.desc}: {self.n} {speed} {_fmt_seconds(elapsed)}"
        return f"{head} {self._postfix}".rstrip()

    def _draw(self, now: float) -> None:
        self._last_draw = now
        self.stream.write("\r\x1b[K" + self.line(now))
        self.stream.flush()

    def clear(self) -> None:
        """Wipe the drawn line so that a log line can take its place; the next update draws it again."""
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._last_draw = 0.0

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
