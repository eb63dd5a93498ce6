"""How many CPU threads this process may use: the logical CPUs of its affinity mask, and the
physical cores among them under a container's CPU quota (hyper-threads do not help convolutions).
``StyleEngine`` gives ONNX Runtime one intra-op thread per physical core; nst-video shares the
cores out among its workers.

Also ``keep_freed_memory``: the console scripts ask glibc's allocator to keep frame- and
tensor-sized buffers in the process instead of handing them back to the kernel after every frame
or training step (see its docstring for what it gained).
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
from pathlib import Path


def _allowed_cpus() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _linux_core_count(allowed: set[int] | None) -> int | None:
    """Distinct (physical id, core id) pairs among the allowed logical CPUs, from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    cores: set[tuple[str, str]] = set()
    for block in text.split("\n\n"):
        fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in block.splitlines()) if k.strip()}
        if "processor" not in fields or not fields["processor"].isdigit():
            continue
        if "core id" not in fields:  # some ARM kernels do not say; then we cannot tell
            return None
        if allowed is None or int(fields["processor"]) in allowed:
            cores.add((fields.get("physical id", "0"), fields["core id"]))
    return len(cores) or None


def _cgroup_cpu_limit() -> int | None:
    """CPUs granted by a container's CPU quota (cgroup v2 or v1), rounded up; None if unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return max(1, math.ceil(quota_us / period_us)) if quota_us > 0 and period_us > 0 else None
    except (OSError, ValueError):
        return None


def logical_cpus() -> int:
    """Logical CPUs this process may run on."""
    allowed = _allowed_cpus()
    return len(allowed) if allowed else (os.cpu_count() or 1)


def physical_cores() -> int:
    """Best-effort count of physical cores this process may use (hyper-threads do not help convolutions).

    Linux: distinct cores among the CPUs in the affinity mask, capped by a cgroup CPU quota.
    Elsewhere: ``os.cpu_count()`` (logical), as nothing cheap and reliable says more.
    """
    allowed = _allowed_cpus()
    logical = len(allowed) if allowed else (os.cpu_count() or 1)
    cores = _linux_core_count(allowed) if sys.platform.startswith("linux") else None
    n = min(cores or logical, logical)
    limit = _cgroup_cpu_limit() if sys.platform.startswith("linux") else None
    return max(1, min(n, limit) if limit else n)


_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # the largest glibc accepts: blocks up to this come from the heap
TRIM_THRESHOLD = 1024 * 1024 * 1024  # free memory the heap keeps at its top before shrinking
_GLIBC_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed buffers of up to 32 MB for reuse; True if it took it.

    By default glibc maps each large block fresh from the kernel and gives it back when freed (or
    trims the heap's top), so a loop that allocates the same frame- or tensor-sized arrays every
    turn pays for page faults on all of that memory every turn. Measured on a 2-core CPU: a
    distillation step 1.31-1.32 -> 1.12-1.16 s, the temporal blend of a 640x360 frame on its own
    12.1-13.6 -> 5.3-7.1 ms. The price is that the process keeps up to 1 GB of freed memory
    instead of returning it. Done only on glibc, and not when the user has set glibc's own
    settings (``MALLOC_*_``, ``GLIBC_TUNABLES``); the console scripts call it once at start.
    """
    if not sys.platform.startswith("linux") or any(name in os.environ for name in _GLIBC_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
