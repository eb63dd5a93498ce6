"""The command-line options that nst-video, nst-live, nst-image and nst-bench share, written once.

    parser = make_parser("nst-video", "...")
    add_model_options(parser)          # --model --style --style-image --list-styles --mix --strength --device --max-side
    add_temporal_option(parser)        # --temporal
    ...
    def body(args):
        if list_styles(args):
            return 0
        with engine_from_args(args) as engine:
            ...
    # or, for stills and videos, the engine with --strength and --keep-colours around it:
        with stylizer_from_args(args, per_image=True) as (engine, stylizer):
            ...

Values argparse can check alone (a device name, a size) fail at parse time; the rest
(--strength, --mix, which options go together) raise UsageError with the messages below, in
``check_model_args``, before any model is loaded; a command that opens something slow first
(nst-live's camera) calls it before that too.

A picture as the style: ``--style-image PATH`` runs the model's style-prediction network
(``style_images.py``) once on PATH and uses the vector it gives. It stands alone (not with
--style or --mix); to mix a picture's style with others, name it ``image:PATH`` in --mix:
``--mix starry=0.6 image:my_painting.jpg=0.4``. Pictures are predicted before the
stylisation session starts, so a missing or too small file costs no start-up time.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from .. import contract as C
from ..engine import StyleEngine, load_model
from ..errors import UsageError
from ..model_folder import ModelFolder
from ..providers import DEVICE_HELP, parse_device
from ..stages import Stylizer
from ..style_images import PredictorSession
from ..styles import image_keys, mix_label, mix_vectors, parse_mix
from ..styling import PictureStyle, stylizer_for
from .common import number_between, whole_number


def _device(text: str) -> str:
    try:
        return str(parse_device(text))
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_model_dir_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--model DIR."""
    parser.add_argument(
        "--model", type=Path, metavar="DIR", default=None,
        help="model folder made by nst-export (default: the bundled model)",
    )


def add_device_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--device and --max-side: where and at what resolution the network runs."""
    parser.add_argument("--device", type=_device, default="auto", metavar="DEVICE", help=f"{DEVICE_HELP} (default: auto)")
    parser.add_argument(
        "--max-side", type=whole_number(C.MIN_SIDE, " of pixels"), default=None, metavar="N",
        help="run the network with the longer side at most N px and scale the result back to the "
        "exact input size (faster, coarser brush strokes; default: full resolution)",
    )


def _strength_help(own_style: str | None) -> str:
    fade = "a fade from the original pixels (0) to the full style (1)"
    if own_style is None:
        return f"how much style, 0..1 (default: 1): {fade}, whatever the style"
    return (f"how much style, 0..1 (default: 1). A named style or a mix of them: {fade}. A picture (--style-image, "
            f"image: in --mix): a move in style space from {own_style} own predicted style (0) to the picture's (1), "
            "each rendered in full")


def add_model_options(parser: argparse.ArgumentParser, *, own_style: str | None = None) -> None:
    """--model, --style, --list-styles, --mix, --strength, --device, --max-side, as one group.

    ``own_style`` ("the photo's", "the first frame's"): the command takes --strength for a
    picture style in style space from that content's own predicted style (``stylizer_from_args``),
    and its help says so; None: --strength is the pixel fade for every style."""
    group = parser.add_argument_group("model and style")
    add_model_dir_option(group)
    group.add_argument("--style", metavar="NAME|INDEX", default=None, help="style by name or 0-based index (default: the model's first)")
    group.add_argument("--list-styles", action="store_true", help="print the model's styles with their index and exit")
    group.add_argument(
        "--style-image", metavar="PATH", default=None,
        help="take the style from a picture (a painting, a texture; at least 64 px a side): the model's "
        "style-prediction network turns it into a style vector once, in well under a second",
    )
    group.add_argument(
        "--mix", nargs="+", metavar="NAME=W", default=None,
        help="interpolate styles, e.g. --mix starry=0.7 wave=0.3 (weights >= 0, normalised to sum 1); "
        "image:PATH=W mixes in the predicted style of a picture",
    )
    group.add_argument("--strength", type=float, default=1.0, metavar="X", help=_strength_help(own_style))
    add_device_options(group)


def add_keep_colors_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--keep-colours (also spelt --keep-colors)."""
    parser.add_argument(
        "--keep-colours", "--keep-colors", dest="keep_colors", action="store_true",
        help="keep the original colours: the style's light, shade and texture in the input's own colours "
        "(in nst-live key c turns it on and off)",
    )


def add_temporal_option(parser: argparse.ArgumentParser) -> None:
    """--temporal X: the flicker-reducing blend of stylecast.realtime.temporal (0 turns it off)."""
    from ..temporal import (
        DEFAULT_TEMPORAL,  # imported here: only video commands need the blender
    )

    parser.add_argument(
        "--temporal", type=number_between(0.0, 1.0), default=DEFAULT_TEMPORAL, metavar="X",
        help="temporal blend against flicker, 0..1: how much of the previous output, warped along the "
        f"motion, is kept (0 = off; default: {DEFAULT_TEMPORAL})",
    )


def check_model_args(args: argparse.Namespace) -> dict[str, float] | None:
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


def engine_from_args(args: argparse.Namespace, model: ModelFolder | None = None, *,
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


def is_picture_style(args: argparse.Namespace, mix: dict[str, float] | None) -> bool:
    """Whether the options take the style from a picture: --style-image, or image: in --mix."""
    return getattr(args, "style_image", None) is not None or bool(image_keys(mix or {}))


@contextlib.contextmanager
def stylizer_from_args(args: argparse.Namespace, *, per_image: bool) -> Iterator[tuple[StyleEngine, Stylizer]]:
    """``engine_from_args``, and the Stylizer that runs it with --strength and --keep-colours
    (``styling.stylizer_for``): for a picture style below full strength, a move in style space
    from the content's own predicted style, each image's (``per_image``) or the first one's."""
    with stylizers_from_args(args, per_image=per_image) as (engine, make):
        yield engine, make()


@contextlib.contextmanager
def stylizers_from_args(args: argparse.Namespace, *,
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


def list_styles(args: argparse.Namespace) -> bool:
    """With --list-styles: print "INDEX<TAB>NAME" per style to stdout and return True (no session is built)."""
    if not args.list_styles:
        return False
    model = load_model(args.model)
    for i, name in enumerate(model.style_names):
        print(f"{i}\t{name}")
    return True
