"""The live frame loop of ``nst-live``: capture -> stylize -> blend -> sinks, top to bottom.

Each turn: the keys that came (window or stdin) are applied to the controls (``controls.py``),
the newest frame is taken from the source, stylized (the engine, or the original, with the
colours kept or not), blended with the previous output, written to every sink (clean frames),
saved as a snapshot when asked, and shown in the preview window with the HUD. Each stage is
timed (``stats.py``). While the source is lost, the window shows the last frame with a banner
and ``live`` sinks keep getting it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from ..stages import FrameSink, FrameSource
from .controls import LiveControls
from .hotkeys import StdinKeys
from .stats import LiveStats
from .window import PreviewWindow

log = logging.getLogger("stylecast.live")

POLL_SECONDS = 0.05  # how long the loop waits for a frame before it services the window again


def _gather_keys(controls: LiveControls, key: str | None, stdin: StdinKeys | None) -> None:
    controls.keys.push(key)
    if stdin is not None:
        for k in stdin.pending():
            controls.keys.push(k)


def run_live(source: FrameSource, controls: LiveControls, sinks: Sequence[FrameSink], *,
             window: PreviewWindow | None = None, stdin: StdinKeys | None = None,
             max_frames: int | None = None, stats: LiveStats | None = None) -> LiveStats:
    """Run until q/Esc, the window is closed, ``max_frames`` frames went out, or the source ends.

    Sinks get the clean frame; the window gets it with the HUD. While the source is lost, the
    window shows the last frame with a "lost" banner and ``live`` sinks keep getting that frame.
    """
    stats = stats or LiveStats()
    source.reset_counts()
    stats.started = time.perf_counter()
    last: np.ndarray | None = None
    was_lost = False
    key: str | None = None
    while not controls.quit and (max_frames is None or stats.frames < max_frames):
        _gather_keys(controls, key, stdin)
        key = None
        controls.apply_keys()
        controls.update_images()
        if window is not None and window.closed:
            break
        frame = source.poll(POLL_SECONDS)
        if frame is None:
            if source.ended:
                break
            if source.lost:
                if not was_lost:
                    stats.lost_events += 1
                    log.warning("%s lost: repeating the last frame until it is back", source.name)
                was_lost = True
                key = _while_lost(source, controls, stats, sinks, window, last)
            continue
        if was_lost:
            was_lost = False
            controls.say(f"{source.name} is back")
            controls.reset_blend()
        t0 = time.perf_counter()
        stylized = controls.stylize(frame.image)
        t1 = time.perf_counter()
        out = controls.blend(frame.image, stylized)
        t2 = time.perf_counter()
        for sink in sinks:
            sink.write(out, frame.pts)
        controls.take_snapshot(out)
        if window is not None:
            key = window.show(out, controls.hud(stats, source))
        t3 = time.perf_counter()
        last = out
        stages = {"capture": float(frame.info.get("capture_ms", 0.0)), "inference": (t1 - t0) * 1e3,
                  "blend": (t2 - t1) * 1e3, "output": (t3 - t2) * 1e3}
        stats.add(stages, (t3 - frame.captured_at) * 1e3, t3)
    stats.finish()
    return stats


def _while_lost(source: FrameSource, controls: LiveControls, stats: LiveStats, sinks: Sequence[FrameSink],
                window: PreviewWindow | None, last: np.ndarray | None) -> str | None:
    """One idle step while the source is lost: keep live sinks fed and the window responsive."""
    if last is not None:
        pts = source.clock()
        for sink in sinks:
            if sink.live:
                sink.write(last, pts)
    if window is None:
        return None
    image = last if last is not None else np.zeros((360, 640, 3), np.uint8)
    return window.show(image, controls.hud(stats, source, banner=f"{source.name} lost - reconnecting"))
