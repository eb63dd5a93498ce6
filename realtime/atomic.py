"""Outputs are written to a temporary name beside the target and renamed at the end.

A failure or Ctrl-C leaves nothing at the target path and no temporary file; an existing
output is refused unless ``overwrite``; an output that is one of the inputs is always refused.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import OutputExistsError, UsageError


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_path(out: Path | str, *, overwrite: bool, inputs: Iterable[Path | str] = (), is_dir: bool = False) -> Path:
    """Refuse an output that is an input, exists without ``overwrite``, or has no folder to go in."""
    out = Path(out)
    for src in inputs:
        src = Path(src)
        if _same_file(out, src) or out.resolve() == src.resolve():
            raise OutputExistsError(f"{out}: the output would overwrite the input; choose another name")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise OutputExistsError(f"{out} already exists; pass --overwrite to replace it")
        if is_dir and not out.is_dir():
            raise OutputExistsError(f"{out} exists and is not a folder")
        if not is_dir and out.is_dir():
            raise OutputExistsError(f"{out} is a folder, not a file")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{out}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{out}: the folder {parent} is not writable")
    return out


@contextlib.contextmanager
def atomic_file(out: Path | str, *, overwrite: bool, inputs: Iterable[Path | str] = ()) -> Iterator[Path]:
    """Yield a temporary path beside ``out`` (same extension); rename it to ``out`` on success."""
    out = check_output_path(out, overwrite=overwrite, inputs=inputs)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=f".tmp{out.suffix}", dir=out.parent or ".")
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the output gets ordinary permissions
    try:
        yield tmp
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def stale_temps(out: Path | str) -> list[Path]:
    """The temporary files ``atomic_file`` made beside ``out`` that are still there: left by a
    process killed before it could remove its own (SIGKILL, a machine lost from a cluster).
    Only exact matches of the name ``atomic_file`` gives (``.STEM.XXXXXXXX.tmpSUFFIX``, as
    ``tempfile.mkstemp`` draws it), so another output's temporary file never matches."""
    out = Path(out)
    name = re.compile(rf"\.{re.escape(out.stem)}\.[a-z0-9_]{{8}}\.tmp{re.escape(out.suffix)}")
    folder = out.parent if str(out.parent) else Path(".")
    try:
        return sorted(p for p in folder.iterdir() if name.fullmatch(p.name) and p.is_file())
    except OSError:  # the folder is gone or unreadable: nothing of ours to remove
        return []


def remove_stale_temps(out: Path | str) -> list[Path]:
    """Remove ``stale_temps(out)``; returns what was removed. Call it only where no other process
    can be writing ``out`` at the same time (the one task that makes it, or after it ended)."""
    removed = []
    for tmp in stale_temps(out):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


@contextlib.contextmanager
def atomic_dir(out: Path | str, *, overwrite: bool, inputs: Iterable[Path | str] = ()) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``out``; it replaces ``out`` on success."""
    out = check_output_path(out, overwrite=overwrite, inputs=inputs, is_dir=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent or "."))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent or "."))
            os.replace(out, old / "x")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
