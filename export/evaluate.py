"""How well a trained network does each of its styles, on photos it never trained on.

``evaluate_styles`` stylises the same centre crops of held-out content photos with every style
whose painting is given, and reports the loss terms of the training recipe per style (content,
style, total variation), unweighted, averaged over the photos. The numbers compare styles of one
network and one network with another on the same photos; they are not a verdict on looks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from stylecast.realtime.atomic import atomic_file
from stylecast.realtime.errors import UsageError
from stylecast.realtime.images import cover_crop, list_images, read_image

from .checkpoint import Checkpoint
from .data import load_style_image
from .losses import PerceptualLoss
from .tensors import bgr_to_tensor
from .train import StyleSpec
from .vgg import VGGFeatures

log = logging.getLogger("stylecast.evaluate")


@dataclass(frozen=True)
class StyleScore:
    """Mean unweighted loss terms of one style over the held-out photos."""

    name: str
    content: float
    style: float
    tv: float
    style_of_input: float  # the same style loss for the photos themselves (unstylised)

    @property
    def style_ratio(self) -> float:
        """Style distance output / input: 1 = no closer to the painting than the photo; lower is closer."""
        return self.style / self.style_of_input if self.style_of_input > 0 else float("nan")


def held_out_files(content_dir: Path, names: list[str]) -> list[Path]:
    """The held-out photos of ``content_dir`` (by file name, as recorded in a checkpoint)."""
    files = {f.name: f for f in list_images(content_dir)}
    missing = [n for n in names if n not in files]
    if missing:
        raise UsageError(f"{content_dir}: {len(missing)} held-out photo(s) are missing, e.g. {missing[0]}")
    return [files[n] for n in names]


def centre_crops(files: list[Path], size: int) -> torch.Tensor:
    """Each photo scaled so its shorter side is ``size``, centre-cropped square: float RGB [N, 3, size, size]."""
    return torch.cat([bgr_to_tensor(cover_crop(read_image(f, what="held-out photo"), size, size)) for f in files])


@torch.no_grad()
def evaluate_styles(
    source: Checkpoint, photos: torch.Tensor, styles: list[StyleSpec], vgg: VGGFeatures, *, style_size: int = 512, batch: int = 10
) -> list[StyleScore]:
    """Loss terms per style (the model's styles that ``styles`` names) on ``photos`` [N, 3, H, W]."""
    from .train import TrainSettings

    recipe, _ = TrainSettings().recipe(vgg)
    loss = PerceptualLoss(vgg, recipe)
    net = source.net.float().eval()
    by_name = {s.label: s for s in styles}
    unknown = sorted(set(by_name) - set(source.style_names))
    if unknown:
        raise UsageError(f"the model has no style named {', '.join(unknown)}; it has: {', '.join(source.style_names)}")
    # The photos' own VGG features and Grams do not depend on the style: computed once.
    batches = [photos[start : start + batch] for start in range(0, len(photos), batch)]
    features = [(loss.content_targets(x), loss.style_targets(x)) for x in batches]
    scores = []
    for i, name in enumerate(source.style_names):
        if name not in by_name:
            continue
        targets = loss.style_targets(load_style_image(by_name[name].path, style_size))
        sums = {"content": 0.0, "style": 0.0, "tv": 0.0, "input": 0.0}
        for x, (content, grams) in zip(batches, features, strict=True):
            terms = loss(net(x, source.styles[i : i + 1].float()), content, targets)
            for k in ("content", "style", "tv"):
                sums[k] += float(terms[k]) * len(x)
            sums["input"] += float(loss.style_distance(grams, targets).sum())
        scores.append(StyleScore(name, *(sums[k] / len(photos) for k in ("content", "style", "tv", "input"))))
        log.info("%s: content %.4g, style %.4g (%.2f of the photos'), tv %.4g", name, scores[-1].content,
                 scores[-1].style, scores[-1].style_ratio, scores[-1].tv)
    return scores


def write_scores(path: Path, scores: list[StyleScore], photos: list[str], size: int, *, overwrite: bool = False) -> Path:
    """Write the scores as JSON: {"photos": [...], "crop": size, "styles": [{name, content, style, tv}]},
    through a temporary file; an existing ``path`` is replaced only with ``overwrite``."""
    rows = [{**asdict(s), "style_ratio": s.style_ratio} for s in scores]
    with atomic_file(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps({"photos": photos, "crop": size, "styles": rows}, indent=2) + "\n", encoding="utf-8")
    return path
