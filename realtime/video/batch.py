"""nst-video on many videos: a folder in, a folder out, on this machine or on a Ray cluster.

    plan (names, existing outputs) -> check each video (reads its first frame) -> run -> summary

The steps before the run are the same whoever runs the videos; the run itself is a
``Runner``: video/workers.py (this process, or N local worker processes) or video/cluster.py (one
Ray task per video). The bookkeeping is batch.py's, as for a folder of photos: a video that
cannot be read is named and skipped, the others are done, and the verdict at the end is
InputFileError (none done) or PartialFailureError (exit 4, some failed). Each output is written
whole or not at all (a temporary file beside it, renamed at the end).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..batch import Batch, check_outputs, names, plan_pairs
from ..errors import OutputExistsError, UsageError
from ..progress import Progress
from .folder import list_videos, output_names
from .jobs import VideoJob, VideoResult, VideoTask
from .pipeline import check_transcode
from .plan import plan_output

log = logging.getLogger("stylecast.video")

LOG_EVERY_S = 60.0  # without a terminal (a cluster job's log), the progress line is logged this often


class VideosProgress:
    """Progress of a run across workers: one bar (frames done, fps, ETA, videos done; without a
    terminal the same line every LOG_EVERY_S), one line per video done, one warning per video
    failed (``batch`` keeps the count). Workers report the frames of a video so far
    (``frames_done``); a video started again (a lost worker) goes back to 0."""

    def __init__(self, tasks: list[VideoTask], batch: Batch, enabled: bool | None = None) -> None:
        known = all(t.frames for t in tasks)
        self.tasks = {t.index: t for t in tasks}
        self.batch = batch
        self.bar = Progress(sum(t.frames or 0 for t in tasks) if known else None, "stylising", "frame", enabled=enabled)
        self.seen: dict[int, int] = {}
        self.finished = 0
        self._logged = time.monotonic()

    def frames_done(self, index: int, frames: int, where: str = "") -> None:
        """Video ``index`` has ``frames`` written so far, by the worker ``where`` (when known)."""
        delta = frames - self.seen.get(index, 0)
        self.seen[index] = frames
        if delta:
            self.bar.update(delta, videos=f"{self.finished}/{len(self.tasks)}")
        if not self.bar.enabled and time.monotonic() - self._logged >= LOG_EVERY_S:  # a log file, not a terminal
            self._logged = time.monotonic()
            log.info("%s", self.bar.line())

    def restarted(self, index: int, attempt: int, where: str) -> None:
        self.bar.clear()
        log.warning("warning: %s: its worker was lost; it runs again from the start (attempt %d, %s)",
                    self.tasks[index].src.name, attempt, where)
        self.frames_done(index, 0)

    def done(self, result: VideoResult, *, echo_warnings: bool) -> None:
        """One video ended; ``echo_warnings``: its warnings were logged in another process."""
        self.finished += 1
        task = self.tasks[result.index]
        self.frames_done(result.index, result.frames if result.ok else 0)
        self.bar.clear()
        if not result.ok:
            self.batch.skip(task.src, result.error or "failed", "nothing written for it")
            return
        self.batch.done(task.dst)
        log.info("[%d/%d] %s: %d frames in %.1f s (%.1f fps) on %s", self.finished, len(self.tasks), task.dst.name,
                 result.frames, result.seconds, result.fps, result.where)
        for line in result.warnings if echo_warnings else ():
            log.warning("warning: %s: %s", task.src.name, line)

    def close(self) -> None:
        self.bar.close()


Runner = Callable[[VideoJob, list[VideoTask], VideosProgress], list[VideoResult]]
"""Runs every task and returns one result per task (any order); raises only what stops the run."""


@dataclass
class BatchSummary:
    """What a run did: videos done, skipped (could not be read), failed (while stylised), outputs
    left as they were (--skip-existing), frames written and the wall-clock time of the run."""

    done: int
    skipped: int
    failed: int
    existing: int
    frames: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        kept = f", {self.existing} already there" if self.existing else ""
        return (f"videos: {self.done} done, {self.skipped} skipped, {self.failed} failed{kept}; "
                f"{self.frames} frames in {self.seconds:.1f} s ({self.fps:.1f} fps)")


def plan_videos(src: Path, dst: Path, job: VideoJob, *, out_suffix: str | None = None,
                skip_existing: bool = False) -> tuple[list[tuple[Path, Path]], int]:
    """(input, output) pairs still to do, and how many outputs exist and are left (``skip_existing``).

    Nothing is opened beyond FFmpeg's look at each file's container; options every output
    shares (extension, --codec, --crf, --preset) fail here for the whole run."""
    enc = job.encode

    def check_file(out: Path) -> None:
        plan_output(out, codec=enc.codec, crf=enc.crf, preset=enc.preset)

    if src.is_dir():
        found = list_videos(src)
        named = output_names(found.videos, out_suffix)
        pairs = plan_pairs(src, dst, list_files=lambda _: found.videos, out_name=named.__getitem__)
        if found.left_out:
            log.info("%d file(s) of %s are not videos and are left out: %s", len(found.left_out), src, names(found.left_out))
    else:
        pairs = plan_pairs(src, dst, list_files=list_videos, check_file=check_file)
    for suffix in sorted({out.suffix.lower() for _, out in pairs}):
        check_file(Path("x" + suffix))
    existing = [out for _, out in pairs if out.exists() or out.is_symlink()]
    if skip_existing and enc.overwrite:
        raise UsageError("--skip-existing and --overwrite contradict each other; choose one")
    if skip_existing:
        pairs = [(p, out) for p, out in pairs if out not in existing]
    elif existing and not enc.overwrite and src.is_dir():
        raise OutputExistsError(f"{len(existing)} of the {len(pairs)} outputs exist already ({names(existing)}); pass "
                                "--overwrite to replace them, or --skip-existing to leave them and do the rest")
    check_outputs(src, dst, pairs, overwrite=enc.overwrite)
    return pairs, len(existing) if skip_existing else 0


def check_videos(job: VideoJob, pairs: list[tuple[Path, Path]], batch: Batch,
                 progress: bool | None = None) -> list[VideoTask]:
    """Open each video and decode its first frame, as a single nst-video does before its model
    loads; one that cannot be read is skipped (a single file: raised). Paths become absolute:
    a worker may run anywhere."""
    tasks = []
    with Progress(len(pairs), "checking", "video", enabled=progress if len(pairs) > 1 else False) as bar:
        for src, dst in pairs:
            try:
                frames = check_transcode(src, dst, **job.encode.kwargs())
            except UsageError as exc:  # InputFileError, and --start past the end of this one
                if not batch.folder:
                    raise
                bar.clear()
                batch.skip(src, str(exc))
            else:
                tasks.append(VideoTask(len(tasks), src.resolve(), dst.resolve(), frames))
            bar.update()
    return tasks


def stylize_videos(job: VideoJob, src: Path | str, dst: Path | str, run: Runner, *, out_suffix: str | None = None,
                   skip_existing: bool = False, progress: bool | None = None) -> BatchSummary:
    """Stylise the video ``src`` into ``dst``, or every video of the folder ``src`` into the folder
    ``dst``, with ``run``. Returns the summary (also logged) when every video was done; raises
    InputFileError when none could be, PartialFailureError (``done``, ``failed``) when some could
    not, and whatever stops the run (a model or device that cannot start, Ctrl-C)."""
    src, dst = Path(src), Path(dst)
    pairs, existing = plan_videos(src, dst, job, out_suffix=out_suffix, skip_existing=skip_existing)
    if existing:
        log.info("%d output(s) exist already and are left as they are (--skip-existing)", existing)
    with Batch(src, dst, len(pairs), noun="videos") as batch:
        tasks = check_videos(job, pairs, batch, progress)
        skipped = len(batch.failed)
        began = time.monotonic()
        results: list[VideoResult] = []
        if tasks:
            bar = VideosProgress(tasks, batch, enabled=progress)
            try:
                results = run(job, tasks, bar)  # each result goes through bar.done, as it comes
            finally:
                bar.close()
    ok = [r for r in results if r.ok]
    summary = BatchSummary(len(ok), skipped, len(results) - len(ok), existing, sum(r.frames for r in ok),
                           time.monotonic() - began)
    log.info("%s", summary.line())
    batch.verdict("stylised")
    return summary
