"""Training the style predictor (``predictor.py``) on a corpus of paintings and textures.

Training (``train_predictor``) starts from a trained checkpoint. Its transformer either stays
frozen (the default: the named styles stay valid, bit-identical) or trains too (``joint``:
the named styles are then re-predicted from their images at every checkpoint). Each step
takes B content crops and B square style crops from the corpus, predicts one vector per
style crop, stylises content b with vector b, and minimises nst-train's perceptual loss
against style crop b's Gram targets. Images in the ``heldout`` folders are never trained on
(``predictor_corpus.select_corpus``); they are the evaluation set scored at every checkpoint.
Checkpoints and exact resume work as in ``train.py``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

from stylecast.realtime.errors import InputFileError, UsageError
from stylecast.realtime.images import read_image
from stylecast.realtime.model_folder import sha256_file
from stylecast.realtime.progress import Progress
from stylecast.realtime.style_images import predictor_input

from .checkpoint import load_checkpoint, save_checkpoint
from .data import ContentCrops
from .losses import PerceptualLoss, StyleTargets
from .predictor import DEFAULT_HIDDEN, DEFAULT_LEVELS, DEFAULT_SIDE, StylePredictor, load_predictor, predictor_tensors
from .predictor_corpus import select_corpus
from .provenance import environment
from .tensors import bgr_to_tensor, resolve_device, tensor_to_bgr
from .train_loop import check_out, descend, optimizer_state, restore_optimizer, step_generator
from .train_settings import TrainSettings
from .transformer import StyleNetwork
from .vgg import VGGFeatures

log = logging.getLogger("stylecast.predictor")

@dataclass(frozen=True)
class PredictorSettings:
    """Everything that shapes a predictor run; stored in each checkpoint and restored on resume."""

    steps: int = 20_000
    size: int = 256  # content crop side
    batch: int = 8  # content crops per step, each with its own style crop
    side: int = DEFAULT_SIDE  # style crop side (the corpus images' shorter side is scaled to it)
    lr: float = 1e-4
    seed: int = 0
    joint: bool = False  # also train the transformer's weights
    hidden: int = DEFAULT_HIDDEN
    levels: int = DEFAULT_LEVELS
    content_weight: float | None = None  # None: the recipe's
    style_weight: float | None = None
    tv_weight: float | None = None
    pyramid_levels: int | None = None
    checkpoint_every: int = 500
    preview_every: int = 500

    def recipe(self, vgg: VGGFeatures) -> tuple[Any, str]:
        """The loss recipe, chosen from the VGG as nst-train does, with this run's overrides."""
        return TrainSettings(content_weight=self.content_weight, style_weight=self.style_weight,
                             tv_weight=self.tv_weight, pyramid_levels=self.pyramid_levels).recipe(vgg)


class StyleCrops(ContentCrops):
    """Style images held in memory, each scaled so its shorter side is ``side`` (as the
    runtime scales them), served as random square crops of ``side`` px with random flips."""

    def __init__(self, files: Sequence[Path], side: int, device: torch.device | str = "cpu") -> None:
        self.size, self.images, self.files = side, [], []
        for f in files:
            try:
                img = predictor_input(read_image(f, what="style image"), side)
            except InputFileError as exc:
                log.warning("skipped %s", exc)
                continue
            self.images.append(torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1])).permute(2, 0, 1).to(device))
            self.files.append(f)
        if not self.images:
            raise InputFileError("no readable style images in the corpus")


class _HeldOut:
    """The held-out images and a fixed batch of content crops: the evaluation at each checkpoint."""

    def __init__(self, files: Sequence[Path], side: int, loss: PerceptualLoss, content: Tensor) -> None:
        self.names = [f.name for f in files]
        self.images = [bgr_to_tensor(predictor_input(read_image(f, what="held-out image"), side), content.device) for f in files]
        self.targets: list[StyleTargets] = [loss.style_targets(img) for img in self.images]
        self.loss, self.content = loss, content

    @torch.no_grad()
    def evaluate(self, predictor: StylePredictor, net: StyleNetwork) -> dict[str, float]:
        """Mean loss terms over the held-out images, each stylising the fixed content crops."""
        sums = {"content": 0.0, "style": 0.0, "total": 0.0}
        for img, targets in zip(self.images, self.targets, strict=True):
            vec = predictor(img)
            terms = self.loss(net(self.content, vec).float(), self.content, targets)
            for k in sums:
                sums[k] += float(terms[k]) / len(self.images)
        return sums


def _style_sources(info: dict[str, Any]) -> dict[str, str]:
    """name -> style image path, from a train or add-style checkpoint's record."""
    found: dict[str, str] = {}
    for record in (info.get("base_info") or {}, info):
        for s in record.get("styles") or []:
            if isinstance(s, dict) and "name" in s and "path" in s:
                found[str(s["name"])] = str(s["path"])
    return found


@dataclass
class _PredictorRun:
    net: StyleNetwork
    predictor: StylePredictor
    styles: Tensor  # the named styles [N, S] (re-predicted when joint)
    names: list[str]
    optimizer: torch.optim.Optimizer
    step: int
    info: dict[str, Any]
    settings: PredictorSettings


def _named_styles(run: _PredictorRun, side: int) -> Tensor:
    """Frozen network: the checkpoint's named styles. Joint: their images' predicted vectors."""
    if not run.settings.joint:
        return run.styles
    device = next(run.predictor.parameters()).device
    vectors = []
    with torch.no_grad():
        for name in run.names:
            img = predictor_input(read_image(Path(run.info["style_sources"][name]), what="style image"), side)
            vectors.append(run.predictor(bgr_to_tensor(img, device))[0].cpu())
    return torch.stack(vectors)


def _save(run: _PredictorRun, out: Path) -> None:
    run.info.update(step=run.step, predictor=run.predictor.config(), predictor_settings=asdict(run.settings))
    extra = {**predictor_tensors(run.predictor), **optimizer_state(run.optimizer)}
    save_checkpoint(out, run.net, _named_styles(run, run.settings.side), run.names, run.info, extra)


def _preview(run: _PredictorRun, held: _HeldOut, path: Path) -> None:
    """One row per held-out image (at most 6): the image, then the fixed content crops in its predicted style."""
    side = held.content.shape[-1]
    rows = []
    with torch.no_grad():
        for img in held.images[:6]:
            vec = run.predictor(img)
            thumb = cv2.resize(tensor_to_bgr(img), (side, side), interpolation=cv2.INTER_AREA)
            rows.append(np.concatenate([thumb] + [tensor_to_bgr(run.net(c[None], vec)) for c in held.content], axis=1))
    if rows:
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.concatenate(rows, axis=0))


def _evaluate(run: _PredictorRun, held: _HeldOut) -> None:
    if not held.images:
        return
    scores = held.evaluate(run.predictor, run.net)
    run.info.setdefault("heldout_eval", []).append({"step": run.step, **scores})
    log.info("step %d: held-out (%d images) style loss %.4g, content loss %.4g", run.step, len(held.images), scores["style"], scores["content"])


def _loop(run: _PredictorRun, *, out: Path, content: ContentCrops, styles: StyleCrops, loss: PerceptualLoss,
          held: _HeldOut, device: torch.device, progress: bool | None) -> Path:
    s = run.settings
    cuda = device.type == "cuda"
    autocast: Callable[[], Any] = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else contextlib.nullcontext
    run.predictor.train()
    run.net.train(s.joint)
    bar = Progress(s.steps, "training predictor", unit="step", enabled=progress)
    bar.n = run.step
    try:
        while run.step < s.steps:
            gen = step_generator(s.seed, run.step)
            x = content.batch(s.batch, gen).to(device, non_blocking=True)
            style = styles.batch(s.batch, gen).to(device, non_blocking=True)
            targets = loss.style_targets(style)  # one Gram set per sample: [B, C, C]
            with autocast():
                vectors = run.predictor(style)
                terms = loss(run.net(x, vectors).float(), x, targets)
            descend(run.optimizer, terms["total"], run.step)
            run.step += 1
            bar.update(1, **{k: float(v.detach()) for k, v in terms.items() if k != "total" and v.ndim == 0})
            if run.step % s.checkpoint_every == 0 or run.step == s.steps:
                run.predictor.eval()
                _evaluate(run, held)
                _save(run, out)
                run.predictor.train()
            if s.preview_every and (run.step % s.preview_every == 0 or run.step == s.steps):
                _preview(run, held, out / "previews" / f"step_{run.step:06d}.png")
    except KeyboardInterrupt:
        _save(run, out)
        log.warning("interrupted at step %d; checkpoint saved: continue with --resume", run.step)
        raise
    finally:
        bar.close()
    run.predictor.eval()
    run.net.eval()
    return out


def train_predictor(
    base: Path | None,
    corpus: Path | None,
    content_dir: Path | None,
    out: Path,
    vgg: VGGFeatures,
    settings: PredictorSettings,
    *,
    heldout: Sequence[Path] = (),
    device: str = "auto",
    resume: bool = False,
    progress: bool | None = None,
    corpus_limit: int | None = None,
) -> Path:
    """Train (or resume) a style predictor for the network of checkpoint ``base``; write the
    checkpoint (network, named styles, predictor) to ``out`` and return it.

    ``corpus``: a folder of style images (paintings, textures); ``heldout``: folders of images
    never to train on, scored at each checkpoint. On ``resume`` the saved settings, corpus,
    content and held-out folders are used; ``settings.steps`` may raise the target.
    """
    out = Path(out)
    dev = resolve_device(device)
    previous = check_out(out, resume, "predictor")
    if previous is not None:
        saved = previous.info
        settings = replace(PredictorSettings(**saved["predictor_settings"]), steps=settings.steps)
        corpus = corpus or Path(saved["corpus"]["folder"])
        content_dir = content_dir or Path(saved["content_dir"])
        heldout = heldout or [Path(p) for p in saved["heldout_dirs"]]
        source = previous
    else:
        if base is None:
            raise UsageError("--from CHECKPOINT is needed: the trained network the predictor serves")
        source = load_checkpoint(base)
    if corpus is None or content_dir is None:
        raise UsageError("--corpus (style images) and --content-dir (photos) are both needed")
    recipe, recipe_name = settings.recipe(vgg)
    log.info("loss recipe: %s (%s)", recipe_name, recipe.describe())
    loss = PerceptualLoss(vgg.to(dev), recipe)
    selection = select_corpus(Path(corpus), heldout, limit=corpus_limit)
    if previous is not None and selection.fingerprint() != previous.info["corpus"]["fingerprint"]:
        log.warning("the corpus differs from the checkpoint's (%d files now): the resumed run will not match an uninterrupted one", len(selection.files))
    styles = StyleCrops(selection.files, settings.side, dev)
    content = ContentCrops(content_dir, settings.size, dev)

    net = source.net.to(dev)
    net.requires_grad_(settings.joint)
    torch.manual_seed(settings.seed)
    predictor = load_predictor(previous) if previous is not None else None
    if predictor is None:
        predictor = StylePredictor(vgg, source.styles.mean(0), hidden=settings.hidden, levels=settings.levels, side=settings.side)
    predictor = predictor.to(dev)
    params = [p for p in predictor.parameters() if p.requires_grad] + (list(net.parameters()) if settings.joint else [])
    opt = torch.optim.Adam(params, lr=settings.lr)
    run = _PredictorRun(net, predictor, source.styles.clone(), list(source.style_names), opt, 0, {}, settings)
    if previous is not None:
        restore_optimizer(opt, previous.extra)
        run.step, run.info = previous.step, dict(previous.info)
        log.info("resuming at step %d of %d", run.step, settings.steps)
    else:
        run.info = {
            "mode": "predictor",
            "base_checkpoint": str(Path(base).resolve()),  # type: ignore[arg-type]
            "base_info": {k: source.info.get(k) for k in ("mode", "settings", "styles", "base_info", "recipe", "content_photos")},
            "style_sources": _style_sources(source.info),
            "content_dir": str(Path(content_dir).resolve()),
            "content_photos": len(content),
            "corpus": {"folder": str(Path(corpus).resolve()), "files": len(selection.files), "fingerprint": selection.fingerprint(),
                       "excluded": [[p.name, why] for p, why in selection.excluded]},
            "heldout_dirs": [str(Path(h).resolve()) for h in heldout],
            "heldout_files": [{"name": p.name, "sha256": sha256_file(p)} for p in selection.heldout],
            "recipe": f"{recipe_name}: {recipe.describe()}",
            "environment": environment(),
        }
    if settings.joint:
        missing = [n for n in run.names if not Path(run.info["style_sources"].get(n, "")).is_file()]
        if missing:
            raise UsageError(
                f"joint training re-predicts the named styles from their images, and the image of {', '.join(missing)} "
                "is not recorded or not found; train with the network frozen (no --joint)"
            )
    eval_content = content.batch(min(4, max(2, len(content))), torch.Generator().manual_seed(settings.seed + 11)).to(dev)
    held = _HeldOut(selection.heldout, settings.side, loss, eval_content)
    if previous is None:
        _evaluate(run, held)  # step 0: the untrained predictor gives the mean style, the baseline to beat
    return _loop(run, out=out, content=content, styles=styles, loss=loss, held=held, device=dev, progress=progress)
