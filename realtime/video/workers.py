"""Videos on this machine: in this process (one worker), or in N worker processes side by side.

Each worker process keeps one engine (its own ONNX Runtime session) for the videos it is given
and runs the usual three-thread pipeline (video/pipeline.py) on each, so N videos are decoded, stylised
and encoded at once. Processes, not threads: the pipeline's numpy and PyAV work holds the GIL
often enough that threads of one process would wait on each other. On the CPU the cores are
shared out (each engine gets cores / N intra-op threads); on one GPU the N sessions share it
(decoding and encoding of one video overlap the inference of another).

A worker process that dies (killed, out of memory) takes its videos with it: they are reported
as failed and the others go on in a fresh pool. For retries across machines, use Ray (--ray).
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from .. import providers as P
from ..cpus import physical_cores
from ..errors import StylecastError
from .batch import VideosProgress
from .jobs import VideoJob, VideoResult, VideoTask, close_engines, run_task, with_threads

log = logging.getLogger("stylecast.video")

SESSIONS_PER_GPU = 2  # sessions sharing one GPU: one video's decode and encode overlap another's inference
CORES_PER_CPU_WORKER = 1  # on the CPU, narrow engines side by side beat one wide one (measured: README)
MAX_CPU_WORKERS = 8  # by default: each worker holds a session and frame queues (~0.5-1 GB)
_POLL_S = 0.2

_reports: multiprocessing.Queue | None = None  # in a worker process: where its progress goes


def default_workers(videos: int, device: str) -> tuple[int, str]:
    """How many videos to run at once on this machine, and why: SESSIONS_PER_GPU where a GPU
    provider runs, else one per CORES_PER_CPU_WORKER physical cores (at most MAX_CPU_WORKERS);
    never more than ``videos``."""
    provider, _ = P.choose_provider(P.parse_device(device))
    if provider in (P.CUDA, P.TENSORRT):
        n, why = SESSIONS_PER_GPU, f"{SESSIONS_PER_GPU} sessions sharing the GPU"
    else:
        cores = physical_cores()
        n = max(1, min(cores // CORES_PER_CPU_WORKER, MAX_CPU_WORKERS))
        why = f"{cores} physical cores, {CORES_PER_CPU_WORKER} per engine, at most {MAX_CPU_WORKERS}"
    n = max(1, min(n, videos))
    return n, why


def run_local(job: VideoJob, tasks: list[VideoTask], progress: VideosProgress, *, workers: int) -> list[VideoResult]:
    """Run every task on this machine with ``workers`` processes (1: in this process)."""
    workers = max(1, min(workers, len(tasks)))
    if job.style.threads is None and workers > 1:
        job = with_threads(job, max(1, physical_cores() // workers))
    if workers == 1:
        return _in_process(job, tasks, progress)
    log.info("%d videos, %d at a time (worker processes, %s CPU thread(s) each)", len(tasks), workers,
             job.style.threads or "all")
    results: list[VideoResult] = []
    todo = list(tasks)
    while todo:  # more than one round only when a worker process died and broke the pool
        before = len(results)
        todo = _pool_round(job, todo, progress, workers, results)
        if todo and len(results) == before:  # the pool broke before any video started: it would again
            raise StylecastError("the worker processes could not start (run with --workers 1 to see why)")
    return results


def _in_process(job: VideoJob, tasks: list[VideoTask], progress: VideosProgress) -> list[VideoResult]:
    results = []
    try:
        for task in tasks:
            result = run_task(job, task, lambda n, i=task.index: progress.frames_done(i, n))
            progress.done(result, echo_warnings=False)  # logged here as they happened
            results.append(result)
    finally:
        close_engines()
    return results


def _pool_round(job: VideoJob, tasks: list[VideoTask], progress: VideosProgress, workers: int,
                results: list[VideoResult]) -> list[VideoTask]:
    """Run ``tasks`` in a fresh pool until they are done or the pool breaks; returns the tasks
    that never started in a broken pool (the ones running when a worker died are failed)."""
    context = multiprocessing.get_context("spawn")  # no fork: threads and native sessions do not survive it
    reports: multiprocessing.Queue = context.Queue()
    level = logging.getLogger("stylecast").level
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(reports, level)) as pool:
        futures: dict[Future[VideoResult], VideoTask] = {pool.submit(_pool_task, job, t): t for t in tasks}
        pending = set(futures)
        started: set[int] = set()
        try:
            while pending:
                finished, pending = wait(pending, timeout=_POLL_S, return_when=FIRST_COMPLETED)
                started |= _drain(reports, progress)
                for future in finished:
                    task = futures[future]
                    error = future.exception()
                    if isinstance(error, BrokenProcessPool):
                        if task.index not in started:
                            continue  # never ran: the next round runs it
                        result = VideoResult(task.index, False, error="its worker process died (killed, or out of memory)")
                    elif isinstance(error, StylecastError):
                        raise error  # the worker's engine cannot start: every video would fail so
                    elif error is not None:
                        result = VideoResult(task.index, False, error=f"internal error: {type(error).__name__}: {error}")
                    else:
                        result = future.result()
                    progress.done(result, echo_warnings=True)
                    results.append(result)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        finally:
            _drain(reports, progress)
    done = {r.index for r in results}
    return [t for t in tasks if t.index not in done]


def _start_worker(reports: multiprocessing.Queue, level: int) -> None:
    global _reports
    _reports = reports
    from ..cli.common import setup_logging

    # The parent prints each video's warnings from its result; the worker only its errors.
    setup_logging(verbose=level <= logging.DEBUG, quiet=True)
    if level > logging.DEBUG:
        logging.getLogger("stylecast").setLevel(logging.ERROR)


def _pool_task(job: VideoJob, task: VideoTask) -> VideoResult:
    def report(frames: int) -> None:
        if _reports is not None:
            _reports.put((task.index, frames))

    report(0)  # started: if this process dies, the video is counted as failed, not run again
    return run_task(job, task, report)


def _drain(reports: multiprocessing.Queue, progress: VideosProgress) -> set[int]:
    """Hand the workers' reports to the progress bar; returns the videos that reported."""
    seen = set()
    while True:
        try:
            index, frames = reports.get_nowait()
        except queue.Empty:
            return seen
        seen.add(index)
        progress.frames_done(index, frames)
