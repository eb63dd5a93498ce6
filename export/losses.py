"""Perceptual losses on VGG features: content, Gram style, total variation, and recipes.

Formulas (F is a feature map [B, C, H, W] flattened to [B, C, H*W]; x an image [B, 3, H, W]):

    gram(F)        = F F^T / (C H W)                                    [B, C, C]
    content(l)     = mean((F_l(out) - F_l(content))^2)                  scalar
    style(k, l)    = mean((gram(F_l(P_k out)) - G_kl)^2)                scalar, G_kl the target
    tv(x)          = mean((x[.., i+1, :] - x[.., i, :])^2) + mean((x[.., :, j+1] - x[.., :, j])^2)
    content_total  = sum_l  w_l * content(l)
    style_total    = mean_k sum_l w_l * style(k, l)      (mean over the pyramid levels used)
    total          = content_weight * content_total + style_weight * style_total + tv_weight * tv

P_k is pyramid level k: the image average-pooled by 2^k (level 0 is the image itself).
Averaging over levels keeps ``style_weight`` meaningful when the number of levels changes.
The total variation is the squared (smooth) kind, which suits L-BFGS better than |.|.
Content is compared at full resolution (level 0) only.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from stylecast.realtime.errors import UsageError

from .vgg import VGGFeatures

log = logging.getLogger("stylecast.losses")

StyleTargets = dict[tuple[int, str], Tensor]
"""(pyramid level, tap) -> Gram matrix [B, C, C] (one per sample) or [1, C, C] (shared)."""
ContentTargets = dict[str, Tensor]
"""tap -> content features [B, C, h, w]."""


def gram(f: Tensor) -> Tensor:
    """f: [B, C, H, W] -> [B, C, C] = F F^T / (C*H*W)."""
    b, c, h, w = f.shape
    # Scaled before the product and kept in float32 even under autocast: an fp16 sum over
    # H*W positions overflows (max 65504) at training resolutions.
    flat = f.reshape(b, c, h * w).float() / math.sqrt(c * h * w)
    with torch.autocast(device_type=f.device.type, enabled=False):
        return torch.bmm(flat, flat.transpose(1, 2))


def content_loss(f: Tensor, target: Tensor) -> Tensor:
    """Mean squared error between feature maps of the same shape."""
    return F.mse_loss(f, target)


def style_loss(g: Tensor, target: Tensor) -> Tensor:
    """Mean squared error between Grams: g [B, C, C], target [B, C, C] or [1, C, C] (broadcast)."""
    return style_loss_per_sample(g, target).mean()


def style_loss_per_sample(g: Tensor, target: Tensor) -> Tensor:
    """Mean squared error between Grams for each sample: [B]. Shapes as in :func:`style_loss`."""
    if target.ndim != 3 or target.shape[1:] != g.shape[1:] or target.shape[0] not in (1, g.shape[0]):
        raise ValueError(f"style target of shape {tuple(target.shape)} does not fit Grams {tuple(g.shape)}")
    return (g - target).pow(2).mean(dim=(1, 2))


def tv_loss(x: Tensor) -> Tensor:
    """Squared total variation: mean squared vertical + mean squared horizontal neighbour difference."""
    dv = (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() if x.shape[-2] > 1 else x.new_zeros(())
    dh = (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean() if x.shape[-1] > 1 else x.new_zeros(())
    return dv + dh


def grid_offsets(x: Tensor, factor: int, window: int = 8) -> Tensor:
    """How much ``x`` [B, C, H, W] (H, W multiples of ``factor``) carries a pattern that repeats
    every ``factor`` pixels: the mean absolute deviation of each of the ``factor``x``factor``
    sub-pixel positions' local means (over ``window``x``window`` cells) from their average. A
    pixel-shuffle head's checkerboard (a fixed offset per sub-pixel) scores its amplitude; smooth
    images and unaligned detail average out towards 0. Scalar."""
    b, c = x.shape[:2]
    cells = F.pixel_unshuffle(x, factor)  # [B, C*f*f, H/f, W/f]: one channel per sub-pixel position
    means = F.avg_pool2d(cells, window).view(b, c, factor * factor, -1)
    return (means - means.mean(dim=2, keepdim=True)).abs().mean()


def pyramid(x: Tensor, levels: int) -> list[Tensor]:
    """[x, avgpool_2(x), avgpool_4(x), ...]: ``levels`` images, level k pooled by 2^k."""
    return [x if k == 0 else F.avg_pool2d(x, 2**k) for k in range(levels)]


@dataclass(frozen=True)
class LossRecipe:
    """Which VGG taps are compared, how strongly, and over how many pyramid levels.

    content_layers / style_layers: {tap: weight}. pyramid_levels: 1 = no pyramid.
    Change with ``recipe.replace(style_weight=..., pyramid_levels=...)``.
    """

    content_layers: Mapping[str, float]
    style_layers: Mapping[str, float]
    pyramid_levels: int = 1
    content_weight: float = 1.0
    style_weight: float = 1e4
    tv_weight: float = 0.0

    def __post_init__(self) -> None:
        # Copies, so a caller mutating its dict cannot change a frozen recipe (or a preset).
        object.__setattr__(self, "content_layers", dict(self.content_layers))
        object.__setattr__(self, "style_layers", dict(self.style_layers))
        if not isinstance(self.pyramid_levels, int) or not 1 <= self.pyramid_levels <= 8:
            raise UsageError(f"pyramid levels must be an integer from 1 to 8, not {self.pyramid_levels!r}")
        for name in ("content_weight", "style_weight", "tv_weight"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise UsageError(f"{name.replace('_', ' ')} must be a finite number >= 0, not {value!r}")
        for layers in (self.content_layers, self.style_layers):
            for tap, w in layers.items():
                if not math.isfinite(w) or w < 0:
                    raise UsageError(f"layer weight for {tap} must be a finite number >= 0, not {w!r}")
        if not self.content_layers and not self.style_layers:
            raise UsageError("a loss recipe needs at least one content or style layer")

    @property
    def taps(self) -> set[str]:
        return set(self.content_layers) | set(self.style_layers)

    def replace(self, **changes: object) -> LossRecipe:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def describe(self) -> str:
        def fmt(layers: Mapping[str, float]) -> str:
            return ", ".join(f"{t}:{w:g}" for t, w in layers.items()) or "none"

        levels = f" over {self.pyramid_levels} pyramid levels" if self.pyramid_levels > 1 else ""
        return (
            f"content {fmt(self.content_layers)}; style Gram {fmt(self.style_layers)}{levels}; "
            f"weights content {self.content_weight:g}, style {self.style_weight:g}, tv {self.tv_weight:g}"
        )


GATYS_FULL = LossRecipe(
    content_layers={"relu4_2": 1.0},
    style_layers={t: 1.0 for t in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")},
    pyramid_levels=1,
    content_weight=1.0,
    # The classic Gram/(CHW) + MSE scaling for torchvision's ImageNet VGG; not tuned here
    # (no full VGG file was available), so treat it as a starting point.
    style_weight=1e6,
    tv_weight=1.0,
)
"""Gatys et al. 2016: content relu4_2, style relu1_1..relu5_1. Needs a full VGG."""

TRUNCATED_MULTISCALE = LossRecipe(
    content_layers={"relu2_1": 1.0},
    style_layers={"relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0},
    pyramid_levels=3,
    content_weight=1.0,
    style_weight=1e4,  # found to balance content and style with the normalised VGG-19
    tv_weight=1.0,  # a few % of the total: smooths grain, keeps detail (checked by eye at 192 px)
)
"""For a VGG that stops at relu3_1: shallow Grams see small receptive fields, so they are
also taken on images pooled by 2 and 4, which lets them capture larger style structures."""

RECIPE_NAMES = {"full": "full Gatys", "multiscale": "truncated-VGG multi-scale"}


def choose_recipe(available_taps: Iterable[str]) -> tuple[LossRecipe, str]:
    """GATYS_FULL when relu4_2 and relu5_1 exist, else TRUNCATED_MULTISCALE.

    Returns (recipe, human name). Raises UsageError when not even relu3_1 is available.
    """
    taps = set(available_taps)
    if GATYS_FULL.taps <= taps:
        return GATYS_FULL, RECIPE_NAMES["full"]
    if TRUNCATED_MULTISCALE.taps <= taps:
        return TRUNCATED_MULTISCALE, RECIPE_NAMES["multiscale"]
    raise UsageError(
        f"the VGG weights stop too early ({', '.join(sorted(taps)) or 'no taps'}); at least relu3_1 is needed"
    )


def parse_layer_weights(text: str) -> dict[str, float]:
    """'relu1_1:1,relu2_1:0.5' (or 'relu1_1,relu2_1' meaning weight 1) -> {tap: weight}."""
    layers: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        tap, sep, weight = part.partition(":")
        tap = tap.strip()
        if not tap.startswith("relu"):
            raise UsageError(f"layer {tap!r} in {text!r}: expected names like relu3_1")
        try:
            layers[tap] = float(weight) if sep else 1.0
        except ValueError:
            raise UsageError(f"layer weight {weight!r} for {tap} in {text!r} is not a number") from None
    if not layers:
        raise UsageError(f"no layers in {text!r}; expected e.g. relu1_1:1,relu2_1:0.5")
    return layers


def stack_style_targets(targets: Sequence[StyleTargets]) -> StyleTargets:
    """Concatenate per-style targets along the batch axis (all need the same keys)."""
    keys = set(targets[0])
    if any(set(t) != keys for t in targets):
        raise ValueError("style targets with different (level, tap) keys cannot be stacked; use equal style sizes")
    return {k: torch.cat([t[k] for t in targets]) for k in targets[0]}


def select_style_targets(targets: StyleTargets, index: Tensor | Sequence[int]) -> StyleTargets:
    """Per-sample targets for a batch: ``index[b]`` picks the style of sample b."""
    return {k: v[torch.as_tensor(index, device=v.device)] for k, v in targets.items()}


class PerceptualLoss:
    """Content + style + TV loss from a frozen VGG and a recipe.

    A plain object, not an nn.Module, so the VGG weights never end up in a training
    checkpoint. Images are float [B, 3, H, W] RGB in [0, 1] on the VGG's device.
    """

    def __init__(self, vgg: VGGFeatures, recipe: LossRecipe) -> None:
        missing = recipe.taps.difference(vgg.taps)
        if missing:
            raise UsageError(
                f"the loss recipe needs VGG tap(s) {', '.join(sorted(missing))}, but the VGG weights "
                f"({vgg.source}) only have {', '.join(vgg.taps)}"
            )
        self.vgg, self.recipe = vgg, recipe
        order = {t: i for i, t in enumerate(vgg.taps)}
        self._min_content = max((vgg.min_input_side(t) for t in recipe.content_layers), default=1)
        self._min_style = max((vgg.min_input_side(t) for t in recipe.style_layers), default=1)
        self._style_taps = sorted(recipe.style_layers, key=order.__getitem__)
        self._warned_levels = False

    def _levels(self, x: Tensor) -> list[int]:
        """Pyramid levels whose image is large enough for the deepest style tap."""
        side = min(x.shape[-2:])
        return [k for k in range(self.recipe.pyramid_levels) if side // 2**k >= self._min_style]

    def style_targets(self, style: Tensor) -> StyleTargets:
        """Grams of the style image(s) for every (level, tap). style: [S, 3, H, W] -> [S, C, C] each."""
        levels = self._levels(style)
        if not levels and self._style_taps:
            raise UsageError(f"the style image ({style.shape[-1]}x{style.shape[-2]}) is too small for the VGG taps")
        out: StyleTargets = {}
        with torch.no_grad():
            for k in levels:
                feats = self.vgg.features(pyramid(style, k + 1)[k], self._style_taps)
                for tap in self._style_taps:
                    out[(k, tap)] = gram(feats[tap])
        return out

    def style_distance(self, grams: StyleTargets, targets: StyleTargets) -> Tensor:
        """The style term per image [B]: ``grams`` of images (from :meth:`style_targets`, [B, C, C])
        against ``targets`` ([B or 1, C, C]), weighted per tap and averaged over the pyramid levels
        both cover. Lets a caller compare the same images with many paintings without running the
        VGG again, and an image with a painting without a content term."""
        levels = sorted({k for k, _ in grams if all((k, t) in grams and (k, t) in targets for t in self._style_taps)})
        if not levels:
            raise UsageError("the style targets do not cover any pyramid level of these images")
        total = sum(self.recipe.style_layers[t] * style_loss_per_sample(grams[(k, t)], targets[(k, t)])
                    for k in levels for t in self._style_taps)
        return total / len(levels)

    def output_grams(self, output: Tensor) -> StyleTargets:
        """Grams of ``output`` [B, 3, H, W], with gradients, for every (level, tap) of the style
        term its size allows: one VGG pass that :meth:`style_distance` can score against several
        targets (``__call__``'s style term is ``style_distance(grams, targets).mean()``)."""
        self._check_size(output, self._min_style)
        return self._grams(output, self._style_levels(output), self.vgg.features(output, self._style_taps))

    def _check_size(self, output: Tensor, side: int) -> None:
        if min(output.shape[-2:]) < side:
            raise UsageError(f"the image ({output.shape[-1]}x{output.shape[-2]}) is too small for the VGG taps "
                             f"(at least {side} px per side)")

    def _style_levels(self, output: Tensor, targets: StyleTargets | None = None) -> list[int]:
        """The pyramid levels of the style term for ``output`` (and covered by ``targets``, when
        given); warns once when there are fewer than the recipe's, raises when there are none."""
        r = self.recipe
        levels = [k for k in self._levels(output) if targets is None or all((k, t) in targets for t in self._style_taps)]
        if len(levels) < r.pyramid_levels and r.style_layers and not self._warned_levels:
            self._warned_levels = True
            log.warning("using %d of %d pyramid levels: the images are too small for the others", len(levels), r.pyramid_levels)
        if r.style_layers and not levels:
            raise UsageError("the style targets do not cover any pyramid level of this image")
        return levels

    def _grams(self, output: Tensor, levels: list[int], feats0: Mapping[str, Tensor]) -> StyleTargets:
        """Grams of ``output`` per (level, tap); ``feats0`` are its full-size features (level 0)."""
        grams: StyleTargets = {}
        for k in levels:
            feats = feats0 if k == 0 else self.vgg.features(F.avg_pool2d(output, 2**k), self._style_taps)
            grams.update({(k, tap): gram(feats[tap]) for tap in self._style_taps})
        return grams

    def content_targets(self, content: Tensor) -> ContentTargets:
        """Content features, to compute once when the content image does not change."""
        with torch.no_grad():
            return self.vgg.features(content, self.recipe.content_layers)

    def __call__(
        self,
        output: Tensor,
        content: Tensor | Mapping[str, Tensor] | None,
        style_targets: StyleTargets,
        style_weights: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Loss terms for ``output`` [B, 3, H, W].

        content: the content images [B, 3, H, W] or their precomputed ``content_targets``
        (None only if the recipe has no content layers). style_targets: from
        :meth:`style_targets`, [B, C, C] per sample or [1, C, C] shared. style_weights:
        optional float [B], each sample's multiplier of its style term (a batch that mixes
        styles of different weights); the 'style' term is then the mean of weight * loss.
        Returns {'content', 'style', 'tv', 'total'}: scalar tensors (the first three unweighted,
        apart from ``style_weights``), and 'style_per_sample' [B] (unweighted, detached).
        """
        r = self.recipe
        self._check_size(output, max(self._min_content, self._min_style))
        levels = self._style_levels(output, style_targets)
        zero = output.new_zeros(())
        content_total, style_total = zero, output.new_zeros(output.shape[0])
        feats0 = self.vgg.features(output, r.taps)
        if r.content_layers:
            if content is None:
                raise ValueError("the recipe has content layers but no content was given")
            targets = content if isinstance(content, Mapping) else self.content_targets(content)
            for tap, w in r.content_layers.items():
                content_total = content_total + w * content_loss(feats0[tap], targets[tap])
        grams = self._grams(output, levels, feats0)
        if levels and self._style_taps:
            style_total = self.style_distance(grams, style_targets)
        per_sample = style_total.detach()
        if style_weights is not None:
            style_total = style_total * style_weights.to(style_total)
        style_mean = style_total.mean()
        tv = tv_loss(output)
        total = r.content_weight * content_total + r.style_weight * style_mean + r.tv_weight * tv
        return {"content": content_total, "style": style_mean, "tv": tv, "total": total, "style_per_sample": per_sample}
