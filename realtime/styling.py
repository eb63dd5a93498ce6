"""What runs around the network for stills and videos, composed into one Stylizer: what
--strength means for the style at hand, and --keep-colours.

  a named style, or a mix of them    a pixel fade: the engine blends its output with the
                                     original (``StyleEngine.strength``)
  a picture (--style-image PATH, image:PATH in a mix, a picture of --style-dir)
                                     a move in style space: the style vector goes from the
                                     content's own predicted style (strength 0) to the
                                     picture's (1), and the network renders that at full
                                     strength; a fade would only wash the painting out
  --keep-colours                     last: the result's light and shade with the input's colours

"The content's own style" is each photo's, or, for a video, its first frame's (a style vector
that followed every frame would flicker). Images under 64 px are scaled up for the predictor.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import contract as C
from .colors import KeepColors
from .engine import StyleEngine
from .stages import Stylizer
from .style_images import PredictorSession


@dataclass(frozen=True)
class PictureStyle:
    """A style taken from a picture (or a mix with pictures): its vector float32 [S] and a label."""

    vector: np.ndarray
    label: str


def own_style(predictor: PredictorSession, image: np.ndarray) -> np.ndarray:
    """The predicted style of the content itself, float32 [S]; BGR uint8 [H, W, 3] of any size
    (under 64 px a side it is scaled up first)."""
    h, w = image.shape[:2]
    if min(h, w) < C.PREDICTOR_MIN_SIDE:
        scale = C.PREDICTOR_MIN_SIDE / min(h, w)
        size = (max(C.PREDICTOR_MIN_SIDE, round(w * scale)), max(C.PREDICTOR_MIN_SIDE, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
    return predictor.predict(image)


class TowardsPicture:
    """A Stylizer for a picture style at ``strength`` in 0..1: the engine runs the vector
    ``(1 - strength) * own + strength * picture``, ``own`` being the content's predicted style
    (each image's with ``per_image``, else the first image's, kept). The engine's own pixel
    fade is set to 1."""

    def __init__(self, engine: StyleEngine, predictor: PredictorSession, picture: PictureStyle, strength: float,
                 *, per_image: bool = True) -> None:
        self.engine = engine
        self.predictor = predictor
        self.picture = picture
        self.strength = float(strength)
        self.per_image = per_image
        self._ready = False
        engine.strength = 1.0

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self.per_image or not self._ready:
            s = self.strength
            vec = (1.0 - s) * own_style(self.predictor, image).astype(np.float64) + s * self.picture.vector.astype(np.float64)
            self.engine.set_style_vector(vec.astype(np.float32), f"{self.picture.label} at {s:.0%} from the content's own style")
            self._ready = True
        return self.engine(image)


def stylizer_for(engine: StyleEngine, *, strength: float, keep_colors: bool = False, picture: PictureStyle | None = None,
                 predictor: PredictorSession | None = None, per_image: bool = True) -> Stylizer:
    """The engine with what the options ask around it (see the module notes).

    ``picture`` None: the engine's current style, faded by ``strength``. A ``picture``: its
    vector at full strength, or, under 1, a ``TowardsPicture`` (which needs ``predictor``).
    """
    stylizer: Stylizer = engine
    if picture is None:
        engine.strength = strength
    elif strength < 1.0:
        if predictor is None:
            raise ValueError("a picture style below full strength needs the style predictor")
        stylizer = TowardsPicture(engine, predictor, picture, strength, per_image=per_image)
    else:
        engine.strength = 1.0
        engine.set_style_vector(picture.vector, picture.label)
    return KeepColors(stylizer) if keep_colors else stylizer
