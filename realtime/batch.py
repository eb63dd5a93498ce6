"""A folder as input: the bookkeeping that nst-image (photos) and nst-video (videos) share.

    pairs = plan_pairs(src, dst, list_files=list_images, out_name=..., check_file=...)
    with Batch(src, dst, len(pairs), noun="images") as batch:
        for path, out in pairs:
            ...               # batch.skip(path, why) for a file that cannot be read,
                              # batch.done(out) for each output written
    written = batch.verdict()  # InputFileError / PartialFailureError, or the outputs

A folder in gives a folder out with the same file names; the output folder may exist (an
existing output is judged per file), and a folder made for the outputs is removed again when
nothing was written into it. A file that cannot be read is named in one warning line and
skipped; the rest are done. At the end: InputFileError (exit 2) when none could be done,
PartialFailureError (exit 4) when some could not, else the outputs written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from .atomic import check_output_path
from .errors import InputFileError, PartialFailureError

log = logging.getLogger("stylecast.batch")


def names(paths: list[Path], most: int = 5) -> str:
    """``a.jpg, b.jpg and 3 more``: the file names of ``paths``, the first ``most`` of them."""
    shown = [p.name for p in paths[:most]]
    return ", ".join(shown) + (f" and {len(paths) - most} more" if len(paths) > most else "")


def plan_pairs(src: Path, dst: Path, *, list_files: Callable[[Path], list[Path]],
               out_name: Callable[[Path], str] = lambda p: p.name,
               check_file: Callable[[Path], None] = lambda p: None) -> list[tuple[Path, Path]]:
    """(input, output) pairs of a run. A folder ``src`` needs a folder ``dst`` (it may exist, it
    must not be the input): every file ``list_files`` gives, named ``out_name(file)`` in it. A
    file ``src`` gives one pair; ``dst`` may be an existing folder to put it in (as ``cp`` does),
    and ``check_file`` is asked about the output path (e.g. its extension)."""
    if not src.exists():
        raise InputFileError(f"{src}: no such file or folder")
    if src.is_dir():
        check_output_path(dst, overwrite=True, inputs=[src], is_dir=True)  # overwrite: judged per file
        return [(f, dst / out_name(f)) for f in list_files(src)]
    if dst.is_dir():
        dst = dst / src.name
    check_file(dst)
    return [(src, dst)]


def check_outputs(src: Path, dst: Path, pairs: list[tuple[Path, Path]], *, overwrite: bool) -> None:
    """Refuse, before any work, an output that exists (without ``overwrite``) or is an input."""
    inputs = tuple(p for p, _ in pairs)
    if not (src.is_dir() and not dst.exists()):  # a folder yet to be made holds no outputs
        for _, out in pairs:
            check_output_path(out, overwrite=overwrite, inputs=inputs)


class Batch:
    """Which inputs of a run were done and which skipped; the output folder; the verdict.

    ``total``: the inputs of the run; ``noun``: what they are ("images", "videos"), for messages.
    As a context manager it makes a missing output folder for a folder ``src`` (its parent was
    checked by ``plan_pairs``) and removes it again if it is still empty at the end.
    """

    def __init__(self, src: Path, dst: Path, total: int, *, noun: str) -> None:
        self.src, self.dst, self.total, self.noun = Path(src), Path(dst), total, noun
        self.folder = self.src.is_dir()
        self.written: list[Path] = []
        self.failed: list[tuple[Path, str]] = []
        self._made = False

    def __enter__(self) -> Batch:
        if self.folder and not self.dst.exists():
            self.dst.mkdir()
            self._made = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._made and not any(self.dst.iterdir()):
            self.dst.rmdir()  # a folder made for outputs that never came

    def done(self, out: Path) -> None:
        self.written.append(out)

    def skip(self, path: Path, why: str, what: str = "skipped") -> None:
        """``path`` could not be done: one warning line naming it, ``why`` (starting with the name,
        or it is put first) and ``what`` became of it."""
        why = why if why.startswith(str(path)) else f"{path}: {why}"
        log.warning("warning: %s; %s", why, what)
        self.failed.append((path, why))

    def verdict(self, verb: str = "read") -> list[Path]:
        """The outputs written; InputFileError when none and some failed, PartialFailureError when
        some failed. ``verb``: what could not be done to the failed ones ("read", "stylised")."""
        failed = [p for p, _ in self.failed]
        if failed and not self.written:
            raise InputFileError(f"{self.src}: none of the {len(failed)} {self.noun[:-1]} files could be {verb} ({names(failed)})")
        if failed:
            raise PartialFailureError(
                f"{len(failed)} of {self.total} {self.noun} could not be {verb} and were skipped ({names(failed)}); "
                f"the other {len(self.written)} were written to {self.dst}", done=self.written, failed=self.failed)
        return self.written
