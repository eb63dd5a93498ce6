"""``nst-bench flicker``: how much the temporal blend reduces flicker on real clips, and what it costs.

For each clip (its first ``--frames`` frames, optionally downscaled), every frame is stylised once;
that per-frame output is then fed to one ``FlowBlender`` per ``--temporal`` strength. Each series is
scored with the warping error of Lai et al. 2018 (``bench/warping.py``; lower is steadier) and its
distance from the per-frame output (how much the blend changed the picture; lower is more
faithful), next to the blend's own milliseconds per frame. The row "input" is the warping error of
the camera frames themselves, the floor a stylised video can hope for; "per-frame" is the network
alone (no blend).

The subcommand dispatcher (``cli/bench.py``) calls ``add_arguments`` and ``run``; ``measure`` is
the engine-independent core (any ``Stylizer``), used by the tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ..atomic import atomic_file, check_output_path
from ..errors import InputFileError, UsageError
from ..progress import Progress
from ..stages import Stylizer
from ..temporal import DEFAULT_TEMPORAL, FlowBlender
from .warping import MetricFlow, distance_from_per_frame

log = logging.getLogger("stylecast.bench")

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
DEFAULT_CLIPS = Path("../shared/data/video/clips")
DEFAULT_STRENGTHS = (0.3, DEFAULT_TEMPORAL, 0.8)
DEFAULT_FRAMES = 60
DEFAULT_FRAME_SIDE = 640


@dataclass
class Row:
    """One line of the table: one series (input / per-frame / a blend strength) on one clip."""

    clip: str
    series: str  # "input", "per-frame", or the strength as text ("0.5")
    strength: float | None  # None for input and per-frame
    warping_error: float  # Lai et al. 2018, colours in [0, 1], mean squared; the table shows x1000
    distance: float | None  # mean absolute difference from the per-frame output, grey levels 0..255
    blend_ms: float | None  # median milliseconds per frame of the blend alone
    frames: int
    width: int
    height: int
    resets: int = 0  # frames after the first where the blender reset (scene cut, unreliable flow)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``nst-bench flicker``: the model options (--model, --style, --device,
    --max-side, ...), then the clips, frame count and size, strengths and --json."""
    # imported here, not at the top: it pulls in ONNX Runtime
    from ..cli.options import add_model_options

    add_model_options(parser)
    group = parser.add_argument_group("flicker benchmark")
    group.add_argument(
        "--clips",
        type=Path,
        default=DEFAULT_CLIPS,
        metavar="PATH",
        help=f"a folder of video clips ({', '.join(VIDEO_SUFFIXES)}) or one clip (default: {DEFAULT_CLIPS})",
    )
    group.add_argument(
        "--frames", type=int, default=DEFAULT_FRAMES, metavar="N", help=f"frames per clip, from the start (default: {DEFAULT_FRAMES})"
    )
    group.add_argument(
        "--frame-side",
        type=int,
        default=DEFAULT_FRAME_SIDE,
        metavar="PX",
        help="downscale the decoded frames so the longer side is at most PX before anything else, for "
        f"speed (unlike --max-side, everything then runs at that size); 0 = as decoded (default: {DEFAULT_FRAME_SIDE})",
    )
    group.add_argument(
        "--temporal",
        type=float,
        nargs="+",
        default=list(DEFAULT_STRENGTHS),
        metavar="S",
        help=f"blend strengths to compare, each 0..1 (default: {' '.join(f'{s:g}' for s in DEFAULT_STRENGTHS)})",
    )
    group.add_argument("--json", type=Path, metavar="PATH", help="also save the rows as JSON")
    group.add_argument("--overwrite", action="store_true", help="replace an existing --json file")


def run(args: argparse.Namespace) -> int:
    """Validate the options, build the engine, measure every clip, print the table."""
    # imported here, not at the top: they pull in ONNX Runtime
    from ..cli.options import list_styles
    from ..styling import engine_from_args

    if list_styles(args):
        return 0
    clips = find_clips(args.clips)
    _check_options(args.frames, args.frame_side, args.temporal)
    if args.json is not None:
        check_output_path(args.json, overwrite=args.overwrite)  # fail before minutes of work

    with engine_from_args(args) as engine:
        rows = measure(clips, engine, args.temporal, args.frames, args.frame_side or None, show_progress=not args.quiet)
    print(format_table(rows))
    if args.json is not None:
        with atomic_file(args.json, overwrite=args.overwrite) as tmp:
            tmp.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n", encoding="utf-8")
        log.info("saved %s", args.json)
    return 0


def find_clips(path: Path | str) -> list[Path]:
    """The video files in a folder (sorted by name), or ``[path]`` for a single file."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"clips: {path} does not exist; pass --clips DIR with a folder of video clips")
    if path.is_file():
        return [path]
    clips = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not clips:
        raise UsageError(f"clips: no video files ({', '.join(VIDEO_SUFFIXES)}) in {path}")
    return clips


def read_frames(path: Path, frames: int, max_side: int | None) -> Iterator[np.ndarray]:
    """The first ``frames`` frames of a clip as BGR uint8 [H, W, 3], the longer side at most
    ``max_side`` (area-downscaled; None = as decoded)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputFileError(f"{path}: OpenCV cannot open this video")
    try:
        for _ in range(frames):
            ok, frame = cap.read()
            if not ok:
                return
            h, w = frame.shape[:2]
            if max_side is not None and max(h, w) > max_side:
                scale = max_side / max(h, w)
                size = (max(16, round(w * scale)), max(16, round(h * scale)))
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            yield np.ascontiguousarray(frame)
    finally:
        cap.release()


class _Series:
    """Running scores of one output sequence."""

    def __init__(self, name: str, strength: float | None) -> None:
        self.name, self.strength = name, strength
        self.prev: np.ndarray | None = None
        self.errors: list[float] = []
        self.distances: list[float] = []
        self.ms: list[float] = []
        self.resets = 0

    def row(self, clip: str, frames: int, width: int, height: int, *, distance: bool, timed: bool) -> Row:
        errors = [e for e in self.errors if not np.isnan(e)]
        return Row(
            clip=clip,
            series=self.name,
            strength=self.strength,
            warping_error=float(np.mean(errors)) if errors else float("nan"),
            distance=float(np.mean(self.distances)) if distance and self.distances else None,
            blend_ms=float(np.median(self.ms)) if timed and self.ms else None,
            frames=frames,
            width=width,
            height=height,
            resets=self.resets,
        )


def measure(
    clips: Sequence[Path],
    stylizer: Stylizer,
    strengths: Sequence[float],
    frames: int,
    max_side: int | None,
    *,
    show_progress: bool = False,
) -> list[Row]:
    """Score the input, the per-frame output and one blend per strength on every clip.

    ``stylizer`` is any callable BGR uint8 [H, W, 3] -> same size. Frames are streamed (only the
    previous frame of each series is kept); the metric's flow is computed once per frame pair and
    shared by all series. Returns, per clip, rows "input", "per-frame", then one per strength
    (a strength of 0 is the per-frame row and is not repeated).
    """
    _check_options(frames, max_side or 0, strengths)
    blend_strengths = sorted({float(s) for s in strengths if s > 0})
    metric = MetricFlow()
    rows: list[Row] = []
    # show_progress: a bar when stderr is a terminal (Progress decides); never with -q.
    with Progress(len(clips) * frames, "flicker", unit="frame", enabled=None if show_progress else False) as bar:
        for clip in clips:
            rows.extend(_measure_clip(Path(clip), stylizer, blend_strengths, frames, max_side, metric, bar))
    return rows


def _measure_clip(
    clip: Path,
    stylizer: Stylizer,
    strengths: Sequence[float],
    frames: int,
    max_side: int | None,
    metric: MetricFlow,
    bar: Progress,
) -> list[Row]:
    inputs = _Series("input", None)
    per_frame = _Series("per-frame", None)
    blends = [(FlowBlender(strength=s), _Series(_strength_name(s), s)) for s in strengths]
    count, size = 0, (0, 0)
    prev_input: np.ndarray | None = None
    for frame in read_frames(clip, frames, max_side):
        if count and frame.shape[:2] != size:
            raise InputFileError(f"{clip}: frame {count} is {frame.shape[1]}x{frame.shape[0]}, not {size[1]}x{size[0]}")
        size = frame.shape[:2]
        stylized = np.ascontiguousarray(stylizer(frame)).copy()  # an engine may reuse its output buffer
        outputs: list[tuple[_Series, np.ndarray]] = [(inputs, frame), (per_frame, stylized)]
        for blender, series in blends:
            start = time.perf_counter()
            out = blender(frame, stylized)
            if count:  # the first frame has no flow to compute: leave it out of the timing
                series.ms.append((time.perf_counter() - start) * 1000.0)
                series.resets += blender.last.reset is not None
            series.distances.append(distance_from_per_frame(out, stylized))
            outputs.append((series, out))
        if prev_input is not None:
            pair = metric.pair(prev_input, frame)
            for series, out in outputs:
                if series.prev is not None:  # always set by the previous frame
                    series.errors.append(pair.squared_error(series.prev, out))
        for series, out in outputs:
            series.prev = out
        prev_input = frame
        count += 1
        bar.update(1)
    if count < 2:
        raise InputFileError(f"{clip}: {count} frame(s) decoded; at least 2 are needed")
    h, w = size
    rows = [
        inputs.row(clip.name, count, w, h, distance=False, timed=False),
        per_frame.row(clip.name, count, w, h, distance=False, timed=False),
    ]
    rows[1].distance = 0.0
    rows.extend(series.row(clip.name, count, w, h, distance=True, timed=True) for _, series in blends)
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """A fixed-width table: clip, size, series, warping error x1000, distance, blend ms/frame, resets."""
    head = ("clip", "size", "frames", "temporal", "warp err x1000", "dist (grey)", "blend ms", "resets")
    lines = [head]
    for r in rows:
        lines.append(
            (
                r.clip,
                f"{r.width}x{r.height}",
                str(r.frames),
                r.series,
                f"{r.warping_error * 1000:.3f}",
                "-" if r.distance is None else f"{r.distance:.2f}",
                "-" if r.blend_ms is None else f"{r.blend_ms:.1f}",
                "-" if r.strength is None else str(r.resets),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    left = {0, 1, 3}
    out = []
    for n, line in enumerate(lines):
        cells = [c.ljust(widths[i]) if i in left else c.rjust(widths[i]) for i, c in enumerate(line)]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _strength_name(strength: float) -> str:
    return f"{strength:g}"


def _check_options(frames: int, max_side: int, strengths: Sequence[float]) -> None:
    if frames < 2:
        raise UsageError(f"--frames must be at least 2, got {frames}")
    if max_side < 0 or 0 < max_side < 16:
        raise UsageError(f"--frame-side must be 0 (as decoded) or at least 16 pixels, got {max_side}")
    if not strengths:
        raise UsageError("--temporal needs at least one strength")
    for s in strengths:
        if not 0.0 <= s <= 1.0:
            raise UsageError(f"--temporal strengths must be from 0 to 1, got {s:g}")
