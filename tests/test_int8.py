"""The int8 graph: written by nst-export --int8, checked against the fp32 graph, run by the CPU engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime.quantization")

from stylecast.export import quantize  # noqa: E402
from stylecast.export.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from stylecast.export.cli_export import main as export_main  # noqa: E402
from stylecast.export.onnx_export import export_model_folder  # noqa: E402
from stylecast.export.transformer import build_network  # noqa: E402
from stylecast.realtime import contract as C  # noqa: E402
from stylecast.realtime.demo import demo_scene  # noqa: E402
from stylecast.realtime.engine import open_engine  # noqa: E402
from stylecast.realtime.errors import InputFileError, ParityError, UsageError  # noqa: E402
from stylecast.realtime.model_folder import load_model_folder, sha256_file  # noqa: E402


@pytest.fixture(scope="module")
def fast_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(3)
    net = build_network("fast", {"channels": 16, "residual_blocks": 1, "output": "sigmoid"})
    with torch.no_grad():  # enough contrast that quantisation has something to get wrong
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    styles = net.identity_style(3) + 0.5 * torch.randn(3, net.style_dim)
    folder = tmp_path_factory.mktemp("fast") / "ckpt"
    save_checkpoint(folder, net, styles, ["a", "b", "c"], {"step": 0})
    return folder


@pytest.fixture(scope="module")
def int8_folder(fast_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("m") / "model"
    report = export_model_folder(load_checkpoint(fast_checkpoint), out, fp16=False, overwrite=False, int8=True)
    assert report.int8 is not None and report.int8.psnr >= quantize.INT8_MIN_PSNR
    return out


def test_int8_graph_is_listed_hashed_and_quantised(int8_folder: Path) -> None:
    import onnx

    manifest = json.loads((int8_folder / C.MANIFEST_NAME).read_text())
    assert manifest["graphs"] == {"fp32": C.GRAPH_FP32, "int8": C.GRAPH_INT8}
    assert manifest["files"][C.GRAPH_INT8]["sha256"] == sha256_file(int8_folder / C.GRAPH_INT8)
    assert sorted(p.name for p in int8_folder.iterdir() if p.name.startswith(".")) == []  # no scratch files left
    model = onnx.load(str(int8_folder / C.GRAPH_INT8))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta[C.META_PRECISION] == "int8" and meta[C.META_CONTRACT] == str(C.CONTRACT_VERSION)
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    assert load_model_folder(int8_folder).graphs["int8"].name == C.GRAPH_INT8


def test_cpu_engine_runs_the_int8_graph_unless_told_fp32(int8_folder: Path) -> None:
    fast, exact = open_engine(int8_folder, device="cpu"), open_engine(int8_folder, device="cpu", precision="fp32")
    assert (fast.precision, exact.precision) == ("int8", "fp32")
    for h, w in ((360, 640), (37, 53)):
        frame = demo_scene(w, h, t=0.5)
        a, b = fast(frame), exact(frame)
        assert a.shape == b.shape == frame.shape and a.dtype == np.uint8
        assert float(np.abs(a.astype(np.int16) - b).mean()) <= quantize.INT8_MAX_MEAN_DIFF
    with pytest.raises(UsageError, match="precision"):
        open_engine(int8_folder, device="cpu", precision="int4")


def test_an_int8_graph_that_fails_the_check_leaves_nothing(fast_checkpoint: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quantize, "INT8_MIN_PSNR", 200.0)  # no 8-bit graph gets there
    with pytest.raises(ParityError, match="int8"):
        export_model_folder(load_checkpoint(fast_checkpoint), tmp_path / "m", fp16=False, overwrite=False, int8=True)
    assert not (tmp_path / "m").exists()


def test_calibration_frames_from_a_folder_and_the_cli(fast_checkpoint: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, (w, h) in enumerate(((800, 500), (300, 400), (1000, 1000))):
        cv2.imwrite(str(photos / f"p{i}.png"), demo_scene(w, h, t=i))
    frames = quantize.calibration_frames(photos, count=5)
    assert len(frames) == 3 and all(f.shape == (*quantize.CALIBRATION_SIZE, 3) and f.dtype == np.uint8 for f in frames)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputFileError, match="no image files"):
        quantize.calibration_frames(empty)
    assert export_main([str(fast_checkpoint), str(tmp_path / "x"), "--calibration-dir", str(photos)]) == UsageError.exit_code
    assert "only used with --int8" in capsys.readouterr().err
    assert export_main([str(fast_checkpoint), str(tmp_path / "m"), "--int8", "--calibration-dir", str(photos)]) == 0
    assert "int8: PSNR" in capsys.readouterr().out
    assert "int8" in load_model_folder(tmp_path / "m").graphs
