"""Model folders: the graphs, style vectors and manifest that ``nst-export`` writes and the runtime runs.

The layout and the tensor contract are defined in ``contract.py``. Loading checks, before any
ONNX Runtime session exists: the manifest is present and well formed, every listed file's
sha256 matches, each graph is one self-contained file under the size cap with exactly the
contract's inputs and outputs, and the contract version is one this runtime supports.
An optional style-prediction graph (``predictor`` in the manifest) is checked against its
own contract (see ``contract.py``) in the same way.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import contract as C
from .errors import ModelFolderError


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelFolder:
    """A validated model folder."""

    path: Path
    manifest: dict[str, Any]
    style_names: tuple[str, ...]
    style_vectors: np.ndarray  # float32 [N, S]
    graphs: dict[str, Path]  # precision (one of contract.PRECISIONS) -> graph file
    predictor: Path | None = None  # the style-prediction graph, when the folder has one

    @property
    def style_dim(self) -> int:
        return int(self.style_vectors.shape[1])

    @property
    def contract_version(self) -> int:
        return int(self.manifest["contract_version"])

    def style_index(self, key: str | int) -> int:
        """Index of a style given by name or by 0-based index (an int, or a string of digits)."""
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            i = int(key)
            if not 0 <= i < len(self.style_names):
                raise ModelFolderError(f"style index {i} is out of range: this model has {len(self.style_names)} styles (0..{len(self.style_names) - 1})")
            return i
        if key in self.style_names:
            return self.style_names.index(key)
        raise ModelFolderError(f"unknown style {key!r}; this model has: {', '.join(self.style_names)}")


# ---------------------------------------------------------------- writing (used by nst-export)


def write_styles(folder: Path, names: list[str], vectors: np.ndarray) -> Path:
    """Write ``styles.npz`` (``names`` unicode [N], ``vectors`` float32 [N, S])."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(names):
        raise ValueError(f"style vectors {vectors.shape} do not match {len(names)} names")
    path = folder / C.STYLES_NAME
    with open(path, "wb") as f:
        np.savez(f, names=np.array(names, dtype=np.str_), vectors=vectors)
    return path


def write_manifest(
    folder: Path,
    *,
    style_names: list[str],
    style_dim: int,
    graphs: dict[str, str],
    architecture: str,
    provenance: dict[str, Any],
    predictor: str | None = None,
    network: dict[str, Any] | None = None,
) -> Path:
    """Write ``manifest.json`` listing every file in ``folder`` with its sha256 and size.

    ``predictor``: the file name of the style-prediction graph, if the folder has one.
    ``network``: ``{"file", "architecture", "config"}`` of the PyTorch weights, if written."""
    files = {
        p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != C.MANIFEST_NAME
    }
    manifest = {
        "format": C.MANIFEST_FORMAT,
        "contract_version": C.CONTRACT_VERSION,
        "architecture": architecture,
        "style_dim": style_dim,
        "styles": list(style_names),
        "style_vectors": C.STYLES_NAME,
        "graphs": graphs,
        **({"predictor": predictor} if predictor is not None else {}),
        **({"network": network} if network is not None else {}),
        "provenance": provenance,
        "files": files,
    }
    path = folder / C.MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- reading and validation


def _fail(path: Path, what: str) -> ModelFolderError:
    return ModelFolderError(f"{path}: {what}")


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / C.MANIFEST_NAME
    if not folder.exists():
        raise _fail(folder, "no such model folder")
    if not folder.is_dir():
        raise _fail(folder, "not a model folder (expected a folder holding manifest.json)")
    if not path.is_file():
        raise _fail(path, "missing: not a model folder (run nst-export to make one)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, f"not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != C.MANIFEST_FORMAT:
        raise _fail(path, f"not a stylecast manifest (format is not {C.MANIFEST_FORMAT!r})")
    version = manifest.get("contract_version")
    if version not in C.SUPPORTED_CONTRACT_VERSIONS:
        raise _fail(path, f"contract version {version!r} is not supported by this runtime (supported: {C.SUPPORTED_CONTRACT_VERSIONS}); upgrade stylecast")
    for key, kind in (("styles", list), ("style_dim", int), ("graphs", dict), ("files", dict)):
        if not isinstance(manifest.get(key), kind):
            raise _fail(path, f"field {key!r} is missing or not a {kind.__name__}")
    return manifest


def _verify_hashes(folder: Path, manifest: dict[str, Any]) -> None:
    listed = manifest["files"]
    needed = set(manifest["graphs"].values()) | {manifest.get("style_vectors", C.STYLES_NAME)}
    if isinstance(manifest.get("predictor"), str):
        needed.add(manifest["predictor"])
    for name in sorted(needed - set(listed)):
        raise _fail(folder / C.MANIFEST_NAME, f"{name} is used but has no sha256 entry")
    for name, entry in sorted(listed.items()):
        p = folder / name
        if Path(name).name != name:
            raise _fail(folder / C.MANIFEST_NAME, f"file entry {name!r} must be a plain file name")
        if not p.is_file():
            raise _fail(p, "listed in manifest.json but missing")
        expected = entry.get("sha256") if isinstance(entry, dict) else None
        if sha256_file(p) != expected:
            raise _fail(p, "sha256 does not match manifest.json: the file is corrupt or was changed")


def _load_styles(path: Path, manifest: dict[str, Any]) -> tuple[tuple[str, ...], np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            names = tuple(str(n) for n in data["names"])
            vectors = np.asarray(data["vectors"])
    except (OSError, ValueError, KeyError) as exc:
        raise _fail(path, f"not a readable style file ({exc})") from exc
    if vectors.dtype != np.float32 or vectors.ndim != 2:
        raise _fail(path, f"style vectors must be float32 [N, S], got {vectors.dtype} {vectors.shape}")
    if names != tuple(manifest["styles"]):
        raise _fail(path, "style names differ from manifest.json")
    if vectors.shape != (len(names), manifest["style_dim"]):
        raise _fail(path, f"style vectors {vectors.shape} do not match {len(names)} styles of size {manifest['style_dim']}")
    if not len(names):
        raise _fail(path, "the model has no styles")
    if not np.all(np.isfinite(vectors)):
        raise _fail(path, "style vectors contain NaN or infinity")
    return names, vectors


def _load_graph(path: Path) -> Any:
    """The ONNX model at ``path`` (no external data), after the file checks every graph gets."""
    import onnx  # imported here: only loading a model needs it

    if not path.is_file():
        raise _fail(path, "graph file missing")
    size = path.stat().st_size
    if size > C.MAX_GRAPH_BYTES:
        raise _fail(path, f"graph is {size / 2**20:.0f} MB, over the {C.MAX_GRAPH_BYTES // 2**20} MB cap")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several unrelated types
        raise _fail(path, f"not a readable ONNX file ({type(exc).__name__})") from exc
    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise _fail(path, f"uses external data (tensor {init.name!r}); graphs must be one self-contained file")
    return model


def _graph_io(model: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    init_names = {i.name for i in model.graph.initializer}
    inputs = {v.name: v for v in model.graph.input if v.name not in init_names}
    return inputs, {v.name: v for v in model.graph.output}


def _check_value(path: Path, v: Any, dtype: int, dims: list[int | None], what: str) -> None:
    """``v`` (a graph input or output) has ``dtype`` and the shape ``dims`` (None = any size)."""
    import onnx

    t = v.type.tensor_type
    if t.elem_type != dtype:
        raise _fail(path, f"{what} {v.name!r} has dtype {onnx.TensorProto.DataType.Name(t.elem_type)}, expected {onnx.TensorProto.DataType.Name(dtype)}")
    shape = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    if len(shape) != len(dims):
        raise _fail(path, f"{what} {v.name!r} has rank {len(shape)}, expected {len(dims)}")
    for got, want in zip(shape, dims, strict=True):
        if want is not None and got != want:
            raise _fail(path, f"{what} {v.name!r} has shape {shape}, expected {dims} (None = any)")


def _check_metadata(path: Path, model: Any, style_dim: int) -> dict[str, str]:
    meta = {p.key: p.value for p in model.metadata_props}
    version = meta.get(C.META_CONTRACT)
    if version is None or not version.isdigit() or int(version) not in C.SUPPORTED_CONTRACT_VERSIONS:
        raise _fail(path, f"metadata {C.META_CONTRACT} is {version!r}; supported: {C.SUPPORTED_CONTRACT_VERSIONS}")
    if meta.get(C.META_STYLE_DIM) != str(style_dim):
        raise _fail(path, f"metadata {C.META_STYLE_DIM} is {meta.get(C.META_STYLE_DIM)!r}, manifest says {style_dim}")
    return meta


def validate_graph(path: Path, style_dim: int) -> dict[str, str]:
    """Check one graph against the contract without creating a session; return its metadata."""
    import onnx

    model = _load_graph(path)
    inputs, outputs = _graph_io(model)
    if set(inputs) != {C.INPUT_FRAME, C.INPUT_STYLE}:
        raise _fail(path, f"inputs are {sorted(inputs)}, expected ['{C.INPUT_FRAME}', '{C.INPUT_STYLE}']")
    if set(outputs) != {C.OUTPUT_STYLIZED}:
        raise _fail(path, f"outputs are {sorted(outputs)}, expected ['{C.OUTPUT_STYLIZED}']")
    _check_value(path, inputs[C.INPUT_FRAME], onnx.TensorProto.UINT8, [1, None, None, 3], "input")
    _check_value(path, inputs[C.INPUT_STYLE], onnx.TensorProto.FLOAT, [1, style_dim], "input")
    _check_value(path, outputs[C.OUTPUT_STYLIZED], onnx.TensorProto.UINT8, [1, None, None, 3], "output")
    return _check_metadata(path, model, style_dim)


def validate_predictor_graph(path: Path, style_dim: int) -> dict[str, str]:
    """Check a style-prediction graph against its contract (``style_image`` uint8 [1, H, W, 3]
    in, ``style`` float32 [1, S] out, S = ``style_dim``) without a session; return its metadata."""
    import onnx

    model = _load_graph(path)
    inputs, outputs = _graph_io(model)
    if set(inputs) != {C.INPUT_STYLE_IMAGE}:
        raise _fail(path, f"inputs are {sorted(inputs)}, expected ['{C.INPUT_STYLE_IMAGE}']")
    if set(outputs) != {C.OUTPUT_STYLE}:
        raise _fail(path, f"outputs are {sorted(outputs)}, expected ['{C.OUTPUT_STYLE}']")
    _check_value(path, inputs[C.INPUT_STYLE_IMAGE], onnx.TensorProto.UINT8, [1, None, None, 3], "input")
    _check_value(path, outputs[C.OUTPUT_STYLE], onnx.TensorProto.FLOAT, [1, style_dim], "output")
    meta = _check_metadata(path, model, style_dim)
    side = meta.get(C.META_PREDICTOR_SIDE, "")
    if not side.isdigit() or int(side) < C.PREDICTOR_MIN_SIDE:
        raise _fail(path, f"metadata {C.META_PREDICTOR_SIDE} is {side!r}; expected a whole number >= {C.PREDICTOR_MIN_SIDE}")
    return meta


def load_model_folder(path: Path | str) -> ModelFolder:
    """Read and fully validate a model folder; raises ModelFolderError naming the file at fault."""
    folder = Path(path)
    manifest = _read_manifest(folder)
    _verify_hashes(folder, manifest)
    names, vectors = _load_styles(folder / manifest.get("style_vectors", C.STYLES_NAME), manifest)
    graphs: dict[str, Path] = {}
    for precision, name in manifest["graphs"].items():
        if precision not in C.PRECISIONS or not isinstance(name, str):
            raise _fail(folder / C.MANIFEST_NAME, f"unknown graph entry {precision!r}")
        graphs[precision] = folder / name
        validate_graph(graphs[precision], manifest["style_dim"])
    if "fp32" not in graphs:
        raise _fail(folder / C.MANIFEST_NAME, "no fp32 graph listed")
    predictor = manifest.get("predictor")
    if predictor is not None:
        if not isinstance(predictor, str):
            raise _fail(folder / C.MANIFEST_NAME, f"the predictor entry must be a file name, not {predictor!r}")
        validate_predictor_graph(folder / predictor, manifest["style_dim"])
    return ModelFolder(
        path=folder, manifest=manifest, style_names=names, style_vectors=vectors, graphs=graphs,
        predictor=folder / predictor if predictor is not None else None,
    )
