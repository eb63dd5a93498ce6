"""The contract between the pipeline stages: capture -> stylize -> blend -> sink.

``nst-live`` runs them in ``live/loop.py`` (a ``FrameSource``, the engine as a ``Stylizer``, a
``TemporalBlender``, ``FrameSink``s) and ``nst-video`` in ``video/pipeline.py`` (a ``Stylizer``
and a ``TemporalBlender`` between its reader and writer). The rules below are what a stage may
rely on and what it must keep; ``tests`` plug in fakes that keep them.

Frames, everywhere: numpy ``uint8`` arrays ``[H, W, 3]``, BGR order (OpenCV's), C-contiguous,
any H, W >= 1. ``check_frame`` is the one check of that layout (it does not demand
C-contiguity: callers that hand a frame to native code make it contiguous themselves).
Timestamps (``pts``) are seconds (float) on the source's clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from .errors import UsageError


def check_frame(image: object, what: str = "the image", *, like: np.ndarray | tuple[int, ...] | None = None,
                error: type[Exception] = UsageError) -> np.ndarray:
    """``image`` when it is a BGR uint8 frame [H, W, 3], of the size of ``like`` (a frame, or
    its (H, W)) when given; else ``error`` naming ``what`` and what it got."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise error(f"{what} must be a BGR uint8 frame [H, W, 3], got {got}")
    if like is not None:
        h, w = (like.shape if isinstance(like, np.ndarray) else like)[:2]
        if image.shape[:2] != (h, w):
            raise error(f"{what} ({image.shape[1]}x{image.shape[0]}) differs from the frame it goes with ({w}x{h}): "
                        "frames of a pair must not differ in size")
    return image


@dataclass
class Frame:
    """One captured frame and when it was captured."""

    image: np.ndarray  # uint8 [H, W, 3] BGR, C-contiguous
    pts: float  # presentation time on the source's clock, seconds
    captured_at: float = 0.0  # time.perf_counter() when it entered the process (for latency)
    index: int = 0
    info: dict[str, object] = field(default_factory=dict)  # e.g. "capture_ms": the time the read took


@runtime_checkable
class FrameSource(Protocol):
    """Where live frames come from: a camera, a stream, a file played as a camera, the demo
    (``live.source.LiveSource`` runs any ``live.captures.Capture`` as one).

    - ``poll(timeout)`` returns the newest frame not returned before, waiting at most
      ``timeout`` seconds; frames that came in between are dropped (and counted in
      ``frames_dropped``), never queued. It returns None when nothing new came: then ``ended``
      says whether the source is finished, ``lost`` whether it stopped delivering (it may
      come back). It never returns the same frame twice, and the caller may keep the frame.
    - ``clock()`` is now on the source's clock: the ``pts`` a frame captured now would get.
    - ``reset_counts()`` counts captured and dropped frames from now on (a loop that starts
      late does not count the frames before it as drops).
    - ``close()`` releases the device; calling it again does nothing.
    """

    name: str  # for messages: "camera 0", "demo", "clip.mp4"

    def poll(self, timeout: float) -> Frame | None: ...

    @property
    def ended(self) -> bool: ...

    @property
    def lost(self) -> bool: ...

    @property
    def frames_dropped(self) -> int: ...

    def clock(self) -> float: ...

    def reset_counts(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Stylizer(Protocol):
    """Turns a frame into a stylized frame of exactly the same size.

    ``__call__`` never modifies ``image``. The result is a frame the caller may keep; it may be
    ``image`` itself (nothing to do, e.g. strength 0 or "show the original"), so the caller
    must not write into it. Errors are ``StylecastError``s (``UsageError`` for a frame that is
    not a frame, see ``check_frame``). A ``StyleEngine`` is one; so are its wrappers in
    ``styling.py``.
    """

    def __call__(self, image: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class TemporalBlender(Protocol):
    """Keeps video steady: blends each new stylized frame with the previous output, moved along
    the motion. Its state (the previous frames) is explicit: ``reset()`` forgets it, and the
    next call returns ``stylized`` unchanged. Callers reset it whenever the next frame does not
    continue the last one (another style, the original shown, a lost source back); a blender
    resets itself at scene cuts.

    ``__call__(original, stylized)``: ``original`` is the input frame, ``stylized`` the
    Stylizer's output for it (the same size); returns the frame to show, of that size, which
    may be ``stylized`` itself (after a reset, at strength 0). It keeps copies, not references,
    of what it remembers: callers may draw on the frame they get back.
    """

    def __call__(self, original: np.ndarray, stylized: np.ndarray) -> np.ndarray: ...

    def reset(self) -> None: ...


@runtime_checkable
class FrameSink(Protocol):
    """Where stylized frames go: a virtual camera, a network stream, a recording (``live/sinks.py``).

    - ``write(image, pts)`` returns quickly: a sink that encodes or sends does it on its own
      thread, dropping (and counting) frames it cannot keep up with rather than blocking the
      loop. It may keep a reference to ``image`` (it does not copy), so the caller must not
      modify a frame after writing it. A frame of another size than the sink was opened with
      is scaled to that size. It raises a ``StylecastError`` once the sink has failed.
    - ``live``: True for sinks that must keep getting frames while the source is lost (a
      virtual camera, a stream: their viewers would drop them), False for those that record
      only what was captured.
    - ``describe()``: one line of what the sink did, for the summary on exit.
    - ``close()`` finishes the output (a recording is renamed into place); calling it again
      does nothing.
    """

    live: bool

    def write(self, image: np.ndarray, pts: float) -> None: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...
