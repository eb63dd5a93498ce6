"""``LiveSource``: runs a ``Capture`` (live/captures.py) on its own thread and keeps only the newest frame.

When stylising is slower than the camera, old frames are overwritten (and counted as dropped)
instead of queueing up as lag. The first open is bounded by a timeout; a source that stops
delivering is reported as lost and, when it can, reopened with backoff until frames flow again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError, StylecastError
from ..stages import Frame
from .captures import OPEN_TIMEOUT, CameraCapture, Capture, CaptureEnded, CaptureInfo, camera_hint

log = logging.getLogger("stylecast.live")


class LiveSource:
    """Runs a ``Capture`` on a thread and hands out only the newest frame (a ``stages.FrameSource``).

    ``start()`` opens the capture within ``open_timeout`` seconds (BackendUnavailableError
    otherwise) and starts the thread. ``poll(timeout)`` returns the newest frame not yet
    returned, or None when none came within ``timeout``; then ``ended`` says whether the source
    is finished and ``lost`` whether it stopped delivering: no frame for ``lost_after`` seconds,
    or a failed read (default ``lost_after``: three frame intervals, at least 1 s). A lost
    capture that can reconnect is closed and reopened, waiting
    ``backoff[0]`` seconds, doubling up to ``backoff[1]``, until it opens and gives a frame.
    """

    def __init__(self, capture: Capture, *, open_timeout: float = OPEN_TIMEOUT, lost_after: float | None = None,
                 backoff: tuple[float, float] = (0.5, 5.0)) -> None:
        self.capture = capture
        self.open_timeout = open_timeout
        self.lost_after = lost_after
        self.backoff = backoff
        self.info: CaptureInfo | None = None
        self.frames_captured = 0  # every frame the capture produced
        self.frames_taken = 0  # frames handed out by poll/read
        self.reconnects = 0  # successful reopenings after a loss
        self.capture_ms = 0.0  # time the last grab took (read + decode), ms
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._failed = False  # the last read failed; reconnecting
        self._ended = False
        self._error: BaseException | None = None
        self._last_frame_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at = 0.0  # perf_counter() when the source opened: pts are seconds since then

    # -- life cycle

    def start(self) -> CaptureInfo:
        """Open the capture (bounded by ``open_timeout``) and start the capture thread."""
        result: dict[str, Any] = {}
        abandoned = threading.Event()

        def opener() -> None:
            try:
                result["info"] = self.capture.open()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller of start()
                result["error"] = exc
            if abandoned.is_set() and "info" in result:
                self.capture.close()  # it opened after we gave up: do not keep the device

        thread = threading.Thread(target=opener, name="stylecast-open", daemon=True)
        thread.start()
        thread.join(self.open_timeout)
        if thread.is_alive():
            abandoned.set()
            hint = camera_hint(self.capture.device) if isinstance(self.capture, CameraCapture) else "check the address and the network"
            raise BackendUnavailableError(f"{self.capture.name} did not open within {self.open_timeout:g} s: {hint}")
        if "error" in result:
            raise result["error"]
        self.info = result["info"]
        if self.lost_after is None:  # three frame intervals, at least a second
            self.lost_after = max(1.0, 3.0 / self.info.fps) if self.info.fps > 0 else 2.0
        self.started_at = self._last_frame_at = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="stylecast-capture", daemon=True)
        self._thread.start()
        return self.info

    def close(self) -> None:
        """Stop the thread and release the device; safe to call twice."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=2.0)  # a driver stuck in read cannot be interrupted: do not wait forever
            if thread.is_alive():
                log.debug("%s: capture thread still blocked in read; leaving it", self.capture.name)
                return
        with contextlib.suppress(Exception):
            self.capture.close()

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state

    @property
    def name(self) -> str:
        """The capture's name, for messages: "camera 0", "demo", "clip.mp4"."""
        return self.capture.name

    def clock(self) -> float:
        """Now on this source's clock: seconds since it opened (the ``pts`` of a frame captured now)."""
        return time.perf_counter() - self.started_at

    @property
    def ended(self) -> bool:
        """True once the source is finished (a file's end) and its last frame was taken."""
        with self._cond:
            return self._ended and self._latest is None

    @property
    def lost(self) -> bool:
        """True while the source delivers nothing: a failed read, or (cameras and network streams)
        silence for ``lost_after`` s. A file that is slow to decode or has a gap is not lost."""
        with self._cond:
            if self._ended or self._thread is None:
                return False
            silent = time.perf_counter() - self._last_frame_at > (self.lost_after or 0.0)
            return self._failed or (silent and self.capture.reconnect)

    @property
    def frames_dropped(self) -> int:
        """Frames the capture produced that were overwritten before anyone took them."""
        with self._cond:
            pending = 1 if self._latest is not None else 0
            return max(0, self.frames_captured - self.frames_taken - pending)

    def reset_counts(self) -> None:
        """Start counting captured and dropped frames afresh (frames before the loop ran are not drops)."""
        with self._cond:
            self.frames_captured = 1 if self._latest is not None else 0
            self.frames_taken = 0

    # -- frames

    def poll(self, timeout: float) -> Frame | None:
        """The newest frame not returned before, waiting up to ``timeout`` s; None if none came.

        Raises what the capture thread died of (an unexpected error), once."""
        with self._cond:
            if self._latest is None and not self._ended and self._error is None:
                self._cond.wait(timeout)
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            frame, self._latest = self._latest, None
            if frame is not None:
                self.frames_taken += 1
            return frame

    def read(self) -> Frame | None:
        """``FrameSource.read``: block until the newest frame, or None at the end."""
        while True:
            frame = self.poll(0.5)
            if frame is not None or self.ended:
                return frame
            if self._thread is None:
                return None

    # -- the thread

    def _run(self) -> None:
        delay = self.backoff[0]
        try:
            while not self._stop.is_set():
                start = time.perf_counter()
                try:
                    image = self.capture.grab()
                except CaptureEnded as end:
                    if str(end):
                        log.warning("%s", end)
                    with self._cond:
                        self._ended = True
                        self._cond.notify_all()
                    return
                if image is not None:
                    self._publish(image, start)
                    delay = self.backoff[0]
                    continue
                if not self.capture.reconnect:
                    with self._cond:
                        self._ended = True
                        self._cond.notify_all()
                    return
                with self._cond:
                    if not self._failed:
                        log.debug("%s: read failed; reconnecting", self.capture.name)
                    self._failed = True
                delay = self._reopen(delay)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the loop's thread by poll()
            with self._cond:
                self._error = exc
                self._ended = True
                self._cond.notify_all()

    def _reopen(self, delay: float) -> float:
        """One reconnection attempt after ``delay`` s; returns the next delay."""
        with contextlib.suppress(Exception):
            self.capture.close()
        if self._stop.wait(delay):
            return delay
        try:
            info = self.capture.open()
        except (StylecastError, OSError) as exc:
            log.debug("%s: reopen failed: %s", self.capture.name, exc)
            return min(delay * 2, self.backoff[1])
        with self._cond:
            self._failed = False
            self._last_frame_at = time.perf_counter()
        self.reconnects += 1
        log.info("%s is back: %dx%d", self.capture.name, info.width, info.height)
        return self.backoff[0]

    def _publish(self, image: np.ndarray, start: float) -> None:
        now = time.perf_counter()
        with self._cond:
            self.capture_ms = max(0.0, now - start - float(getattr(self.capture, "waited", 0.0))) * 1000.0
            frame = Frame(np.ascontiguousarray(image), pts=now - self.started_at, captured_at=now, index=self.frames_captured,
                          info={"capture_ms": self.capture_ms})
            self.frames_captured += 1
            self._latest = frame
            self._failed = False
            self._last_frame_at = now
            self._cond.notify_all()
