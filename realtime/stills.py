"""Stylise still images with a Stylizer (a StyleEngine, or one wrapped by styling.py): a file
gives a file, a folder gives a folder.

Every output path is checked before the first image is stylised, so a refused output (it
exists without ``overwrite``, or it is an input) stops the run before anything is written.
Each file is written atomically (``images.write_image``), with the input's alpha channel
where the output's format holds one. In a folder, a file that cannot be read is reported by
name and skipped, the rest are done, and ``PartialFailureError`` says so at the end.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from .atomic import check_output_path
from .errors import InputFileError, PartialFailureError, UsageError
from .images import ALPHA_SUFFIXES, IMAGE_SUFFIXES, Picture, holds_alpha, list_images, read_picture, write_image
from .progress import Progress
from .stages import Stylizer

log = logging.getLogger("stylecast.stills")


def _plan(src: Path, dst: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs. A folder in needs a folder out; a file out of a file may be given
    as an existing folder to put it in (as ``cp`` does)."""
    if not src.exists():
        raise InputFileError(f"{src}: no such file or folder")
    if src.is_dir():
        # The folder itself may exist (``overwrite`` is judged per file); it must not be the input.
        check_output_path(dst, overwrite=True, inputs=[src], is_dir=True)
        return [(f, dst / f.name) for f in list_images(src)]
    if dst.is_dir():
        dst = dst / src.name
    if dst.suffix.lower() not in IMAGE_SUFFIXES:
        raise UsageError(f"{dst}: unsupported image extension {dst.suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    return [(src, dst)]


def check_stills(src: Path, dst: Path, *, overwrite: bool) -> list[tuple[Path, Path]]:
    """The (input, output) pairs of a run, every output checked; call it before building an engine."""
    src, dst = Path(src), Path(dst)
    pairs = _plan(src, dst)
    inputs = tuple(p for p, _ in pairs)
    if not (src.is_dir() and not dst.exists()):  # a folder yet to be made holds no outputs
        for _, out in pairs:
            check_output_path(out, overwrite=overwrite, inputs=inputs)
    return pairs


def write_result(out: Path, result: np.ndarray, picture: Picture, *, overwrite: bool,
                 inputs: tuple[Path, ...] = ()) -> bool:
    """Write ``result`` (BGR uint8) with ``picture``'s alpha channel (scaled to the result's size)
    where ``out``'s format holds one. Returns True when the picture's transparency was lost
    (the format has no alpha channel: the transparent parts stay grey)."""
    alpha = picture.alpha
    if alpha is not None and alpha.shape != result.shape[:2]:
        alpha = cv2.resize(alpha, (result.shape[1], result.shape[0]), interpolation=cv2.INTER_AREA)
    keep = alpha is not None and holds_alpha(out)
    write_image(out, result, overwrite=overwrite, inputs=inputs, alpha=alpha if keep else None)
    return picture.transparent and not keep


def transparency_lost(outputs: list[Path]) -> str:
    """The one line that says which outputs could not keep their input's transparency."""
    what = str(outputs[0]) if len(outputs) == 1 else f"{len(outputs)} outputs ({', '.join(sorted({p.suffix for p in outputs}))})"
    keep = ", ".join(s for s in ALPHA_SUFFIXES if s != ".tiff")
    return f"warning: {what}: the format has no transparency, so the transparent parts are grey; write {keep} to keep them"


def _names(paths: list[Path], most: int = 5) -> str:
    names = [p.name for p in paths[:most]]
    return ", ".join(names) + (f" and {len(paths) - most} more" if len(paths) > most else "")


def stylize_stills(stylizer: Stylizer, src: Path, dst: Path, *, overwrite: bool) -> list[Path]:
    """Stylise ``src`` (an image file or a folder of them) into ``dst``; return the files written.

    A folder ``dst`` is created when missing (its parent must exist); outputs keep the input
    file names, and so their formats. A file ``src`` that cannot be read is an InputFileError.
    In a folder each unreadable file is logged and skipped; then, at the end, InputFileError
    when none could be read (a folder made for the outputs is removed again), or
    PartialFailureError (with the outputs written) when some could not.
    """
    src, dst = Path(src), Path(dst)
    pairs = check_stills(src, dst, overwrite=overwrite)
    inputs = tuple(p for p, _ in pairs)
    folder = src.is_dir()
    made = folder and not dst.exists()
    if made:
        dst.mkdir()  # its parent was checked in _plan
    written: list[Path] = []
    failed: list[tuple[Path, str]] = []
    lost: list[Path] = []
    try:
        with Progress(len(pairs), "stylising", unit="img", enabled=None if len(pairs) > 1 else False) as bar:
            for path, out in pairs:
                try:
                    picture = read_picture(path)
                except InputFileError as exc:
                    if not folder:
                        raise
                    log.warning("warning: %s; skipped", exc)
                    failed.append((path, str(exc)))
                    bar.update()
                    continue
                if write_result(out, stylizer(picture.bgr), picture, overwrite=overwrite, inputs=inputs):
                    lost.append(out)
                written.append(out)
                log.debug("%s -> %s", path, out)
                bar.update()
    finally:
        if made and not any(dst.iterdir()):
            dst.rmdir()  # a folder made for outputs that never came
    if lost:
        log.warning("%s", transparency_lost(lost))
    if failed and not written:
        raise InputFileError(f"{src}: none of the {len(failed)} image files could be read ({_names([p for p, _ in failed])})")
    if failed:
        raise PartialFailureError(
            f"{len(failed)} of {len(pairs)} images could not be read and were skipped ({_names([p for p, _ in failed])}); "
            f"the other {len(written)} were written to {dst}", done=written, failed=failed)
    return written
