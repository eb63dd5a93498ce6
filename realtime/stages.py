"""The small typed interfaces that join the pipeline stages: capture -> stylise -> blend -> sink.

Frames everywhere are numpy uint8 arrays [H, W, 3] in BGR order (OpenCV's layout), C-contiguous.
Timestamps are seconds (float) on the source's clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class Frame:
    """One captured frame and when it was captured."""

    image: np.ndarray  # uint8 [H, W, 3] BGR
    pts: float  # presentation time on the source's clock, seconds
    captured_at: float = 0.0  # time.perf_counter() when it entered the process (for latency)
    index: int = 0
    info: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class FrameSource(Protocol):
    """Where frames come from: a camera, a stream, a file, a generated demo."""

    def read(self) -> Frame | None:
        """The next frame (live sources: the newest one), or None at the end of the source."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Stylizer(Protocol):
    """Turns a BGR frame into a stylised BGR frame of exactly the same size."""

    def __call__(self, image: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class TemporalBlender(Protocol):
    """Keeps video stable: blends the new stylised frame with the previous output (explicit state)."""

    def __call__(self, original: np.ndarray, stylized: np.ndarray) -> np.ndarray: ...

    def reset(self) -> None: ...


@runtime_checkable
class FrameSink(Protocol):
    """Where stylised frames go: a window, a virtual camera, a file, a network stream."""

    def write(self, image: np.ndarray, pts: float) -> None: ...

    def close(self) -> None: ...
