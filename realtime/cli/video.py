"""``nst-video``: stylise a whole video file, keeping every frame, timestamp, size, rotation, audio and metadata;
or every video of a folder, on this machine (``--workers N``) or on a Ray cluster (``--ray [ADDRESS]``)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import math
import tempfile
from pathlib import Path

from ..demo import DEMO_CLIP, DEMO_SECONDS
from ..engine import load_model
from ..errors import UsageError
from ..styling import check_model_args, stylizer_from_args
from ..video.batch import Runner, VideosProgress, stylize_videos
from ..video.folder import FALLBACK_SUFFIX, normal_suffix
from ..video.jobs import EncodeOptions, StyleOptions, VideoJob, VideoResult, VideoTask, limit_cv2_threads
from ..video.pipeline import check_transcode, describe, transcode
from ..video.plan import CONTAINERS, X264_PRESETS
from .common import entry_point, make_parser, whole_number
from .options import add_keep_colors_option, add_model_options, add_temporal_option, list_styles

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
file beside OUT and renamed at the end, so a failure or Ctrl-C leaves no partial file.

A folder IN gives a folder OUT (made when missing): every video in it, a video by its container
(FFmpeg opens it and finds a video stream), not by its extension alone; other files are left
out. Each output has its input's name (a container nst-video does not write, such as .avi,
becomes .mkv; --out-ext sets one for all) and keeps everything listed above. A video that
cannot be read is named and skipped, the others are done, and a summary ends the run (videos
done, skipped and failed, frames, fps); the exit code is 4 when some videos failed. Existing
outputs stop the run before any work unless --overwrite (replace them) or --skip-existing
(leave them, do the rest: a run that was stopped carries on).

--workers N stylises N videos at once on this machine, each in its own process with its own
engine (on the CPU the cores are shared out; on a GPU the sessions share it). --ray runs one
Ray task per video on a cluster (pip install "stylecast[cluster]"): --ray alone starts a
local Ray, --ray ADDRESS joins a running cluster (ray start --head on one machine). Every node
must see IN, OUT (and --model, --style-image) at the same path: NFS, a mounted bucket."""

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
  nst-video season1/ season1_starry/ --style starry          # every video of a folder
  nst-video clips/ styled/ --workers 2 --out-ext .mp4         # two at a time, all written as .mp4
  nst-video clips/ styled/ --skip-existing                    # carry on after a stop
  nst-video /mnt/shared/clips /mnt/shared/styled --ray        # a local Ray
  nst-video /mnt/shared/clips /mnt/shared/styled --ray=10.0.0.5:6379   # a running cluster (ray start --head)

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
                   help=f"the video to stylise (any file FFmpeg reads), a folder of videos, or {DEMO_CLIP} for a built-in "
                   f"{DEMO_SECONDS:g} s clip with sound")
    p.add_argument("output", metavar="OUT", nargs="?", help=f"output video ({' '.join(CONTAINERS)}), or a folder when IN is one")
    add_model_options(p, own_style="the first frame's")
    add_keep_colors_option(p)
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
    enc.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (a folder: each output that exists)")
    add_many_videos_options(p)
    return p


LOCAL_RAY = "local"  # --ray alone; ray.init(address="local") also means a new local Ray


def _out_ext(text: str) -> str:
    try:
        return normal_suffix(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--out-ext {text}: ")) from None


def add_many_videos_options(p: argparse.ArgumentParser) -> None:
    """--workers, --threads, --ray, --out-ext, --skip-existing."""
    many = p.add_argument_group("many videos (IN a folder; --ray and --threads also with one file)")
    many.add_argument("--workers", type=whole_number(1, " of workers"), default=None, metavar="N",
                      help="videos stylised at once on this machine, each in its own process with its own engine "
                      "(default: 2 sharing a GPU where one runs, else one per physical core up to 8; never more than the videos)")
    many.add_argument("--threads", type=whole_number(1, " of threads"), default=None, metavar="N",
                      help="CPU threads of each engine and of its OpenCV work (the --temporal flow); default: the "
                      "physical cores, shared out among the workers; with --ray the CPUs each task asks for, default 2")
    many.add_argument("--ray", nargs="?", const=LOCAL_RAY, default=None, metavar="ADDRESS",
                      help="one Ray task per video: --ray alone starts a local Ray for the run; --ray=ADDRESS joins a "
                      "running cluster (HOST:6379 of a head started with `ray start --head`, ray://HOST:10001, or auto). "
                      "Every node must see IN and OUT at the same path. Needs pip install \"stylecast[cluster]\"")
    many.add_argument("--out-ext", type=_out_ext, default=None, metavar="EXT",
                      help=f"with a folder: write every output as EXT ({' '.join(CONTAINERS)}); default: the input's "
                      f"extension where nst-video writes it, else {FALLBACK_SUFFIX}")
    many.add_argument("--skip-existing", action="store_true",
                      help="with a folder: leave outputs that exist as they are and stylise the rest")


def _body(args: argparse.Namespace) -> int:
    if list_styles(args):
        return 0
    if args.ray not in (None, LOCAL_RAY) and args.output is None and Path(args.ray).exists():
        # `nst-video --ray IN OUT`: argparse gave IN to --ray (an address is never an existing path)
        args.input, args.output, args.ray = args.ray, args.input, LOCAL_RAY
    if not args.input or not args.output:
        raise UsageError("IN and OUT are required (or --list-styles)")
    if args.ray is not None or Path(args.input).is_dir():
        return _stylize_many(args)
    for flag, used in (("--out-ext", args.out_ext), ("--skip-existing", args.skip_existing)):
        if used:
            raise UsageError(f"{flag} goes with a folder IN (nst-video IN_DIR OUT_DIR {flag} ...)")
    if args.workers and args.workers > 1:
        log.info("one video: --workers %d has nothing to share out (the frames of one video already run in parallel)",
                 args.workers)
    with contextlib.ExitStack() as stack:
        src = Path(args.input)
        if args.input == DEMO_CLIP:
            from ..video.demo_clip import write_demo_clip

            src = write_demo_clip(Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nst-demo-"))) / "demo.mp4")
            log.info("input: the built-in demo clip (%g s, generated)", DEMO_SECONDS)
        return _stylize(args, src, Path(args.output))


def _stylize_many(args: argparse.Namespace) -> int:
    """A folder (or, with --ray, also one file): video/batch.py with a local or a Ray runner."""
    if args.input == DEMO_CLIP:
        raise UsageError(f"{DEMO_CLIP} is made on this machine only; give a video file or a folder of them")
    if args.ray is not None and args.workers is not None:
        raise UsageError("--workers is for this machine; with --ray the cluster runs as many videos at once as its "
                         "CPUs (--threads per task) or GPUs allow")
    check_model_args(args)
    load_model(args.model)  # a broken model folder fails here, before any video is opened or Ray starts
    job = VideoJob(StyleOptions.from_args(args), EncodeOptions(args.overwrite, args.crf, args.preset, args.codec,
                                                               args.start, args.duration))
    if args.ray is not None:
        from ..video.cluster import import_ray, run_on_ray

        import_ray()  # exit 3 with the install command, before any video is opened
        address = None if args.ray == LOCAL_RAY else args.ray
        run: Runner = functools.partial(run_on_ray, address=address, cpus=args.threads)
    else:
        from ..video.workers import default_workers, run_local

        def run(job: VideoJob, tasks: list[VideoTask], progress: VideosProgress) -> list[VideoResult]:
            workers = args.workers
            if workers is None:
                workers, why = default_workers(len(tasks), args.device)
                log.info("%d worker(s) (%s; --workers N to choose)", workers, why)
            return run_local(job, tasks, progress, workers=workers)

    stylize_videos(job, Path(args.input), Path(args.output), run, out_suffix=args.out_ext,
                   skip_existing=args.skip_existing, progress=False if args.quiet else None)
    return 0


def _stylize(args: argparse.Namespace, src: Path, dst: Path) -> int:
    job = {"overwrite": args.overwrite, "crf": args.crf, "preset": args.preset, "codec": args.codec,
           "start": args.start, "duration": args.duration}
    # Input, output and options are all checked before the model loads (seconds on a GPU).
    check_transcode(src, dst, **job)
    limit_cv2_threads(args.threads)
    with stylizer_from_args(args, per_image=False) as (_, stylizer):
        blender = None
        if args.temporal > 0:
            from ..temporal import FlowBlender  # OpenCV flow: loaded only when used

            blender = FlowBlender(strength=args.temporal)
        report = transcode(src, dst, stylizer, blender, progress=False if args.quiet else None, **job)
    for line in describe(report):
        log.info("%s", line)
    return 0


main = entry_point(make_video_parser, _body)
