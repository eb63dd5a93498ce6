"""``nst-train-predictor``: train the style-prediction network for a trained style network."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from stylecast.realtime.cli.common import entry_point, make_parser

log = logging.getLogger("stylecast.predictor")

PREDICTOR_STEPS = 20_000


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(
        "nst-train-predictor",
        "Train a style-prediction network (Ghiasi et al. 2017) for a network trained with\n"
        "nst-train: it turns any picture into a style vector in one pass, so an unseen painting\n"
        "becomes a style in well under a second, with no training (--style-image, nst-style add).\n\n"
        "The predictor summarises the picture by the means and standard deviations of VGG\n"
        "features (relu1_1, relu2_1, relu3_1) over an image pyramid and maps them to a style\n"
        "vector with a small MLP (as MetaNet, Shen et al. 2018). Each step stylises content\n"
        "crops with the vectors predicted for style crops of the --corpus and minimises\n"
        "nst-train's perceptual loss against those crops' Gram matrices.\n\n"
        "By default the network of --from stays frozen, so its named styles stay valid; with\n"
        "--joint it trains too, and its named styles are re-predicted from their images.\n"
        "Images in the --heldout folders are never trained on: corpus files that match one by\n"
        "content hash, name or look are dropped (and listed), and the held-out images are the\n"
        "evaluation set scored at every checkpoint.\n\n"
        "OUT is a checkpoint folder (network, named styles and predictor), written every\n"
        "--checkpoint-every steps and on Ctrl-C; --resume continues exactly where it stopped.\n"
        "nst-export OUT MODEL_DIR writes the model folder with the predictor graph in it.",
        epilog=(
            "example:\n"
            "  nst-train-predictor --from runs/multi --corpus data/style_corpus --heldout data/styles \\\n"
            "      --content-dir photos/ --out runs/predictor --vgg vgg19_normalised_to_conv3_1.safetensors\n"
            "  nst-train-predictor --out runs/predictor --resume --steps 40000 --vgg VGG_FILE\n"
            "  nst-export runs/predictor models/main --fp16"
        ),
    )
    what = p.add_argument_group("what to train")
    what.add_argument("--from", dest="base", type=Path, metavar="CHECKPOINT", help="the trained network (nst-train's checkpoint)")
    what.add_argument("--corpus", type=Path, metavar="DIR", help="folder of style images (paintings, textures) to learn from")
    what.add_argument("--heldout", type=Path, nargs="+", default=[], metavar="DIR",
                      help="folders of images never to train on; scored at each checkpoint")
    what.add_argument("--content-dir", type=Path, metavar="DIR", help="folder of content photos (random crops are taken)")
    what.add_argument("--out", type=Path, required=True, metavar="DIR", help="checkpoint folder to write (or resume)")
    what.add_argument("--resume", action="store_true", help="continue the run in --out with its saved settings (--steps may raise the target)")
    what.add_argument("--joint", action="store_true", help="train the network's weights too (its named styles are then re-predicted)")
    how = p.add_argument_group("how")
    how.add_argument("--vgg", metavar="PATH", help="VGG weights for the losses and the predictor (default: $NST_VGG)")
    how.add_argument("--steps", type=int, help=f"total steps (default {PREDICTOR_STEPS}; with --resume, the run's own)")
    how.add_argument("--size", type=int, default=256, help="content crop size in px (default 256)")
    how.add_argument("--side", type=int, default=256, help="style crop size in px; pictures are scaled to this shorter side (default 256)")
    how.add_argument("--batch", type=int, default=8, help="content/style crop pairs per step (default 8)")
    how.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default 1e-4)")
    how.add_argument("--hidden", type=int, default=512, help="width of the predictor's hidden layers (default 512)")
    how.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    how.add_argument("--content-weight", type=float, help="content loss weight (default: the recipe's)")
    how.add_argument("--style-weight", type=float, help="style loss weight (default: the recipe's)")
    how.add_argument("--tv-weight", type=float, help="total-variation weight (default: the recipe's)")
    how.add_argument("--checkpoint-every", type=int, default=500, metavar="N", help="steps between checkpoints (default 500)")
    how.add_argument("--preview-every", type=int, default=500, metavar="N", help="steps between previews in OUT/previews (0 = never)")
    how.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    return p


def run(args: argparse.Namespace) -> int:
    from stylecast.realtime.errors import BackendUnavailableError, UsageError

    try:
        from .checkpoint import saved_info, saved_steps
        from .predictor_train import PredictorSettings, train_predictor
        from .vgg import load_vgg, resolve_vgg_path
    except ImportError as exc:
        raise BackendUnavailableError(f"nst-train-predictor needs PyTorch ({exc.name} is missing): pip install 'stylecast[train]'") from exc
    if args.steps is None:
        args.steps = (args.resume and saved_steps(saved_info(args.out), "predictor_settings")) or PREDICTOR_STEPS
    for flag, minimum in (("steps", 1), ("size", 16), ("side", 64), ("batch", 1), ("hidden", 1), ("checkpoint_every", 1), ("preview_every", 0)):
        value = getattr(args, flag)
        if value < minimum:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least {minimum}, got {value}")
    if not args.lr > 0:
        raise UsageError(f"--lr must be positive, got {args.lr}")
    if not args.resume and args.base is None:
        raise UsageError("--from CHECKPOINT is needed: the trained network the predictor serves")
    settings = PredictorSettings(
        steps=args.steps, size=args.size, batch=args.batch, side=args.side, lr=args.lr, seed=args.seed, joint=args.joint,
        hidden=args.hidden, content_weight=args.content_weight, style_weight=args.style_weight, tv_weight=args.tv_weight,
        checkpoint_every=args.checkpoint_every, preview_every=args.preview_every,
    )
    from stylecast.realtime.images import list_images

    # Fail on bad input before loading anything heavy.
    for folder in [f for f in (args.corpus, args.content_dir) if f is not None] + list(args.heldout):
        list_images(folder)
    vgg = load_vgg(resolve_vgg_path(args.vgg))
    out = train_predictor(args.base, args.corpus, args.content_dir, args.out, vgg, settings, heldout=args.heldout,
                          device=args.device, resume=args.resume, progress=False if args.quiet else None)
    print(f"checkpoint written to {out}; export it with: nst-export {out} MODEL_DIR --fp16")
    return 0


main = entry_point(build_parser, run)
