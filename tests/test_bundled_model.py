"""The model folders that ship (``default``, and ``fast``, distilled from it for CPUs): each loads,
holds the promised styles, runs, and names nothing of the machine it was made on."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from stylecast.realtime.demo import demo_scene
from stylecast.realtime.model_folder import load_model_folder
from stylecast.weights import DEFAULT_MODEL, FAST_MODEL, bundled_model_dir

REQUIRED = {"starry", "wave", "scream", "shipwreck"}


@pytest.fixture(scope="module", params=[DEFAULT_MODEL, FAST_MODEL])
def model(request):
    folder = bundled_model_dir(request.param)
    if not (folder / "manifest.json").is_file():
        pytest.fail(f"weights/{request.param} is missing: the bundled model must ship")
    return load_model_folder(folder)  # hashes, graphs and contract checked


def test_bundled_model_has_the_promised_styles(model) -> None:
    assert REQUIRED <= set(model.style_names) and len(model.style_names) >= 12
    assert set(model.graphs) == {"fp32", "fp16"}
    assert model.manifest["network"]["file"] in model.manifest["files"]  # --from can start from it


def test_the_fast_model_has_every_style_of_the_default_one() -> None:
    default, fast = load_model_folder(bundled_model_dir(DEFAULT_MODEL)), load_model_folder(bundled_model_dir(FAST_MODEL))
    assert fast.style_names == default.style_names  # its teacher's styles, in the same order
    assert fast.manifest["architecture"] == "fast" and fast.style_dim < default.style_dim


def _not_json(word: str) -> None:
    raise ValueError(f"{word} is not JSON")


def test_bundled_manifest_names_nothing_of_the_training_machine(model) -> None:
    text = (model.path / "manifest.json").read_text(encoding="utf-8")
    absolute = re.findall(r'"(/[^"]*|[A-Za-z]:\\\\[^"]*|~[^"]*)"', text)
    assert absolute == []
    record = json.loads(text, parse_constant=_not_json)["provenance"]  # strict JSON: no NaN or Infinity
    for style in record["training"].get("base_info", {}).get("styles", []) + record["training"].get("styles", []):
        assert "/" not in style["path"] and "\\" not in style["path"]


def test_bundled_graphs_carry_no_stack_traces_or_paths(model) -> None:
    """The exporter records each node's Python stack trace (absolute source paths) unless
    nst-export strips it; no shipped file may hold a path of the machine it was made on."""
    onnx = pytest.importorskip("onnx")
    for name in model.manifest["files"]:
        data = (model.path / name).read_bytes()
        assert re.search(rb'File "|/(?:home|root|work|Users|tmp)/|[A-Za-z]:\\Users', data) is None, name
        if name.endswith(".onnx"):
            graph = onnx.load_from_string(data).graph
            assert not any(node.metadata_props or node.doc_string for node in graph.node), name


def test_bundled_styles_stylise_and_differ(model) -> None:
    from stylecast.realtime.engine import StyleEngine

    frame = demo_scene(160, 96, 0.0)
    outs = {}
    with StyleEngine(model, device="cpu") as engine:
        for name in ("starry", "scream"):
            engine.set_style(name)
            outs[name] = np.ascontiguousarray(engine(frame)).astype(np.int16)
    for out in outs.values():
        assert out.shape == frame.shape and np.abs(out - frame).mean() > 15
    assert np.abs(outs["starry"] - outs["scream"]).mean() > 15
    # starry is blue, scream orange: the mean colour moves towards each painting's palette
    b, _, r = (outs["starry"].reshape(-1, 3).mean(0))
    b2, _, r2 = (outs["scream"].reshape(-1, 3).mean(0))
    assert b - r > b2 - r2 + 20
