"""Classic neural style transfer by pixel optimisation (Gatys, Ecker & Bethge, CVPR 2016).

The output image itself is optimised so that its VGG features match the content image's
and its Gram matrices match the style image's (see ``losses``). Slow (hundreds of VGG
forward/backward passes) but needs no training; it is also the reference the fast
feed-forward networks are judged against.

Sizes: the content image is resized so that its longer side is ``size`` (aspect kept) and the
result is returned at that working size: resizing it back up would only blur it. The style
image is resized to the same longer side so its textures keep their scale relative to the
output.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import cv2
import numpy as np
import torch

from stylecast.realtime.errors import UsageError

from .losses import LossRecipe, PerceptualLoss
from .tensors import bgr_to_tensor, tensor_to_bgr
from .vgg import VGGFeatures

log = logging.getLogger("stylecast.gatys")

ProgressFn = Callable[[int, int, dict[str, float]], None]
"""progress(evaluations_done, total_evaluations, {'content','style','tv','total': float})."""

INITS = ("content", "noise")
OPTIMIZERS = ("lbfgs", "adam")
MIN_SIZE = 16


def working_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) with the longer side equal to ``size`` and the aspect ratio kept."""
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _resize(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    h, w = hw
    if (h, w) == img.shape[:2]:
        return img
    shrinking = h * w < img.shape[0] * img.shape[1]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def stylize_gatys(
    content_bgr: np.ndarray,
    style_bgr: np.ndarray,
    vgg: VGGFeatures,
    recipe: LossRecipe,
    *,
    size: int = 512,
    steps: int = 300,
    init: str = "content",
    optimizer: str = "lbfgs",
    lr: float | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """Stylise ``content_bgr`` with ``style_bgr`` (both uint8 BGR [H, W, 3]).

    Returns uint8 BGR [h, w, 3] at the working size (longer side ``size``, aspect kept).
    ``steps`` is the number of loss evaluations (L-BFGS may overrun by a few inside its last
    line search); the image with the lowest loss seen is returned. ``init`` 'content' starts
    from the content image, 'noise' from seeded uniform noise. ``lr`` defaults to 1 for
    L-BFGS (with a strong-Wolfe line search) and 0.02 for Adam. Moves ``vgg`` to ``device``.
    """
    if init not in INITS:
        raise UsageError(f"init must be one of {', '.join(INITS)}, not {init!r}")
    if optimizer not in OPTIMIZERS:
        raise UsageError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {optimizer!r}")
    if not isinstance(size, int) or size < MIN_SIZE:
        raise UsageError(f"size must be an integer of at least {MIN_SIZE} px, not {size!r}")
    if not isinstance(steps, int) or steps < 1:
        raise UsageError(f"steps must be a positive integer, not {steps!r}")
    device = torch.device(device)
    vgg.to(device)
    hw = working_size(*content_bgr.shape[:2], size)
    content = bgr_to_tensor(_resize(content_bgr, hw), device)
    style = bgr_to_tensor(_resize(style_bgr, working_size(*style_bgr.shape[:2], size)), device)
    loss_fn = PerceptualLoss(vgg, recipe)
    style_targets = loss_fn.style_targets(style)
    content_targets = loss_fn.content_targets(content) if recipe.content_layers else None

    if init == "content":
        x = content.clone(memory_format=torch.contiguous_format)  # L-BFGS views grads flat
    else:
        gen = torch.Generator().manual_seed(seed)
        x = torch.rand(content.shape, generator=gen).to(device)
    x.requires_grad_(True)

    best = {"loss": float("inf"), "x": x.detach().clone()}
    evals = 0

    def closure() -> torch.Tensor:
        nonlocal evals
        opt.zero_grad()
        with torch.no_grad():
            x.clamp_(0.0, 1.0)  # the image stays a valid picture at every evaluated point
        losses = loss_fn(x, content_targets, style_targets)
        losses["total"].backward()
        evals += 1
        value = float(losses["total"].detach())
        if value < best["loss"]:
            best["loss"], best["x"] = value, x.detach().clone()
        if progress is not None:
            progress(min(evals, steps), steps, {k: float(v.detach()) for k, v in losses.items() if v.ndim == 0})
        return losses["total"]

    if optimizer == "lbfgs":
        # One call does all the work: max_eval bounds the loss evaluations. Zero tolerances
        # keep it from stopping early on the tiny gradients of Gram losses.
        opt: torch.optim.Optimizer = torch.optim.LBFGS(
            [x], lr=1.0 if lr is None else lr, max_iter=steps, max_eval=steps, history_size=50,
            tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe",
        )
        opt.step(closure)
    else:
        opt = torch.optim.Adam([x], lr=0.02 if lr is None else lr)
        for _ in range(steps):
            opt.step(closure)
    log.debug("gatys: %d evaluations, best total loss %.6g", evals, best["loss"])
    return tensor_to_bgr(best["x"])
