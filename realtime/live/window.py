"""The preview window of ``nst-live`` (OpenCV HighGUI) and the HUD drawn on it.

The HUD goes on a copy of the frame made for the window only: the virtual camera, the UDP
stream, recordings and snapshots get the clean frame. Small frames are shown enlarged so that
the HUD stays readable.

The window must exist before PyAV is imported anywhere in the process: importing ``av`` first
makes the first HighGUI call hang (opencv#29195, seen with the Qt build of opencv-python), so
``PreviewWindow()`` creates and shows the window in its constructor and the CLI builds it
before any source or sink that needs PyAV.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..errors import BackendUnavailableError
from .hotkeys import KEY_HELP, key_from_code

log = logging.getLogger("stylecast.live")

WINDOW_TITLE = "stylecast"
MIN_PREVIEW_HEIGHT = 360
"""Frames shorter than this are shown enlarged (by a whole factor), so the HUD can be read."""

_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass
class Hud:
    """What the HUD shows over the preview."""

    lines: list[str] = field(default_factory=list)  # top left: style, fps, latency, provider, stages
    message: str = ""  # bottom left, for a moment: "saved snapshot ...", "no style 7"
    banner: str = ""  # centre, large: "camera lost - reconnecting"
    help: bool = False  # the key list


def _text_box(img: np.ndarray, lines: list[str], origin: tuple[int, int], scale: float,
              color: tuple[int, int, int] = (255, 255, 255)) -> None:
    """Write ``lines`` at ``origin`` (top left) over a darkened box, in place."""
    if not lines:
        return
    thick = max(1, round(scale * 2))
    sizes = [cv2.getTextSize(line, _FONT, scale, thick) for line in lines]
    line_h = max(h + base for (_, h), base in sizes) + max(2, round(4 * scale))
    pad = max(3, round(6 * scale))
    x0, y0 = origin
    x1 = min(img.shape[1], x0 + max(w for (w, _), _ in sizes) + 2 * pad)
    y1 = min(img.shape[0], y0 + line_h * len(lines) + pad)
    if x1 > x0 and y1 > y0:
        roi = img[y0:y1, x0:x1]
        roi[:] = (roi * 0.35).astype(np.uint8)  # dark, but the picture still shows through
    for i, line in enumerate(lines):
        y = y0 + pad + line_h * i + sizes[i][0][1]
        cv2.putText(img, line, (x0 + pad, y), _FONT, scale, color, thick, cv2.LINE_AA)


def _key_table(img: np.ndarray, origin: tuple[int, int], scale: float) -> None:
    """The key list in two aligned columns (the HUD font is proportional), over a dark box, in place."""
    thick = max(1, round(scale * 2))
    rows = [("keys", "")] + list(KEY_HELP)

    def width(text: str) -> int:
        return cv2.getTextSize(text, _FONT, scale, thick)[0][0]

    (_, text_h), base = cv2.getTextSize("Ag", _FONT, scale, thick)
    step = text_h + base + max(2, round(4 * scale))
    pad = max(3, round(6 * scale))
    key_w, gap = max(width(k) for k, _ in rows), width("  ")
    x0, y0 = origin
    x1 = min(img.shape[1], x0 + key_w + gap + max(width(w) for _, w in rows) + 2 * pad)
    y1 = min(img.shape[0], y0 + step * len(rows) + pad)
    img[y0:y1, x0:x1] = (img[y0:y1, x0:x1] * 0.35).astype(np.uint8)
    for i, (keys, what) in enumerate(rows):
        y = y0 + pad + step * i + text_h
        cv2.putText(img, keys, (x0 + pad, y), _FONT, scale, (120, 220, 255), thick, cv2.LINE_AA)
        cv2.putText(img, what, (x0 + pad + key_w + gap, y), _FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)


def preview_scale(height: int) -> int:
    """The whole factor a frame of ``height`` px is enlarged by for the preview (1 = as is)."""
    return max(1, -(-MIN_PREVIEW_HEIGHT // max(1, height)))


def draw_hud(image: np.ndarray, hud: Hud) -> np.ndarray:
    """A copy of ``image`` (BGR uint8 [H, W, 3]), enlarged when small, with ``hud`` drawn on it.
    ``image`` itself is never modified."""
    k = preview_scale(image.shape[0])
    out = cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_NEAREST) if k > 1 else image.copy()
    h, w = out.shape[:2]
    scale = float(np.clip(h / 900.0, 0.4, 0.9))
    margin = max(4, h // 90)
    if hud.banner:
        out[:] = (out * 0.5).astype(np.uint8)  # the frame is stale: dim it
        big = scale * 1.8
        (tw, th), _ = cv2.getTextSize(hud.banner, _FONT, big, max(1, round(big * 2)))
        _text_box(out, [hud.banner], (max(0, (w - tw) // 2 - 8), max(0, (h - th) // 2 - 8)), big, (80, 80, 255))
    _text_box(out, hud.lines, (margin, margin), scale)
    if hud.message:
        _, th = cv2.getTextSize(hud.message, _FONT, scale, 1)[0]
        _text_box(out, [hud.message], (margin, h - margin - th - 3 * round(8 * scale)), scale, (160, 255, 160))
    if hud.help:
        _key_table(out, (margin, h // 4), scale)
    return out


class PreviewWindow:
    """An OpenCV window showing frames with a HUD; ``show`` returns the key pressed, if any.

    The window is created and painted in the constructor (see the module docstring for why).
    ``closed`` turns True when the user closes the window with its close button.
    """

    def __init__(self, title: str = WINDOW_TITLE, placeholder: tuple[int, int] = (640, 360)) -> None:
        self.title = title
        self.fullscreen = False
        self._closed = False
        self._sized = False
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        except cv2.error as exc:
            raise BackendUnavailableError(
                f"cannot open a window ({str(exc).strip().splitlines()[-1]}); on a machine without a display use --no-window"
            ) from exc
        w, h = placeholder
        self.show(np.zeros((h, w, 3), np.uint8), Hud(banner="starting..."))

    def show(self, image: np.ndarray, hud: Hud) -> str | None:
        """Show ``image`` (BGR uint8 [H, W, 3]) with ``hud``; the key pressed meanwhile, or None."""
        if self._closed:
            return None
        view = draw_hud(image, hud)
        if not self._sized and not hud.banner:
            cv2.resizeWindow(self.title, view.shape[1], view.shape[0])  # the first real frame sets the size
            self._sized = True
        cv2.imshow(self.title, view)
        key = key_from_code(cv2.waitKey(1))
        if key is None and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            self._closed = True  # closed with the window's own button
        return key

    @property
    def closed(self) -> bool:
        return self._closed

    def toggle_fullscreen(self) -> None:
        self.fullscreen = not self.fullscreen
        mode = cv2.WINDOW_FULLSCREEN if self.fullscreen else cv2.WINDOW_NORMAL
        cv2.setWindowProperty(self.title, cv2.WND_PROP_FULLSCREEN, mode)

    def close(self) -> None:
        """Destroy the window; safe to call twice."""
        if not self._closed:
            self._closed = True
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)  # let the GUI thread process the destruction
            except cv2.error:
                pass
