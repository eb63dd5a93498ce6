"""``nst-bench peers``: our styles beside another project's trained networks, on the same frames.

For each pair ``OURS=THEIRS`` (a style of ``--model`` and a model folder of ``--peers``), frames
of real clips are stylised by both, shown side by side on one sheet (``--sheet``), and scored with
the style distance: the multi-scale Gram loss of the truncated VGG between the output and the
painting, divided by the same loss for the unstylised frame (1 = no closer to the painting than
the photo; lower = closer). Needs PyTorch and the VGG weights (for the score and the peer).

Peers are other people's work under their own terms: the sheet is for looking, not for shipping.
Supported: the lengstrom/fast-style-transfer models as dumped for deeplearn.js (``export/peers.py``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np

from ..atomic import atomic_file, check_output_path
from ..errors import UsageError
from .flicker import DEFAULT_CLIPS, find_clips, read_frames

log = logging.getLogger("stylecast.bench")

DEFAULT_PAIRS = ("wave=wave", "scream=scream", "shipwreck=wreck")
HELP = "our styles beside another project's trained networks on frames of real clips, with a style distance"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..cli.options import add_model_options

    add_model_options(parser)
    g = parser.add_argument_group("peer comparison")
    g.add_argument("--peers", type=Path, required=True, metavar="DIR", help="folder with one sub-folder per peer style (lengstrom ckpts)")
    g.add_argument("--pairs", nargs="+", default=list(DEFAULT_PAIRS), metavar="OURS=THEIRS",
                   help=f"our style = the peer's folder name (default: {' '.join(DEFAULT_PAIRS)})")
    g.add_argument("--paintings", type=Path, required=True, metavar="DIR", help="folder with OURS.jpg for each pair (the style distance's target)")
    g.add_argument("--clips", type=Path, default=DEFAULT_CLIPS, metavar="PATH", help=f"a folder of clips or one clip (default: {DEFAULT_CLIPS})")
    g.add_argument("--frame-side", type=int, default=480, metavar="PX", help="longer side of the frames compared (default 480)")
    g.add_argument("--vgg", metavar="PATH", help="VGG weights for the style distance (default: $NST_VGG)")
    g.add_argument("--sheet", type=Path, metavar="PNG", help="write the side-by-side picture here")
    g.add_argument("--overwrite", action="store_true", help="replace an existing --sheet")


def _pairs(texts: list[str]) -> list[tuple[str, str]]:
    out = []
    for t in texts:
        ours, sep, theirs = t.partition("=")
        if not sep or not ours or not theirs:
            raise UsageError(f"--pairs: expected OURS=THEIRS, got {t!r}")
        out.append((ours, theirs))
    return out


def _label(image: np.ndarray, text: str) -> np.ndarray:
    image = image.copy()
    for color, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(image, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, color, width, cv2.LINE_AA)
    return image


def run(args: argparse.Namespace) -> int:
    from ..styling import engine_from_args

    try:
        import torch

        from stylecast.export.data import load_style_image
        from stylecast.export.losses import PerceptualLoss
        from stylecast.export.peers import EngstromNet
        from stylecast.export.tensors import bgr_to_tensor, tensor_to_bgr
        from stylecast.export.train import TrainSettings
        from stylecast.export.vgg import load_vgg, resolve_vgg_path
    except ImportError as exc:
        from ..errors import BackendUnavailableError

        raise BackendUnavailableError(f"nst-bench peers needs PyTorch ({exc.name} is missing): pip install 'stylecast[train]'") from exc

    pairs = _pairs(args.pairs)
    clips = find_clips(args.clips)
    if args.sheet is not None:
        check_output_path(args.sheet, overwrite=args.overwrite)
    for ours, theirs in pairs:
        for need in (args.peers / theirs / "manifest.json", args.paintings / f"{ours}.jpg"):
            if not need.is_file():
                raise UsageError(f"--pairs {ours}={theirs}: {need} does not exist")
    vgg = load_vgg(resolve_vgg_path(args.vgg))
    loss = PerceptualLoss(vgg, TrainSettings().recipe(vgg)[0])
    frames = []
    for clip in clips:  # one frame a third of the way into each clip
        all_frames = list(read_frames(clip, 90, args.frame_side))
        frames.append((clip.stem, all_frames[len(all_frames) // 3]))

    def distance(image: np.ndarray, targets: dict) -> float:
        return float(loss.style_distance(loss.style_targets(bgr_to_tensor(image)), targets)[0])

    rows = [[_label(f, name) for name, f in frames]]
    print(f"{'style':<12} {'ours':>8} {'peer':>8}   (style distance, output / input; lower = closer to the painting)")
    with engine_from_args(args) as engine:
        for ours, theirs in pairs:
            targets = loss.style_targets(load_style_image(args.paintings / f"{ours}.jpg", 512))
            peer = EngstromNet(args.peers / theirs).eval()
            engine.set_style(ours)
            ours_row, peer_row, d_ours, d_peer = [], [], [], []
            for _, f in frames:
                mine = np.ascontiguousarray(engine(f)).copy()
                with torch.no_grad():
                    theirs_img = tensor_to_bgr(peer(bgr_to_tensor(f)))
                base = distance(f, targets)
                d_ours.append(distance(mine, targets) / base)
                d_peer.append(distance(theirs_img, targets) / base)
                ours_row.append(_label(mine, f"ours: {ours}"))
                peer_row.append(_label(theirs_img, f"peer: {theirs}"))
            rows += [ours_row, peer_row]
            print(f"{ours:<12} {np.mean(d_ours):>8.3f} {np.mean(d_peer):>8.3f}")
    if args.sheet is not None:
        height = min(f.shape[0] for f in rows[0])
        lines = [np.concatenate([cv2.resize(im, (round(im.shape[1] * height / im.shape[0]), height)) for im in row], 1) for row in rows]
        width = min(line.shape[1] for line in lines)
        with atomic_file(args.sheet, overwrite=args.overwrite) as tmp:
            ok, buf = cv2.imencode(".png", np.concatenate([line[:, :width] for line in lines], 0))
            tmp.write_bytes(buf.tobytes())
        log.info("wrote %s", args.sheet)
    return 0
