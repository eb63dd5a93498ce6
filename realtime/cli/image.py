"""``nst-image``: stylise one image.

STYLE is an image file: the classic Gatys et al. optimisation (PyTorch, imported only then).
STYLE is the name of a style in an exported model, or ``--style-image PAINTING`` replaces
STYLE (``nst-image IN OUT --style-image PAINTING``): the exported network in ONNX Runtime, no
PyTorch. ``nst-image PHOTO --sheet SHEET``: the photo in every style, on one contact sheet
(sheet.py). This module must not import torch at import time.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..atomic import check_output_path
from ..colors import keep_colors
from ..contract import MIN_SIDE, PREDICTOR_GRAPH
from ..demo import DEMO_IMAGES, demo_image
from ..engine import StyleEngine, load_model
from ..errors import BackendUnavailableError, InputFileError, ModelFolderError, PartialFailureError, UsageError
from ..images import IMAGE_SUFFIXES, Picture, list_images, read_picture, write_image
from ..progress import Progress
from ..sheet import DEFAULT_TILE, compare_sheet, style_sheet
from ..stills import check_stills, stylize_stills, transparency_lost, write_result
from ..style_images import NO_PREDICTOR, PredictorSession
from ..styling import check_model_args, engine_from_args, stylizer_from_args
from .common import entry_point, make_parser, whole_number
from .options import add_keep_colors_option, add_model_options, list_styles

if TYPE_CHECKING:  # for annotations only: importing it at run time would import torch
    from stylecast.export.losses import LossRecipe

log = logging.getLogger("stylecast.image")

DESCRIPTION = """\
Stylise one image: CONTENT painted in the style of STYLE, written to OUT.

With STYLE the name (or index) of a style of a model folder (--model; default the bundled
model), the exported network runs in ONNX Runtime: instant, no PyTorch needed. CONTENT may
then be a folder of images, and OUT a folder. --list-styles shows the names.

With --style-image PAINTING in place of STYLE (nst-image CONTENT OUT --style-image PAINTING),
the model's style-prediction network turns PAINTING into a style vector (once, well under a
second) and the network runs with it: any picture as a style, instant, no PyTorch, no
training. The model folder must have the prediction network (nst-train-predictor).

With STYLE an image file this runs the classic method of Gatys, Ecker & Bethge (2016):
the output picture itself is optimised (L-BFGS by default) until its VGG-19 features
match the content image and its feature correlations (Gram matrices) match the style
image. It needs PyTorch and VGG weights (--vgg or NST_VGG), and no training.

The loss recipe follows from the VGG weights loaded:
  full VGG (torchvision's vgg19/vgg16 file, or the full normalised VGG-19):
      content relu4_2, style Grams on relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.
  truncated VGG (stops before relu4_2/relu5_1, e.g. a normalised VGG-19 to conv3_1):
      style Grams on relu1_1, relu2_1, relu3_1 taken on the image at full, half and
      quarter size (so the shallow layers still see large brush strokes), content relu2_1.
      Expect more texture-like, less structural results than with the full network.

It is slow: each step is one VGG forward and backward pass. On a CPU, 300 steps at
512 px take roughly 5-15 minutes with a truncated VGG and several times that with the
full VGG-19 (time grows with the pixel count); a GPU takes seconds to a minute.
Try --size 256 --steps 100 for a quick look.
The output has the working size (longer side --size, aspect kept).

Which style? --sheet SHEET (nst-image PHOTO --sheet SHEET.png) renders PHOTO in every style
of the model as one labelled contact sheet, the original first; with --style-dir DIR also in
the style of each picture in DIR (a model with a style predictor). With --compare DIR [DIR ...]
it puts models side by side instead: one row per model (--model first), the same style in
the same column; --sheet-styles picks which styles (default: every style all of them have).

Photos as they come: a phone's portrait photo (EXIF orientation) is stylised upright, at the
size it is seen. A transparent PNG, WebP or TIFF keeps its alpha channel: the colour is
stylised on neutral grey (pixels hidden under the transparency do not leak in) and written
back with the input's alpha where OUT's format holds one (.png .webp .tif), else a warning
says the transparent parts are grey. 16-bit and grey images are read too; the output has
8 bits per channel. In a folder, a file that cannot be read is named, skipped, and the
exit code is 4 when the rest are done. --keep-colours keeps the photo's own colours."""

EPILOG = """\
examples:
  nst-image photo.jpg starry out.jpg                 # a style of the model: instant, no PyTorch
  nst-image photos/ wave styled/ --max-side 1024      # a folder in, a folder out
  nst-image photo.jpg mix out.jpg --mix starry=0.7 wave=0.3
  nst-image photo.jpg out.jpg --style-image my_painting.jpg     # any picture, instant (prediction network)
  nst-image photo.jpg mix out.jpg --mix starry=0.5 image:my_painting.jpg=0.5
  nst-image photo.jpg out.jpg --style-image painting.jpg --strength 0.5   # halfway from the photo's own style
  nst-image photo.jpg --sheet sheet.jpg --max-side 1024                   # every style, to choose from
  nst-image photo.jpg --sheet sheet.jpg --style-dir paintings/ --model DIR # and each of your paintings
  nst-image photo.jpg --sheet cmp.jpg --compare weights/fast --sheet-styles starry wave  # default vs fast
  nst-image logo.png wave logo_wave.png --keep-colours                    # transparency and colours kept
  nst-image demo:scene demo:swirls out.png --size 256 --steps 100 --vgg VGG_FILE   # Gatys, built-in pictures
  nst-image photo.jpg starry.jpg out.png --vgg ~/models/vgg19-dcbb9e9d.pth
  NST_VGG=vgg19_normalised_to_conv3_1.safetensors nst-image photo.jpg wave.jpg out.jpg --size 256
  nst-image photo.jpg starry.jpg out.png --vgg download:vgg19   # downloads torchvision's file once

VGG weights: torchvision's https://download.pytorch.org/models/vgg19-dcbb9e9d.pth,
or the normalised VGG-19 of AdaIN/WCT (.pth or .safetensors)."""

NEEDS_TORCH = "the Gatys method needs PyTorch: pip install 'stylecast[train]'"


def make_image_parser() -> argparse.ArgumentParser:
    p = make_parser("nst-image", DESCRIPTION, EPILOG)
    p.usage = ("%(prog)s [options] CONTENT STYLE OUT\n       %(prog)s [options] CONTENT OUT --style-image PAINTING\n"
               "       %(prog)s [options] PHOTO --sheet SHEET [--style-dir DIR]")
    p.add_argument("content", metavar="CONTENT", help="the photo to stylise (any image OpenCV reads), or demo:scene "
                   "(built in); with a style NAME also a folder of images")
    p.add_argument("style_arg", metavar="STYLE", nargs="?", help="a style image (a painting) or demo:swirls (built in): the Gatys "
                   "method; or the NAME or index of a style of the model (--model): the exported network, instant")
    p.add_argument("out", metavar="OUT", nargs="?", help=f"output image ({', '.join(IMAGE_SUFFIXES)}), or a folder when CONTENT "
                   "is one")
    p.add_argument("--vgg", metavar="PATH", help="VGG weights (.pth/.safetensors), or download:vgg19 / download:vgg16; "
                   "default: $NST_VGG")
    p.add_argument("--size", type=int, default=512, help="longer side of the output in px (default 512)")
    p.add_argument("--steps", type=int, default=300, help="loss evaluations (default 300)")
    p.add_argument("--init", choices=("content", "noise"), default="content",
                   help="start from the content image (default) or from seeded noise")
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs", help="default lbfgs")
    p.add_argument("--style-weight", type=float, metavar="X", help="override the recipe's style weight")
    p.add_argument("--content-weight", type=float, metavar="X", help="override the recipe's content weight")
    p.add_argument("--tv-weight", type=float, metavar="X", help="override the total-variation weight")
    p.add_argument("--levels", type=int, metavar="N", help="style pyramid levels (1 = none; level k is the image / 2^k)")
    p.add_argument("--style-layers", metavar="LIST", help="override style taps, e.g. relu1_1:1,relu2_1:0.5")
    p.add_argument("--content-layers", metavar="LIST", help="override content taps, e.g. relu2_1")
    p.add_argument("--seed", type=int, default=0, help="seed for --init noise (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_keep_colors_option(p)
    add_model_options(p, own_style="the photo's")  # used with a style NAME; --device also picks the Gatys device
    sheet = p.add_argument_group("contact sheet (which style?)")
    sheet.add_argument("--sheet", metavar="SHEET", default=None,
                       help="write CONTENT in every style of the model, labelled, the original first, to the image SHEET")
    sheet.add_argument("--style-dir", type=Path, metavar="DIR", default=None,
                       help="with --sheet: also a tile for each picture in DIR, its predicted style (a model with a style predictor)")
    sheet.add_argument("--compare", type=Path, nargs="+", metavar="DIR", default=None,
                       help="with --sheet: other model folders, one row each under --model's, the same style in each column")
    sheet.add_argument("--sheet-styles", nargs="+", metavar="NAME", default=None,
                       help="with --sheet --compare: the styles to show (default: every style all the models have)")
    sheet.add_argument("--tile", type=whole_number(64, " of pixels"), default=DEFAULT_TILE, metavar="PX",
                       help=f"with --sheet: longer side of each tile (default {DEFAULT_TILE})")
    return p


def _read_input(arg: str, what: str, min_side: int = MIN_SIDE) -> Picture:
    """An image file, or a built-in picture (demo:scene, demo:swirls) that needs no file."""
    if arg in DEMO_IMAGES:
        return Picture(demo_image(arg))
    return read_picture(Path(arg), min_side=min_side, what=what)


def _body(args: argparse.Namespace) -> int:
    if args.sheet is not None:
        return _run_compare(args) if args.compare else _run_sheet(args)
    if args.compare or args.sheet_styles:
        raise UsageError("--compare and --sheet-styles go with --sheet (nst-image PHOTO --sheet SHEET --compare DIR)")
    if args.style_dir is not None:
        raise UsageError("--style-dir goes with --sheet (nst-image PHOTO --sheet SHEET --style-dir DIR)")
    if args.style_arg is None:
        raise UsageError("STYLE and OUT are missing: nst-image CONTENT STYLE OUT, nst-image CONTENT OUT --style-image "
                         "PAINTING, or nst-image PHOTO --sheet SHEET")
    if args.out is None:  # two positionals: CONTENT OUT, the style given by --style-image
        if args.style_image is None:
            raise UsageError("OUT is missing: nst-image CONTENT STYLE OUT, or nst-image CONTENT OUT --style-image PAINTING")
        args.out, args.style_arg = args.style_arg, None
        return _run_network(args)
    if args.style_image is not None and not (args.mix and args.style_arg == "mix"):  # with --mix: the shared message
        raise UsageError(f"STYLE ({args.style_arg}) and --style-image both give the style; "
                         "write nst-image CONTENT OUT --style-image PAINTING")
    style = Path(args.style_arg)
    if args.style_arg in DEMO_IMAGES or style.is_file():
        if args.style is not None or args.mix:
            raise UsageError("--style/--mix go with a style NAME, not with a style image")
        return _run_gatys(args)
    if style.is_dir():
        raise InputFileError(f"{style}: is a folder; STYLE must be a style image or a style name "
                             "(for every picture of a folder, see --sheet with --style-dir)")
    if list_styles(args):
        return 0
    return _run_network(args)


def _run_network(args: argparse.Namespace) -> int:
    """STYLE names a style of the exported model: run it with ONNX Runtime (no PyTorch needed)."""
    if args.mix and args.style_arg != "mix":
        raise UsageError("with --mix, write mix as STYLE: nst-image IN mix OUT --mix starry=0.5 wave=0.5")
    if args.style is not None:
        raise UsageError("STYLE already names the style; --style is for nst-video and nst-live")
    args.style = None if args.mix or args.style_arg is None else args.style_arg
    out = Path(args.out)
    if args.content in DEMO_IMAGES:
        check_output_path(out, overwrite=args.overwrite)
        image = demo_image(args.content)
        with stylizer_from_args(args, per_image=True) as (engine, stylizer):
            write_image(out, stylizer(image), overwrite=args.overwrite)
        log.info("wrote %s", out)
        return 0
    check_stills(Path(args.content), out, overwrite=args.overwrite)  # before the session start-up
    with stylizer_from_args(args, per_image=True) as (engine, stylizer):
        written = stylize_stills(stylizer, Path(args.content), out, overwrite=args.overwrite)  # PartialFailureError: exit 4
        log.info("wrote %d image(s) with style %s on %s", len(written), engine.style_label, engine.provider)
    return 0


def _import_torch_side() -> tuple[ModuleType, ModuleType, ModuleType]:
    """(gatys, losses, vgg) modules; BackendUnavailableError when PyTorch is missing."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailableError(NEEDS_TORCH) from exc
    from stylecast.export import gatys, losses, vgg

    return gatys, losses, vgg


def _recipe_with_overrides(recipe: LossRecipe, args: argparse.Namespace, losses: ModuleType) -> LossRecipe:
    changes: dict[str, object] = {}
    for flag, field in (("style_weight", "style_weight"), ("content_weight", "content_weight"),
                        ("tv_weight", "tv_weight"), ("levels", "pyramid_levels")):
        if getattr(args, flag) is not None:
            changes[field] = getattr(args, flag)
    if args.style_layers is not None:
        changes["style_layers"] = losses.parse_layer_weights(args.style_layers)
    if args.content_layers is not None:
        changes["content_layers"] = losses.parse_layer_weights(args.content_layers)
    return recipe.replace(**changes) if changes else recipe


def _run_gatys(args: argparse.Namespace) -> int:
    content_path, style_path, out = Path(args.content), Path(args.style_arg), Path(args.out)
    if args.size < MIN_SIDE:
        raise UsageError(f"--size must be at least {MIN_SIDE}, not {args.size}")
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, not {args.steps}")
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise UsageError(f"{out}: unsupported image extension {out.suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    # Every check that can fail happens before the optimisation, which can take minutes.
    check_output_path(out, overwrite=args.overwrite, inputs=(content_path, style_path))
    content = _read_input(args.content, "content image")
    style = _read_input(args.style_arg, "style image").bgr
    gatys, losses, vgg_mod = _import_torch_side()
    from stylecast.export.tensors import resolve_device

    device = resolve_device(args.device)
    vgg = vgg_mod.load_vgg(vgg_mod.resolve_vgg_path(args.vgg))
    recipe, name = losses.choose_recipe(vgg.taps)
    if name == losses.RECIPE_NAMES["multiscale"]:
        why = f"the VGG weights stop at {vgg.taps[-1]}; the full recipe needs relu4_2 and relu5_1"
    else:
        why = "the VGG weights reach relu5_1"
    recipe = _recipe_with_overrides(recipe, args, losses)
    losses.PerceptualLoss(vgg, recipe)  # checks overridden taps exist, before any work
    log.info("using the %s recipe (%s): %s", name, why, recipe.describe())
    log.info("optimising %s at %d px on %s: %d %s steps", content_path.name, args.size, device, args.steps, args.optimizer)

    weights = {"content": recipe.content_weight, "style": recipe.style_weight, "tv": recipe.tv_weight}
    with Progress(args.steps, "gatys", unit="step", enabled=False if args.quiet else None) as bar:

        def on_progress(done: int, total: int, terms: dict[str, float]) -> None:
            shown = {k: terms[k] * w for k, w in weights.items()}  # weighted: they add up to loss
            bar.update(max(0, done - bar.n), loss=terms["total"], **shown)

        result = gatys.stylize_gatys(
            content.bgr, style, vgg, recipe, size=args.size, steps=args.steps, init=args.init,
            optimizer=args.optimizer, device=device, seed=args.seed, progress=on_progress,
        )
    if args.keep_colors:
        result = keep_colors(cv2.resize(content.bgr, (result.shape[1], result.shape[0]), interpolation=cv2.INTER_AREA), result)
    if write_result(out, result, content, overwrite=args.overwrite, inputs=(content_path, style_path)):
        log.warning("%s", transparency_lost([out]))
    log.info("wrote %s (%dx%d)", out, result.shape[1], result.shape[0])
    return 0


def _predict_pictures(predictor: PredictorSession, files: list[Path]) -> tuple[list[tuple[str, np.ndarray]], list[tuple[Path, str]]]:
    """(file name, style vector) of each picture, and (file, why) of each that cannot be used
    (unreadable, under 64 px), which is also logged."""
    pictures, failed = [], []
    for f in files:
        try:
            pictures.append((f.name, predictor.predict_file(f)))
        except InputFileError as exc:
            log.warning("warning: %s; skipped", exc)
            failed.append((f, str(exc)))
    return pictures, failed


def _check_sheet_args(args: argparse.Namespace) -> tuple[Path, tuple[Path, ...]]:
    """The checks every --sheet run makes before any work; returns (SHEET, the inputs it must not overwrite)."""
    if args.style_arg is not None:
        raise UsageError("--sheet shows every style of the model: give only the photo (nst-image PHOTO --sheet SHEET)")
    if args.style is not None or args.mix or args.style_image is not None:
        raise UsageError("--sheet shows every style; --style, --mix and --style-image pick one (leave them out)")
    sheet, content = Path(args.sheet), Path(args.content)
    if content.is_dir():
        raise InputFileError(f"{content}: is a folder; --sheet takes one photo")
    if sheet.suffix.lower() not in IMAGE_SUFFIXES:
        raise UsageError(f"{sheet}: unsupported image extension {sheet.suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    check_model_args(args)
    inputs = () if args.content in DEMO_IMAGES else (content,)
    check_output_path(sheet, overwrite=args.overwrite, inputs=inputs)
    return sheet, inputs


def _run_compare(args: argparse.Namespace) -> int:
    """--sheet --compare: CONTENT in the same styles of several models, one row per model."""
    if args.style_dir is not None:
        raise UsageError("--style-dir and --compare do not go together (one sheet shows pictures, the other models)")
    sheet, inputs = _check_sheet_args(args)
    models = [load_model(args.model), *(load_model(d) for d in args.compare)]
    common = [n for n in models[0].style_names if all(n in m.style_names for m in models[1:])]
    styles = args.sheet_styles or common
    for m in models:
        missing = [n for n in styles if n not in m.style_names]
        if missing:
            raise UsageError(f"{m.path}: no style named {missing[0]!r}; this model has: {', '.join(m.style_names)}")
    if not styles:
        raise UsageError("the models have no style name in common: name some with --sheet-styles")
    labels = [m.path.name for m in models]
    if len(set(labels)) < len(labels):  # two folders of one name: tell them apart by their parents
        labels = [f"{m.path.parent.name}/{m.path.name}" for m in models]
    photo = _read_input(args.content, "photo", min_side=1)
    with contextlib.ExitStack() as stack:
        engines = [(label, stack.enter_context(StyleEngine(m, device=args.device, max_side=args.max_side)))
                   for label, m in zip(labels, models, strict=True)]
        image = compare_sheet(engines, photo.bgr, styles, strength=args.strength, keep_colors=args.keep_colors,
                              tile_side=args.tile, progress=False if args.quiet else None)
    write_image(sheet, image, overwrite=args.overwrite, inputs=inputs)
    log.info("wrote %s: %s in %d styles of %s", sheet, Path(args.content).name, len(styles), ", ".join(labels))
    return 0


def _run_sheet(args: argparse.Namespace) -> int:
    """--sheet: CONTENT in every style of the model (and of each picture of --style-dir), labelled."""
    if args.sheet_styles:
        raise UsageError("--sheet-styles goes with --compare; a sheet of one model shows every style")
    sheet, inputs = _check_sheet_args(args)
    content = Path(args.content)
    photo = _read_input(args.content, "photo", min_side=1)
    files = list_images(args.style_dir) if args.style_dir is not None else []
    model = load_model(args.model)
    if files and model.predictor is None:
        raise ModelFolderError(f"--style-dir: {model.path}: " + NO_PREDICTOR.format(graph=PREDICTOR_GRAPH))
    with contextlib.ExitStack() as stack:
        predictor = stack.enter_context(PredictorSession(model)) if files else None
        pictures, failed = _predict_pictures(predictor, files) if predictor is not None else ([], [])
        if files and not pictures:
            raise InputFileError(f"{args.style_dir}: none of the {len(files)} pictures could be used (each is named above)")
        engine = stack.enter_context(engine_from_args(args, model, predictor=predictor))
        image = style_sheet(engine, photo.bgr, strength=args.strength, keep_colors=args.keep_colors, pictures=pictures,
                            predictor=predictor, tile_side=args.tile, progress=False if args.quiet else None)
    write_image(sheet, image, overwrite=args.overwrite, inputs=inputs)
    log.info("wrote %s: %s in %d styles of %s%s", sheet, content.name, len(model.style_names), model.path.name,
             f" and {len(pictures)} pictures of {args.style_dir}" if pictures else "")
    if failed:
        raise PartialFailureError(f"{len(failed)} of {len(failed) + len(pictures)} pictures of {args.style_dir} could not be "
                                  f"used and are not on the sheet ({', '.join(p.name for p, _ in failed)})",
                                  done=[sheet], failed=failed)
    return 0


main = entry_point(make_image_parser, _body)
