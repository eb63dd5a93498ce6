"""Keep the original colours: the style's light and shade, the photo's own colours.

One implementation for every command: nst-live's hotkey c, and --keep-colours of nst-image
and nst-video (``KeepColours`` wraps any Stylizer).
"""

from __future__ import annotations

import cv2
import numpy as np

from .stages import Stylizer


def keep_colors(original: np.ndarray, stylized: np.ndarray) -> np.ndarray:
    """The stylised frame's luminance with the original's colours (both BGR uint8 [H, W, 3]):
    Y from ``stylized``, Cr and Cb from ``original``, in YCrCb."""
    out = cv2.cvtColor(original, cv2.COLOR_BGR2YCrCb)
    out[..., 0] = cv2.cvtColor(stylized, cv2.COLOR_BGR2GRAY)  # BGR->grey is exactly YCrCb's Y
    return cv2.cvtColor(out, cv2.COLOR_YCrCb2BGR)


class KeepColors:
    """A Stylizer: ``inner``'s output with the input's colours (``keep_colours``)."""

    def __init__(self, inner: Stylizer) -> None:
        self.inner = inner

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return keep_colors(image, self.inner(image))
