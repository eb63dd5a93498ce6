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

The commands' model and style options become an engine and a Stylizer here too
(``engine_from_args``, ``stylizer_from_args``, ``stylizers_from_args``): the commands call
them, and so do nst-video's worker processes, which get the options as ``video.jobs.StyleOptions``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from . import contract as C
from .colors import KeepColors
from .engine import StyleEngine, load_model
from .errors import UsageError
from .model_folder import ModelFolder
from .providers import parse_device
from .stages import Stylizer
from .style_images import PredictorSession
from .styles import image_keys, mix_label, mix_vectors, parse_mix


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


# ---------------------------------------------------------------- the style options -> an engine and a Stylizer
# ``args`` below: the model and style options of ``cli/options.py`` by their ``dest`` names
# (model, style, style_image, mix, strength, device, max_side, keep_colors, threads): an
# argparse namespace, or ``video.jobs.StyleOptions.namespace()`` in a worker process.


def check_model_args(args: Any) -> dict[str, float] | None:
    """Check the model and style options that need no model folder: --strength in 0..1, --mix
    items, --style with --mix, --style-image with --style or --mix, the --device name. Returns
    the parsed --mix (None without one). Raises UsageError; commands call it before they open
    anything (a camera, a video), so a typo costs nothing."""
    if not 0.0 <= args.strength <= 1.0:  # also false for NaN
        raise UsageError(f"--strength must be between 0 and 1, got {args.strength:g}")
    mix = parse_mix(args.mix) if args.mix else None
    if mix and args.style is not None:
        raise UsageError("--style and --mix cannot be used together (one style is --mix NAME=1)")
    if getattr(args, "style_image", None) is not None and (mix or args.style is not None):
        raise UsageError("--style-image is a style on its own; to mix a picture with other styles write --mix image:PATH=W NAME=W")
    parse_device(args.device)
    return mix


def engine_from_args(args: Any, model: ModelFolder | None = None, *,
                     predictor: PredictorSession | None = None) -> StyleEngine:
    """Open the engine the options describe and apply --style, --style-image or --mix and --strength.

    Every option is checked against the model folder before a session is built, so a typo
    costs no start-up time and prints nothing but its error. ``model``: the folder --model
    names, when the caller has loaded it already (it is not loaded twice); ``predictor``: an
    open style-prediction session of it, to predict pictures with (else one is opened for that).
    """
    mix = check_model_args(args)
    style_image = getattr(args, "style_image", None)
    model = model if model is not None else load_model(args.model)
    pictures = image_keys(mix or {})
    for key in [*(k for k in mix or {} if k not in pictures), *([args.style] if args.style is not None else [])]:
        model.style_index(key)
    vector = _predicted_style(model, style_image, mix or {}, predictor) if style_image is not None or pictures else None
    engine = StyleEngine(model, device=args.device, max_side=args.max_side, threads=getattr(args, "threads", None))
    try:
        if vector is not None:
            engine.set_style_vector(vector, _picture_label(model, style_image, mix or {}))
        elif mix:
            engine.set_mix(mix)
        elif args.style is not None:
            engine.set_style(args.style)
        engine.strength = args.strength
    except BaseException:
        engine.close()
        raise
    return engine


def _predicted_style(model: ModelFolder, style_image: str | None, mix: dict[str, float],
                     predictor: PredictorSession | None = None) -> np.ndarray:
    """The vector of --style-image, or of a --mix with image:PATH keys (float32 [S])."""
    if predictor is None:
        with PredictorSession(model) as session:
            return _predicted_style(model, style_image, mix, session)
    if style_image is not None:
        return predictor.predict_file(style_image)
    pictures = {key: predictor.predict_file(path) for key, path in image_keys(mix).items()}
    return mix_vectors(model, mix, pictures)


def is_picture_style(args: Any, mix: dict[str, float] | None) -> bool:
    """Whether the options take the style from a picture: --style-image, or image: in --mix."""
    return getattr(args, "style_image", None) is not None or bool(image_keys(mix or {}))


@contextlib.contextmanager
def stylizer_from_args(args: Any, *, per_image: bool) -> Iterator[tuple[StyleEngine, Stylizer]]:
    """``engine_from_args``, and the Stylizer that runs it with --strength and --keep-colours
    (``styling.stylizer_for``): for a picture style below full strength, a move in style space
    from the content's own predicted style, each image's (``per_image``) or the first one's."""
    with stylizers_from_args(args, per_image=per_image) as (engine, make):
        yield engine, make()


@contextlib.contextmanager
def stylizers_from_args(args: Any, *,
                        per_image: bool) -> Iterator[tuple[StyleEngine, Callable[[], Stylizer]]]:
    """As ``stylizer_from_args``, with a factory in place of the Stylizer: one engine (one
    session) for many videos, and a fresh Stylizer for each, so a picture style below full
    strength starts from that video's own first frame. A new Stylizer resets the engine's
    style and strength to the options', so it does not depend on what ran before."""
    mix = check_model_args(args)
    model = load_model(args.model)
    picture = is_picture_style(args, mix)
    # Kept open for the content's own style; ModelFolderError when the model has no predictor.
    predictor = PredictorSession(model) if picture and args.strength < 1.0 else None
    with contextlib.ExitStack() as stack:
        if predictor is not None:
            stack.callback(predictor.close)
        engine = stack.enter_context(engine_from_args(args, model, predictor=predictor))
        style = PictureStyle(engine.style_vector, engine.style_label) if picture else None
        vector, label = engine.style_vector, engine.style_label

        def make() -> Stylizer:
            engine.set_style_vector(vector, label)
            return stylizer_for(engine, strength=args.strength, keep_colors=getattr(args, "keep_colors", False),
                                picture=style, predictor=predictor, per_image=per_image)

        yield engine, make


def _picture_label(model: ModelFolder, style_image: str | None, mix: dict[str, float]) -> str:
    """What the HUD and logs call a predicted style: the picture's file name, or the mix's label."""
    return Path(style_image).name if style_image is not None else mix_label(model, mix)
