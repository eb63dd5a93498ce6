"""``nst-video``: stylise a whole video file, keeping every frame, timestamp, size, rotation, audio and metadata."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import tempfile
from pathlib import Path

from .cli_common import entry_point, make_parser
from .cli_options import add_keep_colours_option, add_model_options, add_temporal_option, list_styles, stylizer_from_args
from .errors import UsageError
from .video import check_transcode, describe, transcode
from .demo import DEMO_CLIP, DEMO_SECONDS
from .video_plan import CONTAINERS, X264_PRESETS

log = logging.getLogger("stylecast.video")

DESCRIPTION = """\
Stylise every frame of the video IN with a style network and write OUT.

What is kept:
  every frame    none dropped or duplicated, in order; a file cut short still gives the
                 frames it holds (with a warning saying how many are missing)
  timestamps     each frame keeps its presentation time, so variable frame rates stay as they are
  size           exactly; odd sizes are encoded as 4:4:4 (4:2:0 needs even sides)
  rotation       phone videos: frames are stylised as stored and the rotation tag is copied
                 (.ts cannot store it: a warning says so)
  colour         range, primaries, transfer and matrix tags
  bit depth      10-bit input gives 10-bit output where the encoder can (libx264, libx265),
                 else 8-bit with a warning
  audio          every audio stream, copied packet for packet (not re-encoded); only a stream
                 OUT's container cannot hold is re-encoded, to AAC (Opus for .webm), with a warning
  subtitles      copied when OUT's container can hold them, else dropped with a warning
  metadata       title, creation time, comments; language, title and handler of each stream

The container follows OUT's extension: .mp4 .m4v .mov .mkv .ts (H.264 by default) or .webm
(VP9). Decoding, stylising and encoding run in parallel; the output is written to a temporary
file beside OUT and renamed at the end, so a failure or Ctrl-C leaves no partial file."""

EPILOG = """\
examples:
  nst-video holiday.mp4 holiday_starry.mp4 --style starry
  nst-video clip.mov out.mkv --mix starry=0.7 wave=0.3 --strength 0.8
  nst-video talk.mp4 teaser.mp4 --start 1:30 --duration 20 --max-side 720
  nst-video in.mkv out.webm --crf 30            # VP9; audio other than Opus/Vorbis becomes Opus
  nst-video in.mp4 out.mp4 --codec h264_nvenc   # NVIDIA GPU encoder (exit 3 where there is none)
  nst-video in.mp4 out.mp4 --temporal 0 --crf 23 --preset fast --overwrite
  nst-video in.mp4 out.mp4 --style starry --keep-colours   # the style's strokes in the video's own colours
  nst-video in.mp4 out.mp4 --style-image painting.jpg --strength 0.6
  nst-video --list-styles --model models/mine

--start/--duration: frames (and audio packets) with START <= t < START+DURATION are kept and
shifted by START, so OUT starts at 0. Audio is copied, not re-encoded, when OUT's container can
hold it: .mkv holds almost anything, .mp4 AAC/MP3/Opus/FLAC/PCM, .mov not Opus/FLAC, .webm only
Opus/Vorbis. Any other audio is re-encoded (AAC; Opus for .webm) and a warning says so."""


def _seconds(text: str) -> float:
    """'90', '90.5', '1:30', '0:01:30.5' -> seconds."""
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        parts = []
    if not 1 <= len(parts) <= 3 or not all(math.isfinite(p) and p >= 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected seconds or [H:]MM:SS(.s), got {text!r}")
    total = 0.0
    for p in parts:
        total = total * 60 + p
    return total


def make_video_parser() -> argparse.ArgumentParser:
    p = make_parser("nst-video", DESCRIPTION, EPILOG)
    p.add_argument("input", metavar="IN", nargs="?",
                   help=f"the video to stylise (any file FFmpeg reads), or {DEMO_CLIP} for a built-in {DEMO_SECONDS:g} s clip with sound")
    p.add_argument("output", metavar="OUT", nargs="?", help=f"output video ({' '.join(CONTAINERS)})")
    add_model_options(p, own_style="the first frame's")
    add_keep_colours_option(p)
    add_temporal_option(p)
    enc = p.add_argument_group("encoding")
    enc.add_argument("--codec", metavar="C", default=None,
                     help="video encoder: libx264 (default), libx265, libvpx-vp9 (default for .webm), libsvtav1, "
                          "h264_nvenc/hevc_nvenc/av1_nvenc (NVIDIA GPU; --crf is their -cq, --preset maps to p1..p7)")
    enc.add_argument("--crf", type=int, default=18, metavar="N",
                     help="constant quality, lower is better: 18 (default) is visually lossless for H.264")
    enc.add_argument("--preset", default="medium", metavar="P",
                     help=f"H.264/HEVC speed/size trade-off: {', '.join(X264_PRESETS[:-1])} (default: medium)")
    enc.add_argument("--start", type=_seconds, default=None, metavar="T", help="begin at T (seconds or [H:]MM:SS)")
    enc.add_argument("--duration", type=_seconds, default=None, metavar="T", help="keep only T of video from the start")
    enc.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    return p


def _body(args: argparse.Namespace) -> int:
    if list_styles(args):
        return 0
    if not args.input or not args.output:
        raise UsageError("IN and OUT are required (or --list-styles)")
    with contextlib.ExitStack() as stack:
        src = Path(args.input)
        if args.input == DEMO_CLIP:
            from .video_demo import write_demo_clip

            src = write_demo_clip(Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nst-demo-"))) / "demo.mp4")
            log.info("input: the built-in demo clip (%g s, generated)", DEMO_SECONDS)
        return _stylize(args, src, Path(args.output))


def _stylize(args: argparse.Namespace, src: Path, dst: Path) -> int:
    job = {"overwrite": args.overwrite, "crf": args.crf, "preset": args.preset, "codec": args.codec,
           "start": args.start, "duration": args.duration}
    # Input, output and options are all checked before the model loads (seconds on a GPU).
    check_transcode(src, dst, **job)
    with stylizer_from_args(args, per_image=False) as (_, stylizer):
        blender = None
        if args.temporal > 0:
            from .temporal import FlowBlender  # OpenCV flow: loaded only when used

            blender = FlowBlender(strength=args.temporal)
        report = transcode(src, dst, stylizer, blender, progress=False if args.quiet else None, **job)
    for line in describe(report):
        log.info("%s", line)
    return 0


main = entry_point(make_video_parser, _body)
