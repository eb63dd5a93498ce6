"""The real preview window: nst-live under Xvfb, driven with xdotool key presses.

Starts its own Xvfb on a display number the server picks (-displayfd), so it never collides
with another X server; skips where Xvfb or xdotool is not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from stylecast.realtime.demo import demo_scene
from stylecast.realtime.engine import open_engine
from stylecast.realtime.images import read_image

pytestmark = pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("xdotool")), reason="needs Xvfb and xdotool")

CLI = [sys.executable, "-c", "from stylecast.realtime.cli.live import main; main()"]


@pytest.fixture
def display() -> Iterator[str]:
    """A private X display (":N")."""
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                              pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()  # written once the server accepts connections
        if not number.isdigit():
            pytest.skip("Xvfb did not start")
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(10)


def _wait(what: str, check: Callable[[], object], timeout: float = 20.0) -> object:
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _mean_colour_by_style(model: Path) -> dict[str, np.ndarray]:
    with open_engine(model, device="cpu") as engine:
        out = {}
        for name in engine.style_names:
            engine.set_style(name)
            out[name] = np.mean([engine(demo_scene(160, 90, t)).reshape(-1, 3).mean(0) for t in (0.0, 2.0, 4.0)], axis=0)
        return out


def test_window_keys_change_style_snapshot_and_quit(display: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    log = tmp_path / "stderr.txt"
    shots = tmp_path / "shots"
    shots.mkdir()
    cmd = [*CLI, "--source", "demo", "--width", "160", "--height", "90", "--device", "cpu", "--temporal", "0",
           "--model", str(tiny_model_dir), "--snapshot-dir", str(shots)]
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        def xdotool(*args: str) -> str:
            return subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, timeout=10, check=False).stdout

        def window() -> str:
            ids = xdotool("search", "--name", "^stylecast$").split()
            return ids[-1] if ids and "demo: 160x90" in log.read_text() else ""

        wid = str(_wait("the window", window))
        xdotool("windowfocus", "--sync", wid)
        time.sleep(0.3)  # a few frames in style 1
        xdotool("key", "2")
        _wait("the style change", lambda: "style 2: beta" in log.read_text())
        xdotool("key", "s")
        snap = _wait("the snapshot", lambda: next(shots.glob("stylecast-*.png"), None))
        xdotool("key", "q")
        code = proc.wait(20)
    finally:
        proc.kill()
    text = log.read_text()
    assert code == 0, text
    assert "frames:" in text and "latency capture->output" in text  # the stats, printed on exit
    colours = _mean_colour_by_style(tiny_model_dir)
    mean = read_image(snap).reshape(-1, 3).mean(0)  # type: ignore[arg-type]
    dist = {name: float(np.abs(mean - c).sum()) for name, c in colours.items()}
    assert min(dist, key=dist.__getitem__) == "beta", dist
    assert read_image(snap).shape == (90, 160, 3)  # type: ignore[arg-type]  # the clean frame: no HUD, not enlarged


def test_window_with_a_file_source_and_encoders_does_not_hang(display: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    """PyAV (file source, recording, UDP) is imported only after the window exists: imported
    first, it makes the first HighGUI call hang (opencv#29195)."""
    import av

    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(10):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(demo_scene(96, 64, i / 25), format="bgr24")))
        out.mux(stream.encode())
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    rec = tmp_path / "rec.mkv"
    run = subprocess.run([*CLI, "--source", str(clip), "--loop", "--device", "cpu", "--model", str(tiny_model_dir),
                          "--record", str(rec), "--udp", "9", "--max-frames", "15"],
                         env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert "frames: 15 out" in run.stderr
    with av.open(str(rec)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 15
