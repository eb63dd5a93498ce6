"""Conversions between OpenCV images and PyTorch tensors, and choosing the torch device."""

from __future__ import annotations

import numpy as np
import torch

from stylecast.realtime.errors import BackendUnavailableError, UsageError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda if available else cpu; 'cuda' without CUDA -> BackendUnavailableError."""
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BackendUnavailableError(
                "--device cuda: this PyTorch has no usable CUDA (CPU-only build, or no NVIDIA driver/GPU); use --device cpu"
            )
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise UsageError(f"unknown device {name!r}; use auto, cpu or cuda")


def bgr_to_tensor(img: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 BGR [H, W, 3] -> float RGB [1, 3, H, W] in [0, 1]."""
    if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3):
        raise ValueError("expected a uint8 BGR image of shape [H, W, 3]")
    rgb = np.ascontiguousarray(img[:, :, ::-1])
    return torch.from_numpy(rgb).to(device).permute(2, 0, 1).unsqueeze(0).float().div_(255.0).contiguous()


def tensor_to_bgr(x: torch.Tensor) -> np.ndarray:
    """float RGB [1, 3, H, W] or [3, H, W] in [0, 1] -> uint8 BGR [H, W, 3] (clamped, rounded)."""
    x = x.detach()
    x = x[0] if x.ndim == 4 else x
    rgb = x.float().clamp(0, 1).mul(255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(rgb[:, :, ::-1])
