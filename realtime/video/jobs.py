"""One video of a batch, as a worker runs it: in this process, in a local worker process
(``--workers N``) or in a Ray task on any machine of a cluster (``--ray``).

Everything a worker needs travels as small frozen, picklable values: a ``VideoJob`` (the
style and encoding options, the same for every video of a run) and a ``VideoTask`` (one
input and its output, both paths every worker sees). ``run_task`` returns a ``VideoResult``;
a problem of that video (it cannot be read, the disk is full) is a failed result and the other
videos go on, while a problem of the worker itself (the model or the device cannot start) is
raised, because it would fail every video the same way.

A worker process keeps one engine open for the videos it runs (``run_task`` reuses it while
the options and the GPU it was given stay the same): a session is built once per process, not
once per video, and each video still gets a fresh Stylizer and temporal blender.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..atomic import remove_stale_temps
from ..errors import StylecastError
from ..stages import Stylizer
from ..styles import IMAGE_PREFIX
from ..styling import stylizers_from_args

Report = Callable[[int], None]
"""Called with the frames of one video written so far (a retried video starts again from 0)."""

REPORT_EVERY_S = 0.5  # how often a worker says how far it is (and on the first frame)


def _absolute(path: str | Path | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())


def _absolute_mix_item(item: str) -> str:
    """``image:PATH=W`` with PATH made absolute (a worker may run in another folder); names as they are."""
    key, sep, weight = item.rpartition("=")
    if sep and key.startswith(IMAGE_PREFIX):
        return f"{IMAGE_PREFIX}{_absolute(key[len(IMAGE_PREFIX):])}={weight}"
    return item


@dataclass(frozen=True)
class StyleOptions:
    """The model and style options of a run (those of cli/options.py), paths made absolute."""

    model: str | None = None
    style: str | None = None
    style_image: str | None = None
    mix: tuple[str, ...] | None = None
    strength: float = 1.0
    device: str = "auto"
    max_side: int | None = None
    keep_colors: bool = False
    temporal: float = 0.0
    threads: int | None = None  # CPU threads of each engine; None: every physical core

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> StyleOptions:
        return cls(_absolute(args.model), args.style, _absolute(args.style_image),
                   tuple(_absolute_mix_item(m) for m in args.mix) if args.mix else None, args.strength, args.device,
                   args.max_side, args.keep_colors, args.temporal, getattr(args, "threads", None))

    def namespace(self) -> argparse.Namespace:
        """The options as the argparse namespace ``stylizers_from_args`` reads."""
        return argparse.Namespace(model=self.model and Path(self.model), style=self.style, style_image=self.style_image,
                                  mix=list(self.mix) if self.mix else None, strength=self.strength, device=self.device,
                                  max_side=self.max_side, keep_colors=self.keep_colors, threads=self.threads)


@dataclass(frozen=True)
class EncodeOptions:
    """The encoding options of a run: ``transcode``'s keyword arguments."""

    overwrite: bool = False
    crf: int = 18
    preset: str = "medium"
    codec: str | None = None
    start: float | None = None
    duration: float | None = None

    def kwargs(self) -> dict[str, Any]:
        return {"overwrite": self.overwrite, "crf": self.crf, "preset": self.preset, "codec": self.codec,
                "start": self.start, "duration": self.duration}


@dataclass(frozen=True)
class VideoJob:
    """What is the same for every video of a run."""

    style: StyleOptions
    encode: EncodeOptions


@dataclass(frozen=True)
class VideoTask:
    """One video of a run: ``index`` in the run, input and output paths (absolute), and the
    frames the input says it has (None when it does not say)."""

    index: int
    src: Path
    dst: Path
    frames: int | None = None


@dataclass
class VideoResult:
    """How one video went. ``where``: the machine and process that ran it."""

    index: int
    ok: bool
    frames: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    where: str = ""

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def worker_name() -> str:
    """``host pid N``: where a video runs, for the progress lines."""
    return f"{socket.gethostname()} pid {os.getpid()}"


class _Throttled:
    """A Report called at most every REPORT_EVERY_S seconds (and always for the first frame)."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.last = 0.0

    def __call__(self, frames: int) -> None:
        now = time.monotonic()
        if frames == 1 or now - self.last >= REPORT_EVERY_S:
            self.last = now
            self.report(frames)


def run_task(job: VideoJob, task: VideoTask, report: Report | None = None) -> VideoResult:
    """Stylise one video (its output written whole or not at all, see video/pipeline.py).

    Temporary files a killed attempt at this same output left behind are removed first: this
    task is the only writer of ``task.dst``. Raises what stops the worker itself (the model
    folder, the device); returns a failed VideoResult for what stops only this video.
    """
    import av  # the worker's own imports: PyAV and the video pipeline load only where videos run

    from ..temporal import FlowBlender
    from .pipeline import transcode

    remove_stale_temps(task.dst)
    limit_cv2_threads(job.style.threads)
    stylizer = _stylizers(job.style)()
    blender = FlowBlender(strength=job.style.temporal) if job.style.temporal > 0 else None
    where = worker_name()
    try:
        done = transcode(task.src, task.dst, stylizer, blender, progress=False,
                         on_frame=_Throttled(report) if report is not None else None, **job.encode.kwargs())
    except (StylecastError, OSError, av.FFmpegError) as exc:
        return VideoResult(task.index, False, error=str(exc), where=where)
    if report is not None:
        report(done.frames)
    return VideoResult(task.index, True, done.frames, done.seconds, done.warnings, where=where)


# ---------------------------------------------------------------- one engine per worker process

_open: tuple[object, contextlib.ExitStack, Callable[[], Stylizer]] | None = None


def _stylizers(style: StyleOptions) -> Callable[[], Stylizer]:
    """The Stylizer factory of this process's engine for ``style``, built on first use. The GPU
    a Ray task was given (CUDA_VISIBLE_DEVICES) is part of the key: a session stays on its GPU."""
    global _open
    key = (style, os.environ.get("CUDA_VISIBLE_DEVICES"))
    if _open is not None and _open[0] == key:
        return _open[2]
    close_engines()
    stack = contextlib.ExitStack()
    try:
        _, make = stack.enter_context(stylizers_from_args(style.namespace(), per_image=False))
    except BaseException:
        stack.close()
        raise
    _open = (key, stack, make)
    return make


def close_engines() -> None:
    """Close the engine this process keeps for videos, if any (also run at exit)."""
    global _open
    if _open is not None:
        stack, _open = _open[1], None
        stack.close()


def limit_cv2_threads(threads: int | None) -> None:
    """Give OpenCV (the temporal blend's optical flow, resizing) ``threads`` threads in this
    process, as the engine has: the cores shared out among workers are shared by both."""
    if threads:
        import cv2

        cv2.setNumThreads(threads)


def with_threads(job: VideoJob, threads: int | None) -> VideoJob:
    """``job`` with each engine's CPU threads set (the cores a worker may use)."""
    return replace(job, style=replace(job.style, threads=threads))


atexit.register(close_engines)
