"""``nst-style add IMAGE --name NAME``: keep a picture's predicted style as a named style of a model folder.

Prediction needs only ONNX Runtime. ``--refine`` fine-tunes the vector with nst-train's
add-style (every network weight frozen, only the new vector learns, starting from the
prediction), which needs PyTorch, the model's training checkpoint, photos and VGG weights.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import contract as C
from ..atomic import check_output_path
from ..engine import load_model
from ..errors import BackendUnavailableError, UsageError
from ..images import read_image
from ..model_folder import ModelFolder
from ..style_images import PredictorSession, check_style_name, save_style
from .common import entry_point, make_parser
from .options import add_model_dir_option

if TYPE_CHECKING:  # annotations only: importing it would import torch
    from stylecast.export.checkpoint import Checkpoint

log = logging.getLogger("stylecast.style")

DEFAULT_REFINE_STEPS = 500

DESCRIPTION = """\
Add a style to a model folder from a picture: the model's style-prediction network turns
IMAGE into a style vector, which is saved under NAME, so that --style NAME works in
nst-image, nst-video and nst-live from then on.

The folder written is a copy of the model folder (--model; default the bundled model) with
the style appended: styles.npz and manifest.json are rewritten with new hashes and the
folder is swapped in whole, so nothing ever sees it half-written. --out DIR writes the copy
there (for the bundled model, which is read-only, --out is required); without --out the
--model folder itself is updated.

--refine then fine-tunes the predicted vector as nst-train --add-style does (all network
weights frozen, only the new vector learns), starting from the prediction rather than the
average style, so a few hundred steps are enough. It needs PyTorch, the training checkpoint
the model was exported from (--checkpoint), a folder of photos (--content-dir) and VGG
weights (--vgg or NST_VGG); minutes on a GPU, much longer on a CPU."""

EPILOG = """\
examples:
  nst-style add my_painting.jpg --name mine --model models/main
  nst-style add my_painting.jpg --name mine --out models/my_styles         # a copy of the bundled model
  nst-video in.mp4 out.mp4 --model models/main --style mine
  nst-style add wave.jpg --name wave2 --model models/main --refine --checkpoint runs/main \\
      --content-dir photos/ --vgg vgg19.pth --steps 300"""


def make_style_parser() -> argparse.ArgumentParser:
    p = make_parser("nst-style", DESCRIPTION, EPILOG)
    p.add_argument("action", choices=["add"], help="add: save IMAGE's predicted style as NAME")
    p.add_argument("image", metavar="IMAGE", help="the picture whose style to keep (at least 64 px a side)")
    p.add_argument("--name", required=True, help="the new style's name (letters, digits, _ - .)")
    add_model_dir_option(p)
    p.add_argument("--out", type=Path, metavar="DIR", default=None,
                   help="model folder to write (default: update --model in place)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists (and is not --model)")
    refine = p.add_argument_group("--refine (PyTorch)")
    refine.add_argument("--refine", action="store_true", help="fine-tune the predicted vector with nst-train's add-style")
    refine.add_argument("--checkpoint", type=Path, metavar="DIR", help="the training checkpoint the model was exported from")
    refine.add_argument("--content-dir", type=Path, metavar="DIR", help="folder of content photos")
    refine.add_argument("--vgg", metavar="PATH", help="VGG weights (default: $NST_VGG)")
    refine.add_argument("--steps", type=int, default=DEFAULT_REFINE_STEPS, help=f"fine-tuning steps (default {DEFAULT_REFINE_STEPS})")
    refine.add_argument("--size", type=int, default=256, help="content crop size in px (default 256)")
    refine.add_argument("--batch", type=int, default=4, help="crops per step (default 4)")
    refine.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate (default 1e-2)")
    refine.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    return p


def _check_checkpoint_matches(checkpoint: Checkpoint, model: ModelFolder) -> None:
    """The checkpoint must be the one ``model`` was exported from: same S, and the styles they
    share by name have the same vectors."""
    ck_styles = checkpoint.styles.numpy()
    names = checkpoint.style_names
    shared = [n for n in names if n in model.style_names]
    same = ck_styles.shape[1] == model.style_dim and shared and all(
        np.array_equal(ck_styles[names.index(n)], model.style_vectors[model.style_names.index(n)]) for n in shared
    )
    if not same:
        raise UsageError(f"{checkpoint.folder}: not the checkpoint {model.path} was exported from "
                         "(its style vectors differ); --refine needs the model's own training checkpoint")


def _refine(args: argparse.Namespace, model: ModelFolder, vector: np.ndarray) -> np.ndarray:
    """Fine-tune ``vector`` with export.train.add_style; returns the learned vector float32 [S]."""
    try:
        import torch

        from stylecast.export.checkpoint import load_checkpoint
        from stylecast.export.train import StyleSpec, TrainSettings, add_style
        from stylecast.export.vgg import load_vgg, resolve_vgg_path
    except ImportError as exc:
        raise BackendUnavailableError(f"--refine needs PyTorch ({exc.name} is missing): pip install 'stylecast[train]'") from exc
    checkpoint = load_checkpoint(args.checkpoint)
    _check_checkpoint_matches(checkpoint, model)
    vgg = load_vgg(resolve_vgg_path(args.vgg))
    settings = TrainSettings(steps=args.steps, size=args.size, batch=args.batch, lr=args.lr,
                             checkpoint_every=args.steps, preview_every=0)
    with tempfile.TemporaryDirectory(prefix="nst-style-") as tmp:
        out = add_style(args.checkpoint, StyleSpec(Path(args.image), 1.0, args.name), args.content_dir, Path(tmp) / "ckpt", vgg,
                        settings, device=args.device, progress=False if args.quiet else None,
                        init_vector=torch.from_numpy(np.array(vector, dtype=np.float32)))
        return load_checkpoint(out).styles[-1].numpy().astype(np.float32)


def _body(args: argparse.Namespace) -> int:
    if args.refine and (args.checkpoint is None or args.content_dir is None):
        raise UsageError("--refine needs --checkpoint DIR (the model's training checkpoint) and --content-dir DIR (photos)")
    if not args.refine and (args.checkpoint is not None or args.content_dir is not None):
        raise UsageError("--checkpoint and --content-dir go with --refine")
    for flag in ("steps", "size", "batch"):
        if getattr(args, flag) < (16 if flag == "size" else 1):
            raise UsageError(f"--{flag} must be at least {16 if flag == 'size' else 1}, got {getattr(args, flag)}")
    if args.model is None and args.out is None:
        raise UsageError("the bundled model is read-only: pass --out DIR for your copy (or --model DIR to update a folder of yours)")
    model = load_model(args.model)
    out = args.out if args.out is not None else model.path
    check_style_name(model, args.name)
    if out.resolve() != model.path.resolve():
        check_output_path(out, overwrite=args.overwrite, inputs=[model.path], is_dir=True)
    read_image(args.image, min_side=C.PREDICTOR_MIN_SIDE, what="style image")  # a clear error before any session
    with PredictorSession(model) as predictor:
        vector = predictor.predict_file(args.image)
    note = {"image": Path(args.image).name, "method": "predicted"}
    if args.refine:
        vector = _refine(args, model, vector)
        note.update(method="predicted, then refined", refine_steps=args.steps)
    saved = save_style(model, args.name, vector, out, overwrite=args.overwrite, note=note)
    print(f"added style {args.name!r} to {saved.path} ({len(saved.style_names)} styles); use it with --model {saved.path} --style {args.name}")
    return 0


main = entry_point(make_style_parser, _body)
