"""The style-prediction network: any picture -> a style vector for a trained transformer.

Ghiasi et al. 2017 ("Exploring the structure of a real-time, arbitrary neural artistic
stylization network") predict the conditional-instance-norm vector of a style network from
the style image with an ImageNet Inception trunk. Here the trunk is the truncated VGG the
losses already use, summarised as in MetaNet (Shen et al. 2018) and AdaIN (Huang & Belongie
2017) by per-channel means and standard deviations, over the same image pyramid as the
multi-scale loss, then a small MLP:

    x  RGB [B, 3, H, W] in [0, 1], H, W >= 64
    for level k < L and tap t in (relu1_1, relu2_1, relu3_1):
        F = VGG_t(avgpool_{2^k}(x))                     [B, C_t, h, w]
        mean over h, w; standard deviation over h, w    [B, C_t] each
    log1p of all of them, concatenated                  [B, D]   D = 2 L (64 + 128 + 256)
    LayerNorm -> Linear(D, n) -> ReLU -> Linear(n, n) -> ReLU -> Linear(n, S)
    + base                                              [B, S]

``base`` is the mean of the trained network's style vectors, and the last layer starts at
zero: an untrained predictor already gives a valid (average) style. The predictor carries
its own copy of the VGG up to relu3_1, so an exported predictor graph needs nothing else.

Training (``train_predictor``) starts from a trained checkpoint. Its transformer either stays
frozen (the default: the named styles stay valid, bit-identical) or trains too (``joint``:
the named styles are then re-predicted from their images at every checkpoint). Each step
takes B content crops and B square style crops from a corpus of paintings and textures,
predicts one vector per style crop, stylises content b with vector b, and minimises
nst-train's perceptual loss against style crop b's Gram targets. Images in the ``heldout``
folders are never trained on (``select_corpus`` drops every corpus file that matches one by
content hash, name or look); they are the evaluation set scored at every checkpoint.
Checkpoints and exact resume work as in ``train.py``; the predictor's tensors are stored
among the checkpoint's ``extra`` tensors, so the checkpoint is still a normal one for
nst-export, which exports the predictor beside the network.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from stylecast.realtime import contract as C
from stylecast.realtime.errors import CheckpointError, InputFileError, UsageError
from stylecast.realtime.images import list_images, read_image
from stylecast.realtime.progress import Progress
from stylecast.realtime.style_images import predictor_input
from torch import Tensor, nn

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .data import ContentCrops
from .losses import PerceptualLoss, StyleTargets
from .provenance import environment
from .tensors import bgr_to_tensor, resolve_device, tensor_to_bgr
from .train import (
    TrainSettings,
    _check_out,
    _optimizer_state,
    _restore_optimizer,
    _step_generator,
)
from .transformer import StyleNetwork
from .vgg import VGGFeatures

log = logging.getLogger("stylecast.predictor")

PREDICTOR_TAPS = ("relu1_1", "relu2_1", "relu3_1")
DEFAULT_SIDE = 256
"""Shorter side (px) of the style images the predictor learns from; the runtime scales to it."""
DEFAULT_HIDDEN = 512
DEFAULT_LEVELS = 3
PREDICTOR_PREFIX = "predictor."
"""Prefix of the predictor's tensors among a checkpoint's ``extra`` tensors."""


def truncate_vgg(vgg: VGGFeatures, last_tap: str = PREDICTOR_TAPS[-1]) -> VGGFeatures:
    """A new frozen VGG with the weights of ``vgg`` up to ``last_tap`` (a full VGG-19 is
    80 MB; the part the predictor needs is about 2 MB)."""
    if last_tap not in vgg.taps:
        raise UsageError(f"the style predictor needs VGG tap {last_tap}; the VGG weights have {', '.join(vgg.taps)}")
    weights: dict[str, tuple[Tensor, Tensor]] = {}
    last_conv = last_tap.replace("relu", "conv")
    for name, conv in vgg.convs.items():
        weights[name] = (conv.weight.detach().cpu().clone(), conv.bias.detach().cpu().clone())
        if name == last_conv:
            break
    preproc = None
    if vgg.preproc is not None:
        preproc = (vgg.preproc.weight.detach().cpu().clone(), vgg.preproc.bias.detach().cpu().clone())
    return VGGFeatures(vgg.arch, vgg.format, weights, preproc=preproc, pool=vgg.pool, source=vgg.source)


class StylePredictor(nn.Module):
    """Style image(s) -> style vector(s) for one transformer (see the module docstring).

    ``vgg`` is truncated to relu3_1 and kept frozen; ``base`` float [S] is the vector the
    predictor starts from. ``side`` is only recorded: the shorter side the images it learns
    from have, which the runtime scales every image to.
    """

    def __init__(
        self,
        vgg: VGGFeatures,
        base: Tensor,
        *,
        hidden: int = DEFAULT_HIDDEN,
        levels: int = DEFAULT_LEVELS,
        side: int = DEFAULT_SIDE,
    ) -> None:
        super().__init__()
        if base.ndim != 1:
            raise ValueError(f"base must be a style vector [S], got shape {tuple(base.shape)}")
        if not 1 <= levels <= 4 or hidden < 1:
            raise UsageError(f"predictor levels must be 1..4 and hidden >= 1, got {levels} and {hidden}")
        if side < C.PREDICTOR_MIN_SIDE:
            raise UsageError(f"the predictor's side must be at least {C.PREDICTOR_MIN_SIDE} px, got {side}")
        self.vgg = truncate_vgg(vgg)
        self.levels, self.hidden, self.side = levels, hidden, side
        self.style_dim = int(base.shape[0])
        with torch.no_grad():
            probe = self.vgg.features(torch.zeros(1, 3, 64, 64), PREDICTOR_TAPS)
        self.stat_dim = 2 * levels * sum(probe[t].shape[1] for t in PREDICTOR_TAPS)
        self.norm = nn.LayerNorm(self.stat_dim)
        self.mlp = nn.Sequential(
            nn.Linear(self.stat_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.head = nn.Linear(hidden, self.style_dim)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("base", base.detach().float().clone())

    def config(self) -> dict[str, Any]:
        """What ``from_config`` needs to rebuild the module before loading its weights."""
        return {
            "hidden": self.hidden, "levels": self.levels, "side": self.side, "style_dim": self.style_dim,
            "vgg": {"arch": self.vgg.arch, "format": self.vgg.format, "pool": self.vgg.pool, "last_tap": PREDICTOR_TAPS[-1]},
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> StylePredictor:
        """An untrained predictor of the shape ``config`` describes (load its weights next)."""
        v = config["vgg"]
        vgg = VGGFeatures.random(v["last_tap"], arch=v["arch"], fmt=v["format"], pool=v["pool"])
        return cls(vgg, torch.zeros(int(config["style_dim"])), hidden=int(config["hidden"]),
                   levels=int(config["levels"]), side=int(config["side"]))

    def statistics(self, x: Tensor) -> Tensor:
        """x: RGB float [B, 3, H, W] in [0, 1], H, W >= 64 -> log1p of the feature statistics [B, D]."""
        stats: list[Tensor] = []
        for k in range(self.levels):
            xk = x if k == 0 else F.avg_pool2d(x, 2**k)
            feats = self.vgg.features(xk, PREDICTOR_TAPS)
            for tap in PREDICTOR_TAPS:
                f = feats[tap].float().flatten(2)  # float32 even under autocast: variances of large values
                mean = f.mean(-1)
                var = (f - mean[..., None]).pow(2).mean(-1)
                stats += [mean, (var + 1e-6).sqrt()]
        return torch.log1p(torch.cat(stats, 1))  # ReLU features are >= 0; log1p tames their range

    def forward(self, x: Tensor) -> Tensor:
        """x: RGB float [B, 3, H, W] in [0, 1] -> style vectors float [B, S]."""
        if x.ndim != 4 or x.shape[1] != 3 or min(x.shape[-2:]) < C.PREDICTOR_MIN_SIDE:
            raise UsageError(f"the style predictor takes RGB images [B, 3, H, W] with H, W >= {C.PREDICTOR_MIN_SIDE}, got {tuple(x.shape)}")
        h = self.mlp(self.norm(self.statistics(x)))
        return self.base + self.head(h).float()


def predictor_tensors(predictor: StylePredictor) -> dict[str, Tensor]:
    """The predictor's weights as checkpoint ``extra`` tensors (``predictor.<name>``)."""
    return {PREDICTOR_PREFIX + k: v.detach().float().cpu().contiguous() for k, v in predictor.state_dict().items()}


def load_predictor(checkpoint: Checkpoint) -> StylePredictor | None:
    """The predictor stored in ``checkpoint`` (eval mode, CPU), or None when it has none."""
    config = checkpoint.info.get("predictor")
    if config is None:
        return None
    try:
        predictor = StylePredictor.from_config(config)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{checkpoint.folder}: incomplete predictor record ({exc})") from exc
    state = {k[len(PREDICTOR_PREFIX):]: v for k, v in checkpoint.extra.items() if k.startswith(PREDICTOR_PREFIX)}
    try:
        predictor.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{checkpoint.folder}: predictor weights do not fit its record ({str(exc).splitlines()[0]})") from exc
    if predictor.style_dim != checkpoint.net.style_dim:
        raise CheckpointError(f"{checkpoint.folder}: the predictor gives S={predictor.style_dim}, the network takes S={checkpoint.net.style_dim}")
    return predictor.eval()


# ---------------------------------------------------------------- the corpus and the held-out set

NEAR_DUPLICATE_BITS = 6
"""dHash Hamming distance (of 64 bits, mirror included) at or under which two images count as
the same picture. On the real corpus the closest held-out/corpus pair is 11 bits apart."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _name_key(name: str) -> str:
    """'Starry_Night.JPG' -> 'starrynight': names compared without case, punctuation or suffix."""
    return "".join(ch for ch in Path(name).stem.lower() if ch.isalnum())


def difference_hash(path: Path) -> tuple[int, int] | None:
    """64-bit dHash (Krawetz) of the image and of its mirror image; None if unreadable.

    Survives re-encoding, rescaling and aspect changes, which a file hash does not."""
    img = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_4)
    if img is None:
        return None
    small = cv2.resize(img, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)

    def bits(a: np.ndarray) -> int:
        return int.from_bytes(np.packbits((a[:, 1:] > a[:, :-1]).ravel()).tobytes(), "big")

    return bits(small), bits(small[:, ::-1])


def _manifest_names(folder: Path) -> dict[str, str]:
    """file -> the source file name recorded in the corpus's MANIFEST.csv (when there is one)."""
    import csv

    path = folder / "MANIFEST.csv"
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["file"]: Path(row.get("source_path") or row["file"]).name for row in csv.DictReader(fh) if row.get("file")}


@dataclass(frozen=True)
class CorpusSelection:
    """The training files of a style corpus, and what was left out and why."""

    files: tuple[Path, ...]
    excluded: tuple[tuple[Path, str], ...]  # (file, reason)
    heldout: tuple[Path, ...]

    def fingerprint(self) -> str:
        """sha256 over the training files' names, in order: recorded in checkpoints."""
        return hashlib.sha256("\n".join(p.name for p in self.files).encode()).hexdigest()


def heldout_images(folders: Iterable[Path]) -> list[Path]:
    """Every image file directly in ``folders`` (each must exist and hold images)."""
    return [p for folder in folders for p in list_images(folder)]


def select_corpus(corpus: Path, heldout: Sequence[Path] = (), *, limit: int | None = None) -> CorpusSelection:
    """The corpus's image files minus every one that matches a held-out image by content
    (sha256), by name (its own or its MANIFEST.csv source name, case and punctuation
    ignored) or by look (dHash within NEAR_DUPLICATE_BITS, mirror included).

    ``heldout``: folders of images that must never be trained on. Raises InputFileError for
    a missing or empty folder, or when nothing is left to train on.
    """
    held = heldout_images(heldout)
    held_hashes = {_sha256(p): p for p in held}
    held_names = {key: p for p in held if (key := _name_key(p.name))}
    held_looks = [(h, p) for p in held if (h := difference_hash(p)) is not None]
    sources = _manifest_names(Path(corpus))
    files, excluded = [], []
    held_resolved = {p.resolve() for p in held}
    for path in list_images(corpus)[:limit]:
        reason = None
        if path.resolve() in held_resolved:
            reason = "is itself a held-out file"
        elif (match := held_hashes.get(_sha256(path))) is not None:
            reason = f"same bytes as held-out {match.name}"
        elif (match := held_names.get(_name_key(path.name)) or held_names.get(_name_key(sources.get(path.name, "")))) is not None:
            reason = f"same name as held-out {match.name}"
        elif held_looks and (look := difference_hash(path)) is not None:
            for (h, hm), p in held_looks:
                if min((look[0] ^ h).bit_count(), (look[0] ^ hm).bit_count()) <= NEAR_DUPLICATE_BITS:
                    reason = f"looks like held-out {p.name}"
                    break
        if reason is None:
            files.append(path)
        else:
            excluded.append((path, reason))
    for path, why in excluded:
        log.warning("left out of training: %s (%s)", path.name, why)
    if not files:
        raise InputFileError(f"{corpus}: no style images left to train on")
    log.info("style corpus: %d images from %s, %d left out, %d held out", len(files), corpus, len(excluded), len(held))
    return CorpusSelection(tuple(files), tuple(excluded), tuple(held))


# ---------------------------------------------------------------- training


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
        for img, targets in zip(self.images, self.targets):
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
    extra = {**predictor_tensors(run.predictor), **_optimizer_state(run.optimizer)}
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
            gen = _step_generator(s.seed, run.step)
            x = content.batch(s.batch, gen).to(device, non_blocking=True)
            style = styles.batch(s.batch, gen).to(device, non_blocking=True)
            targets = loss.style_targets(style)  # one Gram set per sample: [B, C, C]
            with autocast():
                vectors = run.predictor(style)
                terms = loss(run.net(x, vectors).float(), x, targets)
            total = terms["total"]
            if not torch.isfinite(total):
                raise UsageError(f"the loss became {total.item()} at step {run.step}; lower --lr or the loss weights")
            run.optimizer.zero_grad(set_to_none=True)
            total.backward()
            run.optimizer.step()
            run.step += 1
            bar.update(1, **{k: float(v.detach()) for k, v in terms.items() if k != "total"})
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
    previous = _check_out(out, resume)
    if previous is not None:
        saved = previous.info
        if saved.get("mode") != "predictor":
            raise CheckpointError(f"{out}: not a style-predictor checkpoint; resume it with nst-train")
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
        _restore_optimizer(opt, previous.extra)
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
            "heldout_files": [{"name": p.name, "sha256": _sha256(p)} for p in selection.heldout],
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
