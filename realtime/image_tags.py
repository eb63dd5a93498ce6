"""The two image-file tags stylecast handles itself: EXIF Orientation when reading, TIFF's
alpha marker when writing. Pure Python on the file's bytes; never raises on a malformed tag.

Orientation: phones store a portrait photo as landscape pixels plus the EXIF Orientation tag
(1..8), and OpenCV applies the tag only when it converts the image (``IMREAD_COLOR``), not with
``IMREAD_UNCHANGED``, which stylecast needs to keep alpha and 16 bits. So the tag is read here
from where each format keeps its EXIF block: a JPEG's APP1 segment, a PNG's ``eXIf`` chunk, a
WebP's ``EXIF`` chunk. (OpenCV's TIFF decoder applies a TIFF's own orientation tag itself.)
The EXIF block is a little TIFF file; the tag is 0x0112 in its first directory.
"""

from __future__ import annotations

import struct

import numpy as np

ORIENTATION_TAG = 0x0112
EXTRA_SAMPLES_TAG = 0x0152  # 338
SAMPLES_PER_PIXEL_TAG = 0x0115  # 277
_SHORT, _LONG = 3, 4
ASSOCIATED_ALPHA, UNASSOCIATED_ALPHA = 1, 2  # ExtraSamples: premultiplied, straight alpha


def _ifd0(tiff: bytes) -> tuple[str, int, dict[int, tuple[int, int, bytes]]] | None:
    """(struct byte order, offset of the first directory, {tag: (type, count, 4 value bytes)})
    of a TIFF structure, or None when it is not one."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    e = "<" if tiff[:2] == b"II" else ">"
    magic, offset = struct.unpack(e + "HI", tiff[2:8])
    if magic != 42 or offset + 2 > len(tiff):
        return None
    (count,) = struct.unpack(e + "H", tiff[offset:offset + 2])
    entries: dict[int, tuple[int, int, bytes]] = {}
    for i in range(count):
        at = offset + 2 + 12 * i
        if at + 12 > len(tiff):
            break
        tag, kind, n = struct.unpack(e + "HHI", tiff[at:at + 8])
        entries[tag] = (kind, n, tiff[at + 8:at + 12])
    return e, offset, entries


def _short_value(e: str, entry: tuple[int, int, bytes] | None) -> int | None:
    if entry is None or entry[1] != 1 or entry[0] not in (_SHORT, _LONG):
        return None
    return struct.unpack(e + ("H" if entry[0] == _SHORT else "I"), entry[2][: 2 if entry[0] == _SHORT else 4])[0]


def _jpeg_exif(data: bytes) -> bytes | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        if marker in (0xDA, 0xD9):  # image data or the end: EXIF comes before
            return None
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        segment = data[pos + 4:pos + 2 + length]
        if marker == 0xE1 and segment.startswith(b"Exif\0\0"):
            return segment[6:]
        pos += 2 + length
    return None


def _png_exif(data: bytes) -> bytes | None:
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"eXIf":
            return data[pos + 8:pos + 8 + length]
        if kind == b"IEND":
            return None
        pos += 12 + length
    return None


def _webp_exif(data: bytes) -> bytes | None:
    pos = 12
    while pos + 8 <= len(data):
        kind, length = struct.unpack("<4sI", data[pos:pos + 8])
        if kind == b"EXIF":
            block = data[pos + 8:pos + 8 + length]
            return block[6:] if block.startswith(b"Exif\0\0") else block  # some writers keep the JPEG prefix
        pos += 8 + length + (length & 1)
    return None


def exif_block(data: bytes) -> bytes | None:
    """The EXIF block (a TIFF structure) of a JPEG, PNG or WebP file's bytes, or None."""
    if data[:2] == b"\xff\xd8":
        return _jpeg_exif(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _png_exif(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_exif(data)
    return None


def exif_orientation(data: bytes) -> int:
    """The EXIF Orientation (1..8) of a JPEG, PNG or WebP file's bytes; 1 when there is none,
    it is out of range, or the block is malformed."""
    try:
        block = exif_block(data)
        parsed = _ifd0(block) if block else None
        value = _short_value(parsed[0], parsed[2].get(ORIENTATION_TAG)) if parsed else None
    except (struct.error, IndexError, ValueError):
        return 1
    return value if value is not None and 1 <= value <= 8 else 1


def upright(image: np.ndarray, orientation: int) -> np.ndarray:
    """The stored pixels [H, W, ...] turned the way the EXIF ``orientation`` says they are seen:
    2 mirror, 3 half turn, 4 flip, 5 transpose, 6 quarter turn clockwise, 7 transverse,
    8 quarter turn anticlockwise. 5..8 swap height and width."""
    if orientation == 2:
        out = image[:, ::-1]
    elif orientation == 3:
        out = image[::-1, ::-1]
    elif orientation == 4:
        out = image[::-1]
    elif orientation == 5:
        out = image.swapaxes(0, 1)
    elif orientation == 6:
        out = np.rot90(image, -1)
    elif orientation == 7:
        out = image.swapaxes(0, 1)[::-1, ::-1]
    elif orientation == 8:
        out = np.rot90(image, 1)
    else:
        return image
    return np.ascontiguousarray(out)


def tiff_extra_samples(data: bytes) -> int | None:
    """A TIFF file's ExtraSamples value (0 unspecified, 1 premultiplied alpha, 2 straight
    alpha), or None when the file has no such tag or is not a TIFF."""
    try:
        parsed = _ifd0(data)
        return _short_value(parsed[0], parsed[2].get(EXTRA_SAMPLES_TAG)) if parsed else None
    except (struct.error, IndexError, ValueError):
        return None


def mark_tiff_alpha(data: bytes, extra_samples: int = UNASSOCIATED_ALPHA) -> bytes:
    """A TIFF file with 4 samples per pixel, marked as colour plus alpha (straight by default).

    OpenCV writes BGRA TIFFs without the ExtraSamples tag, so other programs (and libtiff,
    with a warning) take the 4th sample for an unnamed extra channel, not transparency. The
    first directory is written again with the tag, at the end of the file, and the header
    points to it; the image data is not touched. Anything else is returned unchanged.
    """
    parsed = _ifd0(data)
    if parsed is None:
        return data
    e, offset, entries = parsed
    if EXTRA_SAMPLES_TAG in entries or _short_value(e, entries.get(SAMPLES_PER_PIXEL_TAG)) != 4:
        return data
    (count,) = struct.unpack(e + "H", data[offset:offset + 2])
    next_ifd = data[offset + 2 + 12 * count:offset + 6 + 12 * count]
    entries[EXTRA_SAMPLES_TAG] = (_SHORT, 1, struct.pack(e + "HH", extra_samples, 0))
    table = b"".join(struct.pack(e + "HHI", tag, kind, n) + value for tag, (kind, n, value) in sorted(entries.items()))
    body = data + b"\0" * (len(data) & 1)  # directories start on a word boundary
    ifd = struct.pack(e + "H", len(entries)) + table + next_ifd
    return body[:4] + struct.pack(e + "I", len(body)) + body[8:] + ifd
