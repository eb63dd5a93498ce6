"""Training checkpoints: tensors in safetensors, everything else in JSON beside them.

A checkpoint is a folder with
  checkpoint.safetensors  ``net.<name>`` network weights, ``styles`` [N, S] style vectors,
                          and ``extra.<name>`` tensors (optimizer state) for exact resuming
  checkpoint.json         format tag, architecture and its config, style names and sources,
                          step, training settings and provenance, and the sha256 of the tensors

Loading never unpickles anything (safetensors), and a JSON whose hash does not match its
tensors, a foreign file, or missing or misshapen tensors is refused with CheckpointError.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from stylecast.realtime.errors import CheckpointError, UsageError
from stylecast.realtime.model_folder import sha256_file

from .transformer import StyleNetwork, build_network

CHECKPOINT_FORMAT = "stylecast-checkpoint"
CHECKPOINT_VERSION = 1
TENSORS_NAME = "checkpoint.safetensors"
INFO_NAME = "checkpoint.json"


@dataclass
class Checkpoint:
    """A loaded checkpoint: the network (eval mode, on CPU), its style vectors and its record."""

    net: StyleNetwork
    styles: torch.Tensor  # float32 [N, S]
    style_names: list[str]
    info: dict[str, Any]
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    folder: Path | None = None

    @property
    def step(self) -> int:
        return int(self.info.get("step", 0))


def _replace_atomically(folder: Path, name: str, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, folder / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_checkpoint(
    folder: Path | str,
    net: StyleNetwork,
    styles: torch.Tensor,
    style_names: list[str],
    info: dict[str, Any],
    extra: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``folder/checkpoint.{safetensors,json}``; each file is replaced atomically, JSON last."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if styles.ndim != 2 or styles.shape[0] != len(style_names) or styles.shape[1] != net.style_dim:
        raise ValueError(f"styles {tuple(styles.shape)} do not match {len(style_names)} names and S={net.style_dim}")
    tensors = {f"net.{k}": v.detach().float().cpu().contiguous() for k, v in net.state_dict().items()}
    tensors["styles"] = styles.detach().float().cpu().contiguous()
    for k, v in (extra or {}).items():
        tensors[f"extra.{k}"] = v.detach().cpu().contiguous()
    _replace_atomically(folder, TENSORS_NAME, lambda p: save_file(tensors, str(p)))
    record = dict(info)
    record.update(
        format=CHECKPOINT_FORMAT,
        version=CHECKPOINT_VERSION,
        architecture=net.arch_name,
        arch_config=net.config(),
        style_dim=net.style_dim,
        style_names=list(style_names),
        tensors_sha256=sha256_file(folder / TENSORS_NAME),
    )
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    _replace_atomically(folder, INFO_NAME, lambda p: p.write_text(text, encoding="utf-8"))
    return folder


def _checkpoint_folder(path: Path) -> Path:
    if path.is_dir():
        return path
    if path.name in (TENSORS_NAME, INFO_NAME):
        return path.parent
    raise CheckpointError(f"{path}: expected a checkpoint folder (holding {INFO_NAME} and {TENSORS_NAME})")


def saved_info(out: Path | str) -> dict[str, Any]:
    """The record (``checkpoint.json``: mode, settings, step, ...) of the checkpoint in ``out``,
    read without its tensors; {} when there is none or it cannot be read (loading it for real
    then says why)."""
    try:
        info = json.loads((Path(out) / INFO_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def saved_steps(info: dict[str, Any], key: str = "settings") -> int | None:
    """The step target in a run's record (``info[key]["steps"]``, from :func:`saved_info`), if
    any: what ``--resume`` keeps when no ``--steps`` is given."""
    settings = info.get(key)
    steps = settings.get("steps") if isinstance(settings, dict) else None
    return steps if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0 else None


def load_checkpoint(path: Path | str) -> Checkpoint:
    """Load and validate a checkpoint folder (or one of its two files)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    folder = _checkpoint_folder(path)
    info_path, tensors_path = folder / INFO_NAME, folder / TENSORS_NAME
    for p in (info_path, tensors_path):
        if not p.is_file():
            raise CheckpointError(f"{folder}: not a stylecast checkpoint ({p.name} is missing)")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{info_path}: corrupt checkpoint record ({exc})") from exc
    if not isinstance(info, dict) or info.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{info_path}: not a stylecast checkpoint record")
    if info.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{info_path}: checkpoint version {info.get('version')!r} is not supported")
    if info.get("tensors_sha256") != sha256_file(tensors_path):
        raise CheckpointError(f"{tensors_path}: does not match {INFO_NAME} (sha256 differs): corrupt or half-written")
    try:
        tensors = load_file(str(tensors_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{tensors_path}: cannot read tensors ({exc})") from exc
    try:
        net = build_network(info["architecture"], info.get("arch_config"))
        names = [str(n) for n in info["style_names"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{info_path}: incomplete checkpoint record ({exc})") from exc
    state = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{tensors_path}: weights do not fit a {net.arch_name} network ({str(exc).splitlines()[0]})") from exc
    styles = tensors.get("styles")
    if styles is None or tuple(styles.shape) != (len(names), net.style_dim):
        shape = None if styles is None else tuple(styles.shape)
        raise CheckpointError(f"{tensors_path}: style vectors {shape} do not match {len(names)} styles of size {net.style_dim}")
    extra = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
    return Checkpoint(net=net.eval(), styles=styles, style_names=names, info=info, extra=extra, folder=folder)


def save_network(path: Path, net: StyleNetwork) -> Path:
    """Write the network's weights alone (``net.<name>`` float32 tensors) as safetensors."""
    save_file({f"net.{k}": v.detach().float().cpu().contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def start_network(arch: str, overrides: dict[str, Any], source: Checkpoint | None) -> StyleNetwork:
    """The network a run starts from: a new ``arch`` network with the ``--arch-config`` settings
    in ``overrides``, or, for a ``--from`` run, ``source``'s network rebuilt with them. Only
    settings that keep every weight's shape can change that way (``reflect``, say); anything
    else raises UsageError."""
    if source is None:
        return build_network(arch, overrides)
    if not overrides:
        return source.net
    net = build_network(source.net.arch_name, {**source.net.config(), **overrides})
    try:
        net.load_state_dict(source.net.state_dict(), strict=True)
    except RuntimeError as exc:
        raise UsageError(f"--arch-config {json.dumps(overrides)} does not fit the weights of --from "
                         f"({str(exc).splitlines()[0]}); only settings that keep the layers' shapes can change") from None
    return net


def load_network_source(path: Path | str) -> Checkpoint:
    """A training checkpoint folder, or a model folder that carries the network's PyTorch
    weights (``network.safetensors``, written by nst-export): what ``--from`` accepts.

    A model folder is fully validated first (manifest hashes included); its style vectors
    come from ``styles.npz``."""
    from stylecast.realtime import contract as C
    from stylecast.realtime.errors import ModelFolderError
    from stylecast.realtime.model_folder import load_model_folder

    path = Path(path)
    if not (path / C.MANIFEST_NAME).is_file():
        return load_checkpoint(path)
    try:
        folder = load_model_folder(path)
    except ModelFolderError as exc:
        raise CheckpointError(str(exc)) from exc
    entry = folder.manifest.get("network")
    if not isinstance(entry, dict) or entry.get("file") not in folder.manifest["files"]:
        raise CheckpointError(f"{path}: this model folder has no PyTorch weights ({C.NETWORK_WEIGHTS}); "
                              "export it again with this version of nst-export, or start from a checkpoint")
    try:
        tensors = load_file(str(path / entry["file"]))
        net = build_network(entry["architecture"], entry.get("config"))
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path / str(entry.get('file'))}: cannot read the network weights ({exc})") from exc
    try:
        net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")}, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit a {net.arch_name} network ({str(exc).splitlines()[0]})") from exc
    if net.style_dim != folder.style_dim:
        raise CheckpointError(f"{path}: the network takes style vectors of {net.style_dim}, styles.npz has {folder.style_dim}")
    training = folder.manifest.get("provenance", {}).get("training", {})
    info = {**(training if isinstance(training, dict) else {}), "mode": "model-folder"}
    return Checkpoint(net=net.eval(), styles=torch.from_numpy(folder.style_vectors.copy()), style_names=list(folder.style_names),
                      info=info, folder=path)
