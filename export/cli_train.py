"""``nst-train``: train one network for many styles, or add a style to a trained network."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from stylecast.realtime.cli.common import entry_point, make_parser

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
        "where it stopped, and --time-limit ends a run cleanly with one. Each sample of a batch\n"
        "draws its own style, so every step trains several styles. The learning rate warms up,\n"
        "then decays over the last part of the run; --final-size switches to larger crops late.\n"
        "bf16 autocast where the CPU (AVX512-BF16/AMX) or GPU runs it natively, else fp32.\n"
        "The first 50 steps predict how long the whole run takes (logged). Export a checkpoint\n"
        "with nst-export; a model folder exported so carries the network's PyTorch weights,\n"
        "so --from can start a new run or --add-style from it.",
        epilog=(
            "examples:\n"
            "  nst-train --content-dir photos/ --styles starry.jpg wave.jpg:2.0 --out runs/multi --vgg vgg19.pth\n"
            "  nst-train --out runs/multi --resume --steps 60000 --vgg vgg19.pth\n"
            "  nst-train --content-dir photos/ --styles a.jpg b.jpg --size 192 --final-size 256 --time-limit 2h15m --out runs/cpu --vgg vgg.safetensors\n"
            "  nst-train --add-style mine.jpg --name mine --from weights/default --content-dir photos/ --out runs/mine --vgg vgg19.pth\n\n"
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
    what.add_argument("--from", dest="base", type=Path, metavar="DIR",
                      help="a checkpoint or a model folder (e.g. the bundled weights/default): with --add-style the network "
                           "to extend; with --teacher the student to start from (e.g. weights/fast: its network and "
                           "its vectors for the teacher's styles); otherwise the network weights a new run starts from (warm start)")
    what.add_argument("--name", help="with --add-style: the new style's name (default: the file name)")
    what.add_argument("--evaluate", action="store_true",
                      help="train nothing: score the network of --from on its held-out photos (those its run recorded, "
                           "else --holdout N of --content-dir), one line per style of --styles; writes OUT/evaluation.json")
    what.add_argument("--overwrite", action="store_true", help="with --evaluate, replace an existing OUT/evaluation.json")
    how = p.add_argument_group("how")
    how.add_argument("--vgg", metavar="PATH", help="VGG weights for the losses (default: $NST_VGG)")
    how.add_argument("--steps", type=int, help=f"total steps (default {TRAIN_STEPS}; {ADD_STYLE_STEPS} with --add-style; with --resume, the run's own)")
    how.add_argument("--size", type=int, default=256, help="content crop size in px (default 256)")
    how.add_argument("--batch", type=int, default=8, help="crops per step (default 8)")
    how.add_argument("--style-size", type=int, default=512, help="longer side of the style images in px (default 512)")
    how.add_argument("--lr", type=float, default=None, help="peak Adam learning rate (default 1e-3; 1e-2 with --add-style)")
    how.add_argument("--warmup", type=int, default=200, metavar="N", help="steps of linear learning-rate warm-up from lr/10 (default 200)")
    how.add_argument("--decay-from", type=float, default=0.7, metavar="F",
                     help="cosine decay of the learning rate to 5%% of --lr, from this fraction of --steps on (default 0.7; 1 = none)")
    how.add_argument("--final-size", type=int, metavar="PX", help="crop size for the late steps, e.g. 256 after --size 192 (default: no change)")
    how.add_argument("--final-size-from", type=float, default=0.85, metavar="F", help="fraction of --steps after which --final-size is used (default 0.85)")
    how.add_argument("--focus", nargs="+", metavar="NAME:W", default=[],
                     help="draw style NAME W times as often as the others (e.g. the styles furthest from their "
                          "painting or teacher: --focus shower_ohashi:3 starry:2); NAME as in the model")
    how.add_argument("--tune-vectors", nargs="+", metavar="NAME", default=[],
                     help="with --teacher and --from: train only these styles' vectors; the network and every other "
                          "style stay exactly as they are (moves a style still far from its teacher without moving the others)")
    how.add_argument("--one-style-per-batch", action="store_true",
                     help="every sample of a step uses the same style (default: each sample draws its own style)")
    how.add_argument("--holdout", type=int, default=None, metavar="N",
                     help="content photos held back for evaluation, chosen by a hash of their names (default: as many "
                          "as the run of --from held out, which are the same photos; else 0); "
                          "with --evaluate, score N pictures of --content-dir chosen the same way instead of the "
                          "photos the run held out")
    how.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                     help="auto: bf16 autocast where the CPU or GPU runs it natively (losses stay fp32), else fp32 (default auto)")
    how.add_argument("--time-limit", metavar="DURATION",
                     help="stop cleanly with a checkpoint after this much wall time, e.g. 2h15m or 90m; continue with --resume")
    how.add_argument("--checkpoint-minutes", type=float, default=5.0, metavar="M",
                     help="also write a checkpoint after M minutes of wall time (default 5; 0 = by steps only)")
    how.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    how.add_argument("--content-weight", type=float, help="content loss weight (default: the recipe's)")
    how.add_argument("--style-weight", type=float, help="style loss weight (default: the recipe's)")
    how.add_argument("--tv-weight", type=float, help="total-variation weight (default: the recipe's)")
    how.add_argument("--levels", type=int, help="style pyramid levels (default: the recipe's)")
    how.add_argument("--stability", type=float, default=0.0, metavar="W", help="weight of the video stability term (Gupta et al. 2017); 0 = off (default)")
    how.add_argument("--checkpoint-every", type=int, default=500, metavar="N", help="steps between checkpoints (default 500)")
    how.add_argument("--preview-every", type=int, default=500, metavar="N", help="steps between preview images in OUT/previews (0 = never; default 500)")
    how.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    how.add_argument("--arch", default=None, help="network architecture: johnson or fast (default johnson; fast with --teacher)")
    how.add_argument("--arch-config", metavar="JSON", help='the architecture\'s settings, e.g. \'{"channels": 32, "residual_blocks": 3}\' for fast; '
                      'with --from, only those that keep the weights\' shapes: \'{"reflect": true}\' retrains a network with reflection padding')
    what.add_argument("--teacher", type=Path, metavar="MODEL_DIR",
                      help="distil: train a small student (--arch fast) to reproduce every style of this trained model "
                           "folder (pixel loss against the teacher's output; no VGG, so steps are cheap)")
    how.add_argument("--painting-weight", type=float, default=0.0, metavar="W",
                     help="with --teacher and --styles PAINTING... (each file named after the teacher's style it "
                          "is the painting of, e.g. shower_ohashi.jpg): add W x the Gram distance of the student's "
                          "output to that painting, for those styles; asks for the painting's texture where the "
                          "student cannot draw the teacher's. Needs --vgg or $NST_VGG (default 0: off)")
    how.add_argument("--texture-weight", type=float, default=0.0, metavar="W",
                     help="with --teacher: add W x a texture term, the Gram distance (VGG, as the style loss) of the "
                          "student's output to the teacher's; keeps brush strokes the pixel loss smooths away. "
                          "Needs --vgg or $NST_VGG (default 0: pixel loss only, no VGG)")
    return p


def _positive(name: str, value: int | float | None, minimum: float = 1) -> None:
    from stylecast.realtime.errors import UsageError

    if value is not None and value < minimum:
        raise UsageError(f"{name} must be at least {minimum:g}, got {value:g}")


def run(args: argparse.Namespace) -> int:
    from stylecast.realtime.errors import UsageError

    try:
        from .checkpoint import saved_info, saved_steps
        from .schedule import parse_duration
        from .train import StyleSpec, TrainSettings, add_style, parse_style_spec, train_styles
        from .train_settings import parse_focus
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
    if args.evaluate:
        return _evaluate(args)
    if adding and args.base is None and not args.resume:
        raise UsageError("--add-style needs --from CHECKPOINT (the trained network to extend)")
    if not adding and args.name is not None:
        raise UsageError("--name goes with --add-style")
    if args.resume and args.base is not None and not adding:
        raise UsageError("--from starts a new run; --resume continues the one in --out (omit --from)")
    _positive("--warmup", args.warmup, 0)
    if args.holdout is not None:
        _positive("--holdout", args.holdout, 0)
    _positive("--checkpoint-minutes", args.checkpoint_minutes, 0)
    if args.final_size is not None:
        _positive("--final-size", args.final_size, 16)
    for flag, value in (("--decay-from", args.decay_from), ("--final-size-from", args.final_size_from)):
        if not 0 <= value <= 1:
            raise UsageError(f"{flag} must be a fraction from 0 to 1, got {value:g}")
    time_limit = parse_duration(args.time_limit) if args.time_limit else None
    saved = saved_info(args.out) if args.resume else {}  # the run --resume continues (its record only)
    distilling = args.teacher is not None or saved.get("mode") == "distill"
    _positive("--painting-weight", args.painting_weight, 0)
    if distilling and adding:
        raise UsageError("--teacher takes its styles from the teacher: leave out --add-style")
    if distilling and args.resume and (args.styles or args.painting_weight):
        raise UsageError("--styles/--painting-weight: a resumed distillation keeps its own; "
                         f"to change them, start a new run with --from {args.out}")
    if args.painting_weight and not distilling:
        raise UsageError("--painting-weight goes with --teacher (and --styles, the paintings)")
    _positive("--texture-weight", args.texture_weight, 0)
    if args.tune_vectors and not distilling:
        raise UsageError("--tune-vectors goes with --teacher (and --from, the student to tune)")
    focus, tune_vectors = parse_focus(args.focus), list(dict.fromkeys(args.tune_vectors))
    kept = saved.get("settings") if isinstance(saved.get("settings"), dict) else {}
    for flag, given, key in (("--focus", focus, "focus"), ("--tune-vectors", tune_vectors, "tune_vectors")):
        if args.resume and given and given != kept.get(key):  # else silently the run's own
            raise UsageError(f"{flag}: a resumed run keeps its own ({kept.get(key) or 'none'}); "
                             f"to change it, start a new run with --from {args.out}")
    arch_config = _arch_config(args.arch_config)
    if adding and args.styles:
        raise UsageError("--styles and --add-style cannot be combined")
    settings = TrainSettings(
        steps=args.steps or saved_steps(saved) or (ADD_STYLE_STEPS if adding else TRAIN_STEPS),
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
        arch=args.arch or ("fast" if distilling else "johnson"),
        arch_config=arch_config,
        precision=args.precision,
        warmup=args.warmup,
        decay_from=args.decay_from,
        final_size=args.final_size,
        final_size_from=args.final_size_from,
        mixed_styles=not args.one_style_per_batch,
        focus=focus,
        tune_vectors=tune_vectors,
        holdout=args.holdout,
        checkpoint_minutes=args.checkpoint_minutes,
    )
    from stylecast.realtime.images import list_images, read_image

    # Fail on bad input before loading anything heavy.
    specs = [parse_style_spec(s) for s in args.styles]
    for spec in [*specs, *([parse_style_spec(args.add_style)] if adding else [])]:
        read_image(spec.path, min_side=16, what="style image")
    if args.content_dir is not None:
        list_images(args.content_dir)
    from .transformer import build_network

    build_network(settings.arch, settings.arch_config)  # a wrong --arch-config fails before anything loads
    progress = False if args.quiet else None
    vgg = None if distilling else load_vgg(resolve_vgg_path(args.vgg))
    if distilling:
        from .distill import distill

        if any(spec.weight != 1.0 for spec in specs):
            raise UsageError("--styles IMG:W: with --teacher, --painting-weight sets the weight of every painting")
        paintings = {spec.label: spec.path for spec in specs}
        if len(paintings) < len(specs):
            raise UsageError("--styles: two paintings for the same style")
        out = distill(args.teacher, args.content_dir, args.out, settings, vgg=args.vgg, texture_weight=args.texture_weight, device=args.device,
                      resume=args.resume, progress=progress, time_limit=time_limit, base=args.base,
                      paintings=paintings, painting_weight=args.painting_weight)
    elif adding:
        spec = parse_style_spec(args.add_style)
        if args.name:
            spec = StyleSpec(spec.path, spec.weight, args.name)
        out = add_style(args.base, spec, args.content_dir, args.out, vgg, settings, device=args.device, resume=args.resume,
                        progress=progress, time_limit=time_limit)
    else:
        out = train_styles(args.content_dir, specs, args.out, vgg, settings, device=args.device, resume=args.resume,
                           progress=progress, time_limit=time_limit, base=args.base)
    print(f"checkpoint written to {out}; export it with: nst-export {out} MODEL_DIR --fp16")
    return 0


def _arch_config(text: str | None) -> dict:
    import json

    from stylecast.realtime.errors import UsageError

    if not text:
        return {}
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--arch-config is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise UsageError("--arch-config must be a JSON object, e.g. '{\"channels\": 32}'")
    return config


def _evaluate(args: argparse.Namespace) -> int:
    from stylecast.realtime.atomic import check_output_path
    from stylecast.realtime.errors import UsageError

    from .checkpoint import load_network_source
    from .data import held_out
    from .evaluate import centre_crops, evaluate_styles, held_out_files, write_scores
    from .train import parse_style_spec
    from .vgg import load_vgg, resolve_vgg_path

    if args.base is None or args.content_dir is None or not args.styles:
        raise UsageError("--evaluate needs --from MODEL, --content-dir DIR and --styles (the paintings of the styles to score)")
    if args.add_style or args.resume:
        raise UsageError("--evaluate trains nothing: leave out --add-style and --resume")
    target = args.out / "evaluation.json"
    if args.out.is_dir():  # refuse before the slow part; a new folder is made at the end
        check_output_path(target, overwrite=args.overwrite)
    source = load_network_source(args.base)
    specs = [parse_style_spec(s) for s in args.styles]
    names = source.info.get("held_out_photos") or []
    if args.holdout:  # chosen here: other pictures than the run's (frames of videos, say)
        from stylecast.realtime.images import list_images

        files = sorted(held_out(list_images(args.content_dir), args.holdout))
    elif names:
        files = held_out_files(args.content_dir, names)
    else:
        raise UsageError("this network's run recorded no held-out photos: pass --holdout N to choose N of --content-dir")
    photos = centre_crops(files, args.size)
    scores = evaluate_styles(source, photos, specs, load_vgg(resolve_vgg_path(args.vgg)), style_size=args.style_size)
    args.out.mkdir(parents=True, exist_ok=True)
    path = write_scores(target, scores, [f.name for f in files], args.size, overwrite=args.overwrite)
    print(f"{'style':<20} {'content':>10} {'style':>10} {'out/in':>7} {'tv':>10}   ({len(files)} held-out photos, {args.size} px)")
    for s in scores:
        print(f"{s.name:<20} {s.content:>10.4g} {s.style:>10.4g} {s.style_ratio:>7.3f} {s.tv:>10.4g}")
    print(f"wrote {path}")
    return 0


main = entry_point(build_parser, run)
