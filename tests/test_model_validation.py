"""Model-folder validation: each kind of broken folder is refused with ModelFolderError, before any session."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from stylecast.realtime import contract as C
from stylecast.realtime import providers as P
from stylecast.realtime.engine import open_engine
from stylecast.realtime.errors import ModelFolderError
from stylecast.realtime.model_folder import load_model_folder, sha256_file


@pytest.fixture
def folder(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model folder, free to corrupt."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / C.MANIFEST_NAME).read_text())


def write_manifest(folder: Path, manifest: dict) -> None:
    (folder / C.MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))


def edit_manifest(folder: Path, change: Callable[[dict], None]) -> None:
    manifest = read_manifest(folder)
    change(manifest)
    write_manifest(folder, manifest)


def rehash(folder: Path, *names: str) -> None:
    """Record the current sha256 of ``names`` so that only the check under test can object."""
    manifest = read_manifest(folder)
    for name in names:
        p = folder / name
        manifest["files"][name] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    write_manifest(folder, manifest)


def contract_graph(path: Path, style_dim: int, *, frame_type: int = TensorProto.UINT8, extra_input: bool = False) -> Path:
    """A small hand-made graph with the contract's names and metadata (stylized = frame)."""
    inputs = [
        helper.make_tensor_value_info(C.INPUT_FRAME, frame_type, [1, "H", "W", 3]),
        helper.make_tensor_value_info(C.INPUT_STYLE, TensorProto.FLOAT, [1, style_dim]),
    ]
    if extra_input:
        inputs.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1]))
    graph = helper.make_graph(
        [helper.make_node("Identity", [C.INPUT_FRAME], [C.OUTPUT_STYLIZED])],
        "contract",
        inputs,
        [helper.make_tensor_value_info(C.OUTPUT_STYLIZED, frame_type, [1, "H", "W", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in {C.META_CONTRACT: str(C.CONTRACT_VERSION), C.META_STYLE_DIM: str(style_dim)}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def replace_graph(folder: Path, **kwargs) -> None:
    """Put a hand-made graph in place of model.onnx (and drop the fp16 graph) with matching hashes."""
    style_dim = kwargs.pop("style_dim", read_manifest(folder)["style_dim"])
    contract_graph(folder / C.GRAPH_FP32, style_dim, **kwargs)
    (folder / C.GRAPH_FP16).unlink()
    manifest = read_manifest(folder)
    manifest["graphs"] = {"fp32": C.GRAPH_FP32}
    del manifest["files"][C.GRAPH_FP16]
    write_manifest(folder, manifest)
    rehash(folder, C.GRAPH_FP32)


def refused(folder: Path, match: str) -> ModelFolderError:
    with pytest.raises(ModelFolderError, match=match) as info:
        load_model_folder(folder)
    assert info.value.exit_code == 2
    return info.value


# ---------------------------------------------------------------- positive controls


def test_the_copy_and_a_hand_made_contract_graph_are_valid(folder: Path) -> None:
    assert load_model_folder(folder).style_names == ("alpha", "beta", "gamma")
    replace_graph(folder)  # the helper alone breaks nothing: each test below changes one thing
    assert set(load_model_folder(folder).graphs) == {"fp32"}


# ---------------------------------------------------------------- manifest


def test_missing_manifest(folder: Path) -> None:
    (folder / C.MANIFEST_NAME).unlink()
    refused(folder, "manifest.json: missing")


def test_missing_folder(tmp_path: Path) -> None:
    refused(tmp_path / "nothing", "no such model folder")


def test_manifest_not_json(folder: Path) -> None:
    (folder / C.MANIFEST_NAME).write_text("{ this is not json")
    refused(folder, "not valid JSON")


def test_wrong_format_tag(folder: Path) -> None:
    edit_manifest(folder, lambda m: m.update(format="some-other-model"))
    refused(folder, "not a stylecast manifest")


def test_unsupported_contract_version(folder: Path) -> None:
    edit_manifest(folder, lambda m: m.update(contract_version=99))
    refused(folder, "contract version 99 is not supported")


def test_missing_fp32_graph_entry(folder: Path) -> None:
    edit_manifest(folder, lambda m: m.update(graphs={"fp16": C.GRAPH_FP16}))
    refused(folder, "no fp32 graph listed")


# ---------------------------------------------------------------- files


def test_hash_mismatch_after_one_flipped_byte(folder: Path) -> None:
    path = folder / C.STYLES_NAME
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    refused(folder, "styles.npz: sha256 does not match")


def test_graph_with_an_unexpected_input(folder: Path) -> None:
    replace_graph(folder, extra_input=True)
    refused(folder, r"inputs are \['extra', 'frame', 'style'\]")


def test_graph_with_external_data(folder: Path) -> None:
    model = onnx.load(str(folder / C.GRAPH_FP32))
    onnx.save(model, str(folder / C.GRAPH_FP32), save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    rehash(folder, C.GRAPH_FP32, "weights.bin")  # hashes agree: only the external-data check can object
    refused(folder, "uses external data")


def test_graph_with_a_float_frame(folder: Path) -> None:
    replace_graph(folder, frame_type=TensorProto.FLOAT)
    refused(folder, "input 'frame' has dtype FLOAT, expected UINT8")


def test_graph_with_the_wrong_style_size(folder: Path) -> None:
    s = read_manifest(folder)["style_dim"]
    replace_graph(folder, style_dim=s + 1)
    refused(folder, rf"input 'style' has shape \[1, {s + 1}\], expected \[1, {s}\]")


# ---------------------------------------------------------------- the engine validates before any session


def test_open_engine_validates_before_building_a_session(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_session(*args, **kwargs):
        raise AssertionError("a session was built for an invalid model folder")

    monkeypatch.setattr(P, "create_session", no_session)
    monkeypatch.setattr(P, "choose_provider", no_session)
    edit_manifest(folder, lambda m: m.update(contract_version=2))
    with pytest.raises(ModelFolderError, match="contract version 2"):
        open_engine(folder, device="cpu")
