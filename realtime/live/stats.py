"""Timing of the live loop: per-stage times, capture->output latency percentiles, output fps.

Stages, in milliseconds per frame:
  capture    reading and decoding the frame, on the capture thread
  inference  the style network (and colour preservation)
  blend      the temporal blend
  output     the sinks, the snapshot and the preview window
Latency is from the moment the capture thread had the frame to the moment every sink had it.
The HUD shows the last ``RECENT`` frames; the summary on exit covers the whole session.
"""

from __future__ import annotations

import time
from array import array
from collections import deque

import numpy as np

STAGES = ("capture", "inference", "blend", "output")
LOOP_STAGES = ("inference", "blend", "output")  # the loop's own work (capture runs on its own thread)
RECENT = 120
_SHORT = {"capture": "capture", "inference": "network", "blend": "blend", "output": "output"}


def _pct(values: array | deque, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else 0.0


class LiveStats:
    """Accumulates one record per output frame (``add``) and reports it (``hud_lines``, ``summary``)."""

    def __init__(self) -> None:
        self.frames = 0
        self.lost_events = 0  # times the source was lost
        self.started = time.perf_counter()
        self.ended: float | None = None
        # Session-long series as float32 arrays: 4 bytes per frame, an hour at 30 fps is ~0.4 MB each.
        self._stage: dict[str, array] = {s: array("f") for s in STAGES}
        self._latency = array("f")
        self._recent_latency: deque[float] = deque(maxlen=RECENT)
        self._recent_stage: dict[str, deque[float]] = {s: deque(maxlen=RECENT) for s in STAGES}
        self._out_times: deque[float] = deque(maxlen=RECENT)

    def add(self, stage_ms: dict[str, float], latency_ms: float, now: float | None = None) -> None:
        """Record one output frame: ms per stage (keys of STAGES) and its capture->output latency."""
        self.frames += 1
        for s in STAGES:
            v = float(stage_ms.get(s, 0.0))
            self._stage[s].append(v)
            self._recent_stage[s].append(v)
        self._latency.append(latency_ms)
        self._recent_latency.append(latency_ms)
        self._out_times.append(time.perf_counter() if now is None else now)

    def fps(self) -> float:
        """Output frames per second over the recent frames (at most the last ~2 s)."""
        times = [t for t in self._out_times if t >= self._out_times[-1] - 2.0] if self._out_times else []
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def latency(self, *, recent: bool = False) -> tuple[float, float]:
        """(p50, p95) capture->output latency in ms."""
        values = self._recent_latency if recent else self._latency
        return _pct(values, 50), _pct(values, 95)

    def stage(self, name: str, *, recent: bool = False) -> tuple[float, float]:
        """(mean, p95) of one stage in ms."""
        values = self._recent_stage[name] if recent else self._stage[name]
        return (float(np.mean(np.asarray(values, np.float64))) if len(values) else 0.0), _pct(values, 95)

    def finish(self) -> None:
        self.ended = time.perf_counter() if self.ended is None else self.ended

    @property
    def seconds(self) -> float:
        return (self.ended if self.ended is not None else time.perf_counter()) - self.started

    def hud_lines(self, dropped: int) -> list[str]:
        """Two short lines for the HUD: fps and latency; stage times and dropped frames."""
        p50, p95 = self.latency(recent=True)
        stages = "  ".join(f"{_SHORT[s]} {self.stage(s, recent=True)[0]:.0f}" for s in STAGES)
        return [f"{self.fps():.1f} fps  latency {p50:.0f} ms (p95 {p95:.0f})", f"{stages} ms  dropped {dropped}"]

    def budget_hint(self, source_fps: float) -> str | None:
        """Advice when the loop's own work per frame (``LOOP_STAGES``, mean over the session) is
        longer than the time between the source's frames, else None (also when the source's rate
        is unknown, 0). Then each frame waits for the loop to finish the one before, which adds
        up to a frame of latency and drops frames: the line says by how much and what helps."""
        if not source_fps > 0 or not self.frames:
            return None
        interval = 1000.0 / source_fps
        parts = {s: self.stage(s)[0] for s in LOOP_STAGES}
        work = sum(parts.values())
        if work <= interval:
            return None
        cures = ["--max-side N (the network on fewer pixels)"]
        if parts["blend"] > 0:
            cures.append(f"--temporal 0 (no blend: {parts['blend']:.1f} ms less)")
        detail = ", ".join(f"{_SHORT[s]} {v:.1f}" for s, v in parts.items() if v >= 0.05)
        return (f"the loop took {work:.1f} ms a frame ({detail}), more than the {interval:.1f} ms between the source's "
                f"frames, so frames waited for it (up to a frame of latency) and some were dropped; "
                f"to keep up: {' or '.join(cures)}, or a GPU")

    def summary(self, captured: int, dropped: int) -> list[str]:
        """The lines printed on exit."""
        secs = max(self.seconds, 1e-9)
        p50, p95 = self.latency()
        lines = [
            f"frames: {self.frames} out in {secs:.1f} s ({self.frames / secs:.1f} fps); captured {captured}, dropped {dropped}"
            + (f"; source lost {self.lost_events} time(s)" if self.lost_events else ""),
            f"latency capture->output: p50 {p50:.1f} ms, p95 {p95:.1f} ms",
            "stages (mean / p95 ms): " + ", ".join(f"{s} {m:.1f}/{q:.1f}" for s in STAGES for m, q in [self.stage(s)]),
        ]
        return lines
