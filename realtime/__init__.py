"""stylecast.realtime: run exported style-transfer graphs with ONNX Runtime (no PyTorch needed).

The public Python API, importable from here::

    from stylecast.realtime import open_engine, read_image, write_image, transcode, FlowBlender

    with open_engine(None, device="auto") as engine:      # None: the bundled model
        engine.set_style("starry")                        # or set_mix({"starry": 0.7, "wave": 0.3})
        frame = read_image("photo.jpg")                   # BGR uint8 [H, W, 3]
        write_image("out.jpg", engine(frame), overwrite=True)    # the same size out
        transcode("in.mp4", "out.mp4", engine, FlowBlender())      # every frame, audio kept

The house, room by room (a frame of ``nst-live`` goes capture -> stylize -> blend -> sinks,
one of ``nst-video`` decode -> stylize -> blend -> encode):

- here, the core: ``contract`` (the ONNX graph contract), ``stages`` (the stage protocols and
  the frame layout), ``errors``, ``engine`` (``StyleEngine``: one session, frames in and out),
  ``providers`` and ``cpus`` (which device really runs), ``model_folder``, ``styles`` (mixes),
  ``style_images`` (a picture's predicted style), ``styling`` and ``colors`` (what runs around
  the network), ``temporal`` (the blend against flicker), ``images``/``image_tags``,
  ``stills``/``batch``/``sheet`` (photos and folders), ``atomic``, ``progress``, ``demo``;
- ``live/``: nst-live's loop, its source, sinks, window and keys;
- ``video/``: nst-video's pipeline (reader, writer, plan, audio, codecs) and batches of videos;
- ``cli/``: every console script and the options they share;
- ``bench/``: nst-bench's measurements.

Only ``cli/`` and ``bench/`` may import PyTorch or ``stylecast.export`` (a test checks it).

The names below are imported when first used, not when this package is: ``import
stylecast.realtime.errors`` stays cheap, and PyAV (behind ``transcode``) must not be loaded
before nst-live's preview window exists (``live/window.py`` says why).
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    # opening an engine and stylizing frames
    "StyleEngine": "engine", "open_engine": "engine", "load_model": "engine",
    # model folders
    "ModelFolder": "model_folder", "load_model_folder": "model_folder",
    # styles from pictures and mixes
    "PredictorSession": "style_images", "mix_vectors": "styles", "mix_label": "styles",
    # pictures in and out
    "read_image": "images", "write_image": "images",
    # videos
    "transcode": "video.pipeline", "check_transcode": "video.pipeline",
    # the temporal blender
    "FlowBlender": "temporal", "DEFAULT_TEMPORAL": "temporal",
    # the stage protocols
    "Frame": "stages", "FrameSource": "stages", "Stylizer": "stages", "TemporalBlender": "stages",
    "FrameSink": "stages", "check_frame": "stages",
    # the errors (each command maps them to its exit code)
    "StylecastError": "errors", "UsageError": "errors", "InputFileError": "errors", "OutputExistsError": "errors",
    "ModelFolderError": "errors", "CheckpointError": "errors", "ParityError": "errors",
    "PartialFailureError": "errors", "BackendUnavailableError": "errors",
}

__all__ = [
    "BackendUnavailableError", "CheckpointError", "DEFAULT_TEMPORAL", "FlowBlender", "Frame", "FrameSink",
    "FrameSource", "InputFileError", "ModelFolder", "ModelFolderError", "OutputExistsError", "ParityError",
    "PartialFailureError", "PredictorSession", "StyleEngine", "StylecastError", "Stylizer",
    "TemporalBlender", "UsageError", "check_frame", "check_transcode", "load_model", "load_model_folder",
    "mix_label", "mix_vectors", "open_engine", "package_version", "read_image", "transcode", "write_image",
]


def package_version() -> str:
    """The installed stylecast's version ("0+unknown" from a source tree that is not installed)."""
    try:
        return metadata.version("stylecast")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # what type checkers and editors see; nothing of it is imported at run time
    from .engine import StyleEngine, load_model, open_engine
    from .errors import (
        BackendUnavailableError,
        CheckpointError,
        InputFileError,
        ModelFolderError,
        OutputExistsError,
        ParityError,
        PartialFailureError,
        StylecastError,
        UsageError,
    )
    from .images import read_image, write_image
    from .model_folder import ModelFolder, load_model_folder
    from .stages import Frame, FrameSink, FrameSource, Stylizer, TemporalBlender, check_frame
    from .style_images import PredictorSession
    from .styles import mix_label, mix_vectors
    from .temporal import DEFAULT_TEMPORAL, FlowBlender
    from .video.pipeline import check_transcode, transcode
