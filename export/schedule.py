"""What changes over a training run, and what bounds it: the learning-rate schedule, the crop
size, the numeric precision, the wall-clock limit and the signals that stop a run cleanly.

Every schedule here is a pure function of the step number and the run's settings, so a
resumed run follows exactly the schedule an uninterrupted one would have.
"""

from __future__ import annotations

import contextlib
import math
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from stylecast.realtime.errors import BackendUnavailableError, UsageError

LR_FLOOR = 0.05
"""The learning rate decays to this fraction of --lr by the last step."""


def learning_rate(step: int, total: int, lr: float, warmup: int, decay_from: float) -> float:
    """Linear warm-up from lr/10 over ``warmup`` steps, constant, then a cosine decay from step
    ``decay_from * total`` to ``LR_FLOOR * lr`` at ``total``. ``decay_from`` >= 1: no decay."""
    if warmup > 0 and step < warmup:
        return lr * (0.1 + 0.9 * step / warmup)
    start = int(decay_from * total)
    if decay_from >= 1 or step < start or total <= start:
        return lr
    t = min(1.0, (step - start) / (total - start))
    return lr * (LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * t)))


def crop_size(step: int, total: int, size: int, final_size: int | None, final_from: float) -> int:
    """``size`` until step ``final_from * total``, then ``final_size`` (when given)."""
    if final_size is None or step < int(final_from * total):
        return size
    return final_size


def parse_duration(text: str) -> float:
    """'2h15m', '90m', '45s', '1h', '1.5h' or a plain number of seconds -> seconds (> 0)."""
    t = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        seconds = float(t)
    else:
        parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", t)
        if not t or parts is None:
            raise UsageError(f"cannot read the duration {text!r}; use e.g. 2h15m, 90m or 45s")
        h, m, s = (float(v) if v else 0.0 for v in parts.groups())
        seconds = h * 3600 + m * 60 + s
    if seconds <= 0:
        raise UsageError(f"the duration {text!r} must be longer than zero")
    return seconds


def bf16_supported(device: torch.device) -> bool:
    """Whether bfloat16 autocast runs at native speed on ``device``."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)  # AVX512-BF16 or AMX
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool((probe and probe()) or (amx and amx()))


def resolve_precision(requested: str, device: torch.device) -> str:
    """'auto' -> 'bf16' where the device runs it natively, else 'fp32'. 'bf16' where it does
    not is refused with BackendUnavailableError (it would be far slower, not faster)."""
    if requested not in ("auto", "bf16", "fp32"):
        raise UsageError(f"unknown precision {requested!r}; use auto, bf16 or fp32")
    if requested == "fp32":
        return "fp32"
    ok = bf16_supported(device)
    if requested == "bf16" and not ok:
        raise BackendUnavailableError(f"--precision bf16: this {device.type.upper()} has no native bfloat16; use --precision fp32")
    return "bf16" if ok else "fp32"


def autocast(precision: str, device: torch.device) -> Callable[[], Any]:
    """A factory of the autocast context for ``precision``: the network and the VGG run in bf16,
    while the Gram matrices and losses stay in fp32 (``losses.gram`` disables autocast)."""
    if precision == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


class StopRequested(Exception):
    """Raised inside the training loop when SIGTERM arrives: save, then stop like Ctrl-C."""


@contextlib.contextmanager
def sigterm_stops() -> Iterator[None]:
    """Within the block, SIGTERM raises StopRequested (in the main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise StopRequested(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class WallClock:
    """When to write a checkpoint by wall time, and when the run's time limit is up."""

    def __init__(self, checkpoint_minutes: float, time_limit: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.start = self.last_save = clock()
        self.every = checkpoint_minutes * 60
        self.limit = time_limit

    def save_due(self) -> bool:
        return self.every > 0 and self.clock() - self.last_save >= self.every

    def saved(self) -> None:
        self.last_save = self.clock()

    def out_of_time(self) -> bool:
        return self.limit is not None and self.clock() - self.start >= self.limit

    def elapsed(self) -> float:
        return self.clock() - self.start
