"""nst-live sources and sinks: the capture thread (newest frame only, open timeout, lost and back),
file playback, the virtual camera through a registered pyvirtualcam backend, MPEG-TS over UDP
received by a PyAV reader, recordings and snapshots."""

from __future__ import annotations

import contextlib
import io
import itertools
import signal
import socket
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import av
import numpy as np
import pytest
import pyvirtualcam
import pyvirtualcam.camera

from stylecast.realtime.cli.live import main
from stylecast.realtime.engine import open_engine
from stylecast.realtime.errors import BackendUnavailableError, InputFileError, OutputExistsError
from stylecast.realtime.images import read_image, write_image
from stylecast.realtime.live.captures import CameraCapture, CaptureInfo, DemoCapture, StreamCapture
from stylecast.realtime.live.controls import LiveControls
from stylecast.realtime.live.loop import run_live
from stylecast.realtime.live.sinks import RecordingSink, VirtualCameraSink, save_snapshot
from stylecast.realtime.live.source import LiveSource
from stylecast.realtime.live.window import Hud

DEMO = ["--source", "demo", "--width", "160", "--height", "90", "--no-window", "--device", "cpu", "--temporal", "0"]


# ---------------------------------------------------------------- fakes


class RecordingBackend:
    """A pyvirtualcam backend (see pyvirtualcam.camera.Backend) that keeps what it is sent."""

    instances: ClassVar[list[RecordingBackend]] = []

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **kw: object) -> None:
        self.width, self.height, self.fps, self.fourcc = width, height, fps, fourcc
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self.closed = 0
        RecordingBackend.instances.append(self)

    def send(self, frame: np.ndarray) -> None:
        self.frames.append(frame.copy())
        self.times.append(time.perf_counter())

    def close(self) -> None:
        self.closed += 1

    def device(self) -> str:
        return "recording-test-camera"

    def native_fourcc(self) -> int | None:
        return None


@pytest.fixture
def recording_vcam(monkeypatch: pytest.MonkeyPatch) -> type[RecordingBackend]:
    """Only the recording backend is registered (a real v4l2loopback/OBS camera is never touched)."""
    monkeypatch.setattr(pyvirtualcam.camera, "BACKENDS", {})
    pyvirtualcam.register_backend("recording", RecordingBackend)
    RecordingBackend.instances = []
    return RecordingBackend


class FlakyCapture:
    """Frames of a counter at ~50 fps; between ``outage`` seconds after open it fails:
    ``mode="fail"``: reads fail and reopening fails (an unplugged camera);
    ``mode="silent"``: reads block (a driver that stops delivering)."""

    reconnect = True
    waited = 0.0

    def __init__(self, outage: tuple[float, float], mode: str) -> None:
        self.name = "camera fake"
        self.outage, self.mode = outage, mode
        self.t0: float | None = None
        self.opens = 0
        self.n = 0

    def _in_outage(self) -> bool:
        t = time.perf_counter() - (self.t0 or 0.0)
        return self.outage[0] <= t < self.outage[1]

    def open(self) -> CaptureInfo:
        self.t0 = self.t0 or time.perf_counter()
        if self._in_outage():
            raise BackendUnavailableError("unplugged")
        self.opens += 1
        return CaptureInfo(64, 48, 50.0)

    def grab(self) -> np.ndarray | None:
        time.sleep(0.02)
        if self._in_outage():
            if self.mode == "fail":
                return None
            while self._in_outage():
                time.sleep(0.01)
        self.n += 1
        return np.full((48, 64, 3), self.n % 256, np.uint8)

    def close(self) -> None:
        pass


class SlowOpen(FlakyCapture):
    def open(self) -> CaptureInfo:
        time.sleep(3.0)
        return super().open()


def _clip(path: Path, frames: int = 10, rate: int = 25, size: tuple[int, int] = (64, 48)) -> Path:
    """A small H.264 clip whose frame i is filled with grey level 20*i."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            img = np.full((size[1], size[0], 3), (20 * i) % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


# ---------------------------------------------------------------- the capture thread


def test_live_source_keeps_only_the_newest_frame() -> None:
    with LiveSource(DemoCapture(64, 48, fps=200.0)) as source:
        info = source.start()
        assert (info.width, info.height) == (64, 48)
        seen = []
        for _ in range(5):
            time.sleep(0.1)  # a slow consumer: ~20 frames arrive meanwhile
            frame = source.poll(1.0)
            assert frame is not None and frame.image.shape == (48, 64, 3)
            seen.append(frame.index)
        assert all(b - a >= 3 for a, b in itertools.pairwise(seen)), seen  # old frames were skipped, not queued
        assert source.frames_dropped >= 10


def test_open_is_bounded_by_a_timeout() -> None:
    source = LiveSource(SlowOpen((99, 99), "fail"), open_timeout=0.3)
    start = time.perf_counter()
    with pytest.raises(BackendUnavailableError, match="did not open within"):
        source.start()
    assert time.perf_counter() - start < 1.5


@pytest.mark.parametrize("mode", ["fail", "silent"])
def test_lost_source_reconnects_and_frames_flow_again(mode: str) -> None:
    capture = FlakyCapture(outage=(0.3, 0.9), mode=mode)
    with LiveSource(capture, lost_after=0.2, backoff=(0.05, 0.2)) as source:
        source.start()
        states, got_after = [], 0
        end = time.perf_counter() + 3.0
        while time.perf_counter() < end and got_after < 10:
            frame = source.poll(0.05)
            states.append(source.lost)
            if frame is not None and any(states) and not source.lost:
                got_after += 1
        assert any(states), "never reported lost"
        assert not states[0] and not states[-1]
        assert got_after >= 10
        assert source.ended is False
        if mode == "fail":
            assert source.reconnects >= 1 and capture.opens >= 2


def test_no_camera_is_one_actionable_error() -> None:
    if Path("/dev/video7").exists():
        pytest.skip("a /dev/video7 exists here")
    with pytest.raises(BackendUnavailableError) as err:
        CameraCapture(7).open()
    assert "--source demo" in str(err.value) and "\n" not in str(err.value)


def test_file_plays_in_real_time_then_ends(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "clip.mp4", frames=10, rate=25)  # 0.4 s
    with LiveSource(StreamCapture(str(clip))) as source:
        info = source.start()
        assert (info.width, info.height, round(info.fps)) == (64, 48, 25)
        start, levels = time.perf_counter(), []
        while (frame := source.read()) is not None:
            levels.append(int(frame.image.mean()))
        took = time.perf_counter() - start
    assert source.ended
    assert 0.25 < took < 2.0, took  # paced like a camera, not decoded as fast as possible
    assert levels == sorted(levels) and len(levels) >= 5  # in order; maybe a few skipped, never repeated


def test_file_loop_repeats(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "clip.mp4", frames=5, rate=50)  # 0.1 s
    with LiveSource(StreamCapture(str(clip), loop=True)) as source:
        source.start()
        n, end = 0, time.perf_counter() + 0.6
        while time.perf_counter() < end:
            n += source.poll(0.05) is not None
        assert not source.ended and n > 5


def test_missing_file_source() -> None:
    with pytest.raises(InputFileError):
        StreamCapture("/nonexistent/clip.mp4").open()


# ---------------------------------------------------------------- virtual camera


def test_virtual_camera_sends_paced_bgr_frames(recording_vcam: type[RecordingBackend]) -> None:
    sink = VirtualCameraSink(64, 48, 40.0)
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[..., 2] = 255  # red in BGR
    sink.write(frame, 0.0)
    time.sleep(0.5)
    sink.write(np.zeros((96, 128, 3), np.uint8), 0.5)  # another size is scaled to the camera's
    time.sleep(0.1)
    sink.close()
    sink.close()  # idempotent
    (cam,) = recording_vcam.instances
    assert (cam.width, cam.height, cam.fps) == (64, 48, 40.0)
    assert cam.fourcc == pyvirtualcam.util.encode_fourcc(pyvirtualcam.PixelFormat.BGR.value)
    assert cam.closed == 1
    assert 12 <= len(cam.frames) <= 30, len(cam.frames)  # ~24 at 40 fps over 0.6 s; loose on a busy CI
    first = cam.frames[0].reshape(48, 64, 3)
    assert first[..., 2].min() == 255 and first[..., :2].max() == 0  # BGR order, unchanged
    assert cam.frames[-1].reshape(48, 64, 3).max() == 0
    gaps = np.diff(cam.times)
    assert 0.0125 < float(np.median(gaps)) < 0.05  # 25 ms nominal; the exact figure is a benchmark's job


def test_virtual_camera_missing_backend_is_actionable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pyvirtualcam.camera, "BACKENDS", {})
    with pytest.raises(BackendUnavailableError, match="--udp PORT"):
        VirtualCameraSink(64, 48, 30.0)


def test_cli_virtual_camera_gets_clean_frames(tiny_model_dir: Path, recording_vcam: type[RecordingBackend],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*DEMO, "--model", str(tiny_model_dir), "--virtual-cam", "--max-frames", "12"])
    assert code == 0
    (cam,) = recording_vcam.instances
    assert (cam.width, cam.height) == (160, 90) and cam.closed == 1
    assert len(cam.frames) >= 6
    assert all(f.size == 160 * 90 * 3 for f in cam.frames)
    assert "virtual camera recording-test-camera (recording)" in capsys.readouterr().err


def test_cli_without_virtual_camera_backend(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(pyvirtualcam.camera, "BACKENDS", {})
    # the only output asked for: exit 3 with what to install
    assert main([*DEMO, "--model", str(tiny_model_dir), "--virtual-cam", "--max-frames", "3"]) == 3
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: no virtual camera") and "--udp PORT" in errors[0]
    # with another output: a warning, and the session runs
    out = tmp_path / "rec.mkv"
    assert main([*DEMO, "--model", str(tiny_model_dir), "--virtual-cam", "--record", str(out), "--max-frames", "3"]) == 0
    assert "carrying on without it" in capsys.readouterr().err and out.is_file()


# ---------------------------------------------------------------- the lost camera, through the loop


class FakeWindow:
    """Stands in for PreviewWindow: keeps what the loop shows (the real window is tested under Xvfb)."""

    closed = False

    def __init__(self) -> None:
        self.shown: list[tuple[float, Hud]] = []

    def show(self, image: np.ndarray, hud: Hud) -> None:
        self.shown.append((float(image.mean()), hud))

    def toggle_fullscreen(self) -> None:
        pass


def test_loop_shows_lost_keeps_virtual_camera_fed_and_recovers(tiny_model_dir: Path,
                                                              recording_vcam: type[RecordingBackend]) -> None:
    engine = open_engine(tiny_model_dir, device="cpu")
    window = FakeWindow()
    vcam = VirtualCameraSink(64, 48, 25.0)
    with engine, LiveSource(FlakyCapture(outage=(0.4, 1.1), mode="silent"), lost_after=0.2, backoff=(0.05, 0.2)) as source:
        source.start()
        controls = LiveControls(engine, None, window=window)  # type: ignore[arg-type]
        stats = run_live(source, controls, [vcam], window=window, max_frames=40)  # type: ignore[arg-type]
    vcam.close()
    banners = [hud.banner for _, hud in window.shown]
    first_lost = next(i for i, b in enumerate(banners) if b)
    assert "camera fake lost" in banners[first_lost]
    assert any(not b for b in banners[first_lost:]), "frames never came back"
    assert stats.lost_events == 1 and stats.frames == 40
    (cam,) = recording_vcam.instances
    # During the ~0.7 s outage the virtual camera kept receiving (the last frame) at its rate.
    assert np.max(np.diff(cam.times)) < 0.2


# ---------------------------------------------------------------- UDP


def test_udp_stream_is_received_and_decoded(tiny_model_dir: Path) -> None:
    # The receiving socket is bound before nst-live starts and holds every datagram in its
    # buffer; nst-live has sent them all when it returns (the sink flushes on close), so the
    # socket is drained then, with no read timeout that a slow start could run into.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        rx.bind(("127.0.0.1", 0))
        port = rx.getsockname()[1]
        assert main([*DEMO, "--model", str(tiny_model_dir), "--udp", str(port), "--max-frames", "20"]) == 0
        rx.setblocking(False)
        stream = bytearray()
        with contextlib.suppress(BlockingIOError):
            while True:
                stream += rx.recv(65536)
    with av.open(io.BytesIO(bytes(stream)), format="mpegts") as container:
        got = [(frame.width, frame.height) for frame in container.decode(video=0)]
    assert len(got) >= 10, got
    assert set(got) == {(160, 90)}


# ---------------------------------------------------------------- recording and snapshots


def _decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]


def test_record_refuses_existing_and_keeps_what_was_recorded(tiny_model_dir: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rec.mp4"
    assert main([*DEMO, "--model", str(tiny_model_dir), "--record", str(out), "--max-frames", "8"]) == 0
    frames = _decoded(out)
    assert len(frames) == 8 and frames[0].shape == (90, 160, 3)
    assert main([*DEMO, "--model", str(tiny_model_dir), "--record", str(out), "--max-frames", "2"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*DEMO, "--model", str(tiny_model_dir), "--record", str(out), "--max-frames", "3", "--overwrite"]) == 0
    assert len(_decoded(out)) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.mp4"]  # no temporary file left


def test_recording_sink_needs_frames(tmp_path: Path) -> None:
    sink = RecordingSink(tmp_path / "empty.mkv", 64, 48, 30.0, overwrite=False)
    with pytest.raises(Exception, match="no frame was recorded"):
        sink.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_interrupt_finalises_the_recording(sig: int, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "session.mkv"
    cmd = [sys.executable, "-c", "from stylecast.realtime.cli.live import main; main()",
           *DEMO, "--model", str(tiny_model_dir), "--record", str(out)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # type: ignore[union-attr]
            if line.startswith("recording to"):
                break
        time.sleep(0.8)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "frames:" in err and "interrupted" in err
    assert len(_decoded(out)) >= 5
    assert [p.name for p in tmp_path.iterdir()] == ["session.mkv"]


def test_snapshots_are_timestamped_and_never_overwrite(tmp_path: Path) -> None:
    img = np.full((20, 30, 3), 7, np.uint8)
    paths = [save_snapshot(img, tmp_path) for _ in range(3)]
    assert len(set(paths)) == 3 and all(p.name.startswith("stylecast-") and p.suffix == ".png" for p in paths)
    assert all(np.array_equal(read_image(p), img) for p in paths)
    with pytest.raises(OutputExistsError):
        write_image(paths[0], img, overwrite=False)
