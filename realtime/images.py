"""Reading and writing still images (BGR uint8 HxWx3, OpenCV's layout) with clear errors.

``read_picture`` gives what stylecast works on and what it must give back:
  upright      the EXIF orientation is applied (image_tags.py), so a phone's portrait photo is
               portrait, at the size the user saw
  colour       BGR uint8 [H, W, 3]; grey is expanded; 16-bit and float (0..1) samples are
               scaled to 8 bits; transparent parts are composited on NEUTRAL_GREY, so pixels
               hidden under alpha (often garbage) never reach the network
  alpha        uint8 [H, W] when the file has an alpha channel, to be written back with the result
``write_image`` encodes by extension, with an alpha channel where the format holds one
(ALPHA_SUFFIXES), and writes atomically (temp file, then rename).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .atomic import atomic_file
from .errors import InputFileError, UsageError
from .image_tags import ASSOCIATED_ALPHA, UNASSOCIATED_ALPHA, exif_orientation, mark_tiff_alpha, tiff_extra_samples, upright

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
ALPHA_SUFFIXES = (".png", ".webp", ".tif", ".tiff")
"""The output formats that keep an alpha channel (JPEG and BMP do not)."""

NEUTRAL_GREY = 128
"""What transparent parts are composited on before stylising (and in formats without alpha)."""


@dataclass(frozen=True)
class Picture:
    """An image file as stylecast uses it: ``bgr`` uint8 [H, W, 3] upright, transparent parts on
    NEUTRAL_GREY; ``alpha`` uint8 [H, W] (None when the file has no alpha channel); ``bits``
    per sample in the file (8, 16 or 32)."""

    bgr: np.ndarray
    alpha: np.ndarray | None = None
    bits: int = 8

    @property
    def transparent(self) -> bool:
        """Whether any pixel is less than fully opaque."""
        return self.alpha is not None and int(self.alpha.min()) < 255


def _unit_scale(img: np.ndarray, path: Path) -> float:
    """The sample value that means full intensity."""
    if img.dtype.kind == "u":
        return float(np.iinfo(img.dtype).max)
    if img.dtype.kind == "f":
        return 1.0
    raise InputFileError(f"{path}: {img.dtype} samples are not supported; save it with 8- or 16-bit unsigned samples")


def _to_uint8(x: np.ndarray, scale: float) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    return np.clip(np.rint(x.astype(np.float32) * np.float32(255.0 / scale)), 0, 255).astype(np.uint8)


@functools.cache
def _opencv_gives_premultiplied(dtype: str, extra_samples: int) -> bool:
    """Whether this OpenCV build decodes a TIFF of ``dtype`` samples whose alpha is marked
    ``extra_samples`` into premultiplied colour. It depends on the build and the bit depth
    (OpenCV 5 premultiplies 8-bit straight alpha and not 16-bit), so a one-pixel file asks it."""
    top = np.iinfo(dtype).max
    pixel = np.array([[[top // 2] * 3 + [top // 2]]], dtype)  # stored colour 0.5, alpha 0.5
    got = cv2.imdecode(np.frombuffer(mark_tiff_alpha(cv2.imencode(".tif", pixel)[1].tobytes(), extra_samples), np.uint8),
                       cv2.IMREAD_UNCHANGED)
    straight = 0.5 if extra_samples == UNASSOCIATED_ALPHA else 1.0  # the true colour of that pixel
    value = float(got[0, 0, 0]) / top if got is not None and got.shape[-1] == 4 else straight
    return abs(value - straight * 0.5) < abs(value - straight)


def _premultiplied(img: np.ndarray, data: np.ndarray) -> bool:
    """Whether the colour OpenCV decoded from the file ``data`` is multiplied by alpha already."""
    if data[:4].tobytes() not in (b"II*\0", b"MM\0*") or img.ndim != 3 or img.shape[2] != 4 or img.dtype.kind != "u":
        return False
    extra = tiff_extra_samples(data.tobytes())
    return extra in (ASSOCIATED_ALPHA, UNASSOCIATED_ALPHA) and _opencv_gives_premultiplied(img.dtype.name, extra)


def decode_picture(data: np.ndarray, path: Path | str = "image") -> Picture:
    """Decode an image file's bytes (uint8 [N]); InputFileError when OpenCV cannot."""
    path = Path(path)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # keeps alpha and 16 bits, ignores EXIF orientation
    if img is None or img.size == 0:
        raise InputFileError(f"{path}: not an image file OpenCV can read")
    img = upright(img, exif_orientation(data.tobytes()))
    scale = _unit_scale(img, path)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    color = img if img.ndim == 2 else img[..., :3]
    alpha = None
    if img.ndim == 3 and img.shape[2] == 4:
        a = np.clip(img[..., 3:].astype(np.float32) / np.float32(scale), 0.0, 1.0)
        # composited on grey: colour * alpha + grey * (1 - alpha), colour * alpha being what a
        # premultiplied decode gives already
        shown = color.astype(np.float32) * np.float32(255.0 / scale) * (1.0 if _premultiplied(img, data) else a)
        blended = shown + np.float32(NEUTRAL_GREY) * (1.0 - a)
        color = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        alpha = np.rint(a[..., 0] * 255.0).astype(np.uint8)
    elif img.ndim == 3 and img.shape[2] != 3:
        raise InputFileError(f"{path}: {img.shape[2]}-channel images are not supported (grey, BGR or BGRA only)")
    color = _to_uint8(color, scale)
    if color.ndim == 2:
        color = cv2.cvtColor(color, cv2.COLOR_GRAY2BGR)
    return Picture(np.ascontiguousarray(color), alpha, img.dtype.itemsize * 8)


def read_picture(path: Path | str, *, min_side: int = 1, what: str = "image") -> Picture:
    """Read an image file: colour, alpha and bit depth, upright (see the module notes).

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
    picture = decode_picture(data, path)
    h, w = picture.bgr.shape[:2]
    if min(h, w) < min_side:
        raise InputFileError(f"{path}: {what} is {w}x{h} pixels; at least {min_side} px on each side is needed")
    return picture


def cover_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` scaled (aspect kept) until it covers ``height`` x ``width``, then centre-cropped to
    exactly that size; area interpolation when shrinking, cubic when enlarging."""
    ih, iw = image.shape[:2]
    s = max(height / ih, width / iw)
    scaled = cv2.resize(image, (max(width, round(iw * s)), max(height, round(ih * s))),
                        interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    y, x = (scaled.shape[0] - height) // 2, (scaled.shape[1] - width) // 2
    return np.ascontiguousarray(scaled[y:y + height, x:x + width])


def read_image(path: Path | str, *, min_side: int = 1, what: str = "image") -> np.ndarray:
    """Read an image file as BGR uint8 [H, W, 3], upright, transparent parts on NEUTRAL_GREY,
    grey expanded (``read_picture(...).bgr``). InputFileError as ``read_picture``."""
    return read_picture(path, min_side=min_side, what=what).bgr


def holds_alpha(path: Path | str) -> bool:
    """Whether an image written to ``path`` (by its extension) keeps an alpha channel."""
    return Path(path).suffix.lower() in ALPHA_SUFFIXES


def write_image(path: Path | str, image: np.ndarray, *, overwrite: bool, inputs: tuple[Path | str, ...] = (),
                alpha: np.ndarray | None = None) -> Path:
    """Encode BGR uint8 ``image`` [H, W, 3] by the file's extension and write atomically (temp
    file, then rename). ``alpha`` uint8 [H, W] is written as the alpha channel; it needs a format
    that holds one (``holds_alpha``), else UsageError."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise UsageError(f"{path}: unsupported image extension {path.suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    if alpha is not None:
        if not holds_alpha(path):
            raise UsageError(f"{path}: a {suffix} file cannot hold an alpha channel; use one of {', '.join(ALPHA_SUFFIXES)}")
        if alpha.dtype != np.uint8 or alpha.shape != image.shape[:2]:
            raise UsageError(f"alpha must be uint8 {list(image.shape[:2])}, got {alpha.dtype} {list(alpha.shape)}")
        image = np.dstack([image, alpha])
    ok, buf = cv2.imencode(suffix, image)
    if not ok:
        raise UsageError(f"{path}: OpenCV could not encode a {suffix} image")
    data = mark_tiff_alpha(buf.tobytes()) if alpha is not None and suffix in (".tif", ".tiff") else buf.tobytes()
    with atomic_file(path, overwrite=overwrite, inputs=inputs) as tmp:
        tmp.write_bytes(data)
    return path


def list_images(folder: Path | str) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; hidden files (a leading dot: macOS's
    ``._name.jpg`` companions, half-written temporary files) are left out. Raises
    InputFileError if there are none or it is not a folder."""
    folder = Path(folder)
    if not folder.exists():
        raise InputFileError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise InputFileError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise InputFileError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return files
