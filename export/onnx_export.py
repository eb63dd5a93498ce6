"""Export a trained network to the ONNX contract (see ``stylecast.realtime.contract``), with a parity check.

``export_model_folder`` writes a whole model folder into a temporary folder, runs every graph
in ONNX Runtime on the CPU against the fp32 PyTorch network at two sizes (one odd), and only
then moves it into place: a graph that fails parity leaves nothing behind. A checkpoint that
holds a style predictor (``nst-train-predictor``) gets its graph too (``predictor.onnx``, see
the contract), checked against PyTorch in the same way.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from stylecast.realtime import contract as C
from stylecast.realtime.atomic import atomic_dir
from stylecast.realtime.errors import ParityError
from stylecast.realtime.model_folder import load_model_folder, write_manifest, write_styles

from .checkpoint import Checkpoint, save_network
from .predictor import StylePredictor, load_predictor
from .provenance import environment, public_record
from .transformer import StyleNetwork

if TYPE_CHECKING:
    from .quantize import Int8Report

log = logging.getLogger("stylecast.export")

TOLERANCE = {"fp32": 1, "fp16": 2}
"""Largest allowed difference from the fp32 PyTorch network, in grey levels."""

PARITY_SIZES = ((64, 64), (37, 53))
"""(H, W) pairs the parity check runs; one is odd on both sides."""

PREDICTOR_TOLERANCE = 1e-3
"""Largest allowed |ONNX Runtime - PyTorch| in a predicted style vector (values are O(1))."""

PREDICTOR_PARITY_SIZES = ((64, 64), (97, 131))
"""(H, W) of the images the predictor's parity check runs: the smallest allowed, and an odd one."""


class ContractWrapper(nn.Module):
    """Wraps a style network into contract version 1: uint8 BGR in, uint8 BGR out, style float32 [1, S].

    ``half=True`` runs the network in float16 (the style vector is still float32 at the
    input and is cast inside the graph). ``fold=True`` lets a network that can take the frame
    as it comes (``StyleNetwork.for_bgr255``: BGR 0..255 in, BGR 0..1 out) do so: the channel
    flips and the division by 255 then live in its first and last convolutions instead of the
    graph (same results to rounding; the parity check compares against ``fold=False``).
    """

    def __init__(self, net: StyleNetwork, half: bool = False, fold: bool = False) -> None:
        super().__init__()
        self.half_precision = half
        folded = net.for_bgr255() if fold else None
        self.bgr255 = folded is not None
        self.net = (folded if folded is not None else copy.deepcopy(net)).eval()
        if half:
            self.net = self.net.half()

    def forward(self, frame: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        dtype = torch.float16 if self.half_precision else torch.float32
        x = frame.permute(0, 3, 1, 2).to(dtype)  # NHWC uint8 -> NCHW
        if self.bgr255:
            y = self.net(x, style.to(dtype))  # BGR in [0, 1] already (a sigmoid)
            return (y * 255.0).round().permute(0, 2, 3, 1).to(torch.uint8)
        y = self.net(x.flip(1) / 255.0, style.to(dtype))  # RGB [0, 1] in and out
        return (y.clamp(0.0, 1.0) * 255.0).round().flip(1).permute(0, 2, 3, 1).to(torch.uint8)


def _name_output_dims(model: Any) -> None:
    """Give the output the input's symbolic H and W (the exporter writes an expression there)."""
    frame = next(v for v in model.graph.input if v.name == C.INPUT_FRAME)
    out = next(v for v in model.graph.output if v.name == C.OUTPUT_STYLIZED)
    for i in (1, 2):
        src = frame.type.tensor_type.shape.dim[i]
        dst = out.type.tensor_type.shape.dim[i]
        dst.Clear()
        dst.dim_param = src.dim_param or ("H" if i == 1 else "W")


def _to_onnx(module: nn.Module, args: tuple[torch.Tensor, ...], inputs: list[str], outputs: list[str], dynamic_shapes: Any) -> Any:
    """``module`` exported with the dynamo exporter, quietly; returns the ModelProto."""
    noise = io.StringIO()
    # The exporter prints progress to stdout and warns about torchvision operators we never use.
    quiet_loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnx_ir", "onnxscript")]
    levels = [lg.level for lg in quiet_loggers]
    for lg in quiet_loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(noise):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                args,
                None,
                input_names=inputs,
                output_names=outputs,
                dynamic_shapes=dynamic_shapes,
                dynamo=True,
                verbose=False,
            )
    finally:  # a failed export must not leave the caller's loggers silenced
        for lg, level in zip(quiet_loggers, levels, strict=True):
            lg.setLevel(level)
    log.debug(noise.getvalue())
    return program.model_proto


def strip_debug_info(model: Any) -> Any:
    """Remove what the exporter records for debugging from ``model`` (in place) and return it:
    the doc strings and metadata of every graph, node, function and value, which hold the Python
    stack trace of each node with the absolute paths of the machine that exported it. The
    model's own ``metadata_props`` (the contract's keys) are left alone."""

    def clear(entry: Any) -> None:
        if hasattr(entry, "metadata_props"):
            del entry.metadata_props[:]
        if hasattr(entry, "doc_string"):
            entry.doc_string = ""

    def clear_graph(graph: Any) -> None:
        clear(graph)
        for value in (*graph.input, *graph.output, *graph.value_info, *graph.initializer):
            clear(value)
        clear_nodes(graph.node)

    def clear_nodes(nodes: Any) -> None:
        for node in nodes:
            clear(node)
            for attribute in node.attribute:
                clear(attribute)
                for sub in (*([attribute.g] if attribute.HasField("g") else []), *attribute.graphs):
                    clear_graph(sub)

    model.doc_string = ""
    clear_graph(model.graph)
    for function in model.functions:
        clear(function)
        clear_nodes(function.node)
    return model


def save_graph(model: Any, path: Path, metadata: dict[str, str]) -> Path:
    """Write ``model`` with ``metadata`` as its metadata_props, as one self-contained file, without
    the exporter's debugging records (:func:`strip_debug_info`)."""
    import onnx

    strip_debug_info(model)
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path), save_as_external_data=False)
    return path


def export_graph(net: StyleNetwork, path: Path, *, half: bool, metadata: dict[str, str]) -> Path:
    """Export ``net`` to one self-contained ONNX file at ``path`` with ``metadata`` in metadata_props."""
    wrapper = ContractWrapper(net, half=half, fold=True)
    frame = torch.zeros(1, 64, 48, 3, dtype=torch.uint8)
    style = torch.zeros(1, net.style_dim, dtype=torch.float32)
    dims = {1: torch.export.Dim("H", min=C.MIN_SIDE), 2: torch.export.Dim("W", min=C.MIN_SIDE)}
    model = _to_onnx(wrapper, (frame, style), [C.INPUT_FRAME, C.INPUT_STYLE], [C.OUTPUT_STYLIZED], {"frame": dims, "style": None})
    _name_output_dims(model)
    return save_graph(model, path, metadata)


class PredictorWrapper(nn.Module):
    """Wraps a style predictor into its contract: ``style_image`` uint8 BGR [1, H, W, 3] in,
    ``style`` float32 [1, S] out."""

    def __init__(self, predictor: StylePredictor) -> None:
        super().__init__()
        self.predictor = copy.deepcopy(predictor).float().eval()

    def forward(self, style_image: torch.Tensor) -> torch.Tensor:
        x = style_image.permute(0, 3, 1, 2).float().flip(1) / 255.0  # NHWC BGR uint8 -> NCHW RGB [0, 1]
        return self.predictor(x)


def export_predictor_graph(predictor: StylePredictor, path: Path, *, metadata: dict[str, str]) -> Path:
    """Export ``predictor`` to one self-contained ONNX file (the predictor contract) at ``path``."""
    image = torch.zeros(1, 96, 80, 3, dtype=torch.uint8)
    dims = {1: torch.export.Dim("H", min=C.PREDICTOR_MIN_SIDE), 2: torch.export.Dim("W", min=C.PREDICTOR_MIN_SIDE)}
    model = _to_onnx(PredictorWrapper(predictor), (image,), [C.INPUT_STYLE_IMAGE], [C.OUTPUT_STYLE], {"style_image": dims})
    return save_graph(model, path, metadata)


def predictor_parity_check(predictor: StylePredictor, graph: Path, seed: int = 0) -> float:
    """Largest |ONNX Runtime - PyTorch| of the predicted vector over PREDICTOR_PARITY_SIZES."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])
    reference = PredictorWrapper(predictor)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for h, w in PREDICTOR_PARITY_SIZES:
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([np.sin(xx / 5.0), np.cos(yy / 7.0), np.sin((xx + yy) / 3.0)], axis=-1) * 100 + 128
        image = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)[None]
        got = session.run(None, {C.INPUT_STYLE_IMAGE: image})[0]
        with torch.no_grad():
            want = reference(torch.from_numpy(image)).numpy()
        if got.shape != want.shape or got.dtype != np.float32:
            raise ParityError(f"{graph.name}: output {got.dtype} {got.shape}, expected float32 {want.shape}")
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


def _export_predictor(predictor: StylePredictor, path: Path, meta_common: dict[str, str], outdir: Path) -> float:
    log.info("exporting the style-prediction graph...")
    meta = {**meta_common, C.META_PRECISION: "fp32", C.META_ARCHITECTURE: "predictor-vgg-stats",
            C.META_PREDICTOR_SIDE: str(predictor.side)}
    export_predictor_graph(predictor, path, metadata=meta)
    diff = predictor_parity_check(predictor, path)
    ok = diff <= PREDICTOR_TOLERANCE
    log.info("parity predictor: max difference from PyTorch %.2g at sizes %s (allowed %g): %s", diff,
             ", ".join(f"{w}x{h}" for h, w in PREDICTOR_PARITY_SIZES), PREDICTOR_TOLERANCE, "ok" if ok else "FAILED")
    if not ok:
        raise ParityError(f"{path.name}: ONNX Runtime differs from PyTorch by {diff:.3g} (allowed {PREDICTOR_TOLERANCE:g}); "
                          f"nothing was written to {outdir}")
    return diff


def parity_frame(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth colour ramp with some noise, BGR uint8 [h, w, 3]: closer to photos than pure noise,
    still covering 0..255."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, (xx + yy) / (h + w)], axis=-1) * 255
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def parity_check(net: StyleNetwork, graph: Path, styles: torch.Tensor, seed: int = 0) -> int:
    """Largest |ONNX Runtime - PyTorch fp32| in grey levels over PARITY_SIZES and up to two styles."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])
    reference = ContractWrapper(net, half=False)
    rng = np.random.default_rng(seed)
    worst = 0
    for h, w in PARITY_SIZES:
        # A smooth image with some noise: closer to photos than pure noise, still covers 0..255.
        frame = parity_frame(h, w, rng)[None]
        for vec in styles[:2]:
            style = vec[None].float().numpy()
            got = session.run(None, {C.INPUT_FRAME: frame, C.INPUT_STYLE: style})[0]
            with torch.no_grad():
                want = reference(torch.from_numpy(frame), torch.from_numpy(style)).numpy()
            if got.shape != want.shape or got.dtype != np.uint8:
                raise ParityError(f"{graph.name}: output {got.dtype} {got.shape}, expected uint8 {want.shape}")
            worst = max(worst, int(np.abs(got.astype(np.int16) - want.astype(np.int16)).max()))
    return worst


@dataclass(frozen=True)
class ExportReport:
    folder: Path
    max_diff: dict[str, int]  # precision -> grey levels
    predictor_diff: float | None = None  # max |difference| of the predicted vector, when exported
    int8: Int8Report | None = None  # the int8 graph's check against the fp32 graph, when written


def export_model_folder(
    checkpoint: Checkpoint, outdir: Path | str, *, fp16: bool, overwrite: bool, predictor: bool = True,
    int8: bool = False, calibration: Sequence[np.ndarray] | None = None,
) -> ExportReport:
    """Write a model folder for ``checkpoint`` at ``outdir``; nothing is left there if parity fails.

    ``predictor``: also export the checkpoint's style predictor, when it holds one.
    ``int8``: also write the int8 graph (``quantize.py``), calibrated on ``calibration`` frames
    (BGR uint8; generated scenes when None)."""
    net, styles = checkpoint.net.float().eval(), checkpoint.styles.float()
    style_predictor = load_predictor(checkpoint) if predictor else None
    provenance = public_record({
        "training": {k: v for k, v in checkpoint.info.items() if k not in ("format", "version", "tensors_sha256")},
        "export": environment(),
    })
    meta_common = {
        C.META_CONTRACT: str(C.CONTRACT_VERSION),
        C.META_STYLE_DIM: str(net.style_dim),
        C.META_ARCHITECTURE: net.arch_name,
        C.META_PROVENANCE: json.dumps(provenance, sort_keys=True, allow_nan=False),
    }
    precisions = {"fp32": C.GRAPH_FP32, **({"fp16": C.GRAPH_FP16} if fp16 else {})}
    diffs: dict[str, int] = {}
    int8_report = None
    outdir = Path(outdir)
    with atomic_dir(outdir, overwrite=overwrite, inputs=[checkpoint.folder] if checkpoint.folder else []) as tmp:
        for precision, name in precisions.items():
            log.info("exporting the %s graph...", precision)
            export_graph(net, tmp / name, half=precision == "fp16", metadata={**meta_common, C.META_PRECISION: precision})
            diffs[precision] = parity_check(net, tmp / name, styles)
            verdict = "ok" if diffs[precision] <= TOLERANCE[precision] else "FAILED"
            log.info(
                "parity %s: max difference from PyTorch %d grey level(s) at sizes %s (allowed %d): %s",
                precision, diffs[precision], ", ".join(f"{w}x{h}" for h, w in PARITY_SIZES), TOLERANCE[precision], verdict,
            )
            if diffs[precision] > TOLERANCE[precision]:
                raise ParityError(
                    f"{name}: ONNX Runtime differs from PyTorch by {diffs[precision]} grey levels "
                    f"(allowed {TOLERANCE[precision]}); nothing was written to {outdir}"
                )
        if int8:
            from .quantize import calibration_frames, export_int8  # only this path needs onnxruntime.quantization

            log.info("exporting the int8 graph (calibrating on %s)...", "the given frames" if calibration else "generated scenes")
            work = tmp / ".int8-work"
            int8_report = export_int8(tmp / C.GRAPH_FP32, tmp / C.GRAPH_INT8, styles.numpy(),
                                      calibration if calibration else calibration_frames(None),
                                      {**meta_common, C.META_PRECISION: "int8"}, work)
            shutil.rmtree(work, ignore_errors=True)
            precisions["int8"] = C.GRAPH_INT8
        predictor_diff = None
        if style_predictor is not None:
            predictor_diff = _export_predictor(style_predictor, tmp / C.PREDICTOR_GRAPH, meta_common, outdir)
        write_styles(tmp, checkpoint.style_names, styles.numpy())
        save_network(tmp / C.NETWORK_WEIGHTS, net)
        write_manifest(
            tmp,
            style_names=checkpoint.style_names,
            style_dim=net.style_dim,
            graphs=precisions,
            architecture=net.arch_name,
            provenance=provenance,
            predictor=C.PREDICTOR_GRAPH if style_predictor is not None else None,
            network={"file": C.NETWORK_WEIGHTS, "architecture": net.arch_name, "config": net.config()},
        )
        load_model_folder(tmp)  # the folder must pass the runtime's own checks before it is moved into place
    return ExportReport(folder=outdir, max_diff=diffs, predictor_diff=predictor_diff, int8=int8_report)
