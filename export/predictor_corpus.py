"""Which images the style predictor may train on: the corpus minus anything held out.

``select_corpus`` drops every corpus file that matches a held-out image by content hash,
by name (its own or its MANIFEST.csv source name) or by look (a difference hash), so the
held-out paintings stay unseen and can measure how well the predictor generalises.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from stylecast.realtime.errors import InputFileError
from stylecast.realtime.images import list_images
from stylecast.realtime.model_folder import sha256_file

log = logging.getLogger("stylecast.predictor")

# ---------------------------------------------------------------- the corpus and the held-out set

NEAR_DUPLICATE_BITS = 6
"""dHash Hamming distance (of 64 bits, mirror included) at or under which two images count as
the same picture. On the real corpus the closest held-out/corpus pair is 11 bits apart."""


def _name_key(name: str) -> str:
    """'Starry_Night.JPG' -> 'starrynight': names compared without case, punctuation or suffix."""
    return "".join(ch for ch in Path(name).stem.lower() if ch.isalnum())


def difference_hash(path: Path) -> tuple[int, int] | None:
    """64-bit dHash (Krawetz) of the image and of its mirror image; None if unreadable.

    Survives re-encoding, rescaling and aspect changes, which a file hash does not."""
    img = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_4)
    if img is None:
        return None
    small = cv2.resize(img, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)

    def bits(a: np.ndarray) -> int:
        return int.from_bytes(np.packbits((a[:, 1:] > a[:, :-1]).ravel()).tobytes(), "big")

    return bits(small), bits(small[:, ::-1])


def _manifest_names(folder: Path) -> dict[str, str]:
    """file -> the source file name recorded in the corpus's MANIFEST.csv (when there is one)."""
    import csv

    path = folder / "MANIFEST.csv"
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["file"]: Path(row.get("source_path") or row["file"]).name for row in csv.DictReader(fh) if row.get("file")}


@dataclass(frozen=True)
class CorpusSelection:
    """The training files of a style corpus, and what was left out and why."""

    files: tuple[Path, ...]
    excluded: tuple[tuple[Path, str], ...]  # (file, reason)
    heldout: tuple[Path, ...]

    def fingerprint(self) -> str:
        """sha256 over the training files' names, in order: recorded in checkpoints."""
        return hashlib.sha256("\n".join(p.name for p in self.files).encode()).hexdigest()


def heldout_images(folders: Iterable[Path]) -> list[Path]:
    """Every image file directly in ``folders`` (each must exist and hold images)."""
    return [p for folder in folders for p in list_images(folder)]


def select_corpus(corpus: Path, heldout: Sequence[Path] = (), *, limit: int | None = None) -> CorpusSelection:
    """The corpus's image files minus every one that matches a held-out image by content
    (sha256), by name (its own or its MANIFEST.csv source name, case and punctuation
    ignored) or by look (dHash within NEAR_DUPLICATE_BITS, mirror included).

    ``heldout``: folders of images that must never be trained on. Raises InputFileError for
    a missing or empty folder, or when nothing is left to train on.
    """
    held = heldout_images(heldout)
    held_hashes = {sha256_file(p): p for p in held}
    held_names = {key: p for p in held if (key := _name_key(p.name))}
    held_looks = [(h, p) for p in held if (h := difference_hash(p)) is not None]
    sources = _manifest_names(Path(corpus))
    files, excluded = [], []
    held_resolved = {p.resolve() for p in held}
    for path in list_images(corpus)[:limit]:
        reason = None
        if path.resolve() in held_resolved:
            reason = "is itself a held-out file"
        elif (match := held_hashes.get(sha256_file(path))) is not None:
            reason = f"same bytes as held-out {match.name}"
        elif (match := held_names.get(_name_key(path.name)) or held_names.get(_name_key(sources.get(path.name, "")))) is not None:
            reason = f"same name as held-out {match.name}"
        elif held_looks and (look := difference_hash(path)) is not None:
            for (h, hm), p in held_looks:
                if min((look[0] ^ h).bit_count(), (look[0] ^ hm).bit_count()) <= NEAR_DUPLICATE_BITS:
                    reason = f"looks like held-out {p.name}"
                    break
        if reason is None:
            files.append(path)
        else:
            excluded.append((path, reason))
    for path, why in excluded:
        log.warning("left out of training: %s (%s)", path.name, why)
    if not files:
        raise InputFileError(f"{corpus}: no style images left to train on")
    log.info("style corpus: %d images from %s, %d left out, %d held out", len(files), corpus, len(excluded), len(held))
    return CorpusSelection(tuple(files), tuple(excluded), tuple(held))


# ---------------------------------------------------------------- training
