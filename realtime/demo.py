"""Built-in pictures that need no camera and no file: a moving scene and a painted-looking pattern.

``demo_scene`` is the content of ``--source demo`` (nst-live) and ``demo:scene`` (nst-image);
``demo_style`` is a swirling brush-stroke pattern, ``demo:swirls``. Both are generated, so they
are free to show anywhere, and deterministic for a given time / seed.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

DEMO_IMAGES = ("demo:scene", "demo:swirls")

DEMO_CLIP = "demo:scene"
"""As the input of nst-video: the moving scene as a short clip with sound (``video.demo_clip``)."""

DEMO_SECONDS, DEMO_FPS, DEMO_SIZE = 3.0, 24, (640, 360)
"""The demo clip: long enough to see motion and the temporal blend, short enough for a 2-core
CPU to stylise in well under a minute."""


class DemoScene:
    """The moving scene at one size: a landscape with sky, sun, hills, a house and a tree; clouds
    drift and a ball bounces with time.

    The still parts are drawn once; each :meth:`frame` copies them and draws only the clouds and
    the ball (the clouds stay above the hills, the house and the tree at any size, so the order of
    drawing does not change a pixel). A live demo source draws 30 frames a second on the same
    cores as the network, so this matters."""

    def __init__(self, width: int = 640, height: int = 360) -> None:
        self.width, self.height = int(width), int(height)
        self._scale = min(self.width, self.height) / 360.0
        self._still = self._draw_still()

    def _draw_still(self) -> np.ndarray:
        w, h, s = self.width, self.height, self._scale
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        img = np.empty((h, w, 3), np.float32)
        v = yy / max(1, h - 1)
        img[..., 0] = 235 - 60 * v  # B
        img[..., 1] = 190 - 40 * v  # G
        img[..., 2] = 120 + 80 * v  # R: warmer towards the horizon
        cv2.circle(img, (int(0.78 * w), int(0.22 * h)), int(38 * s), (90, 220, 255), -1, cv2.LINE_AA)  # sun
        # two layers of hills
        for base, amp, freq, phase, color in ((0.62, 0.08, 2.1, 0.4, (60, 140, 70)), (0.75, 0.06, 3.3, 1.7, (40, 110, 50))):
            ridge = h * (base + amp * np.sin(xx[0] / w * freq * math.pi + phase))
            mask = yy >= ridge[None, :]
            shade = 1.0 - 0.25 * (yy - ridge[None, :]) / h
            for c in range(3):
                img[..., c] = np.where(mask, color[c] * shade, img[..., c])
        # a house and a tree
        hx, hy, hw = int(0.22 * w), int(0.70 * h), int(70 * s)
        cv2.rectangle(img, (hx, hy - hw), (hx + hw, hy), (70, 90, 200), -1)
        roof = np.array([[hx - 8 * s, hy - hw], [hx + hw / 2, hy - hw - 40 * s], [hx + hw + 8 * s, hy - hw]], np.int32)
        cv2.fillPoly(img, [roof], (40, 40, 120), cv2.LINE_AA)
        cv2.rectangle(img, (hx + int(hw * 0.4), hy - int(hw * 0.45)), (hx + int(hw * 0.62), hy), (30, 50, 90), -1)
        cv2.rectangle(img, (hx + int(hw * 0.1), hy - int(hw * 0.8)), (hx + int(hw * 0.3), hy - int(hw * 0.6)), (200, 230, 250), -1)
        tx, ty = int(0.62 * w), int(0.78 * h)
        cv2.rectangle(img, (tx - int(6 * s), ty - int(50 * s)), (tx + int(6 * s), ty), (30, 60, 90), -1)
        cv2.circle(img, (tx, ty - int(62 * s)), int(30 * s), (40, 120, 40), -1, cv2.LINE_AA)
        return img

    def frame(self, t: float = 0.0) -> np.ndarray:
        """The scene at time ``t`` (s): BGR uint8 [height, width, 3]."""
        w, h, s = self.width, self.height, self._scale
        img = self._still.copy()
        # drifting clouds (in the sky: their lowest point is above the highest hill, roof and tree)
        for i, (cx, cy, r) in enumerate(((0.15, 0.18, 26), (0.45, 0.12, 20), (0.62, 0.28, 30))):
            x = ((cx + 0.03 * t * (1 + 0.3 * i)) % 1.2 - 0.1) * w
            for dx, dy, k in ((-1.0, 0.2, 0.8), (0.0, 0.0, 1.0), (1.0, 0.25, 0.75)):
                cv2.circle(img, (int(x + dx * r * s), int(cy * h + dy * r * s)), int(k * r * s), (250, 250, 250), -1, cv2.LINE_AA)
        # a bouncing ball gives the temporal blend and the hotkeys something to show
        bx = (0.5 + 0.4 * math.sin(0.9 * t)) * w
        by = h * (0.88 - 0.25 * abs(math.sin(2.2 * t)))
        cv2.circle(img, (int(bx), int(by)), int(16 * s), (40, 40, 230), -1, cv2.LINE_AA)
        return np.clip(img, 0, 255, out=img).astype(np.uint8)


def demo_scene(width: int = 640, height: int = 360, t: float = 0.0) -> np.ndarray:
    """One frame of :class:`DemoScene` at time ``t`` (s): BGR uint8 [height, width, 3]. For many
    frames of one size, keep a ``DemoScene`` (this draws the still parts again each call)."""
    return DemoScene(width, height).frame(t)


def demo_style(size: int = 256, seed: int = 0) -> np.ndarray:
    """Thick short brush strokes following a swirling flow field, in night blues and yellows.

    Returns BGR uint8 [size, size, 3].
    """
    rng = np.random.default_rng(seed)
    n = int(size)
    img = np.zeros((n, n, 3), np.uint8)
    img[:] = (90, 40, 20)
    palette = np.array([(140, 60, 20), (200, 110, 40), (230, 170, 90), (60, 200, 240), (40, 150, 230), (250, 230, 200)], np.uint8)
    centres = rng.uniform(0, n, (4, 2))
    strokes = int(n * n / 18)
    pts = rng.uniform(0, n, (strokes, 2))
    for (x, y), c in zip(pts, rng.integers(0, len(palette), strokes), strict=False):
        # direction: sum of rotations around a few swirl centres
        d = np.zeros(2)
        for cx, cy in centres:
            dx, dy = x - cx, y - cy
            r2 = dx * dx + dy * dy + 200.0
            d += np.array([-dy, dx]) / r2
        d /= np.linalg.norm(d) + 1e-9
        length = rng.uniform(0.03, 0.07) * n
        p0 = (int(x - d[0] * length / 2), int(y - d[1] * length / 2))
        p1 = (int(x + d[0] * length / 2), int(y + d[1] * length / 2))
        color = tuple(int(v) for v in np.clip(palette[c].astype(int) + rng.integers(-20, 21, 3), 0, 255))
        cv2.line(img, p0, p1, color, max(2, n // 80), cv2.LINE_AA)
    return img


def demo_image(name: str, size: int = 512) -> np.ndarray:
    """``demo:scene`` (16:9, longer side ``size``) or ``demo:swirls`` (square)."""
    if name == "demo:scene":
        return demo_scene(size, max(16, round(size * 9 / 16)), t=1.0)
    if name == "demo:swirls":
        return demo_style(size)
    raise ValueError(f"unknown built-in image {name!r}; known: {', '.join(DEMO_IMAGES)}")
