"""Live frame sources for ``nst-live``: a camera, a file or network stream played as a camera, the demo.

Every source is a ``Capture``: open / grab / close, blocking, one BGR uint8 [H, W, 3] frame at
a time. ``live.source.LiveSource`` runs one on its own thread, keeps only the newest frame and
turns it into ``stages.Frame``s (``pts`` in seconds since the source opened, ``captured_at`` =
``time.perf_counter()`` when the frame was read, for latency).

PyAV is imported only inside ``StreamCapture.open``: importing it before the first OpenCV
window exists can hang that window (opencv#29195), and the CLI opens a stream source only
after its window is up.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from ..demo import DemoScene
from ..errors import BackendUnavailableError, InputFileError

log = logging.getLogger("stylecast.live")

OPEN_TIMEOUT = 10.0
"""Seconds the first open of a source may take before it counts as unavailable."""


class CaptureEnded(Exception):
    """Raised by ``Capture.grab`` at the natural end of a source (a file without --loop)."""


@dataclass(frozen=True)
class CaptureInfo:
    """What a capture really delivers once open (not what was asked for)."""

    width: int
    height: int
    fps: float  # nominal frames per second (0 when the source does not say)
    details: str = ""  # for the log, e.g. "MJPG, asked 1280x720 @ 30"


class Capture(Protocol):
    """A blocking frame reader; ``LiveSource`` runs it on a thread."""

    name: str  # for messages: "camera 0", "demo", "clip.mp4"
    reconnect: bool  # reopen after a failure (cameras, network streams), or end (files)
    waited: float  # seconds the last grab() slept for real-time pacing (not counted as capture time)

    def open(self) -> CaptureInfo:
        """Open the device or stream; BackendUnavailableError / InputFileError when it cannot."""
        ...

    def grab(self) -> np.ndarray | None:
        """The next frame, BGR uint8 [H, W, 3]; None when reading failed; CaptureEnded at the end."""
        ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- captures


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own warnings (``[ WARN:0] can't open camera by index``) around an open:
    the failure is reported once, as one actionable line. -v keeps them."""
    if logging.getLogger("stylecast").isEnabledFor(logging.DEBUG):
        yield
        return
    before = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(before)


def _fourcc_text(value: float) -> str:
    code = int(value)
    text = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return text if text.isprintable() and text.strip() else "?"


def _camera_api() -> int:
    """The OpenCV backend that opens cameras fastest on this OS (MSMF can take many seconds)."""
    system = platform.system()
    if system == "Windows":
        return cv2.CAP_DSHOW
    if system == "Darwin":
        return cv2.CAP_AVFOUNDATION
    if system == "Linux":
        return cv2.CAP_V4L2
    return cv2.CAP_ANY


def camera_hint(device: int | str) -> str:
    """What to try when camera ``device`` cannot be used (one sentence)."""
    found = ""
    if platform.system() == "Linux":
        nodes = sorted(Path("/dev").glob("video*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0))
        found = f" (cameras here: {', '.join(str(p) for p in nodes)})" if nodes else " (no /dev/video* device exists here)"
    others = "another index (--camera 1, --camera 2, ...)" if isinstance(device, int) else "another device"
    return f"try {others}{found}, close other programs using the camera, or run without one: --source demo"


class CameraCapture:
    """An OpenCV camera by index or device path, at a requested size and rate.

    ``width``/``height``/``fps`` are requests; the camera picks what it supports and ``open``
    reports the real values. With ``fourcc=None`` (auto) a camera that delivers less than asked
    (many USB webcams give 720p/1080p at full rate only in MJPG) is switched to MJPG.
    """

    reconnect = True
    waited = 0.0

    def __init__(self, device: int | str, width: int | None = None, height: int | None = None,
                 fps: float | None = None, fourcc: str | None = None) -> None:
        self.device = device
        self.name = f"camera {device}"
        self.width, self.height, self.fps, self.fourcc = width, height, fps, fourcc
        self._cap: Any = None
        self._first: np.ndarray | None = None  # the frame open() read to prove the camera works

    def _request(self, cap: Any, fourcc: str | None) -> None:
        if fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*fourcc))
        if self.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.fps:
            cap.set(cv2.CAP_PROP_FPS, self.fps)

    def _short_of_request(self, cap: Any) -> bool:
        w, h, fps = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT), cap.get(cv2.CAP_PROP_FPS)
        return bool((self.width and w < self.width) or (self.height and h < self.height)
                    or (self.fps and 0 < fps < 0.9 * self.fps))

    def open(self) -> CaptureInfo:
        with _quiet_opencv():
            cap = cv2.VideoCapture(self.device, _camera_api())
            if not cap.isOpened() and _camera_api() != cv2.CAP_ANY:
                cap = cv2.VideoCapture(self.device)  # e.g. a GStreamer or other non-default device
            if not cap.isOpened():
                raise BackendUnavailableError(f"no camera {self.device} (or it cannot be opened): {camera_hint(self.device)}")
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # where supported: fewer stale frames in the driver
            self._request(cap, self.fourcc)
            if self.fourcc is None and self._short_of_request(cap) and _fourcc_text(cap.get(cv2.CAP_PROP_FOURCC)) != "MJPG":
                self._request(cap, "MJPG")
            ok, image = cap.read()
        if not ok or image is None:
            cap.release()
            raise BackendUnavailableError(f"camera {self.device} opened but gives no frames (in use by another program?): "
                                          f"{camera_hint(self.device)}")
        self._cap, self._first = cap, image
        h, w = image.shape[:2]
        asked = ""
        if self.width or self.height or self.fps:
            asked = f", asked {self.width or '?'}x{self.height or '?'} @ {self.fps or '?'}"
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        return CaptureInfo(w, h, fps, f"{_fourcc_text(cap.get(cv2.CAP_PROP_FOURCC))}{asked}")

    def grab(self) -> np.ndarray | None:
        first, self._first = self._first, None
        if first is not None:
            return first
        if self._cap is None:
            return None
        ok, image = self._cap.read()
        return image if ok and image is not None else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
        self._cap = self._first = None


class DemoCapture:
    """``demo.DemoScene`` at ``width``x``height``, produced at ``fps`` in real time like a camera."""

    reconnect = False

    def __init__(self, width: int = 640, height: int = 360, fps: float = 30.0) -> None:
        self.name = "demo"
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self._start = 0.0
        self._count = 0
        self.waited = 0.0
        self._scene = DemoScene(self.width, self.height)

    def open(self) -> CaptureInfo:
        self._start, self._count = time.perf_counter(), 0
        return CaptureInfo(self.width, self.height, self.fps, "generated scene")

    def grab(self) -> np.ndarray:
        due = self._start + self._count / self.fps
        self.waited = max(0.0, due - time.perf_counter())
        if self.waited > 0:
            time.sleep(self.waited)
        image = self._scene.frame(self._count / self.fps)
        self._count += 1
        return image

    def close(self) -> None:
        pass


_ROTATE = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, -90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, -180: cv2.ROTATE_180}


class StreamCapture:
    """A video file or network stream (anything FFmpeg reads), decoded with PyAV and played in
    real time: each frame is released at its presentation time, so a file behaves like a camera.
    ``loop`` restarts a file at its end. Network streams (``scheme://``) are reopened when they
    fail; a file ends. Frames are turned upright when the stream carries a rotation."""

    def __init__(self, url: str, *, loop: bool = False, timeout: float = OPEN_TIMEOUT) -> None:
        self.url = url
        self.is_network = "://" in url and not url.startswith("file:")
        self.name = url if self.is_network else Path(url).name
        self.reconnect = self.is_network
        self.loop = loop
        self.timeout = timeout
        self._container: Any = None
        self._frames: Iterator[Any] | None = None
        self._first: Any = None  # the frame open() decoded, handed out by the first grab()
        self._anchor: tuple[float, float] | None = None  # (wall clock, stream time) of the pacing origin
        self.waited = 0.0

    def open(self) -> CaptureInfo:
        import av  # lazily, after any preview window exists: see the module docstring

        if not self.is_network and not Path(self.url).is_file():
            raise InputFileError(f"{self.url}: no such file")
        try:
            self._container = av.open(self.url, timeout=(self.timeout, self.timeout))
        except av.error.FFmpegError as exc:
            err = BackendUnavailableError if self.is_network else InputFileError
            raise err(f"{self.url}: cannot open ({exc})") from exc
        if not self._container.streams.video:
            self.close()
            raise InputFileError(f"{self.url}: has no video stream")
        video = self._container.streams.video[0]
        video.thread_type = "AUTO"
        self._frames = self._container.decode(video)
        self._anchor = None
        # Decode the first frame now: it proves the stream plays and gives the real size (after rotation).
        try:
            first = self._next_frame()
        except CaptureEnded:
            first = None
        if first is None:
            self.close()
            raise InputFileError(f"{self.url}: no video frame could be decoded")
        self._first = first
        image = self._upright(first)
        rate = float(video.average_rate or video.guessed_rate or 0)
        return CaptureInfo(image.shape[1], image.shape[0], rate, video.codec_context.name)

    @staticmethod
    def _upright(frame: Any) -> np.ndarray:
        image = frame.to_ndarray(format="bgr24")
        rotate = _ROTATE.get(int(getattr(frame, "rotation", 0) or 0))
        return cv2.rotate(image, rotate) if rotate is not None else image

    def _next_frame(self) -> Any:
        import av

        try:
            return next(self._frames)  # type: ignore[arg-type]  # grab() checked that open() succeeded
        except StopIteration:
            if not self.loop or self.is_network:
                raise CaptureEnded from None
        except av.error.FFmpegError as exc:
            if self.is_network:
                log.warning("%s: %s", self.name, exc)
                return None
            raise CaptureEnded(f"{self.name}: {exc}") from exc
        self._container.seek(0)  # --loop: back to the start, paced from now
        self._frames = self._container.decode(self._container.streams.video[0])
        self._anchor = None
        try:
            return next(self._frames)
        except (StopIteration, av.error.FFmpegError):
            raise CaptureEnded(f"{self.name}: cannot restart for --loop") from None

    def grab(self) -> np.ndarray | None:
        if self._frames is None:
            return None
        frame, self._first = (self._first, None) if self._first is not None else (self._next_frame(), None)
        if frame is None:
            return None
        self._pace(frame.time)
        return self._upright(frame)

    def _pace(self, t: float | None) -> None:
        """Sleep until the frame's time; re-anchor after a jump or when far behind (a live stream)."""
        self.waited = 0.0
        if t is None:
            return
        now = time.perf_counter()
        if self._anchor is None:
            self._anchor = (now, t)
            return
        due = self._anchor[0] + (t - self._anchor[1])
        if due - now > 2.0 or now - due > 1.0:  # a pts jump, or decoding far behind real time
            self._anchor = (now, t)
        elif due > now:
            self.waited = due - now
            time.sleep(self.waited)

    def close(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
        self._container = self._frames = self._first = None
