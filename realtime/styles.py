"""Which style a run asks for, resolved once: a mix of the model's styles and of pictures.

    mix = parse_mix(["starry=0.7", "image:mine.jpg=0.3"])    # --mix items; weights checked
    vector = mix_vectors(model, mix, {"image:mine.jpg": predicted})   # float32 [S]
    label = mix_label(model, mix)                                # "starry 0.70 + mine.jpg 0.30"

A mix is {key: weight}: a key is a style of the model (a name, an index, or its digits) or
``image:PATH``, the predicted style of a picture (``style_images.PredictorSession``). Weights
are >= 0 with a positive sum and are normalised to sum 1; keys naming the same style add up.
``StyleEngine.set_mix``, the commands' --mix and nst-video's workers all resolve mixes here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .errors import UsageError
from .model_folder import ModelFolder

IMAGE_PREFIX = "image:"
"""In a style mix, ``image:PATH=W`` is the predicted style of the picture PATH."""

StyleKey = str | int


def check_weights(weights: Mapping[StyleKey, float], where: str = "") -> dict[StyleKey, float]:
    """The weights as floats, normalised to sum 1; UsageError (prefixed with ``where``, e.g.
    "--mix: ") when there are none, one is negative or not a number, or they sum to 0."""
    if not weights:
        raise UsageError(f"{where}a style mix needs at least one NAME=WEIGHT")
    out: dict[StyleKey, float] = {}
    for key, weight in weights.items():
        try:
            w = float(weight)
        except (TypeError, ValueError):
            w = math.nan
        if not math.isfinite(w) or w < 0:
            raise UsageError(f"{where}the weight of {key!r} must be 0 or more, got {w:g} (weights >= 0, normalised to sum 1)")
        out[key] = w
    total = sum(out.values())
    if total <= 0:
        raise UsageError(f"{where}the weights sum to 0; give at least one style a positive weight")
    return {key: w / total for key, w in out.items()}


def parse_mix(items: Sequence[str]) -> dict[str, float]:
    """``["starry=0.7", "wave=0.3"]`` -> ``{"starry": 0.7, "wave": 0.3}`` (as given, not
    normalised); UsageError on an item that is not NAME=WEIGHT (a finite number), a name given
    twice, or weights ``check_weights`` refuses."""
    mix: dict[str, float] = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = math.nan
        if not sep or not name or not math.isfinite(weight):
            raise UsageError(f"--mix: {item!r} is not NAME=WEIGHT")
        if name in mix:
            raise UsageError(f"--mix: {name!r} is given twice")
        mix[name] = weight
    if mix:
        check_weights(mix, "--mix: ")
    return mix


def image_keys(weights: Mapping[StyleKey, float]) -> dict[str, Path]:
    """The ``image:PATH`` keys of a mix, with their paths."""
    return {k: Path(k[len(IMAGE_PREFIX):]) for k in weights if isinstance(k, str) and k.startswith(IMAGE_PREFIX)}


def _parts(model: ModelFolder, weights: Mapping[StyleKey, float]) -> dict[StyleKey, tuple[str, float]]:
    """{the model's style index, or the image key: (its name, its normalised weight)}; keys that
    name the same style of the model are added up. ModelFolderError for an unknown style."""
    pictures = image_keys(weights)
    parts: dict[StyleKey, tuple[str, float]] = {}
    for key, w in check_weights(weights).items():
        if key in pictures:
            parts[key] = (pictures[key].name, w)  # type: ignore[index]
        else:
            i = model.style_index(key)
            parts[i] = (model.style_names[i], parts.get(i, ("", 0.0))[1] + w)
    return parts


def mix_vectors(model: ModelFolder, weights: Mapping[StyleKey, float],
                pictures: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """The mixed style vector, float32 [S]: the weighted sum of the model's style vectors and of
    ``pictures`` (the predicted vectors of the mix's ``image:PATH`` keys, by key)."""
    pictures = pictures or {}
    vec = np.zeros(model.style_dim, dtype=np.float64)
    for key, (_, w) in _parts(model, weights).items():
        source = pictures[key] if isinstance(key, str) else model.style_vectors[key]
        vec += w * np.asarray(source, dtype=np.float64)
    return vec.astype(np.float32)


def mix_label(model: ModelFolder, weights: Mapping[StyleKey, float]) -> str:
    """What the HUD and logs call a mix: "alpha 0.25 + art.png 0.75" (pictures by their file
    name), or just the name when one style has all the weight."""
    parts = list(_parts(model, weights).values())
    if len(parts) == 1:
        return parts[0][0]
    return " + ".join(f"{name} {w:.2f}" for name, w in parts)
