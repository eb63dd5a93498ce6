"""The training loop that every kind of run shares (multi-style training, add-style, distillation):
batches, the learning-rate and crop-size schedules, precision, checkpoints by steps, by wall
time and on Ctrl-C or SIGTERM, the time limit, previews, the per-style loss log and the
prediction of the run's length.

What a step minimises is the caller's ``Objective``; everything else is here once. All
randomness of step k comes from a generator seeded with (seed, k), and the optimizer state is
saved, so a resumed run ends bit-identical to an uninterrupted one on the same device.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from stylecast.realtime.errors import CheckpointError, UsageError
from stylecast.realtime.model_folder import sha256_file
from stylecast.realtime.progress import Progress

from .checkpoint import INFO_NAME, Checkpoint, load_checkpoint, save_checkpoint
from .data import ContentCrops
from .schedule import StopRequested, WallClock, autocast, resolve_precision, sigterm_stops
from .tensors import tensor_to_bgr
from .train_settings import StyleSpec, TrainSettings
from .transformer import StyleNetwork

log = logging.getLogger("stylecast.train")

Objective = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, dict[str, torch.Tensor]]]
"""``objective(x, idx, y, style, gen) -> (total, terms)``: x the content crops [B, 3, s, s], idx the
trainable style index of each sample [B], y = net(x, style) the output, style the vectors [B, S].
``terms`` are scalars for the progress bar, plus ``per_sample`` [B] (detached): each sample's
loss, averaged per style in the log."""


def inherit_holdout(settings: TrainSettings, source: Checkpoint | None) -> TrainSettings:
    """``settings`` with ``holdout`` resolved: when it is None (no --holdout given), a run that
    starts from ``source`` holds out as many photos as ``source``'s run did, which by
    ``data.held_out`` are the same photos of the same folder, so its evaluation stays on pictures
    neither run trained on; without a source, none."""
    if settings.holdout is not None:
        return settings
    n = len(source.info.get("held_out_photos") or []) if source is not None else 0
    if n:
        log.info("holding out the %d photos the run of --from held out (--holdout N to choose)", n)
    return replace(settings, holdout=n)


def content_crops(folder: Path, settings: TrainSettings, device: torch.device, limit: int | None = None) -> ContentCrops:
    """The content photos of a run, loaded large enough for every crop size it takes, its
    held-out photos left out."""
    largest = max(settings.size, settings.final_size or 0)
    return ContentCrops(folder, largest, device, limit=limit, holdout=settings.holdout)


def descend(optimizer: torch.optim.Optimizer, total: torch.Tensor, step: int) -> None:
    """One optimizer step on ``total``; a loss that is not finite stops the run with a UsageError."""
    if not torch.isfinite(total):
        raise UsageError(f"the loss became {total.item()} at step {step}; lower --lr or the loss weights")
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


@dataclass
class Run:
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


def save_run(run: Run, out: Path, settings: TrainSettings, recipe_desc: str) -> None:
    info = dict(run.info)
    info.update(
        step=run.step,
        settings=asdict(settings),
        recipe=recipe_desc,
        styles=[{"name": s.label, "path": str(s.path), "weight": s.weight, "sha256": sha256_file(s.path) if s.path.is_file() else None} for s in run.specs],
    )
    extra = optimizer_state(run.optimizer)
    save_checkpoint(out, run.net, run.all_styles(), run.names, info, extra)


def _preview(run: Run, content: torch.Tensor, style_images: list[torch.Tensor], path: Path) -> None:
    """A grid: a header row with the style images (left out when there are none, as in
    distillation), then one row per content crop: the crop and its stylisation with each style
    (the last 8 styles at most)."""
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
        rows = [np.concatenate(header, axis=1)] if any(h is not blank for h in header[1:]) else []
        for c in content:
            row = [tensor_to_bgr(c)] + [tensor_to_bgr(run.net(c[None], vectors[i][None]).float()) for i in shown]
            rows.append(np.concatenate(row, axis=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate(rows, axis=0))


def draw_weights(run: Run, settings: TrainSettings) -> torch.Tensor | None:
    """How often each trainable style is drawn, relative to the others (``settings.focus``; 1 for
    a style it does not name; 0 for a style ``settings.tune_vectors``, when given, leaves out), or
    None when all are drawn equally often. Raises UsageError when either names a style the run
    does not train."""
    names = run.names[len(run.frozen_styles):]
    for flag, named in (("--focus", settings.focus), ("--tune-vectors", settings.tune_vectors)):
        unknown = sorted(set(named) - set(names))
        if unknown:
            raise UsageError(f"{flag}: no style {unknown[0]!r} is trained in this run (its styles: {', '.join(names)})")
    if not settings.focus and not settings.tune_vectors:
        return None
    tuned = set(settings.tune_vectors or names)
    return torch.tensor([settings.focus.get(n, 1.0) if n in tuned else 0.0 for n in names], dtype=torch.float64)


def _draw_styles(run: Run, settings: TrainSettings, gen: torch.Generator, weights: torch.Tensor | None) -> torch.Tensor:
    """The trainable style index of each sample of this step's batch: int64 [B]; ``weights`` as
    :func:`draw_weights` gives them (None: uniform)."""
    count = settings.batch if settings.mixed_styles else 1
    if weights is None:
        idx = torch.randint(len(run.specs), (count,), generator=gen)
    else:
        idx = torch.multinomial(weights, count, replacement=True, generator=gen)
    return idx.expand(settings.batch)


def _log_style_losses(run: Run, ema: torch.Tensor) -> None:
    names = run.names[len(run.frozen_styles):]
    log.info("step %d, loss per style (moving average): %s", run.step,
             ", ".join(f"{n} {v:.3g}" for n, v in zip(names, ema.tolist(), strict=True)))


def loop(
    run: Run,
    *,
    out: Path,
    settings: TrainSettings,
    content: ContentCrops,
    objective: Objective,
    style_images: list[torch.Tensor | None],
    device: torch.device,
    progress: bool | None,
    recipe_desc: str,
    time_limit: float | None = None,
) -> Path:
    """Train ``run`` until ``settings.steps`` or ``time_limit`` seconds, minimising ``objective``;
    ``style_images`` (one per trainable style, or None) head the preview sheets."""
    precision = resolve_precision(settings.precision, device)
    if run.info.setdefault("precision", precision) != precision:
        log.warning("this checkpoint trained in %s so far; continuing in %s", run.info["precision"], precision)
        run.info["precision"] = precision
    log.info("precision: %s on %s", precision, device)
    weights = draw_weights(run, settings)
    amp = autocast(precision, device)
    preview_gen = torch.Generator().manual_seed(settings.seed + 7)
    preview_content = content.batch(min(3, len(content)), preview_gen).to(device)
    # A style not drawn yet has no average: NaN here, null in the record (which stays strict JSON).
    saved_ema = run.info.get("style_loss_ema") or [None] * len(run.specs)
    ema = torch.tensor([math.nan if v is None else float(v) for v in saved_ema])
    clock = WallClock(settings.checkpoint_minutes, time_limit)
    first_step, timed_from = run.step, (run.step, 0.0)
    run.net.train()
    bar = Progress(settings.steps, "training", unit="step", enabled=progress, initial=run.step)

    def save() -> None:
        run.info["style_loss_ema"] = [None if math.isnan(v) else v for v in ema.tolist()]
        save_run(run, out, settings, recipe_desc)
        clock.saved()

    try:
        with sigterm_stops():
            while run.step < settings.steps:
                if clock.out_of_time():
                    save()
                    log.warning("time limit reached at step %d of %d; checkpoint saved: continue with --resume", run.step, settings.steps)
                    break
                gen = step_generator(settings.seed, run.step)
                idx = _draw_styles(run, settings, gen, weights)
                x = content.batch(settings.batch, gen, size=settings.size_at(run.step)).to(device, non_blocking=True)
                if device.type == "cuda":
                    x = x.contiguous(memory_format=torch.channels_last)
                for group in run.optimizer.param_groups:
                    group["lr"] = settings.lr_at(run.step)
                style = run.styles[idx.to(run.styles.device)]
                with amp():
                    total, terms = objective(x, idx, run.net(x, style), style, gen)
                descend(run.optimizer, total, run.step)
                run.step += 1
                per_sample = terms.pop("per_sample").float().cpu()
                for i, v in zip(idx.tolist(), per_sample.tolist(), strict=True):
                    ema[i] = v if math.isnan(ema[i]) else 0.98 * ema[i] + 0.02 * v
                shown = {k: float(v.detach()) for k, v in terms.items()}
                bar.update(1, **shown)
                if run.step - first_step == WARM_UP_STEPS:
                    timed_from = (run.step, clock.elapsed())
                elif run.step - first_step == WARM_UP_STEPS + TIMED_STEPS:
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
    "distill": ("distillation", "nst-train --teacher MODEL --out DIR --resume"),
}


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
