"""``cpus.keep_freed_memory``: the console scripts make glibc keep frame-sized buffers for reuse,
so the per-frame work stops paying page faults for fresh memory (measured in its docstring)."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys

import pytest

from stylecast.realtime.cli import common
from stylecast.realtime.cpus import keep_freed_memory

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# One process per measurement: the allocator's settings are process-wide and cannot be undone.
BLEND_FAULTS = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from stylecast.realtime.cpus import keep_freed_memory
    assert keep_freed_memory()
from stylecast.realtime.temporal import FlowBlender
rng = np.random.default_rng(0)
a = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
b = np.roll(a, 2, axis=1)
blend = FlowBlender()
blend(a, a); blend(b, b)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(20):
    blend(a if i % 2 else b, a)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def _faults_per_frame(mode: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    done = subprocess.run([sys.executable, "-c", BLEND_FAULTS, mode], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return float(done.stdout.split()[-1])


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_kept_memory_takes_the_page_faults_out_of_the_blend() -> None:
    """A 640x360 blend touches ~2 MB of new arrays a frame (flow maps, masks, the warped frame):
    ~500 pages. With the memory kept, a frame faults in almost none of them."""
    kept = _faults_per_frame("keep")
    assert kept < 50, kept
    assert kept < _faults_per_frame("default")


def test_the_users_own_malloc_settings_win(monkeypatch) -> None:
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert keep_freed_memory() is False


def test_console_scripts_keep_freed_memory_and_library_calls_do_not(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(common, "keep_freed_memory", lambda: calls.append(1) or True)
    main = common.entry_point(lambda: common.make_parser("prog", "test"), lambda args: 0)
    assert main(["-q"]) == 0 and calls == []  # called with arguments: a library caller's process
    monkeypatch.setattr(sys, "argv", ["prog", "-q"])
    handler = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as exc:
            main()  # as a console script
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert exc.value.code == 0 and calls == [1]
