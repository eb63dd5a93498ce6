"""The command-line options that nst-video, nst-live, nst-image and nst-bench share, written once.

    parser = make_parser("nst-video", "...")
    add_model_options(parser)          # --model --style --style-image --list-styles --mix --strength --device --max-side
    add_temporal_option(parser)        # --temporal
    ...
    def body(args):
        if list_styles(args):
            return 0
        with styling.engine_from_args(args) as engine:
            ...
    # or, for stills and videos, the engine with --strength and --keep-colours around it:
        with styling.stylizer_from_args(args, per_image=True) as (engine, stylizer):
            ...

Values argparse can check alone (a device name, a size) fail at parse time; the rest
(--strength, --mix, which options go together) raise UsageError in ``styling.check_model_args``
before any model is loaded; a command that opens something slow first (nst-live's camera)
calls it before that too. Turning the options into an engine and a Stylizer is ``styling.py``'s
job, outside this room, because nst-video's worker processes do it too.

A picture as the style: ``--style-image PATH`` runs the model's style-prediction network
(``style_images.py``) once on PATH and uses the vector it gives. It stands alone (not with
--style or --mix); to mix a picture's style with others, name it ``image:PATH`` in --mix:
``--mix starry=0.6 image:my_painting.jpg=0.4``. Pictures are predicted before the
stylisation session starts, so a missing or too small file costs no start-up time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import contract as C
from ..engine import load_model
from ..errors import UsageError
from ..providers import DEVICE_HELP, parse_device
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


def list_styles(args: argparse.Namespace) -> bool:
    """With --list-styles: print "INDEX<TAB>NAME" per style to stdout and return True (no session is built)."""
    if not args.list_styles:
        return False
    model = load_model(args.model)
    for i, name in enumerate(model.style_names):
        print(f"{i}\t{name}")
    return True
