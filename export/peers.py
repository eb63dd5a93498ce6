"""Other projects' trained style networks, loaded only to compare with ours side by side.

Nothing here ships weights: the caller points at a folder it has. Supported:

``engstrom``: the TensorFlow models of lengstrom/fast-style-transfer as dumped for deeplearn.js
(one folder per style: ``manifest.json`` {name: {filename, shape}} and raw little-endian float32
files in TensorFlow layout). The network is Johnson et al.'s: 9x9 conv, two stride-2 convs,
five residual blocks, two stride-2 transposed convs, 9x9 conv; every conv 'SAME'-padded without
bias and followed by instance norm (eps 1e-3, shift and scale stored separately); the input is RGB
in 0..255 without mean subtraction and the output ``tanh(y) * 150 + 127.5``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stylecast.realtime.errors import InputFileError


def _read_variables(folder: Path) -> dict[str, np.ndarray]:
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        return {name: np.fromfile(folder / e["filename"], dtype="<f4").reshape(e["shape"]) for name, e in manifest.items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputFileError(f"{folder}: not a readable deeplearn.js checkpoint folder ({exc})") from exc


def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow's 'SAME' padding (more on the bottom/right when odd)."""
    h, w = x.shape[-2:]
    ph = max((-(-h // stride) - 1) * stride + kernel - h, 0)
    pw = max((-(-w // stride) - 1) * stride + kernel - w, 0)
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


class EngstromNet(nn.Module):
    """lengstrom/fast-style-transfer's transform network with its trained variables. RGB [0, 1] in and out."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        v = _read_variables(Path(folder))
        names = ["Variable", *(f"Variable_{i}" for i in range(1, 48))]
        missing = [n for n in names if n not in v]
        if missing:
            raise InputFileError(f"{folder}: expected 48 variables, {len(missing)} missing (e.g. {missing[0]})")
        self.w = [torch.from_numpy(np.ascontiguousarray(v[n])) for n in names]

    def _conv(self, x: torch.Tensor, i: int, stride: int) -> torch.Tensor:
        k = self.w[i].permute(3, 2, 0, 1)  # HWIO -> OIHW
        return F.conv2d(_same_pad(x, k.shape[-1], stride), k, stride=stride)

    def _up(self, x: torch.Tensor, i: int) -> torch.Tensor:
        k = self.w[i].permute(3, 2, 0, 1)  # [k, k, out, in] -> [in, out, k, k]
        y = F.conv_transpose2d(x, k, stride=2, padding=1, output_padding=1)  # 'SAME', output 2x
        return y

    def _norm(self, x: torch.Tensor, i: int) -> torch.Tensor:
        mu = x.mean((2, 3), keepdim=True)
        var = x.var((2, 3), keepdim=True, unbiased=False)
        shift, scale = self.w[i].reshape(1, -1, 1, 1), self.w[i + 1].reshape(1, -1, 1, 1)
        return scale * (x - mu) / torch.sqrt(var + 1e-3) + shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * 255.0
        y = F.relu(self._norm(self._conv(y, 0, 1), 1))
        y = F.relu(self._norm(self._conv(y, 3, 2), 4))
        y = F.relu(self._norm(self._conv(y, 6, 2), 7))
        for r in range(5):
            b = 9 + 6 * r
            z = F.relu(self._norm(self._conv(y, b, 1), b + 1))
            y = y + self._norm(self._conv(z, b + 3, 1), b + 4)
        y = F.relu(self._norm(self._up(y, 39), 40))
        y = F.relu(self._norm(self._up(y, 42), 43))
        y = self._norm(self._conv(y, 45, 1), 46)
        h, w = x.shape[-2:]
        return ((torch.tanh(y) * 150 + 127.5) / 255.0).clamp(0, 1)[..., :h, :w]
