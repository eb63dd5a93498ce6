"""Where ``nst-live`` sends its clean output frames: a virtual camera, an MPEG-TS stream over UDP,
a recording (each a ``stages.FrameSink``), and PNG snapshots. (The preview window, which also
carries the HUD, is window.py.)

Every sink keeps the rules of ``stages.FrameSink``: ``write`` never blocks the frame loop for
long (the virtual camera is fed by its own pacing thread, the encoders by their own thread
behind a short queue), and a frame whose size differs from the size a sink was opened with (a
camera that came back at another resolution) is scaled to that size, because a virtual camera
or a stream cannot change size mid-way.

``live`` sinks (virtual camera, UDP) are kept fed with the last frame while the camera is lost,
so OBS keeps the source; a recording is not (it records frames that were really captured).

PyAV is imported lazily (in the encoder sinks' constructors): see window.py for why.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import queue
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from ..atomic import atomic_file, check_output_path
from ..errors import BackendUnavailableError, StylecastError, UsageError
from ..images import write_image
from ..video.containers import CONTAINERS

log = logging.getLogger("stylecast.live")

"""--record extension -> (FFmpeg muxer, encoder). Encoder settings are chosen to keep up live."""

_LIVE_ENCODER_OPTIONS = {
    # veryfast/CRF 20: visually clean at a few ms per 720p frame on one core
    "libx264": {"preset": "veryfast", "crf": "20"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "crf": "32", "b": "0", "row-mt": "1"},
}


def _fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


# ---------------------------------------------------------------- virtual camera


def virtual_camera_hint() -> str:
    """What to install on this OS for ``--virtual-cam`` (one sentence)."""
    system = platform.system()
    if system == "Linux":
        fix = ("install v4l2loopback and load it: sudo apt install v4l2loopback-dkms && sudo modprobe v4l2loopback "
               "devices=1 exclusive_caps=1 card_label=stylecast")
    elif system == "Windows":
        fix = "install OBS Studio 26 or newer (it provides the 'OBS Virtual Camera' device); keep OBS's own 'Start Virtual Camera' off"
    elif system == "Darwin":
        fix = ("install OBS Studio 30 or newer, click 'Start Virtual Camera' once in OBS to install the camera "
               "extension (allow it in System Settings), then stop it")
    else:
        fix = f"pyvirtualcam has no virtual camera backend for {system}"
    return f"{fix}; without a virtual camera, --udp PORT streams to an OBS Media Source"


class VirtualCameraSink:
    """A pyvirtualcam camera (OBS Virtual Camera on Windows/macOS, v4l2loopback on Linux), fed at a
    steady ``fps`` by its own thread with the newest frame written: apps see a regular camera even
    when stylising is slower or irregular, and the last frame keeps coming when the source stalls.

    ``device``/``backend`` are passed to ``pyvirtualcam.Camera`` (None: the first that works).
    BackendUnavailableError (with what to install) when no virtual camera can be opened.
    """

    live = True

    def __init__(self, width: int, height: int, fps: float, *, device: str | None = None, backend: str | None = None) -> None:
        try:
            import pyvirtualcam
        except ImportError as exc:
            raise BackendUnavailableError(f"pyvirtualcam is not installed (pip install pyvirtualcam); {virtual_camera_hint()}") from exc
        self.width, self.height, self.fps = int(width), int(height), float(fps) if fps and fps > 0 else 30.0
        try:
            self._cam = pyvirtualcam.Camera(self.width, self.height, self.fps, fmt=pyvirtualcam.PixelFormat.BGR,
                                            device=device, backend=backend)
        except Exception as exc:  # pyvirtualcam reports every failure as a plain exception
            why = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or "no virtual camera backend found"
            raise BackendUnavailableError(f"no virtual camera ({why}): {virtual_camera_hint()}") from exc
        self.name = f"{self._cam.device} ({self._cam.backend})"
        self.frames_sent = 0
        self._latest: np.ndarray | None = None
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pace, name="stylecast-virtual-camera", daemon=True)
        self._thread.start()

    def write(self, image: np.ndarray, pts: float) -> None:
        """Make ``image`` the frame the camera sends from now on (it is not copied: do not modify it)."""
        if self._error is not None:
            raise BackendUnavailableError(f"virtual camera {self.name} failed: {self._error}")
        self._latest = _fit(image, self.width, self.height)

    def _pace(self) -> None:
        period = 1.0 / self.fps
        due = time.perf_counter()
        try:
            while not self._stop.is_set():
                frame = self._latest
                if frame is not None:
                    self._cam.send(frame)
                    self.frames_sent += 1
                due += period
                now = time.perf_counter()
                if now - due > period:  # fell behind (a slow send): start again from now, no burst
                    due = now
                self._stop.wait(max(0.0, due - now))
        except Exception as exc:  # noqa: BLE001 - reported on the next write()
            self._error = exc

    def close(self) -> None:
        """Stop sending and release the device; safe to call twice."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        with contextlib.suppress(Exception):
            self._cam.close()

    def describe(self) -> str:
        return f"virtual camera {self.name}: {self.frames_sent} frames sent at {self.fps:g} fps"


# ---------------------------------------------------------------- encoders


class _Encoder:
    """PyAV encoding of live frames on its own thread, behind a queue of ``queue_size`` frames.

    When the encoder falls behind, the oldest waiting frame is dropped (and counted) rather than
    blocking the frame loop. Sizes are made even (4:2:0 chroma) by cropping one pixel column/row.
    Timestamps are milliseconds since the first frame, from the ``pts`` given to ``write``.
    """

    def __init__(self, target: str, muxer: str, codec: str, width: int, height: int, fps: float, *,
                 options: dict[str, str], container_options: dict[str, str], queue_size: int) -> None:
        import av  # lazily, after any preview window exists: see window.py

        self.width, self.height = int(width) & ~1, int(height) & ~1
        if self.width < 2 or self.height < 2:
            raise UsageError(f"frames of {width}x{height} are too small to encode")
        self.frames = 0
        self.dropped = 0
        self._queue: queue.Queue[tuple[np.ndarray, float] | None] = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._closed = False
        self._last_pts = -1
        self._first: float | None = None
        self._container = av.open(target, "w", format=muxer, container_options=container_options)
        try:
            stream = self._container.add_stream(codec, rate=max(1, round(fps or 30)), options=options)
            stream.width, stream.height = self.width, self.height
            stream.pix_fmt = "yuv420p"
            stream.time_base = Fraction(1, 1000)
            stream.codec_context.time_base = Fraction(1, 1000)
        except BaseException:
            self._container.close()
            raise
        self._stream = stream
        self._thread = threading.Thread(target=self._run, name=f"stylecast-{muxer}-encoder", daemon=True)
        self._thread.start()

    def write(self, image: np.ndarray, pts: float) -> None:
        if self._error is not None:
            raise StylecastError(f"encoding failed: {self._error}")
        item = (image, pts)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()
                self.dropped += 1
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(item)

    def _run(self) -> None:
        import av

        try:
            while (item := self._queue.get()) is not None:
                image, t = item
                self._first = t if self._first is None else self._first
                pts = max(round((t - self._first) * 1000.0), self._last_pts + 1)
                self._last_pts = pts
                image = _fit(image[: self.height, : self.width] if image.shape[0] & 1 or image.shape[1] & 1 else image,
                             self.width, self.height)
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
                frame.pts, frame.time_base = pts, Fraction(1, 1000)
                for packet in self._stream.encode(frame):
                    self._container.mux(packet)
                self.frames += 1
        except Exception as exc:  # noqa: BLE001 - reported on the next write() and by close()
            self._error = exc

    def close(self) -> None:
        """Encode what is queued, flush the encoder and close the container; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._queue.put(None, timeout=5.0)
        self._thread.join(timeout=30.0)
        try:
            if self._error is None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        except Exception as exc:  # noqa: BLE001 - reported just below
            self._error = exc
        finally:
            with contextlib.suppress(Exception):
                self._container.close()
        if self._error is not None:
            raise StylecastError(f"encoding failed: {self._error}")


class UdpSink:
    """H.264 in MPEG-TS over UDP to ``host:port``: low-latency x264 (ultrafast, zerolatency), a
    keyframe every second so a receiver (OBS Media Source, ffplay, VLC) can join at any time.
    Sending needs no listener: datagrams nobody receives are simply lost."""

    live = True

    def __init__(self, port: int, width: int, height: int, fps: float, *, host: str = "127.0.0.1") -> None:
        if not 1 <= port <= 65535:
            raise UsageError(f"--udp: {port} is not a port number (1-65535)")
        self.url = f"udp://{host}:{port}"
        rate = max(1, round(fps or 30))
        options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "23", "g": str(rate), "bf": "0"}
        try:
            self._enc = _Encoder(f"{self.url}?pkt_size=1316", "mpegts", "libx264", width, height, fps, options=options,
                                 container_options={"flush_packets": "1"}, queue_size=4)
        except OSError as exc:  # PyAV errors are OSErrors
            raise BackendUnavailableError(f"--udp: cannot stream to {self.url}: {exc}") from exc

    def write(self, image: np.ndarray, pts: float) -> None:
        self._enc.write(image, pts)

    def close(self) -> None:
        """Flush and stop streaming; safe to call twice."""
        self._enc.close()

    def describe(self) -> str:
        late = f", {self._enc.dropped} dropped (encoder too slow)" if self._enc.dropped else ""
        return f"udp {self.url}: {self._enc.frames} frames sent{late}"


class RecordingSink:
    """Records the frames sent to FILE (.mkv .mp4 .mov .ts: H.264; .webm: VP9) with their real
    timing. Written to a temporary file beside FILE and renamed by ``close()``: what was recorded
    is kept on q and Ctrl-C; nothing is left when encoding failed or no frame was recorded."""

    live = False

    def __init__(self, path: Path | str, width: int, height: int, fps: float, *, overwrite: bool) -> None:
        self.path = check_record_path(path, overwrite=overwrite)
        muxer, codec = CONTAINERS[self.path.suffix.lower()]
        self._atomic = atomic_file(self.path, overwrite=overwrite)
        tmp = self._atomic.__enter__()
        container_options = {"movflags": "+faststart"} if muxer in ("mp4", "mov") else {}
        try:
            self._enc = _Encoder(str(tmp), muxer, codec, width, height, fps, options=dict(_LIVE_ENCODER_OPTIONS[codec]),
                                 container_options=container_options, queue_size=30)
        except BaseException as exc:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._open = True

    def write(self, image: np.ndarray, pts: float) -> None:
        self._enc.write(image, pts)

    def close(self) -> None:
        """Finish the file and rename it into place; safe to call twice."""
        if not self._open:
            return
        self._open = False
        try:
            self._enc.close()
            if self._enc.frames == 0:
                raise UsageError(f"{self.path}: no frame was recorded; nothing saved")
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                self._atomic.__exit__(type(exc), exc, exc.__traceback__)  # removes the temporary file
            raise
        self._atomic.__exit__(None, None, None)  # the rename

    def describe(self) -> str:
        late = f", {self._enc.dropped} dropped (encoder too slow)" if self._enc.dropped else ""
        return f"recording {self.path}: {self._enc.frames} frames{late}"


def check_record_path(path: Path | str, *, overwrite: bool) -> Path:
    """Refuse an unknown extension, an existing file without ``overwrite``, or a missing folder."""
    path = Path(path)
    if path.suffix.lower() not in CONTAINERS:
        raise UsageError(f"--record: {path}: use one of {', '.join(CONTAINERS)} (the extension picks the format)")
    return check_output_path(path, overwrite=overwrite)


# ---------------------------------------------------------------- snapshots


def _snapshot_names(folder: Path) -> Iterator[Path]:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")[:-3]
    yield folder / f"stylecast-{stamp}.png"
    for i in range(1, 1000):
        yield folder / f"stylecast-{stamp}-{i}.png"


def save_snapshot(image: np.ndarray, folder: Path | str) -> Path:
    """Write ``image`` (BGR uint8 [H, W, 3]) as ``stylecast-YYYYmmdd-HHMMSS-mmm.png`` in ``folder``,
    atomically and never over an existing file. Returns the path."""
    folder = Path(folder)
    for path in _snapshot_names(folder):
        if not path.exists():
            return write_image(path, image, overwrite=False)
    raise UsageError(f"{folder}: too many snapshots with the same time stamp")

