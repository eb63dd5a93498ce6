"""What shapes a training run: the style images with their weights, and every setting, stored in
each checkpoint and restored on --resume."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylecast.realtime.errors import UsageError

from .losses import LossRecipe, choose_recipe
from .schedule import crop_size, learning_rate
from .vgg import VGGFeatures


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


def parse_focus(texts: list[str]) -> dict[str, float]:
    """``NAME:W`` items (style NAME is drawn W times as often as a style without one) as a dict."""
    focus: dict[str, float] = {}
    for text in texts:
        name, sep, tail = text.rpartition(":")
        try:
            weight = float(tail) if sep and name else math.nan
        except ValueError:
            weight = math.nan
        if not math.isfinite(weight) or weight <= 0:
            raise UsageError(f"--focus {text!r}: expected NAME:W with W a positive number (e.g. starry:2)")
        focus[name] = weight
    return focus


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
    focus: dict[str, float] = field(default_factory=dict)  # style name -> drawn W times as often (default 1)
    tune_vectors: list[str] = field(default_factory=list)  # distillation: only these styles' vectors train
    holdout: int | None = 0  # content photos held back for evaluation (never trained on); None: as --from's run
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
