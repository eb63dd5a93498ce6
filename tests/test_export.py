"""The network, checkpoints and nst-export: sizes, parity, styles, manifest, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from conftest import TINY_ARCH  # noqa: E402

from stylecast.export.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from stylecast.export.cli_export import main as export_main  # noqa: E402
from stylecast.export.onnx_export import ContractWrapper  # noqa: E402
from stylecast.export.transformer import JohnsonNet, build_network  # noqa: E402
from stylecast.realtime import contract as C  # noqa: E402
from stylecast.realtime.errors import CheckpointError, ModelFolderError, UsageError  # noqa: E402
from stylecast.realtime.model_folder import load_model_folder, sha256_file  # noqa: E402


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("h,w", [(16, 16), (17, 23), (33, 64), (50, 31)])
def test_network_keeps_exact_size_for_odd_sizes(h: int, w: int) -> None:
    net = build_network("johnson", TINY_ARCH).eval()
    with torch.no_grad():
        y = net(torch.rand(2, 3, h, w), net.identity_style(2))
    assert y.shape == (2, 3, h, w)


def test_full_johnson_shape_and_style_layout() -> None:
    net = JohnsonNet()
    layout = net.style_layout()
    # 3 down norms + 2 per residual block * 5 + 2 up norms, each [gamma, beta]
    assert len(layout) == 3 + 10 + 2
    assert net.style_dim == 2 * sum(c for _, c in layout) == 3200
    assert [type(m).__name__ for m in (net.conv1.conv, net.conv_out.conv)] == ["Conv2d", "Conv2d"]
    assert net.conv1.conv.kernel_size == (9, 9) and net.conv_out.conv.kernel_size == (9, 9)
    assert net.conv2.conv.stride == (2, 2) and net.conv3.conv.stride == (2, 2)


@pytest.mark.parametrize("h,w", [(16, 16), (31, 47), (64, 33)])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_graph_output_is_input_size_and_matches_pytorch(tiny_model_dir: Path, tiny_checkpoint: Path, precision: str, h: int, w: int) -> None:
    model = load_model_folder(tiny_model_dir)
    sess = _session(model.graphs[precision])
    rng = np.random.default_rng(h * w)
    frame = rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8)
    style = model.style_vectors[1:2]
    got = sess.run(None, {C.INPUT_FRAME: frame, C.INPUT_STYLE: style})[0]
    assert got.dtype == np.uint8 and got.shape == (1, h, w, 3)
    ckpt = load_checkpoint(tiny_checkpoint)
    with torch.no_grad():
        want = ContractWrapper(ckpt.net).eval()(torch.from_numpy(frame), torch.from_numpy(style)).numpy()
    diff = np.abs(got.astype(int) - want.astype(int)).max()
    assert diff <= (1 if precision == "fp32" else 2)


def test_different_style_vectors_give_different_outputs(tiny_model_dir: Path) -> None:
    model = load_model_folder(tiny_model_dir)
    sess = _session(model.graphs["fp32"])
    frame = np.random.default_rng(0).integers(0, 256, (1, 40, 40, 3), dtype=np.uint8)
    outs = [sess.run(None, {"frame": frame, "style": v[None]})[0] for v in model.style_vectors]
    for i in range(len(outs)):
        for j in range(i + 1, len(outs)):
            assert np.abs(outs[i].astype(int) - outs[j].astype(int)).mean() > 1.0


def test_manifest_hashes_and_metadata(tiny_model_dir: Path) -> None:
    manifest = json.loads((tiny_model_dir / C.MANIFEST_NAME).read_text())
    assert manifest["contract_version"] == C.CONTRACT_VERSION
    assert manifest["styles"] == ["alpha", "beta", "gamma"]
    assert set(manifest["files"]) == {C.GRAPH_FP32, C.GRAPH_FP16, C.STYLES_NAME, C.NETWORK_WEIGHTS}
    for name, entry in manifest["files"].items():
        assert sha256_file(tiny_model_dir / name) == entry["sha256"]
        assert (tiny_model_dir / name).stat().st_size == entry["bytes"]
    for precision, name in manifest["graphs"].items():
        model = onnx.load(str(tiny_model_dir / name))
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta[C.META_CONTRACT] == "1"
        assert meta[C.META_STYLE_DIM] == str(manifest["style_dim"])
        assert meta[C.META_PRECISION] == precision
        assert "training" in json.loads(meta[C.META_PROVENANCE])
        # the exporter's debugging records (each node's stack trace, with this machine's paths) are gone
        assert not any(node.metadata_props or node.doc_string for node in model.graph.node)
        assert b'File "' not in (tiny_model_dir / name).read_bytes()
        # one self-contained file: no tensor lives outside it
        assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
        assert not list(tiny_model_dir.glob("*.data"))
    with np.load(tiny_model_dir / C.STYLES_NAME, allow_pickle=False) as data:
        assert list(data["names"]) == manifest["styles"]
        assert data["vectors"].dtype == np.float32 and data["vectors"].shape == (3, manifest["style_dim"])


def test_tampered_file_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m"
    shutil.copytree(tiny_model_dir, copy)
    data = bytearray((copy / C.GRAPH_FP32).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / C.GRAPH_FP32).write_bytes(bytes(data))
    with pytest.raises(ModelFolderError, match="sha256"):
        load_model_folder(copy)


def test_checkpoint_roundtrip_and_corruption(tmp_path: Path) -> None:
    net = build_network("johnson", TINY_ARCH)
    styles = net.identity_style(2)
    save_checkpoint(tmp_path / "c", net, styles, ["a", "b"], {"step": 5})
    ck = load_checkpoint(tmp_path / "c")
    assert ck.step == 5 and ck.style_names == ["a", "b"]
    for k, v in net.state_dict().items():
        assert torch.equal(v, ck.net.state_dict()[k])
    # a byte flipped in the tensors: the recorded hash no longer matches
    t = tmp_path / "c" / "checkpoint.safetensors"
    raw = bytearray(t.read_bytes())
    raw[-1] ^= 1
    t.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(tmp_path / "c")


def test_nst_export_cli_writes_a_valid_folder(tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model"
    assert export_main([str(tiny_checkpoint), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fp32: max difference from PyTorch" in printed
    model = load_model_folder(out)
    assert set(model.graphs) == {"fp32"}
    # exists now: refused without --overwrite, nothing changed
    before = sha256_file(out / C.MANIFEST_NAME)
    assert export_main([str(tiny_checkpoint), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--overwrite" in err and err.count("\n") == 1
    assert sha256_file(out / C.MANIFEST_NAME) == before


def test_failed_parity_leaves_nothing(tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import stylecast.export.onnx_export as ox

    monkeypatch.setitem(ox.TOLERANCE, "fp32", -1)  # any graph now "fails"
    out = tmp_path / "model"
    assert export_main([str(tiny_checkpoint), str(out)]) == 2
    assert "differs from PyTorch" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no folder, no temporary folder


@pytest.mark.parametrize("kind", ["missing", "empty_dir", "text", "foreign", "truncated"])
def test_bad_checkpoints_exit_2(kind: str, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad"
    if kind == "empty_dir":
        bad.mkdir()
    elif kind == "text":
        bad.mkdir()
        (bad / "checkpoint.json").write_text("hello")
        (bad / "checkpoint.safetensors").write_text("world")
    elif kind == "foreign":
        from safetensors.torch import save_file

        shutil.copytree(tiny_checkpoint, bad)
        save_file({"foo": torch.zeros(3)}, str(bad / "checkpoint.safetensors"))
        info = json.loads((bad / "checkpoint.json").read_text())
        info["tensors_sha256"] = sha256_file(bad / "checkpoint.safetensors")
        (bad / "checkpoint.json").write_text(json.dumps(info))
    elif kind == "truncated":
        shutil.copytree(tiny_checkpoint, bad)
        t = bad / "checkpoint.safetensors"
        t.write_bytes(t.read_bytes()[:100])
    out = tmp_path / "out"
    assert export_main([str(bad), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_help_and_version_subprocess() -> None:
    for args in (["--help"], ["--version"]):
        r = subprocess.run([sys.executable, "-c", "from stylecast.export.cli_export import main; main()", *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    assert "parity" in r.stdout or "stylecast" in r.stdout


def test_fast_architecture_exports_and_matches(tmp_path: Path) -> None:
    """The space-to-depth network: any size in, same size out, parity, rebuilt from its checkpoint."""
    from stylecast.export.onnx_export import export_model_folder

    torch.manual_seed(1)
    net = build_network("fast", {"channels": 16, "residual_blocks": 2})
    save_checkpoint(tmp_path / "c", net, net.identity_style(2) + 0.3 * torch.randn(2, net.style_dim), ["a", "b"], {"step": 0})
    report = export_model_folder(load_checkpoint(tmp_path / "c"), tmp_path / "m", fp16=False, overwrite=False)
    assert report.max_diff["fp32"] <= 1
    model = load_model_folder(tmp_path / "m")
    assert model.manifest["architecture"] == "fast"
    sess = _session(model.graphs["fp32"])
    for h, w in ((16, 16), (19, 35)):
        frame = np.random.default_rng(h).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
        assert sess.run(None, {"frame": frame, "style": model.style_vectors[:1]})[0].shape == (1, h, w, 3)


def test_fast_network_with_a_sigmoid_output_remaps_colours_and_starts_without_checkerboard(tmp_path: Path) -> None:
    """output="sigmoid": the picture comes from the head alone (a residual student cannot cancel the
    input's colours), it is a valid colour before the export's clamp, and it exports with parity.
    The ICNR head gives the 16 sub-pixels of every 4x4 block the same start."""
    from stylecast.export.onnx_export import export_model_folder

    torch.manual_seed(2)
    net = build_network("fast", {"channels": 16, "residual_blocks": 2, "output": "sigmoid"})
    assert net.config()["output"] == "sigmoid"
    styles = net.identity_style(2) + 0.3 * torch.randn(2, net.style_dim)
    x = torch.rand(1, 3, 24, 28)
    with torch.no_grad():
        y = net(x, styles[:1])
        assert y.shape == x.shape and float(y.min()) > 0 and float(y.max()) < 1
        # At initialisation the head's sub-pixels agree: each 4x4 block of its output is flat.
        head = torch.nn.functional.pixel_shuffle(net.head(torch.randn(1, 16, 6, 7)), 4)
        blocks = head.unfold(2, 4, 4).unfold(3, 4, 4)
        assert float((blocks - blocks[..., :1, :1]).abs().max()) < 1e-6
        # The output does not follow the input's level the way the residual form does.
        dark, bright = net(torch.zeros_like(x), styles[:1]), net(torch.ones_like(x), styles[:1])
        assert float((bright - dark).abs().mean()) < 0.5
    save_checkpoint(tmp_path / "c", net, styles, ["a", "b"], {"step": 0})
    report = export_model_folder(load_checkpoint(tmp_path / "c"), tmp_path / "m", fp16=True, overwrite=False)
    assert report.max_diff["fp32"] <= 1 and report.max_diff["fp16"] <= 2
    # A checkpoint made before the option existed (no "output" in its settings) keeps the residual form.
    assert build_network("fast", {"channels": 16, "residual_blocks": 2}).config()["output"] == "residual"
    with pytest.raises(UsageError, match="unknown output layer"):
        build_network("fast", {"output": "tanh"})


@pytest.mark.parametrize("reflect", [False, True])
def test_fast_sigmoid_network_exports_with_the_frame_handling_in_its_weights(reflect: bool, tmp_path: Path) -> None:
    """for_bgr255: the BGR flips and the 1/255 move into the first and last convolutions; the
    contract's output stays the same to a grey level, in PyTorch and in the exported graph (the
    export's parity check compares it with the unfolded network)."""
    from stylecast.export.onnx_export import ContractWrapper, export_model_folder

    torch.manual_seed(3)
    net = build_network("fast", {"channels": 16, "residual_blocks": 2, "output": "sigmoid", "reflect": reflect}).eval()
    for p in net.parameters():  # away from the ICNR start, so that the colour groups differ
        p.data.add_(0.2 * torch.randn_like(p))
    style = (net.identity_style(1) + 0.3 * torch.randn(1, net.style_dim))
    frame = torch.from_numpy(np.random.default_rng(4).integers(0, 256, (1, 21, 30, 3), dtype=np.uint8))
    unfolded, folding = ContractWrapper(net), ContractWrapper(net, fold=True)
    assert folding.bgr255 and not unfolded.bgr255
    with torch.no_grad():
        plain, folded = unfolded(frame, style), folding(frame, style)
    assert int((plain.int() - folded.int()).abs().max()) <= 1
    assert float((plain.float() - plain.flip(-1).float()).abs().mean()) > 1  # the colours are not symmetric
    # the exported graph (folded) against the unfolded PyTorch network: the export's own parity check
    save_checkpoint(tmp_path / "c", net, style.repeat(2, 1), ["a", "b"], {"step": 0})
    report = export_model_folder(load_checkpoint(tmp_path / "c"), tmp_path / "m", fp16=True, overwrite=False)
    assert report.max_diff["fp32"] <= 1 and report.max_diff["fp16"] <= 2
    # the residual output adds the input itself, and the Johnson network keeps the graph's conversion
    assert build_network("fast", {"channels": 8, "residual_blocks": 1}).for_bgr255() is None
    assert build_network("johnson", {"channels": [8, 16, 16], "residual_blocks": 1}).for_bgr255() is None
