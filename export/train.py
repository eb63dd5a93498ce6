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
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from stylecast.realtime.errors import UsageError
from stylecast.realtime.model_folder import sha256_file

from .checkpoint import load_network_source, start_network
from .data import load_style_image
from .losses import PerceptualLoss, StyleTargets, select_style_targets, stack_style_targets
from .provenance import environment
from .tensors import resolve_device
from .train_loop import Objective, Run, check_out, content_crops, inherit_holdout, loop, restore_optimizer
from .train_settings import StyleSpec, TrainSettings, parse_style_spec
from .transformer import StyleNetwork
from .vgg import VGGFeatures

__all__ = ["StyleSpec", "TrainSettings", "add_style", "parse_style_spec", "train_styles"]

log = logging.getLogger("stylecast.train")


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


def perceptual_objective(run: Run, loss: PerceptualLoss, targets: StyleTargets, stability: float) -> Objective:
    """content + style + TV on VGG features (each sample against its own style's Grams, times that
    style's weight), plus the stability term when ``stability`` > 0."""
    r = loss.recipe
    weights = torch.tensor([s.weight for s in run.specs], dtype=torch.float32)

    def objective(x: torch.Tensor, idx: torch.Tensor, y: torch.Tensor, style: torch.Tensor,
                  gen: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = loss(y.float(), x, select_style_targets(targets, idx), weights[idx].to(x.device))
        total = r.content_weight * terms["content"] + r.style_weight * terms["style"] + r.tv_weight * terms["tv"]
        if stability > 0:
            terms["stab"] = stability_loss(run.net, x, style, y, gen).float()
            total = total + stability * terms["stab"]
        terms["per_sample"] = terms.pop("style_per_sample")
        del terms["total"]
        return total, terms

    return objective


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
    architecture is taken from it; a style it knows by name keeps its vector, a new one starts
    at the mean of its styles).
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
    warm = load_network_source(base) if base is not None and previous is None else None
    settings = inherit_holdout(settings, warm)
    content = content_crops(content_dir, settings, dev, content_limit)

    torch.manual_seed(settings.seed)
    net = start_network(settings.arch, settings.arch_config, warm).to(dev)
    settings = replace(settings, arch=net.arch_name, arch_config=net.config())  # stored complete, so --resume rebuilds the same network
    style_param = torch.nn.Parameter(net.identity_style(len(styles)).to(dev))
    if warm is not None:
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
    run = Run(net, torch.zeros(0, net.style_dim), style_param, names, list(styles), opt, 0, {})
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
    objective = perceptual_objective(run, loss, targets, settings.stability)
    return loop(run, out=out, settings=settings, content=content, objective=objective,
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
    settings = inherit_holdout(replace(settings, arch=source.net.arch_name, arch_config=source.net.config()), source)
    recipe, recipe_name = settings.recipe(vgg)
    log.info("loss recipe: %s (%s)", recipe_name, recipe.describe())
    loss = PerceptualLoss(vgg.to(dev), recipe)
    style_image = load_style_image(style.path, settings.style_size)
    targets = loss.style_targets(style_image.to(dev))
    content = content_crops(content_dir, settings, dev)

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
    run = Run(net, frozen, new, names, [style], opt, 0, {})
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
    objective = perceptual_objective(run, loss, targets, settings.stability)
    return loop(run, out=out, settings=settings, content=content, objective=objective,
                style_images=[style_image], device=dev, progress=progress, recipe_desc=f"{recipe_name}: {recipe.describe()}",
                time_limit=time_limit)
