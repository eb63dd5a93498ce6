"""``nst-live``: webcam (or a stream, or the demo scene) -> style network -> window, OBS, files."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..contract import MANIFEST_NAME, PREDICTOR_GRAPH
from ..engine import load_model
from ..errors import BackendUnavailableError, InputFileError, ModelFolderError, UsageError
from ..live.captures import OPEN_TIMEOUT, CameraCapture, Capture, CaptureInfo, DemoCapture, StreamCapture
from ..live.controls import LiveControls
from ..live.hotkeys import StdinKeys, help_text
from ..live.loop import run_live
from ..live.sinks import RecordingSink, UdpSink, VirtualCameraSink, check_record_path
from ..live.source import LiveSource
from ..live.stats import LiveStats
from ..live.style_folder import StyleImageCycler
from ..live.window import PreviewWindow
from ..model_folder import ModelFolder
from ..providers import CPU, choose_provider, parse_device
from ..stages import FrameSink
from ..style_images import NO_PREDICTOR, PredictorSession, StyleImageLibrary
from ..styling import check_model_args, engine_from_args
from ..temporal import FlowBlender
from .common import EXIT_INTERRUPTED, entry_point, make_parser, number_between, whole_number
from .options import add_keep_colors_option, add_model_options, add_temporal_option, list_styles

# Nothing here imports PyAV at module level: the preview window must exist before it is
# imported (live/window.py explains why), so sources and sinks import it when they open.

log = logging.getLogger("stylecast.live")

DESCRIPTION = f"""\
Stylise a camera (or a video stream, or a built-in demo scene) live, and show it in a window,
send it to OBS or a video call as a virtual camera, stream it over UDP, record it.

source (one):
  --camera N|PATH   a camera by index (0, 1, ...) or device path (default: --camera 0); asks for
                    --width/--height/--fps (MJPG when the camera needs it for that) and logs
                    what the camera really gives
  --source FILE|URL a video file or network stream (rtsp://, http://, udp://, ...) played in real
                    time like a camera; --loop repeats a file
  --source demo     a generated moving scene: no camera and no file needed
Live sources keep only the newest frame: when stylising is slower than the source, frames are
dropped (and counted), never queued, so the output never lags behind.

outputs (any combination):
  window            a preview with a HUD (style, fps, latency, provider, stage times);
                    --no-window to run headless. The HUD is on the preview only.
  --virtual-cam     a virtual camera (OBS Virtual Camera on Windows/macOS, v4l2loopback on
                    Linux) fed at a steady frame rate; pick it as the camera in OBS, Zoom, Meet...
  --udp PORT        H.264 in MPEG-TS to udp://127.0.0.1:PORT, for an OBS Media Source
                    (input udp://127.0.0.1:PORT, format mpegts) when no virtual camera is installed
  --record FILE     record what is sent (.mkv .mp4 .mov .ts .webm); kept on q and Ctrl-C
A lost camera shows "lost" in the window, the virtual camera keeps its last frame so OBS keeps
the source, and the camera is reopened (with backoff) until it is back.

pictures as styles:
  --style-dir DIR   i steps through the pictures in DIR (.jpg .png ...; at least 64 px a side);
                    the model's style-prediction network turns each into a style in the
                    background, so frames never wait, and pictures added to DIR while it runs
                    show up within a second. Needs a model with a style predictor.

keys (in the window; with --no-window the same keys on stdin, one per line, e.g. "2", "s", "q"):
{help_text()}
"""

EPILOG = """\
examples:
  nst-live --camera 0 --style starry
  nst-live --camera 1 --width 1920 --height 1080 --fps 30 --max-side 720 --virtual-cam
  nst-live --source demo --mix starry=0.7 wave=0.3 --strength 0.8
  nst-live --camera 0 --style-dir paintings/                  # i: next painting as the style
  nst-live --source talk.mp4 --loop --udp 5000 --no-window
  nst-live --camera /dev/video2 --record session.mkv --snapshot-dir shots/
  printf '2\\ns\\nq\\n' | nst-live --source demo --no-window      # keys on stdin
  nst-live --list-styles"""


def _camera(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def make_live_parser() -> argparse.ArgumentParser:
    p = make_parser("nst-live", DESCRIPTION, EPILOG)
    src = p.add_argument_group("source")
    one = src.add_mutually_exclusive_group()
    one.add_argument("--camera", type=_camera, metavar="N|PATH", default=None, help="camera index or device path (default: 0)")
    one.add_argument("--source", metavar="FILE|URL|demo", default=None, help="a video file, a stream URL, or demo")
    src.add_argument("--width", type=whole_number(1), metavar="W", default=None, help="frame width to ask of the camera, or of the demo (default 640)")
    src.add_argument("--height", type=whole_number(1), metavar="H", default=None, help="frame height to ask of the camera, or of the demo (default 360)")
    src.add_argument("--fps", type=number_between(0.0, 1000.0, include_low=False), metavar="F", default=None, help="frame rate to ask of the camera, or of the demo (default 30)")
    src.add_argument("--fourcc", metavar="CODE", default=None,
                     help="camera pixel format, e.g. MJPG or YUYV (default: MJPG only when the camera needs it)")
    src.add_argument("--loop", action="store_true", help="--source FILE: start again at the end")
    add_model_options(p)
    add_keep_colors_option(p)  # the start state of key c
    p.add_argument_group("pictures as styles").add_argument(
        "--style-dir", type=Path, metavar="DIR", default=None,
        help="a folder of pictures that i steps through as styles (new pictures show up while running)")
    add_temporal_option(p)
    out = p.add_argument_group("outputs")
    out.add_argument("--no-window", action="store_true", help="no preview window (headless; keys on stdin)")
    out.add_argument("--virtual-cam", action="store_true", help="send to a virtual camera (OBS Virtual Camera, v4l2loopback)")
    out.add_argument("--virtual-cam-device", metavar="DEV", default=None,
                     help="which virtual camera, e.g. /dev/video10 (default: the first available)")
    out.add_argument("--udp", type=whole_number(1), metavar="PORT", default=None, help="stream MPEG-TS to udp://127.0.0.1:PORT")
    out.add_argument("--record", type=Path, metavar="FILE", default=None, help="record the output (.mkv .mp4 .mov .ts .webm)")
    out.add_argument("--overwrite", action="store_true", help="replace an existing --record FILE")
    out.add_argument("--snapshot-dir", type=Path, metavar="DIR", default=Path("."),
                     help="folder for snapshots taken with s (default: the current folder)")
    out.add_argument("--max-frames", type=whole_number(1), metavar="N", default=None, help="stop after N output frames")
    return p


# ---------------------------------------------------------------- set-up


def _check(args: argparse.Namespace) -> None:
    """Everything that can be checked before a camera, model or window is opened."""
    check_model_args(args)  # engine_from_args checks them again; here they fail before the camera opens
    if args.style_dir is not None and not args.style_dir.is_dir():
        what = "is not a folder" if args.style_dir.exists() else "no such folder"
        raise UsageError(f"--style-dir: {args.style_dir}: {what}")
    if args.record is not None:
        check_record_path(args.record, overwrite=args.overwrite)
    if not args.snapshot_dir.is_dir():
        raise UsageError(f"--snapshot-dir: {args.snapshot_dir} is not a folder")
    if args.udp is not None and args.udp > 65535:
        raise UsageError(f"--udp: {args.udp} is not a port number (1-65535)")
    if args.source not in (None, "demo") and "://" not in args.source and not Path(args.source).is_file():
        raise InputFileError(f"--source: {args.source}: no such file (or use demo, or a stream URL)")
    if args.source not in (None, "demo") and (args.width or args.height or args.fps):
        log.warning("--width/--height/--fps are ignored for --source FILE|URL (it plays as it is; --max-side sets the network's size)")


def _style_images(args: argparse.Namespace, model: ModelFolder, stack: contextlib.ExitStack) -> StyleImageCycler:
    """--style-dir: the folder's pictures, predicting in the background from now on.

    One CPU thread for the predictor: the frames need the rest, and a picture takes well under
    a second even so. ModelFolderError (exit 2) when the model has no style predictor."""
    if model.predictor is None:
        raise ModelFolderError(f"--style-dir: {model.path}: " + NO_PREDICTOR.format(graph=PREDICTOR_GRAPH))
    predictor = PredictorSession(model, threads=1)
    stack.callback(predictor.close)
    cycler = StyleImageCycler(StyleImageLibrary(predictor, args.style_dir))
    stack.callback(cycler.close)  # closed before the predictor: the worker may be using it
    log.info("style pictures: %d in %s (i steps through them)", len(cycler.library), args.style_dir)
    return cycler


def _capture(args: argparse.Namespace) -> Capture:
    if args.source == "demo":
        return DemoCapture(args.width or 640, args.height or 360, args.fps or 30.0)
    if args.source is not None:
        return StreamCapture(args.source, loop=args.loop)
    return CameraCapture(0 if args.camera is None else args.camera, args.width, args.height, args.fps, args.fourcc)


def _open_sinks(args: argparse.Namespace, info: CaptureInfo, stack: contextlib.ExitStack, *, window: bool) -> list[FrameSink]:
    sinks: list[FrameSink] = []
    fps = info.fps if info.fps > 0 else (args.fps or 30.0)
    if args.virtual_cam:
        try:
            vcam = VirtualCameraSink(info.width, info.height, fps, device=args.virtual_cam_device)
        except BackendUnavailableError as exc:
            if not (window or args.udp or args.record):
                raise  # the virtual camera was the only output asked for
            log.warning("warning: %s; carrying on without it", exc)
        else:
            stack.callback(vcam.close)
            sinks.append(vcam)
            log.info("virtual camera: %s, %dx%d @ %g fps", vcam.name, info.width, info.height, vcam.fps)
    if args.udp is not None:
        udp = UdpSink(args.udp, info.width, info.height, fps)
        stack.callback(udp.close)
        sinks.append(udp)
        log.info("streaming to %s (OBS: Media Source, input %s, input format mpegts)", udp.url, udp.url)
    if args.record is not None:
        rec = RecordingSink(args.record, info.width, info.height, fps, overwrite=args.overwrite)
        stack.callback(rec.close)
        sinks.append(rec)
        log.info("recording to %s", rec.path)
    if not sinks and not window:
        log.info("no outputs (no window, --virtual-cam, --udp or --record): frames are stylised and timed only")
    return sinks


@contextlib.contextmanager
def _signals_end_the_session(grace: float = 5.0) -> Iterator[None]:
    """Ctrl-C and SIGTERM (``kill``, a service manager) end the session the same way: the loop
    stops and the camera, the outputs and the window are closed, a recording finalised and kept.

    A Python signal handler only runs when the main thread gets back to Python. If it is stuck
    in native code (a camera driver, a GUI call), a watchdog thread, woken through the signal
    module's wakeup fd, ends the process after ``grace`` seconds instead, so that Ctrl-C and
    ``kill`` always work.
    """
    responded = threading.Event()

    def interrupt(signum: int, frame: Any) -> None:
        responded.set()
        raise KeyboardInterrupt

    if os.name != "posix" or threading.current_thread() is not threading.main_thread():
        yield  # Windows: Ctrl-C as Python does it; SIGTERM is not sent there
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    old_wakeup = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

    def watchdog() -> None:
        try:
            while data := os.read(read_fd, 16):
                if {signal.SIGINT, signal.SIGTERM} & set(data) and not responded.wait(grace):
                    os.write(2, b"error: not responding; stopped without cleaning up\n")
                    os._exit(EXIT_INTERRUPTED)
        finally:
            os.close(read_fd)  # here, not by the main thread: the number cannot be reused under the read

    threading.Thread(target=watchdog, name="stylecast-signal-watchdog", daemon=True).start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(old_wakeup)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(write_fd)  # the watchdog reads the end of the pipe and returns


def _pick_model(args: argparse.Namespace) -> None:
    """Without --model, on a machine where no GPU provider runs, use the bundled fast network
    (when one is installed): the default network is too slow for live video on a CPU."""
    from stylecast import weights

    fast = weights.bundled_model_dir(weights.FAST_MODEL)
    if args.model is not None or not (fast / MANIFEST_NAME).is_file():
        return
    provider, _ = choose_provider(parse_device(args.device))
    if provider == CPU:
        args.model = fast
        log.info("no GPU runs here: using the bundled fast model (pass --model to choose another)")


def _body(args: argparse.Namespace) -> int:
    _pick_model(args)
    if list_styles(args):
        return 0
    _check(args)
    stats = LiveStats()
    source: LiveSource | None = None
    sinks: list[FrameSink] = []
    running = False
    try:
        with _signals_end_the_session(), contextlib.ExitStack() as stack:
            model = load_model(args.model) if args.style_dir is not None else None
            images = _style_images(args, model, stack) if model is not None else None  # before the camera
            capture = _capture(args)
            source = LiveSource(capture, open_timeout=OPEN_TIMEOUT)
            stack.callback(source.close)
            streamed = isinstance(capture, StreamCapture)
            if not streamed:
                info = source.start()  # a missing camera fails here, before the model loads
            engine = stack.enter_context(engine_from_args(args, model))
            window = None
            if not args.no_window:
                window = PreviewWindow()
                stack.callback(window.close)
            if streamed:
                info = source.start()  # PyAV: only now that the window exists
            log.info("%s: %dx%d @ %.4g fps (%s)", capture.name, info.width, info.height, info.fps, info.details)
            sinks = _open_sinks(args, info, stack, window=window is not None)
            blender = FlowBlender(strength=args.temporal) if args.temporal > 0 else None
            stdin: StdinKeys | None = StdinKeys(sys.stdin)
            if not stdin.start():
                stdin = None
            elif window is None:
                log.info("keys: type one per line on stdin (h lists them, q quits)")
            controls = LiveControls(engine, blender, snapshot_dir=args.snapshot_dir, window=window,
                                    blender_factory=FlowBlender, images=images)
            controls.colors = args.keep_colors
            running = True
            run_live(source, controls, sinks, window=window, stdin=stdin, max_frames=args.max_frames, stats=stats)
    finally:
        if running and source is not None:  # also after Ctrl-C: what the session did so far
            stats.finish()
            for line in stats.summary(source.frames_captured, source.frames_dropped):
                log.info("%s", line)
            hint = stats.budget_hint(source.info.fps if source.info is not None else 0.0)
            if hint:
                log.warning("%s", hint)
            for sink in sinks:
                log.info("%s", sink.describe())
    return 0


main = entry_point(make_live_parser, _body)
