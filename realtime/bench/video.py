"""``nst-bench video``: end-to-end ``nst-video`` frames per second against a naive loop, same run.

For each size a clip is generated (the built-in moving scene, H.264 with an AAC tone, so
no data set is needed), then stylised twice:

  engine     ``video.transcode``: PyAV decode, the StyleEngine, the temporal blend and the
             encoder in three threads with bounded queues, audio copied
  reference  the naive way (pytorch/examples style): one thread decodes a frame, converts it
             to numpy, runs the network in PyTorch eager fp32, converts back and encodes it,
             then the next frame; no blend, no audio

Both encode with libx264 at the same --preset and CRF. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_file, check_output_path
from ..cli.common import whole_number
from ..cli.options import add_device_options, add_model_dir_option
from ..demo import DemoScene
from ..engine import StyleEngine, open_engine
from ..temporal import DEFAULT_TEMPORAL, FlowBlender
from .speed import parse_size, reference_stylizer

log = logging.getLogger("stylecast.bench")

HELP = "end-to-end nst-video fps of the engine pipeline against a naive one-thread PyTorch loop"
DEFAULT_SIZES = ("640x360", "1280x720", "1920x1080")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``nst-bench video``."""
    add_model_dir_option(parser)
    parser.add_argument("--checkpoint", type=Path, metavar="DIR", default=None,
                        help="the nst-train checkpoint for the PyTorch reference (default: random weights of the same architecture)")
    add_device_options(parser)
    parser.add_argument("--sizes", nargs="+", metavar="WxH", default=list(DEFAULT_SIZES), help=f"clip sizes (default: {' '.join(DEFAULT_SIZES)})")
    parser.add_argument("--frames", type=whole_number(2), default=60, metavar="N", help="frames per generated clip (default 60)")
    parser.add_argument("--temporal", type=float, default=DEFAULT_TEMPORAL, metavar="X", help=f"blend strength of the engine run (default {DEFAULT_TEMPORAL})")
    parser.add_argument("--preset", default="veryfast", help="libx264 preset of both runs (default veryfast)")
    parser.add_argument("--no-reference", action="store_true", help="run only the engine pipeline")
    parser.add_argument("--json", type=Path, metavar="PATH", default=None, help="also save the results as JSON")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")


def make_clip(path: Path, width: int, height: int, frames: int, fps: int = 30) -> None:
    """The demo scene as H.264 (yuv420p) with a 440 Hz AAC tone."""
    import av

    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "18"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=48000, layout="mono")
        samples = 48000 // fps
        scene = DemoScene(width, height)
        for i in range(frames):
            for packet in video.encode(av.VideoFrame.from_ndarray(scene.frame(i / fps), format="bgr24")):
                out.mux(packet)
            t = (np.arange(samples) + i * samples) / 48000
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 48000, i * samples, Fraction(1, 48000)
            for packet in audio.encode(frame):
                out.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode(None):
                out.mux(packet)


def naive_loop(src: Path, dst: Path, stylize: Any, preset: str) -> int:
    """Decode, stylise and encode one frame after another in one thread; returns frames written."""
    import av

    n = 0
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream("libx264", rate=vin.average_rate, options={"preset": preset, "crf": "18"})
        vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        for frame in inp.decode(vin):
            image = stylize(frame.to_ndarray(format="bgr24"))
            for packet in vout.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
            n += 1
        for packet in vout.encode(None):
            out.mux(packet)
    return n


def _engine_run(engine: StyleEngine, src: Path, dst: Path, args: argparse.Namespace) -> float:
    from ..video.pipeline import transcode

    blender = FlowBlender(strength=args.temporal) if args.temporal > 0 else None
    report = transcode(src, dst, engine, blender, overwrite=True, preset=args.preset, progress=False)
    return report.fps


def run(args: argparse.Namespace) -> int:
    sizes = [parse_size(s) for s in args.sizes]
    if args.json is not None:
        check_output_path(args.json, overwrite=args.overwrite)
    rows: list[dict[str, Any]] = []
    with open_engine(args.model, device=args.device, max_side=args.max_side) as engine, tempfile.TemporaryDirectory() as tmp:
        reference, ref_info = (None, {"skipped": "--no-reference"}) if args.no_reference else reference_stylizer(args, engine)
        print(f"engine     nst-video pipeline on {engine.provider} ({engine.precision}), temporal blend {args.temporal:g}, audio copied")
        print("reference  " + (ref_info.get("skipped") or f"{ref_info['what']}, one thread, no blend, no audio"))
        print(f"clips      generated: the demo scene, {args.frames} frames at 30 fps, H.264 + AAC; libx264 {args.preset} for both\n")
        header = f"{'size':>11}  {'engine fps':>10}  {'reference fps':>13}  {'speed-up':>8}"
        print(header)
        print("-" * len(header))
        for w, h in sizes:
            src = Path(tmp) / f"clip_{w}x{h}.mp4"
            make_clip(src, w, h, args.frames)
            e_fps = _engine_run(engine, src, Path(tmp) / "engine.mp4", args)
            r_fps = None
            if reference is not None:
                start = time.perf_counter()
                frames = naive_loop(src, Path(tmp) / "reference.mp4", reference, args.preset)
                r_fps = frames / (time.perf_counter() - start)
            rows.append({"width": w, "height": h, "frames": args.frames, "engine_fps": round(e_fps, 2),
                         "reference_fps": None if r_fps is None else round(r_fps, 2),
                         "speedup": None if r_fps is None else round(e_fps / r_fps, 3)})
            ratio = "-" if r_fps is None else f"{e_fps / r_fps:.2f}x"
            print(f"{f'{w}x{h}':>11}  {e_fps:>10.1f}  {'-' if r_fps is None else f'{r_fps:.1f}':>13}  {ratio:>8}", flush=True)
        result = {"provider": engine.provider, "precision": engine.precision, "temporal": args.temporal,
                  "preset": args.preset, "reference": ref_info, "results": rows}
    if args.json is not None:
        with atomic_file(args.json, overwrite=args.overwrite) as tmp_json:
            tmp_json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"\nsaved {args.json}")
    return 0
