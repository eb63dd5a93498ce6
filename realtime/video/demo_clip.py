"""The built-in demo clip: ``nst-video demo:scene OUT`` needs no video of the user's.

The clip is the moving scene of ``demo.DemoScene`` (drifting clouds, a bouncing ball) with
a quiet two-tone audio track, so that a first run shows both things ``nst-video`` promises:
every frame stylised, the audio kept. It is written to a temporary file that the caller
removes; nothing is downloaded.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..demo import DEMO_FPS, DEMO_SECONDS, DEMO_SIZE, DemoScene


def write_demo_clip(path: Path, seconds: float = DEMO_SECONDS, fps: int = DEMO_FPS, size: tuple[int, int] = DEMO_SIZE) -> Path:
    """Write the demo clip (H.264 video near-lossless, AAC audio) to ``path`` (.mp4) and return it."""
    width, height = size
    frames = max(1, round(seconds * fps))
    rate = 48_000
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": "12", "preset": "veryfast"}
        audio = out.add_stream("aac", rate=rate, layout="mono")
        scene = DemoScene(width, height)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(scene.frame(i / fps), format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode())
        n = round(seconds * rate)
        t = np.arange(n, dtype=np.float32) / rate
        beat = (np.sin(2 * math.pi * 1.5 * t) > 0).astype(np.float32)  # alternates twice a second or so
        tone = 0.15 * np.sin(2 * math.pi * np.where(beat > 0, 440.0, 660.0) * t)
        samples = tone.astype(np.float32)[None, :]
        chunk = 1024
        for start in range(0, n, chunk):
            piece = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start : start + chunk]), format="fltp", layout="mono")
            piece.sample_rate, piece.pts, piece.time_base = rate, start, Fraction(1, rate)
            out.mux(audio.encode(piece))
        out.mux(audio.encode())
    return path
