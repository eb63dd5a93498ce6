"""``nst-train``: train one network for many styles, or add a style to a trained network."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from stylecast.realtime.cli_common import entry_point, make_parser

log = logging.getLogger("stylecast.train")

TRAIN_STEPS, ADD_STYLE_STEPS = 40_000, 2_000


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(
        "nst-train",
        "Train a feed-forward style network (Johnson et al. 2016) whose instance norms are\n"
        "conditioned on a style vector (Dumoulin et al. 2017): one network, many styles, each\n"
        "style only a vector. Or, with --add-style, learn one more style for a trained network\n"
        "with every shared weight frozen (minutes on a GPU).\n\n"
        "The loss is content + style (Gram matrices) + total variation on VGG features. The\n"
        "recipe follows from the VGG weights given: the full Gatys layers with a full VGG-19,\n"
        "or the multi-scale recipe (relu1_1/2_1/3_1 Grams over an image pyramid, content at\n"
        "relu2_1) with a VGG that stops at relu3_1; the choice is logged.\n\n"
        "OUT is a checkpoint folder (checkpoint.safetensors + checkpoint.json, previews/):\n"
        "written every --checkpoint-every steps and on Ctrl-C; --resume continues exactly\n"
        "where it stopped. Export it with nst-export. On CUDA: bf16 autocast, channels_last;\n"
        "on the CPU: fp32 (slow: use it for small trials).",
        epilog=(
            "examples:\n"
            "  nst-train --content-dir photos/ --styles starry.jpg wave.jpg:2.0 --out runs/multi --vgg vgg19.pth\n"
            "  nst-train --out runs/multi --resume --steps 60000 --vgg vgg19.pth\n"
            "  nst-train --add-style mine.jpg --name mine --from runs/multi --content-dir photos/ --out runs/mine --vgg vgg19.pth\n\n"
            "VGG weights: --vgg PATH or the NST_VGG environment variable (torchvision's vgg19/vgg16\n"
            "state dict, or the normalised VGG-19 of AdaIN/WCT); --vgg download:vgg19 fetches\n"
            "torchvision's file once, only when you ask."
        ),
    )
    what = p.add_argument_group("what to train")
    what.add_argument("--content-dir", type=Path, metavar="DIR", help="folder of content photos (random crops are taken)")
    what.add_argument("--styles", nargs="+", metavar="IMG[:W]", default=[], help="style images; IMG:W multiplies that style's loss by W")
    what.add_argument("--out", type=Path, required=True, metavar="DIR", help="checkpoint folder to write (or resume)")
    what.add_argument("--resume", action="store_true", help="continue the run in --out (its saved settings are used; --steps may raise the target)")
    what.add_argument("--add-style", metavar="IMG[:W]", help="learn one new style for the network of --from, all shared weights frozen")
    what.add_argument("--from", dest="base", type=Path, metavar="CHECKPOINT", help="with --add-style: the trained checkpoint to extend")
    what.add_argument("--name", help="with --add-style: the new style's name (default: the file name)")
    how = p.add_argument_group("how")
    how.add_argument("--vgg", metavar="PATH", help="VGG weights for the losses (default: $NST_VGG)")
    how.add_argument("--steps", type=int, help=f"total steps (default {TRAIN_STEPS}; {ADD_STYLE_STEPS} with --add-style)")
    how.add_argument("--size", type=int, default=256, help="content crop size in px (default 256)")
    how.add_argument("--batch", type=int, default=8, help="crops per step (default 8)")
    how.add_argument("--style-size", type=int, default=512, help="longer side of the style images in px (default 512)")
    how.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3; 1e-2 with --add-style)")
    how.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    how.add_argument("--content-weight", type=float, help="content loss weight (default: the recipe's)")
    how.add_argument("--style-weight", type=float, help="style loss weight (default: the recipe's)")
    how.add_argument("--tv-weight", type=float, help="total-variation weight (default: the recipe's)")
    how.add_argument("--levels", type=int, help="style pyramid levels (default: the recipe's)")
    how.add_argument("--stability", type=float, default=0.0, metavar="W", help="weight of the video stability term (Gupta et al. 2017); 0 = off (default)")
    how.add_argument("--checkpoint-every", type=int, default=500, metavar="N", help="steps between checkpoints (default 500)")
    how.add_argument("--preview-every", type=int, default=500, metavar="N", help="steps between preview images in OUT/previews (0 = never; default 500)")
    how.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    how.add_argument("--arch", default="johnson", help="network architecture (default johnson)")
    return p


def _positive(name: str, value: int | float | None, minimum: float = 1) -> None:
    from stylecast.realtime.errors import UsageError

    if value is not None and value < minimum:
        raise UsageError(f"{name} must be at least {minimum:g}, got {value:g}")


def run(args: argparse.Namespace) -> int:
    from stylecast.realtime.errors import UsageError

    try:
        from .train import StyleSpec, TrainSettings, add_style, parse_style_spec, train_styles
        from .vgg import load_vgg, resolve_vgg_path
    except ImportError as exc:  # torch or safetensors missing
        from stylecast.realtime.errors import BackendUnavailableError

        raise BackendUnavailableError(f"nst-train needs PyTorch ({exc.name} is missing): pip install 'stylecast[train]'") from exc

    for name in ("steps", "size", "batch", "style_size", "checkpoint_every"):
        _positive(f"--{name.replace('_', '-')}", getattr(args, name))
    _positive("--size", args.size, 16)
    _positive("--levels", args.levels)
    _positive("--preview-every", args.preview_every, 0)
    _positive("--stability", args.stability, 0)
    if args.lr is not None and not args.lr > 0:
        raise UsageError(f"--lr must be positive, got {args.lr}")
    adding = args.add_style is not None
    if adding and args.base is None and not args.resume:
        raise UsageError("--add-style needs --from CHECKPOINT (the trained network to extend)")
    if not adding and (args.base is not None or args.name is not None):
        raise UsageError("--from and --name go with --add-style")
    if adding and args.styles:
        raise UsageError("--styles and --add-style cannot be combined")
    settings = TrainSettings(
        steps=args.steps or (ADD_STYLE_STEPS if adding else TRAIN_STEPS),
        size=args.size,
        batch=args.batch,
        style_size=args.style_size,
        lr=args.lr or (1e-2 if adding else 1e-3),
        seed=args.seed,
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        tv_weight=args.tv_weight,
        pyramid_levels=args.levels,
        stability=args.stability,
        checkpoint_every=args.checkpoint_every,
        preview_every=args.preview_every,
        arch=args.arch,
    )
    from stylecast.realtime.images import list_images, read_image

    # Fail on bad input before loading anything heavy.
    specs = [parse_style_spec(s) for s in args.styles]
    for spec in [*specs, *([parse_style_spec(args.add_style)] if adding else [])]:
        read_image(spec.path, min_side=16, what="style image")
    if args.content_dir is not None:
        list_images(args.content_dir)
    vgg = load_vgg(resolve_vgg_path(args.vgg))
    progress = False if args.quiet else None
    if adding:
        spec = parse_style_spec(args.add_style)
        if args.name:
            spec = StyleSpec(spec.path, spec.weight, args.name)
        out = add_style(args.base, spec, args.content_dir, args.out, vgg, settings, device=args.device, resume=args.resume, progress=progress)
    else:
        out = train_styles(args.content_dir, specs, args.out, vgg, settings, device=args.device, resume=args.resume, progress=progress)
    print(f"checkpoint written to {out}; export it with: nst-export {out} MODEL_DIR --fp16")
    return 0


main = entry_point(build_parser, run)
