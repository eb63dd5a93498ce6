"""stylecast.weights: the model folders that ship with the package.

Each sub-folder is a model folder (see ``stylecast.realtime.contract``). Nothing here is
downloaded: what ships is in the wheel.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL = "default"
"""Name of the bundled model folder that commands use when ``--model`` is not given."""

FAST_MODEL = "fast"
"""Name of the bundled network built for CPUs; nst-live takes it when no GPU runs."""


def weights_dir() -> Path:
    """The installed ``weights`` folder."""
    return Path(__file__).resolve().parent


def bundled_model_dir(name: str = DEFAULT_MODEL) -> Path:
    """Path of a bundled model folder (it may not exist until trained weights ship)."""
    return weights_dir() / name


def bundled_models() -> list[str]:
    """Names of the bundled model folders that have a manifest."""
    return sorted(p.name for p in weights_dir().iterdir() if (p / "manifest.json").is_file())
