"""The int8 graph: the fp32 graph with its convolutions quantised, for CPUs (AVX-512 VNNI, AVX2, NEON).

ONNX Runtime's static quantisation (QDQ format) rewrites every ``Conv`` but the first to take
uint8 activations and per-channel int8 weights; instance norms, the style path and everything
around the network stay float. The first convolution stays float because the instance norm
right after it divides each channel by its spread, which magnifies 8-bit weight error in
channels that vary little (on the trained fast network: 28.0 dB PSNR against fp32 with it
quantised, 31.5 dB without). Activation ranges are calibrated on the 99.99th percentile (32.7 dB;
min/max 31.5 dB) by running the fp32 graph on calibration frames with every style of the folder,
because each style moves the ranges.

The result is checked against the fp32 graph, not against PyTorch, on frames it was not
calibrated on (two generated scenes and the export's parity frames, one of odd size), with every
style: ``INT8_MIN_PSNR`` and ``INT8_MAX_MEAN_DIFF`` bound it. Rounding to 8 bits moves
pictures by a few grey levels, so the 1-level parity of the float graphs cannot apply; a graph
that fails is not written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stylecast.realtime import contract as C
from stylecast.realtime.demo import DemoScene, demo_scene
from stylecast.realtime.errors import ParityError
from stylecast.realtime.images import cover_crop, list_images, read_image

from .onnx_export import parity_frame, save_graph

log = logging.getLogger("stylecast.export")

INT8_MIN_PSNR = 32.0
"""Smallest allowed PSNR (dB) of the int8 graph's output against the fp32 graph's."""

INT8_MAX_MEAN_DIFF = 4.0
"""Largest allowed mean |int8 - fp32| in grey levels."""

CALIBRATION_SIZE = (360, 640)
"""(H, W) calibration frames are cropped to: the size live video runs at."""

CALIBRATION_FRAMES = 6
"""How many frames calibrate (each with every style)."""

CALIBRATION_PERCENTILE = 99.99
"""Activation ranges cover this percentile of the calibration values (the rest saturate)."""


@dataclass(frozen=True)
class Int8Report:
    psnr: float  # dB, worst style
    mean_diff: float  # grey levels, worst style
    frames: int  # calibration frames used


def calibration_frames(folder: Path | None, count: int = CALIBRATION_FRAMES) -> list[np.ndarray]:
    """``count`` BGR uint8 frames of CALIBRATION_SIZE: photos spread evenly over ``folder``, or,
    without one, generated demo scenes at different moments."""
    h, w = CALIBRATION_SIZE
    if folder is None:
        scene = DemoScene(w, h)
        return [scene.frame(0.37 * i) for i in range(count)]
    photos = list_images(folder)  # InputFileError when there are none
    picks = [photos[round(i * (len(photos) - 1) / max(1, count - 1))] for i in range(min(count, len(photos)))]
    return [cover_crop(read_image(p, what="calibration picture"), h, w) for p in picks]


def _check_frames(seed: int = 7) -> list[np.ndarray]:
    """Frames the int8 graph is judged on: two generated scenes not used in calibration, and a
    smooth noisy frame of odd size."""
    return [demo_scene(640, 360, t=2.9), demo_scene(320, 180, t=1.3), parity_frame(97, 131, np.random.default_rng(seed))]


def _feeds(frames: Sequence[np.ndarray], styles: np.ndarray) -> Iterator[dict[str, np.ndarray]]:
    for frame in frames:
        for vec in styles:
            yield {C.INPUT_FRAME: frame[None], C.INPUT_STYLE: vec[None].astype(np.float32)}


def quantize_graph(fp32_graph: Path, out: Path, styles: np.ndarray, frames: Sequence[np.ndarray],
                   metadata: dict[str, str], work: Path) -> Path:
    """Write the int8 version of ``fp32_graph`` to ``out`` (with ``metadata``), calibrated on
    ``frames`` x ``styles``; ``work`` is a scratch folder."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = _feeds(frames, styles)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    work.mkdir(parents=True, exist_ok=True)
    prepared, raw = work / "prepared.onnx", work / "int8.onnx"
    quant_pre_process(str(fp32_graph), str(prepared), skip_symbolic_shape=True)
    first_conv = next(n.name for n in onnx.load(str(prepared)).graph.node if n.op_type == "Conv")
    quantize_static(str(prepared), str(raw), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    calibrate_method=CalibrationMethod.Percentile, extra_options={"CalibPercentile": CALIBRATION_PERCENTILE},
                    nodes_to_exclude=[first_conv])
    save_graph(onnx.load(str(raw)), out, metadata)
    for leftover in (prepared, raw):
        leftover.unlink(missing_ok=True)
    return out


def int8_check(fp32_graph: Path, int8_graph: Path, styles: np.ndarray) -> tuple[float, float]:
    """(worst PSNR in dB, worst mean |difference| in grey levels) of the int8 graph against the
    fp32 graph over the check frames, per style."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    ref = ort.InferenceSession(str(fp32_graph), opts, providers=["CPUExecutionProvider"])
    got = ort.InferenceSession(str(int8_graph), opts, providers=["CPUExecutionProvider"])
    psnr, mean = float("inf"), 0.0
    for vec in styles:
        se, n, total = 0.0, 0, 0.0
        for feed in _feeds(_check_frames(), vec[None]):
            a = ref.run(None, feed)[0].astype(np.float64)
            b = got.run(None, feed)[0]
            if b.shape != a.shape or b.dtype != np.uint8:
                raise ParityError(f"{int8_graph.name}: output {b.dtype} {b.shape}, expected uint8 {a.shape}")
            d = a - b
            se, total, n = se + float((d * d).sum()), total + float(np.abs(d).sum()), n + d.size
        mse = max(se / n, 1e-12)
        psnr, mean = min(psnr, 10 * np.log10(255.0**2 / mse)), max(mean, total / n)
    return psnr, mean


def export_int8(fp32_graph: Path, out: Path, styles: np.ndarray, frames: Sequence[np.ndarray],
                metadata: dict[str, str], work: Path) -> Int8Report:
    """Quantise, then check; raises ``ParityError`` (and removes ``out``) when the int8 graph is off."""
    quantize_graph(fp32_graph, out, styles, frames, metadata, work)
    psnr, mean = int8_check(fp32_graph, out, styles)
    ok = psnr >= INT8_MIN_PSNR and mean <= INT8_MAX_MEAN_DIFF
    log.info("int8 check: worst style PSNR %.1f dB (at least %g), mean difference %.2f grey levels (at most %g): %s",
             psnr, INT8_MIN_PSNR, mean, INT8_MAX_MEAN_DIFF, "ok" if ok else "FAILED")
    if not ok:
        out.unlink(missing_ok=True)
        raise ParityError(f"{out.name}: the int8 graph is too far from the fp32 one (PSNR {psnr:.1f} dB, "
                          f"mean difference {mean:.2f} grey levels)")
    return Int8Report(psnr=psnr, mean_diff=mean, frames=len(frames))
