"""Training data: content photos as random crops, style images as tensors.

Images are float [B, 3, H, W] RGB in [0, 1] (the layout the networks and the VGG take).
Randomness comes from a ``torch.Generator`` the caller seeds per step, so a resumed run
draws exactly the crops an uninterrupted one would have.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from stylecast.realtime.errors import InputFileError, UsageError
from stylecast.realtime.images import list_images, read_image

from .tensors import bgr_to_tensor

log = logging.getLogger("stylecast.train")


def resize_longer(image: np.ndarray, side: int) -> np.ndarray:
    """Resize so the longer side is ``side`` pixels (area filter down, cubic up)."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    if scale == 1:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def load_style_image(path: Path, size: int) -> torch.Tensor:
    """A style image, longer side ``size``, as float RGB [1, 3, h, w]. At least 16 px a side."""
    return bgr_to_tensor(resize_longer(read_image(path, min_side=16, what="style image"), size))


def held_out(files: list[Path], n: int) -> list[Path]:
    """The ``n`` photos held back for evaluation: those whose file names hash lowest. Depends only
    on the names, so the same photos are held back however the folder is listed or extended."""
    if n < 0 or n >= len(files):
        raise UsageError(f"cannot hold back {n} of {len(files)} content photos (at least one must remain for training)")
    return sorted(files, key=lambda f: hashlib.sha256(f.name.encode("utf-8")).hexdigest())[:n]


class ContentCrops:
    """All content photos of a folder, held in memory, served as random square crops.

    Photos whose shorter side is under ``size`` (the largest crop the run takes) are scaled
    up once at load so every crop is a real crop. Unreadable files are skipped with a
    warning; a folder with no readable image is an InputFileError. ``holdout`` photos
    (see :func:`held_out`) are left out; their names are in ``held_out_names``.
    """

    def __init__(
        self, folder: Path | str, size: int, device: torch.device | str = "cpu", limit: int | None = None, holdout: int = 0
    ) -> None:
        if size < 16:
            raise UsageError(f"--size must be at least 16, got {size}")
        files = list_images(folder)
        kept_back = set(held_out(files, holdout)) if holdout else set()
        self.held_out_names = sorted(f.name for f in kept_back)
        files = [f for f in files if f not in kept_back]
        if limit is not None:
            files = files[:limit]
        self.size = size
        self.images: list[torch.Tensor] = []
        self.files: list[Path] = []
        skipped = []
        for f in files:
            try:
                img = read_image(f, what="content photo")
            except InputFileError as exc:
                skipped.append(str(exc))
                continue
            h, w = img.shape[:2]
            if min(h, w) < size:
                scale = size / min(h, w)
                img = cv2.resize(img, (max(size, round(w * scale)), max(size, round(h * scale))), interpolation=cv2.INTER_CUBIC)
            rgb = torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1])).permute(2, 0, 1)
            self.images.append(rgb.to(device))  # uint8, converted to float per crop
            self.files.append(f)
        if skipped:
            log.warning("skipped %d unreadable content file(s), e.g. %s", len(skipped), skipped[0])
        if not self.images:
            raise InputFileError(f"{folder}: no readable content photos")
        log.info("content: %d photos from %s, %d px crops", len(self.images), folder, size)

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, n: int, generator: torch.Generator, size: int | None = None) -> torch.Tensor:
        """``n`` random crops (random photo, position and horizontal flip): float RGB [n, 3, s, s]
        with s = ``size`` (at most the size given at load; default that size)."""
        s = self.size if size is None else size
        if not 16 <= s <= self.size:
            raise ValueError(f"crop size {s} is outside 16..{self.size} (the size the photos were loaded for)")
        picks = torch.randint(len(self.images), (n,), generator=generator).tolist()
        crops = []
        for i in picks:
            img = self.images[i]
            h, w = img.shape[-2:]
            y = int(torch.randint(h - s + 1, (1,), generator=generator))
            x = int(torch.randint(w - s + 1, (1,), generator=generator))
            crop = img[:, y : y + s, x : x + s]
            if bool(torch.rand((), generator=generator) < 0.5):
                crop = crop.flip(-1)
            crops.append(crop)
        return torch.stack(crops).float().div_(255.0)
