"""Videos on a Ray cluster (``nst-video IN_DIR OUT_DIR --ray [ADDRESS]``): one Ray task per video.

Ray places the tasks, retries them and moves the small values between machines; stylecast
schedules nothing itself. Each task declares what it needs: a share of a GPU where the cluster
has GPUs (SESSIONS_PER_GPU tasks per GPU, each its own session) and --device is not cpu, else
``cpus`` CPUs (its engine then runs that many threads). Inputs and outputs are paths, not data:
they must be on storage every node sees at the same path (NFS, a mounted bucket).

A task whose worker is lost (the process killed, the machine gone) is run again by Ray, up to
RETRIES times; the new attempt first removes the temporary file the lost one left, and every
output appears only when it is complete (a temporary file renamed at the end). Tasks report
their frames to a small actor that the client reads twice a second for the progress bar.

Ray is an optional extra (``pip install "stylecast[cluster]"``); nothing here imports it before
``run_on_ray`` is called.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from types import ModuleType
from typing import Any

from ..atomic import remove_stale_temps
from ..errors import BackendUnavailableError, StylecastError
from .batch import VideosProgress
from .jobs import VideoJob, VideoResult, VideoTask, run_task, with_threads, worker_name
from .workers import SESSIONS_PER_GPU

log = logging.getLogger("stylecast.video")

RETRIES = 3  # runs of a video after the first whose worker was lost
DEFAULT_CPUS = 2  # CPUs per task on a cluster without GPUs (or with --device cpu)
_POLL_S = 0.5
NEEDS_RAY = 'running on a Ray cluster needs Ray: pip install "stylecast[cluster]"'


def import_ray() -> ModuleType:
    """The ray module; BackendUnavailableError (exit 3) with the install command when it is missing."""
    try:
        import ray
    except ImportError as exc:
        raise BackendUnavailableError(NEEDS_RAY) from exc
    return ray


class ProgressBoard:
    """A Ray actor: the frames of each video so far and the worker running it, as tasks report
    them. A report from another worker for the same video means its first worker was lost."""

    def __init__(self) -> None:
        self.state: dict[int, tuple[str, int, int]] = {}  # index -> (where, frames, attempt)

    def report(self, index: int, where: str, frames: int) -> None:
        old = self.state.get(index)
        attempt = 1 if old is None else old[2] + (old[0] != where)
        self.state[index] = (where, frames, attempt)

    def snapshot(self) -> dict[int, tuple[str, int, int]]:
        return dict(self.state)


def _ray_task(job: VideoJob, task: VideoTask, board: Any) -> VideoResult:
    """One video, in a Ray worker."""
    where = worker_name()

    def report(frames: int) -> None:
        board.report.remote(task.index, where, frames)

    report(0)
    return run_task(job, task, report)


def connect(ray: ModuleType, address: str | None) -> bool:
    """Join the cluster at ``address`` (host:port, ray://host:10001, auto), or start a local Ray
    (None); True when this call started it (and must shut it down). A process already connected
    (ray.init called by a library user) is used as it is."""
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address is None:
            ray.init(address="local", include_dashboard=False, **options)  # a new one, never a running one
            log.info("started a local Ray with %g CPUs", ray.cluster_resources().get("CPU", 0))
        else:
            ray.init(address=address, **options)
            log.info("joined the Ray cluster at %s", address)
    except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError, grpc errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = f"join the Ray cluster at {address}" if address else "start a local Ray"
        raise BackendUnavailableError(f"--ray: cannot {where}: {first}") from exc
    return True


def task_resources(ray: ModuleType, device: str, cpus: int | None) -> tuple[dict[str, float], str]:
    """The resources each task asks for, and the device its engine runs on."""
    total = ray.cluster_resources()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if device != "cpu" and total.get("GPU", 0) > 0:
        if device.startswith(("cuda:", "tensorrt:")):
            device = device.split(":")[0]  # Ray gives each task its GPU, which it sees as GPU 0
        return {"num_gpus": 1 / SESSIONS_PER_GPU, "num_cpus": 1}, device
    if device not in ("cpu", "auto"):
        raise BackendUnavailableError(f"--device {device}: the Ray cluster has no GPUs ({total.get('CPU', 0):g} CPUs)")
    widest = max((n.get("Resources", {}).get("CPU", 0) for n in nodes), default=0)
    if widest < 1:
        raise BackendUnavailableError("--ray: the Ray cluster has no CPUs to run on")
    return {"num_cpus": float(min(cpus or DEFAULT_CPUS, int(widest))), "num_gpus": 0}, "cpu"


def run_on_ray(job: VideoJob, tasks: list[VideoTask], progress: VideosProgress, *, address: str | None = None,
               cpus: int | None = None) -> list[VideoResult]:
    """Run every task on the Ray cluster at ``address`` (None: a local Ray, started and stopped here)."""
    ray = import_ray()
    started = connect(ray, address)
    try:
        resources, device = task_resources(ray, job.style.device, cpus)
        if not resources["num_gpus"]:
            job = with_threads(job, int(resources["num_cpus"]))
        job = replace(job, style=replace(job.style, device=device))
        log.info("%d video(s) as Ray tasks, each with %s", len(tasks),
                 f"1/{SESSIONS_PER_GPU} of a GPU" if resources["num_gpus"] else f"{resources['num_cpus']:g} CPU(s)")
        board = ray.remote(num_cpus=0)(ProgressBoard).remote()
        remote = ray.remote(_ray_task)
        refs = {remote.options(**resources, max_retries=RETRIES, retry_exceptions=False,
                               name=f"nst-video {t.src.name}").remote(job, t, board): t for t in tasks}
        return _collect(ray, refs, board, progress)
    finally:
        if started:
            ray.shutdown()


def _collect(ray: ModuleType, refs: dict[Any, VideoTask], board: Any, progress: VideosProgress) -> list[VideoResult]:
    """Wait for every task, keeping the progress bar up to date; cancel the rest on an error or Ctrl-C."""
    results: list[VideoResult] = []
    attempts: dict[int, int] = {}
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=_POLL_S)
            _show(ray, board, progress, attempts)
            for ref in ready:
                result = _result(ray, ref, refs[ref])
                if not result.ok:
                    remove_stale_temps(refs[ref].dst)  # a last attempt that was lost
                progress.done(result, echo_warnings=True)
                results.append(result)
    except BaseException:
        _cancel(ray, pending, [refs[r] for r in pending])
        raise
    return results


def _show(ray: ModuleType, board: Any, progress: VideosProgress, attempts: dict[int, int]) -> None:
    try:
        state = ray.get(board.snapshot.remote(), timeout=10)
    except ray.exceptions.RayError as exc:  # the board is lost with its node: progress stops, work does not
        log.debug("progress board unavailable: %s", exc)
        return
    for index, (where, frames, attempt) in sorted(state.items()):
        if attempt > attempts.get(index, 1):
            progress.restarted(index, attempt, where)
        attempts[index] = attempt
        progress.frames_done(index, frames, where)


def _result(ray: ModuleType, ref: Any, task: VideoTask) -> VideoResult:
    """The task's VideoResult; a failed one when Ray could not finish it; raised when it is a
    StylecastError of the worker itself (the model or device cannot start: every task would)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, StylecastError):
            raise cause from None
        return VideoResult(task.index, False, error=f"internal error: {type(cause).__name__}: {cause}")
    except ray.exceptions.RayError as exc:  # worker or node lost more than RETRIES times, cancelled
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return VideoResult(task.index, False, error=f"Ray could not finish it after {RETRIES + 1} tries ({why})")


def _cancel(ray: ModuleType, pending: list[Any], tasks: list[VideoTask]) -> None:
    """Stop the tasks still running and remove what they were writing."""
    for ref in pending:
        ray.cancel(ref, force=True)
    deadline = time.monotonic() + 10
    while pending and time.monotonic() < deadline:
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
    for task in tasks:
        remove_stale_temps(task.dst)
