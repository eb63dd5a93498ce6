"""The one style resolver (realtime/styles.py): weights checked, vectors mixed and labelled once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stylecast.realtime.errors import ModelFolderError, UsageError
from stylecast.realtime.model_folder import load_model_folder
from stylecast.realtime.styles import check_weights, mix_label, mix_vectors, parse_mix


def test_weights_are_checked_and_normalised() -> None:
    assert check_weights({"a": 1, "b": 3}) == {"a": 0.25, "b": 0.75}
    for bad, message in (({}, "at least one"), ({"a": -1}, ">= 0"), ({"a": float("nan")}, "0 or more"), ({"a": 0}, "sum to 0")):
        with pytest.raises(UsageError, match=message):
            check_weights(bad)
    with pytest.raises(UsageError, match="--mix: the weight of 'a' must be 0 or more, got -2"):
        parse_mix(["a=-2"])
    assert parse_mix(["image:x=y.png=2", "b=1"]) == {"image:x=y.png": 2.0, "b": 1.0}


def test_one_style_named_twice_adds_up_and_pictures_go_by_file_name(tiny_model_dir: Path) -> None:
    model = load_model_folder(tiny_model_dir)
    picture = np.full(model.style_dim, 2.0, np.float32)
    mix = {"alpha": 1.0, "0": 1.0, "image:/pics/art.png": 2.0}
    assert mix_label(model, mix) == "alpha 0.50 + art.png 0.50"
    np.testing.assert_allclose(mix_vectors(model, mix, {"image:/pics/art.png": picture}),
                               0.5 * model.style_vectors[0] + 0.5 * picture, rtol=1e-6, atol=1e-6)
    assert mix_label(model, {"beta": 3, 1: 1}) == "beta"
    with pytest.raises(ModelFolderError, match="unknown style"):
        mix_label(model, {"starry": 1})
