"""Stylise still images with a StyleEngine: a file gives a file, a folder gives a folder.

Every output path is checked before the first image is stylised, so a refused output (it
exists without ``overwrite``, or it is an input) stops the run before anything is written.
Each file is written atomically (``images.write_image``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from .atomic import check_output_path
from .engine import StyleEngine
from .errors import InputFileError, UsageError
from .images import IMAGE_SUFFIXES, list_images, read_image, write_image
from .progress import Progress

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


def stylize_stills(engine: StyleEngine, src: Path, dst: Path, *, overwrite: bool) -> list[Path]:
    """Stylise ``src`` (an image file or a folder of them) into ``dst``; return the files written.

    A folder ``dst`` is created when missing (its parent must exist); outputs keep the input
    file names, and so their formats.
    """
    src, dst = Path(src), Path(dst)
    pairs = check_stills(src, dst, overwrite=overwrite)
    inputs = tuple(p for p, _ in pairs)
    if src.is_dir() and not dst.exists():
        dst.mkdir()  # its parent was checked in _plan
    written: list[Path] = []
    with Progress(len(pairs), "stylising", unit="img", enabled=None if len(pairs) > 1 else False) as bar:
        for path, out in pairs:
            image = read_image(path)
            written.append(write_image(out, engine(image), overwrite=overwrite, inputs=inputs))
            log.debug("%s -> %s", path, out)
            bar.update()
    return written
