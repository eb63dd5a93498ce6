"""Training one conditional-instance-norm network for several styles, and adding a style to it.

``train_styles``: every convolution weight is shared by all styles and each style owns one
vector of norm scales and shifts (Dumoulin et al. 2017). Each step takes a batch of random
content crops and one style (drawn at random), and minimises
``content_weight * content + style_weight * w_style * style + tv_weight * tv`` on VGG
features (``losses.PerceptualLoss``), plus an optional stability term for video.

``add_style``: every shared weight frozen, only the new style's vector learns (Dumoulin's
finding that a new style needs nothing else), so it takes minutes on a GPU.

Both write resumable checkpoints (``checkpoint.py``): all randomness of step k comes from a
generator seeded with (seed, k), and the optimizer state is saved, so a resumed run ends
bit-identical to an uninterrupted one on the same device.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from stylecast.realtime.errors import CheckpointError, UsageError
from stylecast.realtime.model_folder import sha256_file
from stylecast.realtime.progress import Progress

from .checkpoint import INFO_NAME, Checkpoint, load_checkpoint, load_network_source, save_checkpoint
from .data import ContentCrops, load_style_image
from .losses import LossRecipe, PerceptualLoss, StyleTargets, choose_recipe, select_style_targets, stack_style_targets
from .provenance import environment
from .schedule import StopRequested, WallClock, autocast, crop_size, learning_rate, resolve_precision, sigterm_stops
from .tensors import resolve_device, tensor_to_bgr
from .transformer import StyleNetwork, build_network
from .vgg import VGGFeatures

log = logging.getLogger("stylecast.train")


@dataclass(frozen=True)
class StyleSpec:
    """A style image, its style-loss multiplier, and the name it gets in the model."""

    path: Path
    weight: float = 1.0
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or re.sub(r"[^A-Za-z0-9_-]+", "_", self.path.stem)


def parse_style_spec(text: str) -> StyleSpec:
    """``PATH`` or ``PATH:WEIGHT`` (the weight multiplies that style's style loss)."""
    path, weight = text, 1.0
    head, sep, tail = text.rpartition(":")
    if sep and head and re.fullmatch(r"[0-9]*\.?[0-9]+(e[-+]?[0-9]+)?", tail.strip(), re.IGNORECASE):
        path, weight = head, float(tail)
    if not math.isfinite(weight) or weight <= 0:
        raise UsageError(f"style weight in {text!r} must be a positive number")
    return StyleSpec(Path(path), weight)


@dataclass(frozen=True)
class TrainSettings:
    """Everything that shapes a run; stored in each checkpoint and restored on --resume."""

    steps: int = 40_000
    size: int = 256  # content crop side
    batch: int = 8
    style_size: int = 512  # longer side of each style image
    lr: float = 1e-3
    seed: int = 0
    content_weight: float | None = None  # None: the recipe's default
    style_weight: float | None = None
    tv_weight: float | None = None
    pyramid_levels: int | None = None
    stability: float = 0.0  # weight of the video-stability term; 0 = off
    checkpoint_every: int = 500
    preview_every: int = 500
    arch: str = "johnson"
    arch_config: dict[str, Any] = field(default_factory=dict)
    precision: str = "auto"  # auto, bf16 or fp32; what ran is stored as info["precision"]
    warmup: int = 200  # steps of linear learning-rate warm-up
    decay_from: float = 0.7  # cosine decay of the learning rate over the last 30% of the steps
    final_size: int | None = None  # crop size for the late steps (e.g. 256 after 192)
    final_size_from: float = 0.85  # fraction of the steps after which final_size is used
    mixed_styles: bool = True  # each sample of a batch draws its own style
    holdout: int = 0  # content photos held back for evaluation (never trained on)
    checkpoint_minutes: float = 5.0  # also write a checkpoint after this much wall time

    def lr_at(self, step: int) -> float:
        return learning_rate(step, self.steps, self.lr, self.warmup, self.decay_from)

    def size_at(self, step: int) -> int:
        return crop_size(step, self.steps, self.size, self.final_size, self.final_size_from)

    def recipe(self, vgg: VGGFeatures) -> tuple[LossRecipe, str]:
        recipe, name = choose_recipe(vgg.taps)
        changes = {
            k: v
            for k, v in (
                ("content_weight", self.content_weight),
                ("style_weight", self.style_weight),
                ("tv_weight", self.tv_weight),
                ("pyramid_levels", self.pyramid_levels),
            )
            if v is not None
        }
        return recipe.replace(**changes), name


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    return torch.roll(x, shifts=(dy, dx), dims=(-2, -1))


def stability_loss(
    net: StyleNetwork, content: torch.Tensor, style: torch.Tensor, output: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """Gupta et al. 2017: the output of a slightly shifted, slightly noisy input should be the
    shifted output. Penalises flicker that small camera motion and sensor noise cause in video."""
    dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
    noise = torch.randn(content.shape, generator=gen).to(content.device) * 0.02
    moved = (_shift(content, dy, dx) + noise).clamp(0, 1)
    out2 = net(moved, style)
    m = 8  # ignore borders: torch.roll wraps pixels around, and padding differs there
    return F.mse_loss(out2[..., m:-m, m:-m], _shift(output, dy, dx)[..., m:-m, m:-m])


@dataclass
class _Run:
    """The mutable state of a run, built fresh or restored from a checkpoint."""

    net: StyleNetwork
    frozen_styles: torch.Tensor  # [K, S] style vectors that do not train (add-style), maybe K = 0
    styles: torch.nn.Parameter  # [N, S] style vectors that train
    names: list[str]
    specs: list[StyleSpec]  # one per trainable style
    optimizer: torch.optim.Optimizer
    step: int
    info: dict[str, Any]

    def all_styles(self) -> torch.Tensor:
        return torch.cat([self.frozen_styles.to(self.styles.device), self.styles.detach()])


def optimizer_state(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"optim.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return out


def restore_optimizer(opt: torch.optim.Optimizer, extra: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in extra.items():
        m = re.fullmatch(r"optim\.(\d+)\.(\w+)", key)
        if m:
            state.setdefault(int(m.group(1)), {})[m.group(2)] = v
    sd = opt.state_dict()
    if sorted(state) != sorted(range(len(sd["param_groups"][0]["params"]))) and state:
        raise CheckpointError("the optimizer state in the checkpoint does not fit this run")
    sd["state"] = state
    opt.load_state_dict(sd)


def _save(run: _Run, out: Path, settings: TrainSettings, recipe_desc: str) -> None:
    info = dict(run.info)
    info.update(
        step=run.step,
        settings=asdict(settings),
        recipe=recipe_desc,
        styles=[{"name": s.label, "path": str(s.path), "weight": s.weight, "sha256": sha256_file(s.path)} for s in run.specs],
    )
    extra = optimizer_state(run.optimizer)
    save_checkpoint(out, run.net, run.all_styles(), run.names, info, extra)


def _preview(run: _Run, content: torch.Tensor, style_images: list[torch.Tensor], path: Path) -> None:
    """A grid: a header row with the style images, then one row per content crop: the crop and
    its stylisation with each style (the last 8 styles at most)."""
    side = content.shape[-1]
    blank = np.full((side, side, 3), 255, np.uint8)
    n_frozen = len(run.frozen_styles)
    with torch.no_grad():
        vectors = run.all_styles()
        shown = range(max(0, len(vectors) - 8), len(vectors))
        header = [blank]
        for i in shown:  # frozen styles (add-style) have no style image at hand
            img = style_images[i - n_frozen] if i >= n_frozen else None
            header.append(blank if img is None else cv2.resize(tensor_to_bgr(img), (side, side), interpolation=cv2.INTER_AREA))
        rows = [np.concatenate(header, axis=1)]
        for c in content:
            row = [tensor_to_bgr(c)] + [tensor_to_bgr(run.net(c[None], vectors[i][None]).float()) for i in shown]
            rows.append(np.concatenate(row, axis=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate(rows, axis=0))


def _draw_styles(run: _Run, settings: TrainSettings, gen: torch.Generator) -> torch.Tensor:
    """The trainable style index of each sample of this step's batch: int64 [B]."""
    n = len(run.specs)
    if settings.mixed_styles:
        return torch.randint(n, (settings.batch,), generator=gen)
    return torch.randint(n, (1,), generator=gen).expand(settings.batch)


def _log_style_losses(run: _Run, ema: torch.Tensor) -> None:
    names = run.names[len(run.frozen_styles):]
    log.info("step %d, style loss per style (moving average): %s", run.step,
             ", ".join(f"{n} {v:.3g}" for n, v in zip(names, ema.tolist())))


def _loop(
    run: _Run,
    *,
    out: Path,
    settings: TrainSettings,
    content: ContentCrops,
    loss: PerceptualLoss,
    targets: StyleTargets,
    style_images: list[torch.Tensor],
    device: torch.device,
    progress: bool | None,
    recipe_desc: str,
    time_limit: float | None = None,
) -> Path:
    """Train until ``settings.steps`` or ``time_limit`` seconds; ``targets`` holds every trainable
    style's Grams stacked along the batch axis (``stack_style_targets``)."""
    r = loss.recipe
    precision = resolve_precision(settings.precision, device)
    if run.info.setdefault("precision", precision) != precision:
        log.warning("this checkpoint trained in %s so far; continuing in %s", run.info["precision"], precision)
        run.info["precision"] = precision
    log.info("precision: %s on %s", precision, device)
    amp = autocast(precision, device)
    preview_gen = torch.Generator().manual_seed(settings.seed + 7)
    preview_content = content.batch(min(3, len(content)), preview_gen).to(device)
    weights = torch.tensor([s.weight for s in run.specs], dtype=torch.float32)
    ema = torch.tensor(run.info.get("style_loss_ema") or [float("nan")] * len(run.specs))
    clock = WallClock(settings.checkpoint_minutes, time_limit)
    first_step, predicted, timed_from = run.step, False, (run.step, 0.0)
    run.net.train()
    bar = Progress(settings.steps, "training", unit="step", enabled=progress, initial=run.step)

    def save() -> None:
        run.info["style_loss_ema"] = ema.tolist()
        _save(run, out, settings, recipe_desc)
        clock.saved()

    try:
        with sigterm_stops():
            while run.step < settings.steps:
                if clock.out_of_time():
                    save()
                    log.warning("time limit reached at step %d of %d; checkpoint saved: continue with --resume", run.step, settings.steps)
                    break
                gen = step_generator(settings.seed, run.step)
                idx = _draw_styles(run, settings, gen)
                x = content.batch(settings.batch, gen, size=settings.size_at(run.step)).to(device, non_blocking=True)
                if device.type == "cuda":
                    x = x.contiguous(memory_format=torch.channels_last)
                for group in run.optimizer.param_groups:
                    group["lr"] = settings.lr_at(run.step)
                style = run.styles[idx.to(run.styles.device)]
                with amp():
                    y = run.net(x, style)
                    terms = loss(y.float(), x, select_style_targets(targets, idx), weights[idx].to(device))
                    total = r.content_weight * terms["content"] + r.style_weight * terms["style"] + r.tv_weight * terms["tv"]
                    if settings.stability > 0:
                        terms["stab"] = stability_loss(run.net, x, style, y, gen).float()
                        total = total + settings.stability * terms["stab"]
                if not torch.isfinite(total):
                    raise UsageError(f"the loss became {total.item()} at step {run.step}; lower --lr or the loss weights")
                run.optimizer.zero_grad(set_to_none=True)
                total.backward()
                run.optimizer.step()
                run.step += 1
                per_sample = terms.pop("style_per_sample").float().cpu()
                for i, v in zip(idx.tolist(), per_sample.tolist()):
                    ema[i] = v if math.isnan(ema[i]) else 0.98 * ema[i] + 0.02 * v
                shown = {k: float(v.detach()) for k, v in terms.items() if k != "total"}
                bar.update(1, **shown)
                if run.step - first_step == WARM_UP_STEPS:
                    timed_from = (run.step, clock.elapsed())
                elif not predicted and run.step - first_step == WARM_UP_STEPS + TIMED_STEPS:
                    predicted = True
                    _predict(settings, run.step, timed_from, clock, time_limit)
                if run.step % settings.checkpoint_every == 0 or run.step == settings.steps or clock.save_due():
                    save()
                    _log_style_losses(run, ema)
                if settings.preview_every and (run.step % settings.preview_every == 0 or run.step == settings.steps):
                    run.net.eval()
                    _preview(run, preview_content, style_images, out / "previews" / f"step_{run.step:06d}.png")
                    run.net.train()
    except (KeyboardInterrupt, StopRequested) as exc:
        save()
        log.warning("%s at step %d; checkpoint saved: continue with --resume", "stopped by " + str(exc) if isinstance(exc, StopRequested) else "interrupted", run.step)
        raise KeyboardInterrupt from exc
    finally:
        bar.close()
    run.net.eval()
    return out


WARM_UP_STEPS, TIMED_STEPS = 10, 50
"""The run's duration is predicted from steps 10..60 of each invocation: the first steps pay for
allocations and kernel selection (on a GPU they took 2x the steady step time)."""


def _predict(settings: TrainSettings, step: int, timed_from: tuple[int, float], clock: WallClock, time_limit: float | None) -> None:
    """Log the whole run's predicted duration from its first timed steps (crop size changes included)."""
    first, started = timed_from
    per_step = (clock.elapsed() - started) / (step - first)
    base = settings.size_at(step) ** 2
    # Later steps at another crop size cost in proportion to their pixels.
    rest = sum(settings.size_at(k) ** 2 / base for k in range(step, settings.steps)) * per_step
    when = time.strftime("%H:%M", time.localtime(time.time() + rest))
    msg = f"{per_step:.3g} s/step over steps {first}-{step}: the remaining {settings.steps - step} steps take about {rest / 3600:.2f} h (ends about {when})"
    if time_limit is not None and clock.elapsed() + rest > time_limit:
        msg += f"; the time limit ({time_limit / 3600:.2f} h) stops it first, near step {step + int((time_limit - clock.elapsed()) / per_step)}"
    log.info(msg)


_MODES = {  # checkpoint "mode" -> (what it is, how to resume it)
    "train": ("multi-style training", "nst-train --out DIR --resume"),
    "add-style": ("--add-style", "nst-train --add-style IMG --out DIR --resume"),
    "predictor": ("style-predictor", "nst-train-predictor --out DIR --resume"),
}


def _content(folder: Path, settings: TrainSettings, device: torch.device, limit: int | None) -> ContentCrops:
    """The content photos, loaded large enough for every crop size of the run."""
    largest = max(settings.size, settings.final_size or 0)
    return ContentCrops(folder, largest, device, limit=limit, holdout=settings.holdout)


def check_out(out: Path, resume: bool, mode: str) -> Checkpoint | None:
    """The checkpoint of kind ``mode`` to resume from, or None for a fresh run; refuses to clobber
    an old run, and to resume a checkpoint another kind of training wrote."""
    has = (out / INFO_NAME).is_file()
    if resume:
        if not has:
            raise UsageError(f"--resume: no checkpoint in {out}")
        previous = load_checkpoint(out)
        saved = previous.info.get("mode")
        if saved != mode:
            how = f"; resume it with {_MODES[saved][1]}" if saved in _MODES else ""
            raise CheckpointError(f"{out}: not a {_MODES[mode][0]} checkpoint{how}")
        return previous
    if has:
        raise UsageError(f"{out} already holds a checkpoint; pass --resume to continue it, or choose another --out")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder")
    return None


def train_styles(
    content_dir: Path | None,
    styles: list[StyleSpec],
    out: Path,
    vgg: VGGFeatures,
    settings: TrainSettings,
    *,
    device: str = "auto",
    resume: bool = False,
    progress: bool | None = None,
    content_limit: int | None = None,
    time_limit: float | None = None,
    base: Path | None = None,
) -> Path:
    """Train (or resume) one network for all ``styles``; returns the checkpoint folder ``out``.

    ``base``: a checkpoint or model folder whose network weights start the run (warm start; the
    architecture is taken from it and every style vector starts at the mean of its styles).
    ``time_limit``: seconds after which the run saves a checkpoint and returns."""
    out = Path(out)
    dev = resolve_device(device)
    previous = check_out(out, resume, "train")
    if previous is not None:
        saved = previous.info
        settings = replace(TrainSettings(**{**saved["settings"], "arch_config": saved["settings"].get("arch_config", {})}), steps=settings.steps)
        saved_specs = [StyleSpec(Path(s["path"]), s["weight"], s["name"]) for s in saved["styles"]]
        if styles and [(s.path.resolve(), s.weight) for s in styles] != [(s.path.resolve(), s.weight) for s in saved_specs]:
            raise UsageError("--resume: the --styles differ from the checkpoint's; omit --styles to use the saved ones")
        styles = saved_specs
        content_dir = content_dir or Path(saved["content_dir"])
        for s in styles:
            if s.path.is_file() and sha256_file(s.path) != next(x["sha256"] for x in saved["styles"] if x["name"] == s.label):
                log.warning("%s changed since the checkpoint was written", s.path)
    if not styles:
        raise UsageError("no style images given (--styles A.jpg B.jpg:2.0 ...)")
    if content_dir is None:
        raise UsageError("--content-dir is needed: a folder of photos to learn from")
    names = [s.label for s in styles]
    if len(set(names)) != len(names):
        raise UsageError(f"two styles share a name ({', '.join(names)}); rename a file")
    recipe, recipe_name = settings.recipe(vgg)
    log.info("loss recipe: %s (%s)", recipe_name, recipe.describe())
    loss = PerceptualLoss(vgg.to(dev), recipe)
    style_images = [load_style_image(s.path, settings.style_size) for s in styles]
    targets = stack_style_targets([loss.style_targets(img.to(dev)) for img in style_images])
    content = _content(content_dir, settings, dev, content_limit)

    torch.manual_seed(settings.seed)
    warm = load_network_source(base) if base is not None and previous is None else None
    if warm is not None:
        settings = replace(settings, arch=warm.net.arch_name, arch_config=warm.net.config())
    net = build_network(settings.arch, settings.arch_config).to(dev)
    settings = replace(settings, arch_config=net.config())  # stored complete, so --resume rebuilds the same network
    style_param = torch.nn.Parameter(net.identity_style(len(styles)).to(dev))
    if warm is not None:
        net.load_state_dict(warm.net.state_dict())
        kept = [n for n in names if n in warm.style_names]
        with torch.no_grad():  # a style the base knows keeps its vector; a new one starts at the mean
            style_param.copy_(warm.styles.mean(0, keepdim=True).expand_as(style_param))
            for i, n in enumerate(names):
                if n in kept:
                    style_param[i] = warm.styles[warm.style_names.index(n)].to(dev)
        log.info("warm start from %s (%s): %d of %d styles continue from its vectors", base, warm.net.arch_name, len(kept), len(names))
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam([*net.parameters(), style_param], lr=settings.lr)
    run = _Run(net, torch.zeros(0, net.style_dim), style_param, names, list(styles), opt, 0, {})
    if previous is not None:
        net.load_state_dict(previous.net.state_dict())
        with torch.no_grad():
            style_param.copy_(previous.styles)
        restore_optimizer(opt, previous.extra)
        run.step = previous.step
        run.info = dict(previous.info)
        log.info("resuming at step %d of %d", run.step, settings.steps)
    else:
        run.info = {
            "mode": "train",
            "content_dir": str(Path(content_dir).resolve()),
            "content_photos": len(content),
            "held_out_photos": content.held_out_names,
            "warm_start": None if warm is None else {"from": Path(base).name, "styles": warm.style_names},
            "environment": environment(),
        }
    return _loop(run, out=out, settings=settings, content=content, loss=loss, targets=targets,
                 style_images=style_images, device=dev, progress=progress, recipe_desc=f"{recipe_name}: {recipe.describe()}",
                 time_limit=time_limit)


def add_style(
    base: Path,
    style: StyleSpec,
    content_dir: Path | None,
    out: Path,
    vgg: VGGFeatures,
    settings: TrainSettings,
    *,
    device: str = "auto",
    resume: bool = False,
    progress: bool | None = None,
    init_vector: torch.Tensor | None = None,
    time_limit: float | None = None,
) -> Path:
    """Learn one new style vector for the frozen network of checkpoint ``base``; write the
    checkpoint with the style appended to ``out``. Every other tensor stays bit-identical.

    ``init_vector`` float [S]: where the new vector starts (e.g. the style predictor's guess);
    default the mean of the existing styles. ``base`` is a checkpoint or a model folder that
    carries the network's PyTorch weights."""
    out = Path(out)
    dev = resolve_device(device)
    previous = check_out(out, resume, "add-style")
    source = previous if previous is not None else load_network_source(base)
    if previous is not None:
        settings = replace(settings, **{k: v for k, v in previous.info["settings"].items() if k not in ("steps", "arch_config")})
        content_dir = content_dir or Path(previous.info["content_dir"])
    if content_dir is None:
        raise UsageError("--content-dir is needed: a folder of photos to learn the style on")
    if style.label in source.style_names[: len(source.style_names) - (previous is not None)]:
        raise UsageError(f"the model already has a style named {style.label!r}; pass --name to choose another")
    settings = replace(settings, arch=source.net.arch_name, arch_config=source.net.config())
    recipe, recipe_name = settings.recipe(vgg)
    log.info("loss recipe: %s (%s)", recipe_name, recipe.describe())
    loss = PerceptualLoss(vgg.to(dev), recipe)
    style_image = load_style_image(style.path, settings.style_size)
    targets = loss.style_targets(style_image.to(dev))
    content = _content(content_dir, settings, dev, None)

    net = source.net.to(dev)
    net.requires_grad_(False)  # the shared weights never change
    if previous is not None:
        frozen, start = source.styles[:-1].clone(), source.styles[-1:].clone()
    else:
        # Start from the given vector, else the average style: closer to any real style than the identity.
        frozen, start = source.styles.clone(), source.styles.mean(0, keepdim=True)
        if init_vector is not None:
            if init_vector.numel() != source.net.style_dim:
                raise UsageError(f"the initial style vector has {init_vector.numel()} values; the network takes {source.net.style_dim}")
            start = init_vector.detach().float().cpu().reshape(1, -1).clone()  # never train the caller's tensor
    new = torch.nn.Parameter(start.to(dev))
    opt = torch.optim.Adam([new], lr=settings.lr)
    names = list(source.style_names) if previous is not None else [*source.style_names, style.label]
    run = _Run(net, frozen, new, names, [style], opt, 0, {})
    if previous is not None:
        restore_optimizer(opt, previous.extra)
        run.step, run.info = previous.step, dict(previous.info)
    else:
        run.info = {
            "mode": "add-style",
            "base_checkpoint": Path(base).name,
            "base_info": {k: source.info.get(k) for k in ("settings", "styles", "recipe", "content_photos")},
            "content_dir": str(Path(content_dir).resolve()),
            "content_photos": len(content),
            "held_out_photos": content.held_out_names,
            "environment": environment(),
        }
    return _loop(run, out=out, settings=settings, content=content, loss=loss, targets=targets,
                 style_images=[style_image], device=dev, progress=progress, recipe_desc=f"{recipe_name}: {recipe.describe()}",
                 time_limit=time_limit)
