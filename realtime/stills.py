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

from .batch import Batch, check_outputs, plan_pairs
from .errors import InputFileError, UsageError
from .images import ALPHA_SUFFIXES, IMAGE_SUFFIXES, Picture, holds_alpha, list_images, read_picture, write_image
from .progress import Progress
from .stages import Stylizer

log = logging.getLogger("stylecast.stills")


def _check_image_path(out: Path) -> None:
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise UsageError(f"{out}: unsupported image extension {out.suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")


def check_stills(src: Path, dst: Path, *, overwrite: bool) -> list[tuple[Path, Path]]:
    """The (input, output) pairs of a run, every output checked; call it before building an engine."""
    src, dst = Path(src), Path(dst)
    pairs = plan_pairs(src, dst, list_files=list_images, check_file=_check_image_path)
    check_outputs(src, dst, pairs, overwrite=overwrite)
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
    lost: list[Path] = []
    with Batch(src, dst, len(pairs), noun="images") as batch, \
            Progress(len(pairs), "stylising", unit="img", enabled=None if len(pairs) > 1 else False) as bar:
        for path, out in pairs:
            try:
                picture = read_picture(path)
            except InputFileError as exc:
                if not batch.folder:
                    raise
                batch.skip(path, str(exc))
                bar.update()
                continue
            if write_result(out, stylizer(picture.bgr), picture, overwrite=overwrite, inputs=inputs):
                lost.append(out)
            batch.done(out)
            log.debug("%s -> %s", path, out)
            bar.update()
    if lost:
        log.warning("%s", transparency_lost(lost))
    return batch.verdict()
