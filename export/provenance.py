"""Where a checkpoint or model came from: recorded in checkpoints, manifests and graph metadata."""

from __future__ import annotations

import math
import ntpath
import platform
import posixpath
import subprocess
from pathlib import Path
from typing import Any


def git_commit() -> str | None:
    """The commit of the source tree this code runs from, if it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    if out.returncode != 0 or len(commit) != 40:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, check=False)
    return commit + ("-dirty" if dirty.stdout.strip() else "")


def environment() -> dict[str, Any]:
    import torch

    from stylecast.realtime import package_version

    return {
        "stylecast": package_version(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "git_commit": git_commit(),
    }


_PATH_KEYS = {"path", "content_dir", "base_checkpoint", "from"}
"""Keys whose values are file or folder paths, relative or not: only their last part is kept."""


def _name_only(value: Any) -> Any:
    return ntpath.basename(posixpath.basename(value.rstrip("/\\"))) or value if isinstance(value, str) else public_record(value)


def public_record(value: Any) -> Any:
    """``value`` (JSON-like) with every absolute path cut to its last component, so that what
    ships (manifests, graph metadata, model cards) names no folder, user or host of the
    machine it was made on; a number that is not finite (NaN: no average yet) becomes None, so
    that what ships is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _name_only(v) if k in _PATH_KEYS else public_record(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [public_record(v) for v in value]
    if isinstance(value, str) and (posixpath.isabs(value) or ntpath.isabs(value) or value.startswith("~")):
        return ntpath.basename(posixpath.basename(value.rstrip("/\\"))) or value
    return value
