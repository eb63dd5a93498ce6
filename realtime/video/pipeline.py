"""Stylise a whole video file: decode -> stylise (+ temporal blend) -> encode, overlapped in threads.

    decoder thread ──queue──▶ stylizer thread ──queue──▶ calling thread (encoder + muxer)

Decoding, inference and encoding run at the same time; the queues are small and bounded so
memory stays flat. The stylizer runs in exactly one thread (inference engines are not
thread-safe); PyAV containers are each touched by one thread only. Packets of copied streams
(audio, subtitles) travel through the same queues as the frames, so they reach the muxer in
file order. An error in any thread stops the others and is raised in the caller; Ctrl-C in the
caller stops them too. The output is written to a temporary file that replaces ``dst`` only
on success (atomic.py): nothing is left at ``dst`` otherwise.

See video/reader.py for what is kept (every frame and its timestamp, size, rotation, colour, bit
depth, audio, metadata) and how; video/plan.py for the checks made before the first frame;
video/audio.py for the audio streams that must be re-encoded.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_file, check_output_path
from ..errors import InputFileError, UsageError
from ..progress import Progress
from ..stages import Stylizer, TemporalBlender, check_frame
from .plan import (
    OutputPlan,
    StreamPlan,
    declared_video_end,
    open_input,
    pick_video_stream,
    plan_output,
    plan_streams,
)
from .reader import DecodedFrame, FrameReader
from .writer import VideoWriter

log = logging.getLogger("stylecast.video")

QUEUE_FRAMES = 8  # per queue: enough to smooth out jitter, small enough for 4K frames
_POLL_S = 0.1  # how often a blocked thread looks at the stop flag
_END = object()  # end-of-stream marker on a queue


@dataclass
class TranscodeReport:
    """What ``transcode`` did."""

    output: Path
    frames: int  # video frames written
    expected: int | None  # frames the input says it has (in the --start/--duration window), if it says
    missing: int  # frames the input should have but could not be read (0 when unknown)
    seconds: float  # wall-clock time
    fps: float  # frames written per wall-clock second
    audio_streams: int  # audio streams copied
    copied_streams: int  # all streams kept (audio, subtitles, data, attachments), copied or re-encoded
    warnings: list[str] = field(default_factory=list)  # dropped or re-encoded streams, damage, ...
    audio_reencoded: int = 0  # audio streams the output container could not hold as they were


class _Stop(Exception):
    """Raised inside a worker when another thread has failed or the caller gave up."""


class _Pipeline:
    """Threads joined by bounded queues, with one shared stop flag and the first error kept."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = exc
        self.stop.set()

    def put(self, q: queue.Queue[Any], item: object) -> None:
        while True:
            if self.stop.is_set():
                raise _Stop
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue[Any]) -> Any:
        while True:
            if self.stop.is_set():
                raise _Stop
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue

    def start(self, name: str, body: Callable[[], None]) -> None:
        def run() -> None:
            try:
                body()
            except _Stop:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, re-raised there
                self.fail(exc)

        thread = threading.Thread(target=run, name=f"nst-video-{name}", daemon=True)
        self.threads.append(thread)
        thread.start()

    def close(self) -> None:
        """Stop every thread and wait for it (a stylizer call in progress is let finish)."""
        self.stop.set()
        again: KeyboardInterrupt | None = None
        for thread in self.threads:
            while thread.is_alive():
                try:
                    thread.join()
                except KeyboardInterrupt as exc:  # a second Ctrl-C: still wait, they use the containers
                    again = exc
        if again is not None:
            raise again


def transcode(
    src: Path | str,
    dst: Path | str,
    stylizer: Stylizer,
    blender: TemporalBlender | None = None,
    *,
    overwrite: bool = False,
    crf: int = 18,
    preset: str = "medium",
    codec: str | None = None,
    start: float | None = None,
    duration: float | None = None,
    progress: bool | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> TranscodeReport:
    """Stylise every frame of ``src`` into ``dst``, keeping timestamps, size, rotation, colour, bit depth,
    audio and metadata.

    ``stylizer`` maps BGR uint8 [H, W, 3] to the same shape; ``blender`` (optional) gets
    (original, stylised) and returns the frame to write; it is reset first. The container comes
    from ``dst``'s extension (.mp4 .m4v .mov .mkv .webm .ts) and the video codec from ``codec``
    (default libx264; libvpx-vp9 for .webm). Audio is copied; a stream the container cannot
    hold is re-encoded (AAC; Opus for .webm) with a warning logged before the first frame.
    ``start``/``duration`` (seconds) cut a window: frames and copied packets with
    start <= t < start + duration are kept and shifted so the output starts at 0. ``progress``
    None draws a bar only when stderr is a terminal. ``on_frame`` (optional) is called in the
    calling thread with the number of frames written so far, after each frame.

    Raises InputFileError (unreadable input, no video), OutputExistsError (dst exists without
    ``overwrite``, or dst is src), UsageError (bad options), BackendUnavailableError (a hardware
    ``codec`` that cannot run here); anything the stylizer raises is raised here unchanged. On
    any error or KeyboardInterrupt nothing is left at ``dst``.
    """
    src, dst = Path(src), Path(dst)
    job = _open_job(src, dst, overwrite=overwrite, codec=codec, crf=crf, preset=preset, start=start, duration=duration)
    for line in job.streams.warnings:  # dropped and re-encoded streams: said before the long part
        log.warning("warning: %s", line)
    try:
        reader = FrameReader(job.container, job.video, job.streams.copy, reencode=job.streams.reencode,
                             start=start, duration=duration)
        began = time.monotonic()
        with atomic_file(dst, overwrite=overwrite, inputs=(src,)) as tmp:
            writer = VideoWriter(job.plan, tmp, job.video, job.streams)
            try:
                bar = Progress(job.expected, "stylising", "frame", enabled=progress)
                _run(reader, writer, stylizer, blender, bar, on_frame)
                writer.finish()
            except BaseException:
                writer.abort()
                raise
            if writer.frames == 0:
                raise InputFileError(_no_frames_message(src, reader, start))
        seconds = time.monotonic() - began
    finally:
        job.container.close()
    missing = _missing_frames(reader, job.video, job.end, job.expected, duration)
    later = writer.warnings + _damage_warnings(reader, missing, job.expected)
    for line in later:
        log.warning("warning: %s", line)
    return TranscodeReport(dst, writer.frames, job.expected, missing, seconds, writer.frames / max(seconds, 1e-9),
                           job.streams.audio, len(job.streams.templates), job.streams.warnings + later,
                           len(job.streams.reencode))


def check_transcode(
    src: Path | str,
    dst: Path | str,
    *,
    overwrite: bool = False,
    crf: int = 18,
    preset: str = "medium",
    codec: str | None = None,
    start: float | None = None,
    duration: float | None = None,
) -> int | None:
    """The checks ``transcode`` makes, raising the same errors, and the decoding of the first
    frame (of the --start/--duration window): a command line calls it before loading a model,
    to fail fast. Nothing is written and nothing is kept open. Returns the frames the input
    says it has (in the window), or None when it does not say."""
    src = Path(src)
    job = _open_job(src, Path(dst), overwrite=overwrite, codec=codec, crf=crf, preset=preset,
                    start=start, duration=duration)
    try:
        reader = FrameReader(job.container, job.video, {}, start=start, duration=duration)  # video only
        items = iter(reader)
        try:
            first = next(items, None)
        finally:
            items.close()  # finish the generator before its container closes
        if first is None:
            raise InputFileError(_no_frames_message(src, reader, start))
    finally:
        job.container.close()
    return job.expected


@dataclass
class _Job:
    container: Any  # av InputContainer, open
    video: Any  # its VideoStream
    plan: OutputPlan
    streams: StreamPlan
    end: float | None
    expected: int | None


def _open_job(src: Path, dst: Path, *, overwrite: bool, codec: str | None, crf: int, preset: str,
              start: float | None, duration: float | None) -> _Job:
    if start is not None and not start >= 0:  # also refuses NaN
        raise UsageError(f"--start must be 0 or more seconds, not {start:g}")
    if duration is not None and not duration > 0:
        raise UsageError(f"--duration must be more than 0 seconds, not {duration:g}")
    plan = plan_output(dst, codec=codec, crf=crf, preset=preset)
    container = open_input(src)
    try:
        check_output_path(dst, overwrite=overwrite, inputs=(src,))
        video = pick_video_stream(container, src)
        streams = plan_streams(container, video, plan, src)
        end = declared_video_end(container, video)
        if start and end is not None and start >= end:
            raise UsageError(f"--start {start:g} is at or past the end of the video ({end:.3f} s)")
        return _Job(container, video, plan, streams, end, _expected_frames(video, end, start, duration))
    except BaseException:
        container.close()
        raise


def _run(reader: FrameReader, writer: VideoWriter, stylizer: Stylizer, blender: TemporalBlender | None,
         bar: Progress, on_frame: Callable[[int], None] | None = None) -> None:
    """Run the three stages until the reader is exhausted; raise the first error of any of them."""
    pipe = _Pipeline()
    decoded: queue.Queue[Any] = queue.Queue(QUEUE_FRAMES)
    styled: queue.Queue[Any] = queue.Queue(QUEUE_FRAMES)

    def decode() -> None:
        for item in reader:
            pipe.put(decoded, item)
        pipe.put(decoded, _END)

    def stylize() -> None:
        if blender is not None:
            blender.reset()
        while (item := pipe.get(decoded)) is not _END:
            if isinstance(item, DecodedFrame):
                item.image = _stylize_one(stylizer, blender, item.image)
            pipe.put(styled, item)
        pipe.put(styled, _END)

    try:
        pipe.start("decode", decode)
        pipe.start("stylise", stylize)
        with bar:
            while True:
                try:
                    item = pipe.get(styled)
                except _Stop:
                    break
                if item is _END:
                    break
                if isinstance(item, DecodedFrame):
                    writer.write_frame(item.image, item.pts, item.tags)
                    bar.update(1)
                    if on_frame is not None:
                        on_frame(writer.frames)
                else:  # a copied packet or a decoded audio frame
                    writer.write_packet(item)
    except BaseException as exc:
        pipe.fail(exc)
    finally:
        pipe.close()
    if pipe.error is not None:
        raise pipe.error


def _stylize_one(stylizer: Stylizer, blender: TemporalBlender | None, image: np.ndarray) -> np.ndarray:
    out = stylizer(image)
    if blender is not None:
        out = blender(image, out)
    return check_frame(out, "the stylizer's output (a Stylizer must keep size and dtype)", like=image, error=ValueError)


def _expected_frames(video: Any, end: float | None, start: float | None, duration: float | None) -> int | None:
    """Frames the input says it has (in the window), or None when it does not say."""
    rate = video.average_rate or video.guessed_rate
    if not start and duration is None and video.frames:
        return int(video.frames)  # an exact count from the index (mp4/mov)
    if end is None or not rate:
        return None
    begin = float(video.start_time * video.time_base) if video.start_time is not None else 0.0
    lo = max(begin, start or 0.0)
    hi = end if duration is None else min(end, (start or 0.0) + duration)
    return max(0, round((hi - lo) * rate))


def _missing_frames(reader: FrameReader, video: Any, end: float | None, expected: int | None,
                    duration: float | None) -> int:
    """How many frames the input declares but the reader did not deliver."""
    stats = reader.stats
    if expected is None:
        return 0
    if video.frames and reader.start == 0 and duration is None:
        return max(0, expected - stats.frames)
    if end is None:
        return stats.holes
    # Containers without a frame count: the declared span not covered by decoded frames (a file
    # cut short), plus holes inside (see ReadStats.holes). Counting expected - frames instead
    # would be wrong for variable-rate video, where duration x average rate is only an estimate.
    hi = end if duration is None else min(end, reader.start + duration)
    covered = stats.last_pts_s + reader.period_s if stats.last_pts_s is not None else reader.start
    return max(0, round((hi - covered) / reader.period_s)) + stats.holes


def _damage_warnings(reader: FrameReader, missing: int, expected: int | None) -> list[str]:
    stats = reader.stats
    out: list[str] = list(stats.warnings)
    if stats.stopped_early:
        out.append(stats.stopped_early)
    if stats.decode_errors:
        out.append(f"{stats.decode_errors} video packet(s) could not be decoded and were skipped (damaged data)")
    if stats.audio_decode_errors:
        out.append(f"{stats.audio_decode_errors} packet(s) of re-encoded audio could not be decoded and were skipped")
    if stats.corrupt_frames:
        out.append(f"{stats.corrupt_frames} damaged frame(s) or packet(s) were stylised as the decoder gave them")
    if stats.fixed_pts:
        out.append(f"{stats.fixed_pts} frame(s) had a repeated or backward timestamp, moved one tick later")
    if missing:
        out.append(
            f"{missing} of {expected} frame(s) are missing from the input (cut short or damaged); "
            f"wrote the {stats.frames} it has"
        )
    return out


def _no_frames_message(src: Path, reader: FrameReader, start: float | None) -> str:
    if start:
        return f"{src}: no video frame at or after --start {start:g}"
    why = reader.stats.stopped_early or (
        f"{reader.stats.decode_errors} packet(s) failed to decode" if reader.stats.decode_errors
        else "the file holds no complete frame; it may be cut short"
    )
    return f"{src}: no video frame could be decoded ({why})"


def describe(report: TranscodeReport) -> Iterable[str]:
    """Summary lines for a command line."""
    reencoded = f", {report.audio_reencoded} re-encoded" if report.audio_reencoded else ""
    yield (f"wrote {report.output}: {report.frames} frames in {report.seconds:.1f} s ({report.fps:.1f} fps), "
           f"{report.audio_streams} audio stream(s) copied{reencoded}")
