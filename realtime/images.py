"""Reading and writing still images (BGR uint8 HxWx3, OpenCV's layout) with clear errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .atomic import atomic_file
from .errors import InputFileError, UsageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def read_image(path: Path | str, *, min_side: int = 1, what: str = "image") -> np.ndarray:
    """Read an image file as BGR uint8 [H, W, 3]. Alpha is dropped, grey is expanded.

    Raises InputFileError for a missing, unreadable or non-image file, or one whose
    shorter side is under ``min_side`` pixels.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if path.is_dir():
        raise InputFileError(f"{path}: is a folder, expected an {what} file")
    try:
        data = np.fromfile(path, dtype=np.uint8)  # works for any file name, unlike cv2.imread
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if data.size == 0:
        raise InputFileError(f"{path}: the file is empty")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputFileError(f"{path}: not an image file OpenCV can read")
    if img.dtype != np.uint8:
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(1, int(np.iinfo(img.dtype).max))) if img.dtype.kind == "u" else img.astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if min(img.shape[:2]) < min_side:
        raise InputFileError(
            f"{path}: {what} is {img.shape[1]}x{img.shape[0]} pixels; at least {min_side} px on each side is needed"
        )
    return np.ascontiguousarray(img)


def write_image(path: Path | str, image: np.ndarray, *, overwrite: bool, inputs: tuple[Path | str, ...] = ()) -> Path:
    """Encode by the file's extension and write atomically (temp file, then rename)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise UsageError(f"{path}: unsupported image extension {path.suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    ok, buf = cv2.imencode(suffix, image)
    if not ok:
        raise UsageError(f"{path}: OpenCV could not encode a {suffix} image")
    with atomic_file(path, overwrite=overwrite, inputs=inputs) as tmp:
        buf.tofile(tmp)
    return path


def list_images(folder: Path | str) -> list[Path]:
    """Image files directly in ``folder``, sorted by name. Raises InputFileError if none or not a folder."""
    folder = Path(folder)
    if not folder.exists():
        raise InputFileError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise InputFileError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputFileError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return files
